import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { after, before, test } from 'node:test'
import pg from 'pg'
import { pino } from 'pino'
import { openUserDirectory, type UserDirectory } from '../../src/auth/users.ts'
import { userCommand, type UserInput } from '../../src/cli/user.ts'
import { openPostgres, type Postgres } from '../../src/core/postgres.ts'
import { freePort } from '../helpers/pebble.ts'
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts'

/**
 * `edgebox user` on PostgreSQL (`--postgres URL`, or `--config FILE` whose
 * `postgres` is a URL or `true` with DATABASE_URL) against a real server,
 * each test in a fresh database: the same scenario run on the data folder's
 * SQLite and on PostgreSQL gives the same output, messages and exit codes;
 * the users it writes are those the provider reads (openUserDirectory with
 * `postgres`); a PostgreSQL that cannot be reached, that goes away while a
 * password is typed, or that refuses a statement is a one-line refusal
 * (exit 1) that never shows the password of the URL; and the command
 * exits at once when done (the pool is closed).
 */

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const PW = 'correct horse battery'
/** A site with the built-in provider: what a configuration that has users looks like. */
const SITE = { hosts: ['id.example.test'], routes: [{ path: '/', idp: { issuer: 'https://id.example.test', clients: [{ clientId: 'app', clientSecret: 'a client secret, long enough', redirectUris: ['https://app.example.test/_edgebox/auth/callback'] }] } }] }

let server: PostgresServer
let dir = ''
const pools: Postgres[] = []
before(async () => {
  server = await startPostgres()
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-user-cli-pg-'))
})
after(async () => {
  await Promise.all(pools.map((p) => p.close()))
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

interface Ran {
  code: number | null
  out: string
  err: string
}

/** Runs `edgebox ARGS` (the real binary) with `input` on stdin, in `cwd`. */
function edgebox(args: string[], input = '', env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd, stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
    child.stdin.on('error', () => {}) // a refusal may exit before reading stdin
    child.stdin.end(input)
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, out, err }))
  })
}

/** `edgebox user ARGS` in this process, with `input` as stdin (a pipe, or a stand-in terminal). */
async function run(args: string[], input: UserInput | string = ''): Promise<Ran> {
  let out = ''
  let err = ''
  const sink = (f: (s: string) => void) => new Writable({ write(c, _e, cb) { f(String(c)); cb() } })
  const stdin = typeof input === 'string' ? new PassThrough().end(input) : input
  const code = await userCommand(args, sink((s) => (out += s)), sink((s) => (err += s)), stdin)
  return { code, out, err }
}

/** A pool on `url`, closed at the end. */
async function pool(url: string): Promise<Postgres> {
  const p = await openPostgres({ url, max: 2, connectTimeout: 2_000 }, pino({ level: 'silent' }))
  pools.push(p)
  return p
}

/** Runs `fn` on the users as the provider opens them: `postgres` when given, else the data folder. */
async function provider<T>(o: { dataDir: string; postgres?: Postgres }, fn: (users: UserDirectory) => Promise<T>): Promise<T> {
  const users = await openUserDirectory(o)
  try {
    return await fn(users)
  } finally {
    await users.close()
  }
}

/** The environment without DATABASE_URL (so a test never reads the one it runs in), with `extra`. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e = { ...process.env, ...extra }
  if (!('DATABASE_URL' in extra)) delete e.DATABASE_URL
  return e
}

/** Dates and times as they vary from run to run. */
const undated = (s: string) => s.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, 'TIME').replace(/\d{4}-\d\d-\d\d/g, 'DATE')

/** One step of a scenario: the arguments, stdin, and the exit code, output and error expected (dates as DATE and TIME). */
type Step = [args: string[], input: string, code: number, out: string | RegExp, err: string]

/**
 * What an administrator does, with every kind of answer: adds (and a
 * duplicate, a bad name, a weak password), lists, changes a password and
 * groups, sets a second factor and turns it off, removes; `where` is the
 * options that say where the users are.
 */
const SCENARIO: Step[] = [
  [['add', 'Alice', '--email', 'alice@example.test', '--name', 'Alice A.', '--group', 'admins', '--group', 'ops', '--password-stdin'], `${PW}\n`, 0, 'user alice added\n', ''],
  [['add', 'bob'], `${PW}\r\n`, 0, 'user bob added\n', ''],
  [['add', 'BOB', '--password-stdin'], `${PW}\n`, 1, '', 'edgebox user: user bob exists\n'],
  [['add', 'bad name'], `${PW}\n`, 1, '', 'edgebox user: the username "bad name" may hold only letters a-z, digits, ".", "_" and "-"\n'],
  [['add', 'erin'], 'too short\n', 1, '', 'edgebox user: the password is shorter than 12 characters\n'],
  [['add', 'erin', '--group', 'a b'], `${PW}\n`, 1, '', 'edgebox user: the group name "a b" contains a comma, whitespace or a control character\n'],
  [['list'], '', 0, 'USERNAME  EMAIL               GROUPS      2FA  CREATED\nalice     alice@example.test  admins,ops  no   DATE\nbob       -                   -           no   DATE\n', ''],
  [
    ['list', '--json'],
    '',
    0,
    '{"username":"alice","email":"alice@example.test","name":"Alice A.","groups":["admins","ops"],"secondFactor":false,"totp":false,"passkeys":0,"disabled":false,"createdAt":"TIME","passwordChangedAt":"TIME"}\n' +
      '{"username":"bob","email":null,"name":null,"groups":[],"secondFactor":false,"totp":false,"passkeys":0,"disabled":false,"createdAt":"TIME","passwordChangedAt":"TIME"}\n',
    '',
  ],
  [['passwd', 'BOB', '--password-stdin'], 'a brand new password\n', 0, 'password of bob changed\n', ''],
  [['passwd', 'nobody', '--password-stdin'], `${PW}\n`, 1, '', 'edgebox user: user nobody does not exist\n'],
  [['passwd', 'bob', '--password-stdin'], 'too short\n', 1, '', 'edgebox user: the password is shorter than 12 characters\n'],
  [['groups', 'bob', 'dev,ops,dev'], '', 0, 'groups of bob: dev,ops\n', ''],
  [['groups', 'alice', ''], '', 0, 'groups of alice: (none)\n', ''],
  [['groups', 'Nobody', 'a'], '', 1, '', 'edgebox user: user nobody does not exist\n'],
  [['groups', 'bob', 'a b'], '', 1, '', 'edgebox user: the group name "a b" contains a comma, whitespace or a control character\n'],
  [['totp', 'bob', '--issuer', 'Example'], '', 0, /^a new second factor for bob: add it to an authenticator app\n {2}otpauth:\/\/totp\/Example:bob\?issuer=Example&secret=[A-Z2-7]+&algorithm=SHA1&digits=6&period=30\n {2}secret: [A-Z2-7 ]+\n$/, ''],
  [['list'], '', 0, 'USERNAME  EMAIL               GROUPS   2FA  CREATED\nalice     alice@example.test  -        no   DATE\nbob       -                   dev,ops  yes  DATE\n', ''],
  [['totp', 'bob', '--off'], '', 0, 'the second factor of bob is off\n', ''],
  [['totp', 'nobody'], '', 1, '', 'edgebox user: user nobody does not exist\n'],
  [['passkeys', 'bob'], '', 0, "bob has no passkeys (they register one at sign-in, when the provider's secondFactor is 'required')\n", ''],
  [['passkeys', 'bob', '--remove-all'], '', 0, 'bob had no passkeys\n', ''],
  [['passkeys', 'bob', '--remove', 'nope'], '', 1, '', 'edgebox user: bob has no passkey "nope" (edgebox user passkeys bob lists them)\n'],
  [['remove', 'alice'], '', 0, 'user alice removed\n', ''],
  [['remove', 'alice'], '', 1, '', 'edgebox user: user alice does not exist\n'],
  [['list'], '', 0, 'USERNAME  EMAIL  GROUPS   2FA  CREATED\nbob       -      dev,ops  no   DATE\n', ''],
]

/** Runs the scenario with `where` in this process; returns what each step answered (dates as DATE and TIME). */
async function scenario(where: string[]): Promise<Ran[]> {
  const ran: Ran[] = []
  for (const [args, input, code, out, err] of SCENARIO) {
    const r = await run([...args, ...where], input)
    const what = `${args.join(' ')}: ${r.err}`
    assert.equal(r.code, code, what)
    if (typeof out === 'string') assert.equal(undated(r.out), out, what)
    else assert.match(r.out, out, what)
    assert.equal(r.err, err, what)
    // the TOTP secret differs from store to store: its place is compared
    ran.push({ ...r, out: undated(r.out).replace(/secret=[A-Z2-7]+/, 'secret=SECRET').replace(/secret: [A-Z2-7 ]+/, 'secret: SECRET') })
  }
  return ran
}

test('the same scenario on the data folder and with --postgres: the same output, messages and exit codes; the provider reads what it wrote', async () => {
  const url = await server.database('users_same')
  const dataDir = path.join(dir, 'same-data')
  const onSqlite = await scenario(['--data-dir', dataDir])
  const onPostgres = await scenario(['--postgres', url])
  assert.deepEqual(onPostgres, onSqlite)

  // the provider's view: the users the command left, with the password it set
  const postgres = await pool(url)
  const providerDir = path.join(dir, 'same-provider')
  await provider({ dataDir: providerDir, postgres }, async (users) => {
    assert.deepEqual(
      (await users.list()).map((u) => [u.username, u.groups, u.totpSecret]),
      [['bob', ['dev', 'ops'], null]],
    )
    assert.equal((await users.verify('bob', 'a brand new password'))?.username, 'bob')
    assert.equal(await users.verify('bob', PW), null)
  })
  // nothing went to a data folder
  assert.ok(!existsSync(providerDir))
})

test('totp on PostgreSQL: the secret printed is the one the provider checks codes against', async () => {
  const url = await server.database('users_totp')
  const postgres = await pool(url)
  assert.equal((await run(['add', 'tina', '--postgres', url], `${PW}\n`)).code, 0)
  const r = await run(['totp', 'tina', '--postgres', url])
  assert.equal(r.code, 0, r.err)
  const secret = new URL(/otpauth:\/\/totp\/\S+/.exec(r.out)![0]).searchParams.get('secret')!
  const { totpCode, totpStep } = await import('../../src/auth/idp/totp.ts')
  await provider({ dataDir: path.join(dir, 'totp-provider'), postgres }, async (users) => {
    const stored = (await users.get('tina'))!.totpSecret!
    assert.equal(stored, secret)
    assert.notEqual(totpStep(stored, totpCode(secret, Date.now()), Date.now()), null)
  })
  assert.equal((await run(['totp', 'TINA', '--off', '--postgres', url])).out, 'the second factor of tina is off\n')
  assert.equal(await provider({ dataDir: dir, postgres }, async (users) => (await users.get('tina'))!.totpSecret), null)
})

test('passkeys the provider registered, listed and removed with --postgres as with the data folder', async () => {
  const url = await server.database('users_passkeys')
  const postgres = await pool(url)
  const dataDir = path.join(dir, 'passkeys-data')
  const at = Date.parse('2024-05-01T10:00:00.000Z')
  for (const o of [{ dataDir }, { dataDir, postgres }]) {
    const where = o.postgres ? ['--postgres', url] : ['--data-dir', dataDir]
    assert.equal((await run(['add', 'paula', ...where], `${PW}\n`)).code, 0)
    await provider(o, async (users) => {
      await users.addPasskey('paula', { id: 'AAAA', userHandle: 'aGFuZGxl', publicKey: new Uint8Array([1, 2, 3]), counter: 0, transports: ['usb', 'nfc'] }, at)
      await users.addPasskey('paula', { id: 'BBBB', userHandle: 'aGFuZGxl', publicKey: new Uint8Array([4, 5, 6]), counter: 0 }, at + 86_400_000)
      assert.equal(await users.usePasskey('paula', 'AAAA', 7, at + 2 * 86_400_000), true)
    })
    let r = await run(['passkeys', 'Paula', ...where])
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, 'ID    CREATED     LAST USED   TRANSPORTS\nAAAA  2024-05-01  2024-05-03  usb,nfc\nBBBB  2024-05-02  never       -\n')
    r = await run(['passkeys', 'paula', '--json', ...where])
    assert.equal(
      r.out,
      '{"id":"AAAA","createdAt":"2024-05-01T10:00:00.000Z","lastUsedAt":"2024-05-03T10:00:00.000Z","counter":7,"transports":["usb","nfc"]}\n' +
        '{"id":"BBBB","createdAt":"2024-05-02T10:00:00.000Z","lastUsedAt":null,"counter":0,"transports":[]}\n',
    )
    r = await run(['list', '--json', ...where])
    assert.deepEqual(JSON.parse(r.out), { ...JSON.parse(r.out), secondFactor: true, totp: false, passkeys: 2 })
    r = await run(['passkeys', 'paula', '--remove', 'AAAA', ...where])
    assert.equal(r.out, 'passkey AAAA of paula removed\n')
    r = await run(['passkeys', 'paula', '--remove-all', ...where])
    assert.equal(r.out, '1 passkey of paula removed\n')
    assert.deepEqual(await provider(o, (users) => users.passkeys('paula')), [])
  }
})

test('the real binary with --postgres: adds and lists, exits at once (the pool closed), leaves the data folder alone', async () => {
  const url = await server.database('users_bin')
  const home = path.join(dir, 'bin-home')
  const started = Date.now()
  const added = await edgebox(['user', 'add', 'carol', '--group', 'staff', '--postgres', url], `${PW}\n`, env({ EDGEBOX_HOME: home }))
  assert.equal(added.code, 0, added.err)
  assert.equal(added.out, 'user carol added\n')
  assert.equal(added.err, '')
  // the common options may come before the subcommand too
  const listed = await edgebox(['user', '--postgres', url, 'list'], '', env({ EDGEBOX_HOME: home }))
  assert.equal(listed.code, 0, listed.err)
  assert.equal(undated(listed.out), 'USERNAME  EMAIL  GROUPS  2FA  CREATED\ncarol     -      staff   no   DATE\n')
  // an idle connection left in the pool would hold each process for the pool's idle timeout (30 s)
  assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`)
  assert.ok(!existsSync(home), 'no data folder made')
  assert.equal(await provider({ dataDir: home, postgres: await pool(url) }, async (users) => (await users.verify('carol', PW))?.username), 'carol')
})

test('--config: a configuration whose postgres is a URL; postgres: true reads DATABASE_URL, and without it is refused', async () => {
  const url = await server.database('users_config')
  const trueUrl = await server.database('users_config_true')
  const cfgDir = path.join(dir, 'config')
  mkdirSync(cfgDir)
  const withUrl = path.join(cfgDir, 'edgebox.json')
  writeFileSync(withUrl, JSON.stringify({ dataDir: 'data', postgres: url, sites: [SITE] }))
  const withTrue = path.join(cfgDir, 'edgebox-true.json')
  writeFileSync(withTrue, JSON.stringify({ dataDir: 'data', postgres: true, sites: [SITE] }))
  // run from another folder: the configuration's folder is what counts, as for `edgebox --config`
  const elsewhere = path.join(dir, 'elsewhere')
  mkdirSync(elsewhere)

  const [a, b, noEnv] = await Promise.all([
    edgebox(['user', 'add', 'dan', '--config', withUrl], `${PW}\n`, env(), elsewhere),
    edgebox(['user', 'add', 'eve', '-c', withTrue], `${PW}\n`, env({ DATABASE_URL: trueUrl }), elsewhere),
    edgebox(['user', 'add', 'fay', '--config', withTrue], `${PW}\n`, env(), elsewhere),
  ])
  assert.equal(a.code, 0, a.err)
  assert.equal(a.out, 'user dan added\n')
  assert.equal(b.code, 0, b.err)
  assert.equal(b.out, 'user eve added\n')
  assert.equal(noEnv.code, 1)
  assert.equal(noEnv.out, '')
  assert.equal(noEnv.err, 'edgebox user: postgres: give a URL (postgres: "postgres://user:password@host:port/database") or set DATABASE_URL\n')

  // each in the database its configuration names, none in the configuration's data folder
  assert.ok(!existsSync(path.join(cfgDir, 'data')))
  assert.deepEqual(await provider({ dataDir: dir, postgres: await pool(url) }, async (users) => (await users.list()).map((u) => u.username)), ['dan'])
  assert.deepEqual(await provider({ dataDir: dir, postgres: await pool(trueUrl) }, async (users) => (await users.list()).map((u) => u.username)), ['eve'])
  const listed = await run(['list', '--config', withUrl])
  assert.equal(undated(listed.out), 'USERNAME  EMAIL  GROUPS  2FA  CREATED\ndan       -      -       no   DATE\n')
})

test('PostgreSQL unreachable (a closed port): exit 1, one line that names it without the password', async () => {
  const port = await freePort()
  const url = `postgres://edgebox:not-shown-pw@127.0.0.1:${port}/edgebox`
  const line = `edgebox user: postgres: cannot reach postgres://edgebox@127.0.0.1:${port}/edgebox (connect ECONNREFUSED 127.0.0.1:${port})\n`
  const cfg = path.join(dir, 'unreachable.json')
  writeFileSync(cfg, JSON.stringify({ postgres: { url }, sites: [SITE] }))
  const [bin, viaConfig] = await Promise.all([edgebox(['user', 'list', '--postgres', url], '', env()), edgebox(['user', 'add', 'gus', '--config', cfg], `${PW}\n`, env())])
  for (const r of [bin, viaConfig]) {
    assert.equal(r.code, 1)
    assert.equal(r.out, '')
    assert.equal(r.err, line)
  }
  const inProcess = await run(['passwd', 'gus', '--postgres', url], `${PW}\n`)
  assert.equal(inProcess.code, 1)
  assert.equal(inProcess.err, line)
})

/** A stand-in terminal: isTTY, raw mode recorded, keystrokes written by the test. */
function fakeTty(): UserInput & PassThrough {
  return Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined })
}

test('PostgreSQL gone while the password is typed: exit 1, one line naming it, no user half-added', async () => {
  const url = await server.database('users_outage')
  const tty = fakeTty()
  let out = ''
  let err = ''
  const sink = (f: (s: string) => void) => new Writable({ write(c, _e, cb) { f(String(c)); cb() } })
  const running = userCommand(['add', 'hugo', '--postgres', url], sink((s) => (out += s)), sink((s) => (err += s)), tty)
  // the user was looked up (not there) before the password is asked for
  for (let i = 0; i < 200 && err !== 'Password: '; i++) await new Promise((r) => setTimeout(r, 25))
  assert.equal(err, 'Password: ')
  await server.kill()
  try {
    tty.write(`${PW}\r${PW}\r`)
    assert.equal(await running, 1)
    assert.equal(out, '')
    const port = new URL(url).port
    assert.match(err, new RegExp(`^Password: \\nAgain: \\nedgebox user: postgres: cannot reach postgres://edgebox@127\\.0\\.0\\.1:${port}/users_outage \\([^\\n]+\\)\\n$`))
  } finally {
    await server.start()
  }
  const listed = await run(['list', '--postgres', url])
  assert.equal(listed.out, 'no users (edgebox user add USERNAME adds one)\n')
})

test('a statement PostgreSQL refuses (no INSERT or UPDATE right on the users): exit 1, one line naming the database and why; nothing changed', async () => {
  const url = await server.database('users_refused')
  assert.equal((await run(['add', 'ivan', '--postgres', url], `${PW}\n`)).code, 0)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('REVOKE INSERT, UPDATE ON idp_users FROM edgebox')
  } finally {
    await client.end()
  }
  const target = `postgres://edgebox@127.0.0.1:${new URL(url).port}/users_refused`
  const added = await run(['add', 'judy', '--postgres', url], `${PW}\n`)
  assert.equal(added.code, 1)
  assert.equal(added.err, `edgebox user: postgres: ${target}: permission denied for table idp_users\n`)
  const groups = await run(['groups', 'ivan', 'ops', '--postgres', url])
  assert.equal(groups.code, 1)
  assert.equal(groups.err, `edgebox user: postgres: ${target}: permission denied for table idp_users\n`)
  // reading still works, and shows nothing changed
  const listed = await run(['list', '--postgres', url])
  assert.equal(undated(listed.out), 'USERNAME  EMAIL  GROUPS  2FA  CREATED\nivan      -      -       no   DATE\n')
})

test('usage errors (exit 2) name the options that conflict; a --postgres that is no URL is not repeated (it may hold a password)', async () => {
  const url = server.url
  const cases: [string[], string][] = [
    [['list', '--postgres', url, '--data-dir', dir], 'edgebox user list: --data-dir and --postgres do not go together (each says where the users are: give one)'],
    [['add', 'x', '--config', 'edgebox.json', '--postgres', url], 'edgebox user add: --config and --postgres do not go together (each says where the users are: give one)'],
    [['remove', 'x', '--data-dir', dir, '-c', 'edgebox.json', '--postgres', url], 'edgebox user remove: --data-dir, --config and --postgres do not go together (each says where the users are: give one)'],
    [['list', '--postgres', 'mysql://root:hunter2-secret@db/users'], 'edgebox user list: --postgres takes a postgres://user@host:port/database URL'],
    [['list', '--postgres', 'postgres//edgebox:hunter2-secret@db'], 'edgebox user list: --postgres takes a postgres://user@host:port/database URL'],
    [['list', '--postgres'], "edgebox user list: Option '--postgres <value>' argument missing"],
    [['passkeys', 'x', '--remove', 'AAAA', '--remove-all', '--postgres', url], 'edgebox user passkeys: --remove and --remove-all do not go together'],
  ]
  for (const [args, first] of cases) {
    const r = await run(args)
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`)
    assert.equal(r.err.split('\n')[0], first)
    assert.match(r.err, /usage: edgebox user COMMAND \[--data-dir DIR \| --config FILE \| --postgres URL\]/)
    assert.ok(!r.err.includes('hunter2'))
    assert.equal(r.out, '')
  }
})

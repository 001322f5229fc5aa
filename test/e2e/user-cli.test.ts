import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { after, before, test } from 'node:test'
import { UserStore } from '../../src/auth/users.ts'
import { userCommand, type UserInput } from '../../src/cli/user.ts'

/**
 * `edgebox user`: the real binary against a temporary data folder for each
 * kind of outcome; the finer refusals and usage errors in-process (each
 * start of the binary loads the whole CLI, most of a second).
 */

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const PW = 'correct horse battery'
const USAGE = /usage: edgebox user COMMAND/

let dir = ''
let data = ''
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-user-cli-'))
  data = path.join(dir, 'data')
})
after(() => rmSync(dir, { recursive: true, force: true }))

interface Ran {
  code: number | null
  out: string
  err: string
}

/** Runs `edgebox ARGS` (the real binary), with `input` on stdin, in `cwd`. */
function edgebox(args: string[], input?: string, env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd, stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
    child.stdin.on('error', () => {}) // a refusal may exit before reading stdin
    child.stdin.end(input ?? '')
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, out, err }))
  })
}
/** `edgebox user ARGS --data-dir <the test's folder>`, the real binary. */
const user = (args: string[], input?: string) => edgebox(['user', ...args, '--data-dir', data], input)

/** `edgebox user ARGS --data-dir <the test's folder>` in this process, with `input` as stdin (a pipe, or a stand-in terminal). */
const run = (args: string[], input: UserInput | string = ''): Promise<Ran> => runAs([...args, '--data-dir', data], input)

/** `edgebox user ARGS` in this process, with `input` as stdin. */
async function runAs(args: string[], input: UserInput | string = ''): Promise<Ran> {
  let out = ''
  let err = ''
  const sink = (f: (s: string) => void) => new Writable({ write(c, _e, cb) { f(String(c)); cb() } })
  const stdin = typeof input === 'string' ? new PassThrough().end(input) : input
  const code = await userCommand(args, sink((s) => (out += s)), sink((s) => (err += s)), stdin)
  return { code, out, err }
}

async function withStore<T>(fn: (store: UserStore) => Promise<T> | T): Promise<T> {
  const store = await UserStore.open(data)
  try {
    return await fn(store)
  } finally {
    store.close()
  }
}

test('add (password from stdin), list as text and JSON lines, no hashes shown', async () => {
  const [a, b] = await Promise.all([
    user(['add', 'Alice', '--email', 'alice@example.test', '--name', 'Alice A.', '--group', 'admins', '--group', 'ops', '--password-stdin'], `${PW}\nignored second line\n`),
    // without --password-stdin, a stdin that is not a terminal still gives its first line (CRLF too)
    user(['add', 'bob'], `${PW}\r\n`),
  ])
  assert.equal(a.code, 0, a.err)
  assert.equal(a.out, 'user alice added\n')
  assert.equal(b.code, 0, b.err)
  assert.equal(b.out, 'user bob added\n')
  assert.equal((await withStore((s) => s.verify('bob', PW)))?.username, 'bob')

  const [text, json, first] = await Promise.all([
    user(['list']),
    user(['list', '--json']),
    // the common option may come before the subcommand too
    edgebox(['user', '--data-dir', data, 'list']),
  ])
  assert.equal(text.code, 0, text.err)
  assert.ok(!text.out.includes('scrypt$'))
  const lines = text.out.trimEnd().split('\n')
  assert.equal(lines.length, 3)
  assert.match(lines[0]!, /^USERNAME\s+EMAIL\s+GROUPS\s+2FA\s+CREATED$/)
  assert.match(lines[1]!, /^alice\s+alice@example\.test\s+admins,ops\s+no\s+\d{4}-\d\d-\d\d$/)
  assert.match(lines[2]!, /^bob\s+-\s+-\s+no\s+\d{4}-\d\d-\d\d$/)
  assert.equal(first.out, text.out)

  assert.equal(json.code, 0, json.err)
  assert.ok(!json.out.includes('scrypt$'))
  const users = json.out.trimEnd().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(
    users.map((u) => [u.username, u.email, u.name, u.groups, u.secondFactor]),
    [
      ['alice', 'alice@example.test', 'Alice A.', ['admins', 'ops'], false],
      ['bob', null, null, [], false],
    ],
  )
  assert.ok(!Number.isNaN(Date.parse(users[0].createdAt)))
  assert.ok(!('totpSecret' in users[0]) && !('passwordHash' in users[0]))

  // a second factor shows as yes, its secret nowhere
  await withStore((s) => s.setTotpSecret('bob', 'JBSWY3DPEHPK3PXP'))
  const listed = await run(['list'])
  assert.match(listed.out, /^bob\s+-\s+-\s+yes\s/m)
  assert.ok(!listed.out.includes('JBSWY3DPEHPK3PXP'))
  assert.equal(JSON.parse((await run(['list', '--json'])).out.trimEnd().split('\n')[1]!).secondFactor, true)
})

test('passwd, groups and remove', async () => {
  await withStore((s) => s.add({ username: 'carol', password: PW }))
  let r = await user(['passwd', 'CAROL', '--password-stdin'], 'a brand new password\n')
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'password of carol changed\n')
  r = await user(['groups', 'carol', 'dev,ops,dev'])
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'groups of carol: dev,ops\n')
  await withStore(async (store) => {
    assert.equal(await store.verify('carol', PW), null)
    assert.equal((await store.verify('carol', 'a brand new password'))?.username, 'carol')
    assert.deepEqual(store.get('carol')!.groups, ['dev', 'ops'])
  })
  r = await run(['groups', 'carol', ''])
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'groups of carol: (none)\n')
  r = await user(['remove', 'carol'])
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'user carol removed\n')
  assert.equal(await withStore((s) => s.get('carol')), undefined)
})

test('refusals exit 1 with one line: duplicate, unknown user, short password, bad username', async () => {
  await withStore((s) => s.add({ username: 'dave', password: PW }))
  const cases: [string[], string, string][] = [
    [['add', 'DAVE', '--password-stdin'], `${PW}\n`, 'edgebox user: user dave exists\n'],
    [['passwd', 'nobody', '--password-stdin'], `${PW}\n`, 'edgebox user: user nobody does not exist\n'],
    [['add', 'erin', '--password-stdin'], 'too short\n', 'edgebox user: the password is shorter than 12 characters\n'],
    [['add', 'bad name', '--password-stdin'], `${PW}\n`, 'edgebox user: the username "bad name" may hold only letters a-z, digits, ".", "_" and "-"\n'],
  ]
  const results = await Promise.all(cases.map(([args, input]) => user(args, input)))
  for (const [i, [args, , err]] of cases.entries()) {
    const r = results[i]!
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`)
    assert.equal(r.err, err, args.join(' '))
    assert.equal(r.out, '')
  }
  assert.deepEqual(
    await withStore((s) => s.list().map((u) => u.username)),
    ['alice', 'bob', 'dave'],
  )
})

test('more refusals (in-process): remove/groups of an unknown user, bad email and group, no password, a weak new password', async () => {
  const cases: [string[], string, string][] = [
    [['remove', 'nobody'], '', 'edgebox user: user nobody does not exist\n'],
    [['groups', 'Nobody', 'a'], '', 'edgebox user: user nobody does not exist\n'],
    [['passwd', 'dave', '--password-stdin'], 'too short\n', 'edgebox user: the password is shorter than 12 characters\n'],
    [['add', '.erin'], `${PW}\n`, 'edgebox user: the username ".erin" must start with a letter or a digit\n'],
    [['add', 'erin', '--email', 'not-an-address'], `${PW}\n`, 'edgebox user: the email address "not-an-address" is not of the form name@domain\n'],
    [['add', 'erin', '--group', 'a b'], `${PW}\n`, 'edgebox user: the group name "a b" contains a comma, whitespace or a control character\n'],
    [['groups', 'dave', 'a b'], '', 'edgebox user: the group name "a b" contains a comma, whitespace or a control character\n'],
    [['add', 'erin', '--password-stdin'], '', 'edgebox user: no password on standard input (give it as its first line)\n'],
  ]
  for (const [args, input, err] of cases) {
    const r = await run(args, input)
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`)
    assert.equal(r.err, err, args.join(' '))
    assert.equal(r.out, '')
  }
  assert.equal(await withStore((s) => s.get('erin')), undefined)
})

test('usage errors exit 2 with the usage text; the main help lists the command', async () => {
  const [bad, help] = await Promise.all([user(['frob']), edgebox(['--help'])])
  assert.equal(bad.code, 2, bad.err)
  assert.equal(bad.err.split('\n')[0], 'edgebox user: unknown subcommand "frob"')
  assert.match(bad.err, USAGE)
  assert.equal(help.code, 0)
  assert.match(help.out, /edgebox user add\|passwd\|groups\|remove\|list/)

  for (const [args, first] of [
    [[], 'edgebox user: a subcommand is needed'],
    [['--bogus'], 'edgebox user: unknown option --bogus'],
    [['list', '--bogus'], 'edgebox user list: unknown option --bogus'],
    // a password is never an argument
    [['add', 'x', '--password', 'hunter2hunter2'], 'edgebox user add: unknown option --password'],
    [['add'], 'edgebox user add: takes a username, got none'],
    [['add', 'a', 'b'], 'edgebox user add: takes a username, got "a" "b"'],
    [['groups', 'dave'], 'edgebox user groups: takes a username and a list of groups, got "dave"'],
    [['list', 'x'], 'edgebox user list: takes no arguments, got "x"'],
  ] as const) {
    const r = await run([...args])
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`)
    assert.equal(r.err.split('\n')[0], first)
    assert.match(r.err, USAGE)
  }
  const usage = await run(['--help'])
  assert.equal(usage.code, 0)
  assert.match(usage.out, /edgebox user add USERNAME/)
})

test('without --data-dir, the default data folder ($EDGEBOX_HOME), as the rest of the CLI', async () => {
  const home = path.join(dir, 'home')
  const r = await edgebox(['user', 'add', 'frank', '--password-stdin'], `${PW}\n`, { ...process.env, EDGEBOX_HOME: home })
  assert.equal(r.code, 0, r.err)
  assert.ok(existsSync(path.join(home, 'auth', 'users.sqlite')))
  const store = await UserStore.open(home)
  try {
    assert.equal(store.get('frank')?.username, 'frank')
  } finally {
    store.close()
  }
})

/** A site with the built-in provider: what a configuration that has users looks like. */
const SITE = { hosts: ['id.example.test'], routes: [{ path: '/', idp: { issuer: 'https://id.example.test', clients: [{ clientId: 'app', clientSecret: 'a client secret, long enough', redirectUris: ['https://app.example.test/_edgebox/auth/callback'] }] } }] }

test("--config without postgres: the configuration's dataDir, relative to its folder (not the working folder), as for edgebox --config", async () => {
  const cfgDir = path.join(dir, 'config')
  const elsewhere = path.join(dir, 'elsewhere')
  mkdirSync(cfgDir)
  mkdirSync(elsewhere)
  const cfg = path.join(cfgDir, 'edgebox.json')
  writeFileSync(cfg, JSON.stringify({ dataDir: 'state', sites: [SITE] }))
  const home = path.join(dir, 'config-home')
  const r = await edgebox(['user', 'add', 'gina', '--config', cfg], `${PW}\n`, { ...process.env, EDGEBOX_HOME: home }, elsewhere)
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'user gina added\n')
  assert.ok(!existsSync(home) && !existsSync(path.join(elsewhere, 'state')))
  const store = await UserStore.open(path.join(cfgDir, 'state'))
  try {
    assert.equal((await store.verify('gina', PW))?.username, 'gina')
  } finally {
    store.close()
  }
  // -c, before the subcommand too; a configuration without dataDir: the default data folder
  const listed = await runAs(['-c', cfg, 'list'])
  assert.equal(listed.code, 0, listed.err)
  assert.match(listed.out, /^USERNAME +EMAIL +GROUPS +2FA +CREATED\ngina +- +- +no +\d{4}-\d\d-\d\d\n$/)
})

test('DATABASE_URL in the environment is not read without --config or --postgres: the data folder stays where the users are', async () => {
  const home = path.join(dir, 'env-home')
  // a URL nothing answers at: used, it would be a refusal
  const r = await edgebox(['user', 'add', 'hana', '--password-stdin'], `${PW}\n`, { ...process.env, EDGEBOX_HOME: home, DATABASE_URL: 'postgres://edgebox:pw@127.0.0.1:1/edgebox' })
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'user hana added\n')
  const store = await UserStore.open(home)
  try {
    assert.equal(store.get('hana')?.username, 'hana')
  } finally {
    store.close()
  }
})

test('--config that cannot be loaded or is not valid: exit 1, one line naming the file and the problem', async () => {
  const missing = path.join(dir, 'missing.json')
  const bad = path.join(dir, 'bad.json')
  writeFileSync(bad, JSON.stringify({ dataDir: 5, sites: [SITE] }))
  const notJson = path.join(dir, 'broken.json')
  writeFileSync(notJson, '{ "sites": ')
  for (const [file, err] of [
    [missing, `edgebox user: ${missing}: cannot read the configuration file (ENOENT)\n`],
    [bad, `edgebox user: ${bad}: dataDir: Invalid input: expected string, received number\n`],
    [path.join(dir, 'edgebox.yaml'), `edgebox user: ${path.join(dir, 'edgebox.yaml')}: a configuration file is .ts, .mts, .js, .mjs or .json\n`],
  ] as const) {
    const r = await runAs(['list', '--config', file])
    assert.equal(r.code, 1, r.err)
    assert.equal(r.err, err)
    assert.equal(r.out, '')
  }
  const broken = await runAs(['list', '--config', notJson])
  assert.equal(broken.code, 1)
  assert.ok(broken.err.startsWith(`edgebox user: ${notJson}: not valid JSON (`) && broken.err.endsWith(')\n') && broken.err.split('\n').length === 2, broken.err)
})

test('--config or --postgres with --data-dir: a usage error (exit 2) naming both', async () => {
  for (const [args, first] of [
    [['list', '--config', 'edgebox.json'], 'edgebox user list: --data-dir and --config do not go together (each says where the users are: give one)'],
    [['add', 'x', '--postgres', 'postgres://edgebox@127.0.0.1/edgebox'], 'edgebox user add: --data-dir and --postgres do not go together (each says where the users are: give one)'],
  ] as const) {
    const r = await run([...args])
    assert.equal(r.code, 2, r.err)
    assert.equal(r.err.split('\n')[0], first)
    assert.match(r.err, USAGE)
  }
  // a common option with its value and no subcommand: the subcommand is what is missing
  const none = await runAs(['--config', 'edgebox.json'])
  assert.equal(none.code, 2)
  assert.equal(none.err.split('\n')[0], 'edgebox user: a subcommand is needed')
})

/** A stand-in terminal: isTTY, raw mode recorded, keystrokes written by the test. */
function fakeTty(): { input: UserInput & PassThrough; raw: boolean[] } {
  const raw: boolean[] = []
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: (m: boolean) => raw.push(m) })
  return { input, raw }
}

test('on a terminal: prompted twice without echo; a mismatch is refused', async () => {
  let tty = fakeTty()
  // both answers in one burst (a paste), with a typo fixed by backspace
  tty.input.write(`${PW}x\u007f\r${PW}\r`)
  let r = await run(['add', 'grace'], tty.input)
  assert.equal(r.code, 0, r.err)
  assert.equal(r.err, 'Password: \nAgain: \n')
  assert.equal(r.out, 'user grace added\n')
  assert.deepEqual(tty.raw, [true, false])

  tty = fakeTty()
  tty.input.write(`${PW}\r${PW}!\r`)
  r = await run(['passwd', 'grace'], tty.input)
  assert.equal(r.code, 1)
  assert.equal(r.err, 'Password: \nAgain: \nedgebox user: the passwords do not match\n')

  // Ctrl-C stops without a change
  tty = fakeTty()
  tty.input.write('a brand new pass\u0003')
  r = await run(['passwd', 'grace'], tty.input)
  assert.equal(r.code, 1)
  assert.match(r.err, /edgebox user: interrupted\n$/)
  assert.equal((await withStore((s) => s.verify('grace', PW)))?.username, 'grace')
})

test('totp: a new second factor whose codes the provider accepts; --off removes it; an unknown user is refused', async () => {
  await run(['add', 'tina', '--password-stdin'], `${PW}\n`)
  const r = await run(['totp', 'tina', '--issuer', 'Example'])
  assert.equal(r.code, 0, r.err)
  const uri = /otpauth:\/\/totp\/[^\s]+/.exec(r.out)![0]
  const url = new URL(uri)
  assert.equal(url.searchParams.get('issuer'), 'Example')
  const secret = url.searchParams.get('secret')!
  assert.equal(await withStore((s) => s.get('tina')!.totpSecret), secret)
  // the secret is the one the provider checks codes against
  const { totpCode, totpStep } = await import('../../src/auth/idp/totp.ts')
  assert.notEqual(totpStep(secret, totpCode(secret, Date.now()), Date.now()), null)
  const off = await run(['totp', 'tina', '--off'])
  assert.equal(off.out, 'the second factor of tina is off\n')
  assert.equal(await withStore((s) => s.get('tina')!.totpSecret), null)
  const unknown = await run(['totp', 'nobody'])
  assert.equal(unknown.code, 1)
  assert.equal(unknown.err, 'edgebox user: user nobody does not exist\n')
})

/**
 * `edgebox user add|passwd|groups|remove|totp|passkeys|list`: manages the users of the
 * built-in identity provider where the provider keeps them (a `UserDirectory`,
 * src/auth/users.ts): by default in `<data folder>/auth/users.sqlite`; with
 * `--config FILE`, where the server run with that configuration keeps them
 * (its `postgres` when it has one, else its `dataDir`); with `--postgres URL`,
 * in that PostgreSQL. DATABASE_URL is read only for a configuration that says
 * `postgres: true` (or gives no URL): without `--config` or `--postgres` the
 * data folder stays where the users are, whatever the environment.
 * Passwords are never taken as arguments (they would end up in shell history
 * and `ps`): they are read from standard input, typed twice without echo on
 * a terminal, else the first line (as with `--password-stdin`).
 * Exit status: 0 done, 1 refused (one line `edgebox user: ...` on stderr:
 * also a configuration that cannot be loaded, and a PostgreSQL that cannot
 * be reached or refuses), 2 a usage error.
 */

import path from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import { parseArgs } from 'node:util'
import { resolveDataDir } from '../core/data-dir.ts'
import { ConfigError } from '../core/errors.ts'
import type { Postgres, PostgresSettings } from '../core/postgres.ts'
import { normalizeUsername, openUserDirectory, UserError, validateEmail, validateGroup, validatePassword, validateUsername, type Passkey, type User, type UserDirectory } from '../auth/users.ts'

const USAGE = `usage: edgebox user COMMAND [--data-dir DIR | --config FILE | --postgres URL]

Commands:
  edgebox user add USERNAME [--email E] [--name N] [--group G]... [--password-stdin]
  edgebox user passwd USERNAME [--password-stdin]
  edgebox user groups USERNAME GROUP,GROUP,...     set the groups ("" clears them)
  edgebox user remove USERNAME
  edgebox user totp USERNAME [--issuer NAME] [--off]
                                             a new TOTP second factor (prints its
                                             otpauth:// URI and secret), or --off
  edgebox user passkeys USERNAME [--remove ID | --remove-all] [--json]
                                             list the user's passkeys (registered
                                             at sign-in), or remove one or all
  edgebox user list [--json]

Passwords are read from standard input: typed twice without echo on a
terminal, else its first line (always so with --password-stdin).

Where the users are (one of these; default: the data folder's SQLite file,
whatever $DATABASE_URL says):
      --data-dir DIR   DIR/auth/users.sqlite (default $EDGEBOX_HOME, else
                       $XDG_DATA_HOME/edgebox, else ~/.local/share/edgebox)
  -c, --config FILE    where the server run with this configuration keeps
                       them: its postgres when it has one (postgres: true
                       is $DATABASE_URL), else its dataDir
      --postgres URL   this PostgreSQL (postgres://user@host:port/database);
                       a password in the URL shows in ps and shell history:
                       leave it out and set PGPASSWORD, or use --config

Options:
  -h, --help           this help
`

/** Standard input as `edgebox user` uses it: a stream, a terminal when `isTTY` (then `setRawMode` hides what is typed). */
export type UserInput = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown; destroy?: () => unknown }

/** A refusal: exit 1 with its message. */
class Refused extends Error {}

const COMMON = { 'data-dir': { type: 'string' }, config: { type: 'string', short: 'c' }, postgres: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const
/** The common options that take a value, as they are typed before it. */
const TAKES_VALUE = new Set(['--data-dir', '--config', '-c', '--postgres'])
const OPTIONS = {
  add: { ...COMMON, email: { type: 'string' }, name: { type: 'string' }, group: { type: 'string', multiple: true }, 'password-stdin': { type: 'boolean' } },
  passwd: { ...COMMON, 'password-stdin': { type: 'boolean' } },
  groups: COMMON,
  remove: COMMON,
  totp: { ...COMMON, issuer: { type: 'string' }, off: { type: 'boolean' } },
  passkeys: { ...COMMON, remove: { type: 'string' }, 'remove-all': { type: 'boolean' }, json: { type: 'boolean' } },
  list: { ...COMMON, json: { type: 'boolean' } },
} as const
/** How many positionals each subcommand takes. */
const POSITIONALS: Record<keyof typeof OPTIONS, number> = { add: 1, passwd: 1, groups: 2, remove: 1, totp: 1, passkeys: 1, list: 0 }

/** Whether `arg` is one of the options every subcommand takes (so no stray option when no subcommand follows). */
function isCommonOption(arg: string): boolean {
  return TAKES_VALUE.has(arg) || /^--(data-dir|config|postgres)=/.test(arg) || /^-c./.test(arg)
}

/**
 * Runs `edgebox user ARGS` (argv without `user`) and returns the exit code:
 * 0 done, 1 refused, 2 a usage error.
 */
export async function userCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  input: UserInput = process.stdin,
): Promise<number> {
  // the subcommand is the first argument that is neither an option nor a common option's value (`edgebox user --data-dir D list` works too)
  let at = 0
  while (at < argv.length && argv[at]!.startsWith('-') && argv[at] !== '-h' && argv[at] !== '--help') at += TAKES_VALUE.has(argv[at]!) ? 2 : 1
  const sub = argv[at]
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    out.write(USAGE)
    return 0
  }
  if (sub === undefined) {
    const stray = argv.find((a) => a.startsWith('-') && !isCommonOption(a))
    err.write(`edgebox user: ${stray !== undefined ? `unknown option ${stray}` : 'a subcommand is needed'}\n${USAGE}`)
    return 2
  }
  if (!Object.hasOwn(OPTIONS, sub)) {
    err.write(`edgebox user: unknown subcommand ${JSON.stringify(sub)}\n${USAGE}`)
    return 2
  }
  const cmd = sub as keyof typeof OPTIONS
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)]
  let parsed
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: OPTIONS[cmd] })
  } catch (e) {
    const unknown = (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec((e as Error).message)?.[1] : undefined
    err.write(`edgebox user ${cmd}: ${unknown !== undefined ? `unknown option ${unknown}` : (e as Error).message.split('\n')[0]}\n${USAGE}`)
    return 2
  }
  const values = parsed.values as Where & { help?: boolean; email?: string; name?: string; group?: string[]; 'password-stdin'?: boolean; json?: boolean; issuer?: string; off?: boolean; remove?: string; 'remove-all'?: boolean }
  if (values.help) {
    out.write(USAGE)
    return 0
  }
  if (values.remove !== undefined && values['remove-all']) {
    err.write(`edgebox user ${cmd}: --remove and --remove-all do not go together\n${USAGE}`)
    return 2
  }
  const usage = await usageProblem(values)
  if (usage !== null) {
    err.write(`edgebox user ${cmd}: ${usage}\n${USAGE}`)
    return 2
  }
  const args = parsed.positionals
  if (args.length !== POSITIONALS[cmd]) {
    const want = POSITIONALS[cmd] === 0 ? 'no arguments' : POSITIONALS[cmd] === 1 ? 'a username' : 'a username and a list of groups'
    err.write(`edgebox user ${cmd}: takes ${want}, got ${args.length === 0 ? 'none' : args.map((a) => JSON.stringify(a)).join(' ')}\n${USAGE}`)
    return 2
  }

  let pg: Postgres | undefined
  let users: UserDirectory | undefined
  try {
    const place = await locate(values)
    if (place.postgres) pg = await connect(place.postgres)
    users = await openUserDirectory({ dataDir: place.dataDir, postgres: pg })
    return await run(users, cmd, args, values, input, out, err)
  } catch (e) {
    const refusal = await refusalOf(e, pg, users !== undefined)
    if (refusal === undefined) throw e
    err.write(`edgebox user: ${refusal}\n`)
    return 1
  } finally {
    await users?.close()
    // the pool's idle connections would keep the process alive for their idle timeout
    await pg?.close()
  }
}

/** The common options that say where the users are. */
interface Where {
  'data-dir'?: string
  config?: string
  postgres?: string
}

/** Why the options that say where the users are cannot be followed (more than one of them, a URL that is none), or null. */
async function usageProblem(values: Where): Promise<string | null> {
  const given = (['data-dir', 'config', 'postgres'] as const).filter((k) => values[k] !== undefined).map((k) => `--${k}`)
  if (given.length > 1) return `${given.slice(0, -1).join(', ')} and ${given.at(-1)} do not go together (each says where the users are: give one)`
  if (values.postgres === undefined) return null
  // what the configuration's `postgres` accepts; the value is not repeated, as it may hold a password
  const { postgresUrlCheck } = await import('../config/postgres-schema.ts')
  return postgresUrlCheck(values.postgres) ? null : '--postgres takes a postgres://user@host:port/database URL'
}

/**
 * Where the users are: the data folder (`--data-dir`, else the default), or
 * what a configuration file says (`--config`: its `dataDir`, relative to the
 * file's folder as for `edgebox --config`, and its `postgres`), or a
 * PostgreSQL (`--postgres`). A configuration that cannot be loaded or is not
 * valid is a refusal naming the file.
 */
async function locate(values: Where): Promise<{ dataDir: string; postgres?: PostgresSettings | undefined }> {
  if (values.postgres !== undefined) {
    // the pool's size and connect timeout as a configuration's `postgres: URL` gets them
    const { postgresSchema } = await import('../config/postgres-schema.ts')
    return { dataDir: resolveDataDir(undefined, process.cwd()), postgres: postgresSchema.parse(values.postgres) }
  }
  if (values.config === undefined) return { dataDir: resolveDataDir(values['data-dir'], process.cwd()) }
  const file = values.config
  // loaded only here: the configuration's schema is most of the CLI's start-up time
  const { loadConfigFile, validateConfig } = await import('../config/load.ts')
  const input = await loadConfigFile(file)
  let config
  try {
    config = validateConfig(input)
  } catch (e) {
    if (e instanceof ConfigError) throw new Refused(`${file}: ${e.issues.join('; ')}`)
    throw e
  }
  return { dataDir: resolveDataDir(config.dataDir, path.dirname(path.resolve(file))), postgres: config.postgres }
}

/** Opens the PostgreSQL pool (a ConfigError `postgres: cannot reach <where, without the password> (<why>)` when it does not answer); nothing is logged. */
async function connect(settings: PostgresSettings): Promise<Postgres> {
  const [{ openPostgres }, { pino }] = await Promise.all([import('../core/postgres.ts'), import('pino')])
  // the command's answer is its output: "connected" and an idle connection that breaks after the work is done are no news
  return openPostgres(settings, pino({ level: 'silent' }))
}

/**
 * The line a failure is refused with (exit 1), or undefined for a fault of
 * Edgebox's own (thrown on, with its stack): a refused change; a
 * configuration that cannot be loaded; a store that cannot be opened (a data
 * folder that cannot be made private, a newer file, a migration PostgreSQL
 * refused); PostgreSQL out of reach, or refusing a statement (a right the
 * role lacks, a read-only standby).
 */
async function refusalOf(e: unknown, pg: Postgres | undefined, opened: boolean): Promise<string | undefined> {
  if (e instanceof UserError || e instanceof Refused) return e.message
  if (e instanceof ConfigError) return e.issues.join('; ')
  if (pg !== undefined) {
    const [{ StoreUnavailableError }, { default: pgModule }] = await Promise.all([import('../auth/idp/store.ts'), import('pg')])
    if (e instanceof StoreUnavailableError) {
      // the same words as when it does not answer at the start (core/postgres.ts)
      const c = e.cause as { message?: string; code?: string; errors?: { message?: string }[] } | undefined
      return `postgres: cannot reach ${pg.target} (${c?.message || c?.errors?.[0]?.message || c?.code || e.message})`
    }
    if (e instanceof pgModule.DatabaseError) return `postgres: ${pg.target}: ${e.message}`
  }
  if (!opened) return (e as Error).message
  return undefined
}

/** Runs subcommand `cmd` on the opened users. */
async function run(
  users: UserDirectory,
  cmd: keyof typeof OPTIONS,
  args: string[],
  values: { email?: string; name?: string; group?: string[]; 'password-stdin'?: boolean; json?: boolean; issuer?: string; off?: boolean; remove?: string; 'remove-all'?: boolean },
  input: UserInput,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  switch (cmd) {
    case 'add':
      return await add(users, args[0]!, values, input, out, err)
    case 'passwd': {
      const user = await known(users, args[0]!)
      const password = await readNewPassword(input, err, values['password-stdin'] === true)
      await users.setPassword(user.username, password)
      out.write(`password of ${user.username} changed\n`)
      return 0
    }
    case 'groups': {
      const user = await known(users, args[0]!)
      const groups = args[1]!.split(',').filter((g) => g !== '')
      await users.setGroups(user.username, groups)
      const now = await known(users, user.username)
      out.write(`groups of ${user.username}: ${now.groups.length ? now.groups.join(',') : '(none)'}\n`)
      return 0
    }
    case 'totp': {
      // a second factor set (or reset: a lost phone) by the administrator; the user scans the URI into an authenticator app
      const user = await known(users, args[0]!)
      if (values.off) {
        await users.setTotpSecret(user.username, null)
        out.write(`the second factor of ${user.username} is off\n`)
        return 0
      }
      const { newTotpSecret, totpUri, groupedSecret } = await import('../auth/idp/totp.ts')
      const secret = newTotpSecret()
      await users.setTotpSecret(user.username, secret)
      out.write(`a new second factor for ${user.username}: add it to an authenticator app\n  ${totpUri(values.issuer ?? 'Edgebox', user.username, secret)}\n  secret: ${groupedSecret(secret)}\n`)
      return 0
    }
    case 'passkeys':
      return await passkeys(users, await known(users, args[0]!), values, out)
    case 'remove': {
      const user = await known(users, args[0]!)
      // removed meanwhile (from another machine): as unknown as it would have been a moment earlier
      if (!(await users.remove(user.username))) throw new Refused(`user ${user.username} does not exist`)
      out.write(`user ${user.username} removed\n`)
      return 0
    }
    default:
      // 'list'
      list(await users.list(), await users.passkeyCounts(), values.json === true, out)
      return 0
  }
}

async function add(users: UserDirectory, username: string, values: { email?: string; name?: string; group?: string[]; 'password-stdin'?: boolean }, input: UserInput, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  // everything that can be refused is checked before a password is asked for
  const bad = validateUsername(username)
  if (bad) throw new Refused(bad)
  const existing = await users.get(username)
  if (existing) throw new Refused(`user ${existing.username} exists`)
  if (values.email !== undefined && values.email !== '') {
    const problem = validateEmail(values.email)
    if (problem) throw new Refused(problem)
  }
  const groups = (values.group ?? []).flatMap((g) => g.split(',')).filter((g) => g !== '')
  for (const g of groups) {
    const problem = validateGroup(g)
    if (problem) throw new Refused(problem)
  }
  const password = await readNewPassword(input, err, values['password-stdin'] === true)
  const user = await users.add({ username, password, email: values.email ?? null, name: values.name ?? null, groups })
  out.write(`user ${user.username} added\n`)
  return 0
}

/** The user named `username`, else a refusal. */
async function known(users: UserDirectory, username: string): Promise<User> {
  const user = await users.get(username)
  if (!user) throw new Refused(`user ${JSON.stringify(normalizeUsername(username)).slice(1, -1)} does not exist`)
  return user
}

/**
 * `edgebox user passkeys USERNAME`: the user's passkeys (a table, or JSON
 * lines with --json), or with `--remove ID` one of them, `--remove-all`
 * every one (a lost phone or key: under secondFactor 'required', a user left
 * with no second factor sets one up at their next sign-in).
 */
async function passkeys(users: UserDirectory, user: User, values: { remove?: string; 'remove-all'?: boolean; json?: boolean }, out: NodeJS.WritableStream): Promise<number> {
  if (values.remove !== undefined) {
    if (!(await users.removePasskey(user.username, values.remove))) throw new Refused(`${user.username} has no passkey ${JSON.stringify(values.remove)} (edgebox user passkeys ${user.username} lists them)`)
    out.write(`passkey ${values.remove} of ${user.username} removed\n`)
    return 0
  }
  if (values['remove-all']) {
    const n = await users.removePasskeys(user.username)
    out.write(n === 0 ? `${user.username} had no passkeys\n` : `${n} passkey${n === 1 ? '' : 's'} of ${user.username} removed\n`)
    return 0
  }
  const keys = await users.passkeys(user.username)
  const day = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString().slice(0, 10))
  if (values.json) {
    for (const k of keys) out.write(JSON.stringify(passkeyJson(k)) + '\n')
    return 0
  }
  if (keys.length === 0) {
    out.write(`${user.username} has no passkeys (they register one at sign-in, when the provider's secondFactor is 'required')\n`)
    return 0
  }
  table([['ID', 'CREATED', 'LAST USED', 'TRANSPORTS'], ...keys.map((k) => [k.id, day(k.createdAt), day(k.lastUsedAt), k.transports.length ? k.transports.join(',') : '-'])], out)
  return 0
}

/** A passkey as `--json` shows it: never its public key, which is no secret but of no use here. */
function passkeyJson(k: Passkey): Record<string, unknown> {
  return { id: k.id, createdAt: new Date(k.createdAt).toISOString(), lastUsedAt: k.lastUsedAt === null ? null : new Date(k.lastUsedAt).toISOString(), counter: k.counter, transports: k.transports }
}

/** Rows in columns two spaces apart, the last column unpadded. */
function table(rows: string[][], out: NodeJS.WritableStream): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...r[i]!].length)))
  for (const r of rows) out.write(r.map((cell, i) => (i === r.length - 1 ? cell : cell + ' '.repeat(widths[i]! - [...cell].length))).join('  ') + '\n')
}

function list(users: User[], passkeyCounts: Map<string, number>, json: boolean, out: NodeJS.WritableStream): void {
  if (json) {
    for (const u of users) {
      const keys = passkeyCounts.get(u.username) ?? 0
      const line = {
        username: u.username,
        email: u.email,
        name: u.name,
        groups: u.groups,
        secondFactor: u.totpSecret !== null || keys > 0,
        totp: u.totpSecret !== null,
        passkeys: keys,
        disabled: u.disabled,
        createdAt: new Date(u.createdAt).toISOString(),
        passwordChangedAt: new Date(u.passwordChangedAt).toISOString(),
      }
      out.write(JSON.stringify(line) + '\n')
    }
    return
  }
  if (users.length === 0) {
    out.write('no users (edgebox user add USERNAME adds one)\n')
    return
  }
  const rows = [['USERNAME', 'EMAIL', 'GROUPS', '2FA', 'CREATED']]
  // 2FA: a TOTP secret or a passkey
  for (const u of users) rows.push([u.username + (u.disabled ? ' (disabled)' : ''), u.email ?? '-', u.groups.length ? u.groups.join(',') : '-', u.totpSecret !== null || (passkeyCounts.get(u.username) ?? 0) > 0 ? 'yes' : 'no', new Date(u.createdAt).toISOString().slice(0, 10)])
  table(rows, out)
}

/** A new password from standard input: typed twice without echo on a terminal (unless `fromStdin`), else the first line; a weak one is refused. */
async function readNewPassword(input: UserInput, err: NodeJS.WritableStream, fromStdin: boolean): Promise<string> {
  let password: string
  if (!fromStdin && input.isTTY && typeof input.setRawMode === 'function') {
    const [first, again] = await readHidden(input, err, ['Password: ', 'Again: '])
    if (first === undefined || again === undefined) throw new Refused('no password given')
    if (first !== again) throw new Refused('the passwords do not match')
    password = first
  } else {
    const line = await readFirstLine(input)
    if (line === undefined) throw new Refused('no password on standard input (give it as its first line)')
    password = line
  }
  const weak = validatePassword(password)
  if (weak) throw new Refused(weak)
  return password
}

/** The first line of `input` (without its line ending), or undefined when it ends with nothing on it. Stops reading at the first newline. */
function readFirstLine(input: UserInput): Promise<string | undefined> {
  const MAX = 64 * 1024
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (line: string | undefined, error?: Error) => {
      input.removeListener('data', onData)
      input.removeListener('end', onEnd)
      input.removeListener('error', onError)
      input.pause()
      // nothing more is read: let the process exit even if the writer keeps the pipe open
      if (input === process.stdin) input.destroy?.()
      if (error) reject(error)
      else resolve(line)
    }
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      const nl = b.indexOf(0x0a)
      chunks.push(nl === -1 ? b : b.subarray(0, nl))
      size += b.length
      if (nl !== -1) done(Buffer.concat(chunks).toString('utf8').replace(/\r$/, ''))
      else if (size > MAX) done(undefined, new Refused('the first line of standard input is longer than 64 KiB'))
    }
    const onEnd = () => {
      const all = Buffer.concat(chunks).toString('utf8').replace(/\r$/, '')
      done(size === 0 ? undefined : all)
    }
    const onError = (e: Error) => done(undefined, e)
    input.on('data', onData)
    input.once('end', onEnd)
    input.once('error', onError)
    input.resume()
  })
}

/**
 * Asks each prompt in turn on `err` and reads an answer from the terminal in
 * raw mode, so nothing typed is echoed. Backspace and Ctrl-U edit, Enter
 * ends an answer, Ctrl-D on an empty answer ends input (undefined), Ctrl-C
 * is refused.
 */
function readHidden(input: UserInput, err: NodeJS.WritableStream, prompts: string[]): Promise<(string | undefined)[]> {
  return new Promise((resolve, reject) => {
    const answers: (string | undefined)[] = []
    const decoder = new StringDecoder('utf8')
    let current = ''
    input.setRawMode!(true)
    const finish = (error?: Error) => {
      input.removeListener('data', onData)
      input.removeListener('end', onEnd)
      input.setRawMode!(false)
      input.pause()
      if (error) reject(error)
      else {
        while (answers.length < prompts.length) answers.push(undefined)
        resolve(answers)
      }
    }
    const next = (answer: string | undefined) => {
      err.write('\n')
      answers.push(answer)
      current = ''
      if (answer === undefined || answers.length === prompts.length) return true
      err.write(prompts[answers.length]!)
      return false
    }
    const onData = (chunk: Buffer | string) => {
      const text = typeof chunk === 'string' ? chunk : decoder.write(chunk)
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') {
          if (next(current)) return finish()
        } else if (ch === '\u0003') {
          err.write('\n')
          return finish(new Refused('interrupted'))
        } else if (ch === '\u0004') {
          if (current === '' && next(undefined)) return finish()
        } else if (ch === '\u007f' || ch === '\b') {
          current = [...current].slice(0, -1).join('')
        } else if (ch === '\u0015') {
          current = ''
        } else if (ch >= ' ') {
          current += ch
        }
      }
    }
    const onEnd = () => {
      err.write('\n')
      finish()
    }
    err.write(prompts[0]!)
    input.on('data', onData)
    input.once('end', onEnd)
    input.resume()
  })
}

/**
 * `edgebox user add|passwd|groups|remove|totp|passkeys|list`: manages the users of the
 * built-in identity provider, in `<data folder>/auth/users.sqlite`.
 * Passwords are never taken as arguments (they would end up in shell history
 * and `ps`): they are read from standard input, typed twice without echo on
 * a terminal, else the first line (as with `--password-stdin`).
 * Exit status: 0 done, 1 refused (one line `edgebox user: ...` on stderr),
 * 2 a usage error.
 */

import { StringDecoder } from 'node:string_decoder'
import { parseArgs } from 'node:util'
import { resolveDataDir } from '../core/data-dir.ts'
import { normalizeUsername, UserError, UserStore, validateEmail, validateGroup, validatePassword, validateUsername, type Passkey, type User } from '../auth/users.ts'

const USAGE = `usage: edgebox user COMMAND [--data-dir DIR]

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

Options:
      --data-dir DIR   the data folder (default $EDGEBOX_HOME, else
                       $XDG_DATA_HOME/edgebox, else ~/.local/share/edgebox)
  -h, --help           this help
`

/** Standard input as `edgebox user` uses it: a stream, a terminal when `isTTY` (then `setRawMode` hides what is typed). */
export type UserInput = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown; destroy?: () => unknown }

/** A refusal: exit 1 with its message. */
class Refused extends Error {}

const COMMON = { 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const
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
  // the subcommand is the first argument that is neither an option nor --data-dir's value (`edgebox user --data-dir D list` works too)
  let at = 0
  while (at < argv.length && argv[at]!.startsWith('-') && argv[at] !== '-h' && argv[at] !== '--help') at += argv[at] === '--data-dir' ? 2 : 1
  const sub = argv[at]
  if (sub === 'help' || sub === '--help' || sub === '-h') {
    out.write(USAGE)
    return 0
  }
  if (sub === undefined) {
    const stray = argv.find((a) => a.startsWith('-') && a !== '--data-dir' && !a.startsWith('--data-dir='))
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
  const values = parsed.values as { 'data-dir'?: string; help?: boolean; email?: string; name?: string; group?: string[]; 'password-stdin'?: boolean; json?: boolean; issuer?: string; off?: boolean; remove?: string; 'remove-all'?: boolean }
  if (values.help) {
    out.write(USAGE)
    return 0
  }
  if (values.remove !== undefined && values['remove-all']) {
    err.write(`edgebox user ${cmd}: --remove and --remove-all do not go together\n${USAGE}`)
    return 2
  }
  const args = parsed.positionals
  if (args.length !== POSITIONALS[cmd]) {
    const want = POSITIONALS[cmd] === 0 ? 'no arguments' : POSITIONALS[cmd] === 1 ? 'a username' : 'a username and a list of groups'
    err.write(`edgebox user ${cmd}: takes ${want}, got ${args.length === 0 ? 'none' : args.map((a) => JSON.stringify(a)).join(' ')}\n${USAGE}`)
    return 2
  }
  const dataDir = resolveDataDir(values['data-dir'], process.cwd())

  let store: UserStore | undefined
  try {
    store = await UserStore.open(dataDir)
    switch (cmd) {
      case 'add':
        return await add(store, args[0]!, values, input, out, err)
      case 'passwd': {
        const user = known(store, args[0]!)
        const password = await readNewPassword(input, err, values['password-stdin'] === true)
        await store.setPassword(user.username, password)
        out.write(`password of ${user.username} changed\n`)
        return 0
      }
      case 'groups': {
        const user = known(store, args[0]!)
        const groups = args[1]!.split(',').filter((g) => g !== '')
        store.setGroups(user.username, groups)
        const now = store.get(user.username)!
        out.write(`groups of ${user.username}: ${now.groups.length ? now.groups.join(',') : '(none)'}\n`)
        return 0
      }
      case 'totp': {
        // a second factor set (or reset: a lost phone) by the administrator; the user scans the URI into an authenticator app
        const user = known(store, args[0]!)
        if (values.off) {
          store.setTotpSecret(user.username, null)
          out.write(`the second factor of ${user.username} is off\n`)
          return 0
        }
        const { newTotpSecret, totpUri, groupedSecret } = await import('../auth/idp/totp.ts')
        const secret = newTotpSecret()
        store.setTotpSecret(user.username, secret)
        out.write(`a new second factor for ${user.username}: add it to an authenticator app\n  ${totpUri(values.issuer ?? 'Edgebox', user.username, secret)}\n  secret: ${groupedSecret(secret)}\n`)
        return 0
      }
      case 'passkeys':
        return passkeys(store, known(store, args[0]!), values, out)
      case 'remove': {
        const user = known(store, args[0]!)
        store.remove(user.username)
        out.write(`user ${user.username} removed\n`)
        return 0
      }
      default:
        // 'list'
        list(store.list(), store.passkeyCounts(), values.json === true, out)
        return 0
    }
  } catch (e) {
    if (e instanceof UserError || e instanceof Refused) {
      err.write(`edgebox user: ${e.message}\n`)
      return 1
    }
    // the store could not be opened (a data folder that cannot be made private, a newer file): a refusal too
    if (store === undefined) {
      err.write(`edgebox user: ${(e as Error).message}\n`)
      return 1
    }
    throw e
  } finally {
    store?.close()
  }
}

async function add(store: UserStore, username: string, values: { email?: string; name?: string; group?: string[]; 'password-stdin'?: boolean }, input: UserInput, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  // everything that can be refused is checked before a password is asked for
  const bad = validateUsername(username)
  if (bad) throw new Refused(bad)
  const existing = store.get(username)
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
  const user = await store.add({ username, password, email: values.email ?? null, name: values.name ?? null, groups })
  out.write(`user ${user.username} added\n`)
  return 0
}

/** The user named `username`, else a refusal. */
function known(store: UserStore, username: string): User {
  const user = store.get(username)
  if (!user) throw new Refused(`user ${JSON.stringify(normalizeUsername(username)).slice(1, -1)} does not exist`)
  return user
}

/**
 * `edgebox user passkeys USERNAME`: the user's passkeys (a table, or JSON
 * lines with --json), or with `--remove ID` one of them, `--remove-all`
 * every one (a lost phone or key: under secondFactor 'required', a user left
 * with no second factor sets one up at their next sign-in).
 */
function passkeys(store: UserStore, user: User, values: { remove?: string; 'remove-all'?: boolean; json?: boolean }, out: NodeJS.WritableStream): number {
  if (values.remove !== undefined) {
    if (!store.removePasskey(user.username, values.remove)) throw new Refused(`${user.username} has no passkey ${JSON.stringify(values.remove)} (edgebox user passkeys ${user.username} lists them)`)
    out.write(`passkey ${values.remove} of ${user.username} removed\n`)
    return 0
  }
  if (values['remove-all']) {
    const n = store.removePasskeys(user.username)
    out.write(n === 0 ? `${user.username} had no passkeys\n` : `${n} passkey${n === 1 ? '' : 's'} of ${user.username} removed\n`)
    return 0
  }
  const keys = store.passkeys(user.username)
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

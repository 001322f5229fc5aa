/**
 * The user store of Edgebox's built-in identity provider: one SQLite file,
 * `<dataDir>/auth/users.sqlite` (mode 0600, in a 0700 folder), holding each
 * user's name, contact details, groups, TOTP secret and scrypt password
 * hash, and their passkeys (WebAuthn credentials: the ID, public key and
 * signature counter of each). Usernames are case-insensitive (NFKC-normalised, then
 * lowercased, before they are stored or looked up); passwords are
 * NFKC-normalised before hashing, so the same password typed on two keyboards
 * (composed or decomposed accents, full-width digits) is the same password.
 *
 * The provider reads and changes users through `UserDirectory` (async):
 * this file's store (`SqliteUserDirectory` over `UserStore`, which the
 * `edgebox user` command uses as it is), or for nodes that share a
 * PostgreSQL, pg-users.ts. Both pass the same contract suite
 * (test/contracts/user-stores.test.ts).
 */

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import path from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { ensurePrivateDir, openPrivateDatabase } from '../core/data-dir.ts'
import type { Postgres } from '../core/postgres.ts'

/** One user, as the store keeps it (never with the password hash). */
export interface User {
  /** Lowercased, NFKC-normalised: 1-64 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit. */
  readonly username: string
  readonly email: string | null
  /** A display name. */
  readonly name: string | null
  readonly groups: readonly string[]
  /** The TOTP secret when a second factor is set up, else null. */
  readonly totpSecret: string | null
  /** When the user was added, in milliseconds since the epoch. */
  readonly createdAt: number
  /** When the password was last set, in milliseconds since the epoch. */
  readonly passwordChangedAt: number
  readonly disabled: boolean
}

/**
 * A passkey: a WebAuthn public key credential registered for a user (W3C
 * WebAuthn Level 3 §4, "credential record"), used as their second factor.
 */
export interface Passkey {
  /** The credential ID, base64url (RFC 4648 §5) without padding. */
  readonly id: string
  readonly username: string
  /** The user handle (`user.id` of the registration, §5.4.3) it was made for, base64url. */
  readonly userHandle: string
  /** The credential public key, a COSE_Key (§6.5.1.1, RFC 9052 §7). */
  readonly publicKey: Uint8Array
  /** The signature counter last seen (§6.1.1); 0 for authenticators that do not count. */
  readonly counter: number
  /** How the browser reached the authenticator (`internal`, `usb`, `hybrid`...: §5.8.4), as it told at registration. */
  readonly transports: readonly string[]
  /** When it was registered, in milliseconds since the epoch. */
  readonly createdAt: number
  /** When it last signed the user in, or null. */
  readonly lastUsedAt: number | null
}

/** A refused change (the user exists, is unknown, a weak password, a bad username...): its message is one line meant for the person who asked. */
export class UserError extends Error {
  override name = 'UserError'
}

/** What a new user is made of (`UserDirectory.add`). */
export interface NewUser {
  readonly username: string
  readonly password: string
  readonly email?: string | null
  readonly name?: string | null
  readonly groups?: readonly string[]
}

/** What a new passkey is made of (`UserDirectory.addPasskey`): a registration that passed (webauthn.ts). */
export interface NewPasskeyRecord {
  readonly id: string
  readonly userHandle: string
  readonly publicKey: Uint8Array
  readonly counter: number
  readonly transports?: readonly string[]
}

/**
 * The provider's users and their passkeys, as the provider reads and
 * changes them: every method async, so a networked store (PostgreSQL,
 * pg-users.ts) fits. Usernames are taken in any case (normalised); the
 * methods that change a user reject with {@link UserError} for an unknown
 * one, with the same messages whatever the store.
 */
export interface UserDirectory {
  /** The user named `username` (any case), or undefined. */
  get(username: string): Promise<User | undefined>
  /** Every user, sorted by username, character by character (code point order: `-`, `.`, digits, `_`, letters). */
  list(): Promise<User[]>
  /** Adds a user with a new password; UserError for a bad field or a weak password, and `user NAME exists`. */
  add(u: NewUser): Promise<User>
  /** Sets a user's password (UserError for a weak one or an unknown user). */
  setPassword(username: string, password: string): Promise<void>
  /** Replaces a user's groups (an empty list clears them); duplicates are dropped. */
  setGroups(username: string, groups: readonly string[]): Promise<void>
  /** Sets (or with null, removes) a user's TOTP secret. */
  setTotpSecret(username: string, secret: string | null): Promise<void>
  /** Removes a user, and their passkeys; false when there was none. */
  remove(username: string): Promise<boolean>
  /** A user's passkeys, oldest first. */
  passkeys(username: string): Promise<Passkey[]>
  /** How many passkeys each user has (users without any are left out). */
  passkeyCounts(): Promise<Map<string, number>>
  /** The user handle of a user's passkeys (the first one's), or null when they have none. */
  passkeyUserHandle(username: string): Promise<string | null>
  /** Registers a passkey; UserError for an unknown user, a credential registered already (to anyone), a malformed one, or too many. */
  addPasskey(username: string, p: NewPasskeyRecord, at?: number): Promise<Passkey>
  /** Records a sign-in by a passkey with signature counter `counter`, in one statement; false when refused (the counter went back, or it is not the user's). */
  usePasskey(username: string, id: string, counter: number, at?: number): Promise<boolean>
  /** Removes one of a user's passkeys; false when they have none with that ID. */
  removePasskey(username: string, id: string): Promise<boolean>
  /** Removes all of a user's passkeys; resolves with how many there were. */
  removePasskeys(username: string): Promise<number>
  /** The user when `password` is theirs (and they are not disabled), else null; unknown users cost a hash too. */
  verify(username: string, password: string): Promise<User | null>
  /** Lets go of the store; it cannot be used after. */
  close(): Promise<void>
}

/**
 * The schema version this code reads and writes (`PRAGMA user_version`):
 * 1 the users; 2 their passkeys too. An older file is brought up to date in
 * place when it is opened (its users and secrets kept as they are).
 */
const SCHEMA_VERSION = 2

/** Version 1: the users. */
const USERS_TABLE = `CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY NOT NULL,
  email TEXT,
  name TEXT,
  groups_json TEXT NOT NULL DEFAULT '[]',
  password_hash TEXT NOT NULL,
  totp_secret TEXT,
  created_at INTEGER NOT NULL,
  password_changed_at INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
) STRICT`

/**
 * Version 2: passkeys, one row per credential (W3C WebAuthn Level 3 §4,
 * "credential record"): the credential ID (base64url; unique across users,
 * §7.1, "not yet registered"), the user handle it was made for, the COSE public key, the
 * signature counter, the transports the browser reported.
 */
const PASSKEYS_TABLE = `CREATE TABLE IF NOT EXISTS passkeys (
  id TEXT PRIMARY KEY NOT NULL,
  username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
  user_handle TEXT NOT NULL,
  public_key BLOB NOT NULL,
  counter INTEGER NOT NULL DEFAULT 0,
  transports_json TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL,
  last_used_at INTEGER
) STRICT`

/** The most passkeys one user may have. */
export const MAX_PASSKEYS = 32
/** Credential IDs are at most 1023 bytes (W3C WebAuthn Level 3 §4, "Credential ID"); base64url makes 1364 characters of them. */
const MAX_CREDENTIAL_ID_CHARS = 1364
/** The largest signature counter (32 bits, §6.1 `signCount`). */
export const MAX_COUNTER = 0xffff_ffff

/** The scrypt cost of new hashes; stored in each hash, so raising it later leaves old hashes valid. */
const SCRYPT = { N: 32768, r: 8, p: 1 } as const
const SALT_BYTES = 16
const KEY_BYTES = 32
const MIN_MAXMEM = 64 * 1024 * 1024
/** The most memory a stored hash's parameters may ask for (128 * N * r), so a tampered hash cannot exhaust the machine. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
const MAX_PASSWORD_BYTES = 1024
const MIN_PASSWORD_CHARS = 12

/**
 * What unknown (and disabled) users' passwords are checked against: the
 * current parameters and a fixed salt and key that no password is known to
 * give, so a failed login costs one hash whether or not the user exists.
 */
const DUMMY_HASH = `scrypt$N=${SCRYPT.N},r=${SCRYPT.r},p=${SCRYPT.p}$${Buffer.alloc(SALT_BYTES, 0x5a).toString('base64url')}$${Buffer.alloc(KEY_BYTES, 0xa5).toString('base64url')}`

/** A username as it is stored and looked up: NFKC-normalised, then lowercased. */
export function normalizeUsername(name: string): string {
  return name.normalize('NFKC').toLowerCase()
}

/** Null when `name` is a good username (after normalising), else what is wrong with it. */
export function validateUsername(name: string): string | null {
  const n = normalizeUsername(name)
  if (n.length === 0) return 'the username is empty'
  if ([...n].length > 64) return 'the username is longer than 64 characters'
  if (!/^[a-z0-9._-]+$/.test(n)) return `the username ${JSON.stringify(n)} may hold only letters a-z, digits, ".", "_" and "-"`
  if (!/^[a-z0-9]/.test(n)) return `the username ${JSON.stringify(n)} must start with a letter or a digit`
  return null
}

/** Null when `pw` is an acceptable password, else why not: at least 12 characters (code points, after NFKC), at most 1024 bytes of UTF-8. */
export function validatePassword(pw: string): string | null {
  const n = pw.normalize('NFKC')
  if ([...n].length < MIN_PASSWORD_CHARS) return `the password is shorter than ${MIN_PASSWORD_CHARS} characters`
  if (Buffer.byteLength(n, 'utf8') > MAX_PASSWORD_BYTES) return `the password is longer than ${MAX_PASSWORD_BYTES} bytes`
  return null
}

/** Null when `email` looks like an address (loosely: one `@` with text on both sides, no spaces or control characters, at most 254 characters), else the problem. */
export function validateEmail(email: string): string | null {
  if (email.length > 254) return 'the email address is longer than 254 characters'
  if (/[\s\p{Cc}]/u.test(email)) return `the email address ${JSON.stringify(email)} contains spaces or control characters`
  const at = email.split('@')
  if (at.length !== 2 || !at[0] || !at[1]) return `the email address ${JSON.stringify(email)} is not of the form name@domain`
  return null
}

/** Null when `group` is a good group name (1-64 characters, no commas, whitespace or control characters), else the problem. */
export function validateGroup(group: string): string | null {
  if (group.length === 0) return 'a group name is empty'
  if ([...group].length > 64) return `the group name ${JSON.stringify(group)} is longer than 64 characters`
  if (/[\s,\p{Cc}]/u.test(group)) return `the group name ${JSON.stringify(group)} contains a comma, whitespace or a control character`
  return null
}

/** Null when `name` is a good display name (at most 256 characters, no control characters), else the problem. */
function validateName(name: string): string | null {
  if ([...name].length > 256) return 'the name is longer than 256 characters'
  if (/\p{Cc}/u.test(name)) return `the name ${JSON.stringify(name)} contains control characters`
  return null
}

function scryptAsync(pw: string, salt: Buffer, keylen: number, opts: { N: number; r: number; p: number }): Promise<Buffer> {
  const maxmem = Math.max(MIN_MAXMEM, 128 * opts.N * opts.r + 128 * opts.r * opts.p + 16 * 1024 * 1024)
  return new Promise((resolve, reject) => {
    scrypt(pw, salt, keylen, { ...opts, maxmem }, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

/**
 * Hashes a password (NFKC-normalised first) with scrypt, a new 16-byte salt
 * and a 32-byte key, into `scrypt$N=32768,r=8,p=1$<salt>$<key>` (base64url
 * without padding): the parameters travel with the hash.
 */
export async function hashPassword(pw: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await scryptAsync(pw.normalize('NFKC'), salt, KEY_BYTES, SCRYPT)
  return `scrypt$N=${SCRYPT.N},r=${SCRYPT.r},p=${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`
}

/** A stored hash's parts, or null when it is not one this code can check (malformed, or parameters out of bounds). */
function parseHash(stored: string): { N: number; r: number; p: number; salt: Buffer; key: Buffer } | null {
  const parts = stored.split('$')
  if (parts.length !== 4 || parts[0] !== 'scrypt') return null
  const params = new Map<string, number>()
  for (const kv of parts[1]!.split(',')) {
    const m = /^([Nrp])=([1-9][0-9]{0,9})$/.exec(kv)
    if (!m || params.has(m[1]!)) return null
    params.set(m[1]!, Number(m[2]))
  }
  const N = params.get('N')
  const r = params.get('r')
  const p = params.get('p')
  if (N === undefined || r === undefined || p === undefined || params.size !== 3) return null
  if (N < 2 || (N & (N - 1)) !== 0 || r > 64 || p > 16 || 128 * N * r > MAX_SCRYPT_MEMORY) return null
  const b64 = /^[A-Za-z0-9_-]+$/
  if (!b64.test(parts[2]!) || !b64.test(parts[3]!)) return null
  const salt = Buffer.from(parts[2]!, 'base64url')
  const key = Buffer.from(parts[3]!, 'base64url')
  if (salt.length < 8 || salt.length > 64 || key.length < 16 || key.length > 64) return null
  return { N, r, p, salt, key }
}

/**
 * Whether `pw` (NFKC-normalised) is the password of a hash made by
 * {@link hashPassword}. The scrypt parameters, salt and key length are read
 * from the string, so hashes made with other (older or raised) parameters
 * keep working; the keys are compared in constant time. A malformed hash, or
 * one asking for more than 256 MiB, never matches.
 */
export async function verifyPassword(pw: string, stored: string): Promise<boolean> {
  const h = parseHash(stored)
  if (!h) return false
  const key = await scryptAsync(pw.normalize('NFKC'), h.salt, h.key.length, { N: h.N, r: h.r, p: h.p })
  return timingSafeEqual(key, h.key)
}

/**
 * Whether `password` is right for a user whose stored hash is `hash`; for
 * null (an unknown or disabled user) a fixed dummy hash is checked all the
 * same and the answer is false, so timing does not tell which usernames
 * exist.
 */
export async function passwordMatches(hash: string | null, password: string): Promise<boolean> {
  // a password no one could have set (too long) costs the same as any other
  const usable = Buffer.byteLength(password, 'utf8') <= MAX_PASSWORD_BYTES * 4
  if (hash === null || !usable) {
    await verifyPassword(usable ? password : '', DUMMY_HASH)
    return false
  }
  return verifyPassword(password, hash)
}

/** A new user's fields, checked (UserError naming the first bad one, a weak password included) and normalised. */
export function newUserFields(u: NewUser): { username: string; email: string | null; name: string | null; groups: string[] } {
  const username = normalizeUsername(u.username)
  const bad = validateUsername(username)
  if (bad) throw new UserError(bad)
  const email = u.email === undefined || u.email === null || u.email === '' ? null : u.email
  if (email !== null) {
    const problem = validateEmail(email)
    if (problem) throw new UserError(problem)
  }
  const name = u.name === undefined || u.name === null || u.name === '' ? null : u.name.normalize('NFC')
  if (name !== null) {
    const problem = validateName(name)
    if (problem) throw new UserError(problem)
  }
  const groups = checkedGroups(u.groups ?? [])
  const weak = validatePassword(u.password)
  if (weak) throw new UserError(weak)
  return { username, email, name, groups }
}

/** UserError unless `secret` is null or 1-1024 characters. */
export function checkTotpSecret(secret: string | null): void {
  if (secret !== null && (secret.length === 0 || secret.length > 1024)) throw new UserError('a TOTP secret is 1-1024 characters')
}

/** A new passkey checked (UserError for a malformed one); its transports, cleaned: known-looking names, no duplicates, at most 8. */
export function passkeyTransports(p: NewPasskeyRecord): string[] {
  if (!/^[A-Za-z0-9_-]+$/.test(p.id) || p.id.length > MAX_CREDENTIAL_ID_CHARS) throw new UserError('a credential ID is 1-1023 bytes, in base64url')
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(p.userHandle)) throw new UserError('a user handle is 1-64 bytes, in base64url')
  if (p.publicKey.length === 0 || p.publicKey.length > 4096) throw new UserError('a passkey public key is 1-4096 bytes')
  if (!Number.isInteger(p.counter) || p.counter < 0 || p.counter > MAX_COUNTER) throw new UserError('a signature counter is a 32-bit unsigned integer')
  return [...new Set(p.transports ?? [])].filter((t) => /^[a-z0-9-]{1,32}$/.test(t)).slice(0, 8)
}

interface Row {
  username: string
  email: string | null
  name: string | null
  groups_json: string
  password_hash: string
  totp_secret: string | null
  created_at: number
  password_changed_at: number
  disabled: number
}

function toUser(row: Row): User {
  return Object.freeze({
    username: row.username,
    email: row.email,
    name: row.name,
    groups: Object.freeze(JSON.parse(row.groups_json) as string[]),
    totpSecret: row.totp_secret,
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
    disabled: row.disabled !== 0,
  })
}

interface PasskeyRow {
  id: string
  username: string
  user_handle: string
  public_key: Uint8Array
  counter: number
  transports_json: string
  created_at: number
  last_used_at: number | null
}

function toPasskey(row: PasskeyRow): Passkey {
  return Object.freeze({
    id: row.id,
    username: row.username,
    userHandle: row.user_handle,
    publicKey: new Uint8Array(row.public_key),
    counter: Number(row.counter),
    transports: Object.freeze(JSON.parse(row.transports_json) as string[]),
    createdAt: Number(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
  })
}

/** The groups, checked (UserError on a bad one), NFKC-normalised, duplicates dropped. */
export function checkedGroups(groups: readonly string[]): string[] {
  const out: string[] = []
  for (const g of groups) {
    const n = g.normalize('NFKC')
    const problem = validateGroup(n)
    if (problem) throw new UserError(problem)
    if (!out.includes(n)) out.push(n)
  }
  return out
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { errcode?: number; message?: string }
  return e.errcode === 1555 || e.errcode === 2067 || /UNIQUE constraint failed/.test(e.message ?? '')
}

/**
 * The identity provider's users, in `<dataDir>/auth/users.sqlite`. The file
 * is opened in WAL mode with a 2-second busy timeout, so the `edgebox user`
 * command can change users while a server reads them. Methods that take a
 * username accept any case (it is normalised); the ones that change a user
 * throw {@link UserError} for an unknown one.
 */
export class UserStore {
  readonly #db: DatabaseSync
  /** The database file's path. */
  readonly file: string

  private constructor(db: DatabaseSync, file: string) {
    this.#db = db
    this.file = file
  }

  /**
   * Opens (creating when needed) `<dataDir>/auth/users.sqlite`: the folder
   * private (0700), the file 0600. A file of an older schema is migrated in
   * place, in one transaction (version 1, users only: the passkeys table is
   * added). A file written by a newer Edgebox (a higher `user_version`) is
   * refused with an Error naming it.
   */
  static async open(dataDir: string): Promise<UserStore> {
    const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
    const file = path.join(dir, 'users.sqlite')
    const db = await openPrivateDatabase(file)
    try {
      const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version
      if (version > SCHEMA_VERSION) throw new Error(`${file} has user_version ${version}, newer than this Edgebox understands (${SCHEMA_VERSION}); upgrade Edgebox to use it`)
      db.exec('PRAGMA journal_mode = WAL')
      if (version < SCHEMA_VERSION) {
        db.exec('BEGIN IMMEDIATE')
        try {
          // another process may have created or migrated it meanwhile
          const now = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version
          if (now > SCHEMA_VERSION) throw new Error(`${file} has user_version ${now}, newer than this Edgebox understands (${SCHEMA_VERSION}); upgrade Edgebox to use it`)
          if (now < 1) db.exec(USERS_TABLE)
          if (now < 2) {
            // 1 -> 2: passkeys, in a table of their own; the users' rows are untouched
            db.exec(PASSKEYS_TABLE)
            db.exec('CREATE INDEX IF NOT EXISTS passkeys_username ON passkeys (username)')
          }
          if (now < SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
          db.exec('COMMIT')
        } catch (err) {
          db.exec('ROLLBACK')
          throw err
        }
      }
    } catch (err) {
      db.close()
      throw err
    }
    return new UserStore(db, file)
  }

  #row(username: string): Row | undefined {
    return this.#db.prepare('SELECT * FROM users WHERE username = ?').get(normalizeUsername(username)) as Row | undefined
  }

  /** The user named `username` (any case), or undefined. */
  get(username: string): User | undefined {
    const row = this.#row(username)
    return row ? toUser(row) : undefined
  }

  /** Every user, sorted by username. */
  list(): User[] {
    return (this.#db.prepare('SELECT * FROM users ORDER BY username').all() as unknown as Row[]).map(toUser)
  }

  /**
   * Adds a user with a new password. Throws UserError for a bad username,
   * email, name, group or password, and `user NAME exists` when one has the
   * name (in any case).
   */
  async add(u: NewUser): Promise<User> {
    const f = newUserFields(u)
    if (this.#row(f.username)) throw new UserError(`user ${f.username} exists`)
    const hash = await hashPassword(u.password)
    const now = Date.now()
    try {
      this.#db
        .prepare('INSERT INTO users (username, email, name, groups_json, password_hash, totp_secret, created_at, password_changed_at, disabled) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 0)')
        .run(f.username, f.email, f.name, JSON.stringify(f.groups), hash, now, now)
    } catch (err) {
      if (isUniqueViolation(err)) throw new UserError(`user ${f.username} exists`)
      throw err
    }
    return this.get(f.username)!
  }

  /** Sets a user's password (UserError for a weak one or an unknown user). */
  async setPassword(username: string, password: string): Promise<void> {
    const weak = validatePassword(password)
    if (weak) throw new UserError(weak)
    const n = normalizeUsername(username)
    if (!this.#row(n)) throw new UserError(`user ${n} does not exist`)
    const hash = await hashPassword(password)
    const r = this.#db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE username = ?').run(hash, Date.now(), n)
    if (Number(r.changes) === 0) throw new UserError(`user ${n} does not exist`)
  }

  /** Replaces a user's groups (an empty list clears them); duplicates are dropped. */
  setGroups(username: string, groups: readonly string[]): void {
    const checked = checkedGroups(groups)
    const n = normalizeUsername(username)
    const r = this.#db.prepare('UPDATE users SET groups_json = ? WHERE username = ?').run(JSON.stringify(checked), n)
    if (Number(r.changes) === 0) throw new UserError(`user ${n} does not exist`)
  }

  /** Sets (or with null, removes) a user's TOTP secret. */
  setTotpSecret(username: string, secret: string | null): void {
    checkTotpSecret(secret)
    const n = normalizeUsername(username)
    const r = this.#db.prepare('UPDATE users SET totp_secret = ? WHERE username = ?').run(secret, n)
    if (Number(r.changes) === 0) throw new UserError(`user ${n} does not exist`)
  }

  /** Removes a user, and their passkeys; false when there was none. */
  remove(username: string): boolean {
    const n = normalizeUsername(username)
    return this.#transaction(() => {
      this.#db.prepare('DELETE FROM passkeys WHERE username = ?').run(n)
      return Number(this.#db.prepare('DELETE FROM users WHERE username = ?').run(n).changes) > 0
    })
  }

  /** A user's passkeys, oldest first. */
  passkeys(username: string): Passkey[] {
    return (this.#db.prepare('SELECT * FROM passkeys WHERE username = ? ORDER BY created_at, id').all(normalizeUsername(username)) as unknown as PasskeyRow[]).map(toPasskey)
  }

  /** How many passkeys each user has (users without any are left out). */
  passkeyCounts(): Map<string, number> {
    const rows = this.#db.prepare('SELECT username, count(*) AS n FROM passkeys GROUP BY username').all() as unknown as { username: string; n: number }[]
    return new Map(rows.map((r) => [r.username, Number(r.n)]))
  }

  /**
   * The user handle of a user's passkeys (WebAuthn's `user.id`, §5.4.3):
   * the one their passkeys were registered with, so a new one made on an
   * authenticator that holds another is recognised as the same account
   * (§5.4 `excludeCredentials`); null when they have none.
   */
  passkeyUserHandle(username: string): string | null {
    const row = this.#db.prepare('SELECT user_handle FROM passkeys WHERE username = ? ORDER BY created_at LIMIT 1').get(normalizeUsername(username)) as { user_handle: string } | undefined
    return row?.user_handle ?? null
  }

  /**
   * Registers a passkey for a user. UserError for an unknown user, a
   * credential ID that is already registered (to anyone: W3C WebAuthn Level
   * 3 §7.1, "not yet registered"), a malformed one, or too many passkeys.
   */
  addPasskey(username: string, p: NewPasskeyRecord, at: number = Date.now()): Passkey {
    const n = normalizeUsername(username)
    const transports = passkeyTransports(p)
    return this.#transaction(() => {
      if (!this.#row(n)) throw new UserError(`user ${n} does not exist`)
      const count = Number((this.#db.prepare('SELECT count(*) AS n FROM passkeys WHERE username = ?').get(n) as { n: number }).n)
      if (count >= MAX_PASSKEYS) throw new UserError(`user ${n} has ${MAX_PASSKEYS} passkeys already, the most one may have`)
      try {
        this.#db
          .prepare('INSERT INTO passkeys (id, username, user_handle, public_key, counter, transports_json, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)')
          .run(p.id, n, p.userHandle, p.publicKey, p.counter, JSON.stringify(transports), at)
      } catch (err) {
        if (isUniqueViolation(err)) throw new UserError('this passkey is registered already')
        throw err
      }
      return toPasskey(this.#db.prepare('SELECT * FROM passkeys WHERE id = ?').get(p.id) as unknown as PasskeyRow)
    })
  }

  /**
   * Records that a user's passkey signed them in with signature counter
   * `counter` (W3C WebAuthn Level 3 §6.1.1, §7.2), in one statement
   * (two sign-ins at once cannot both pass with the same count): refused
   * (false) when the counter went backwards or stood still while both it and
   * the stored one are non-zero (a sign the credential was copied), or when
   * the passkey is no longer the user's. The stored counter never goes down:
   * a 0 from an authenticator that stopped counting keeps the last one.
   */
  usePasskey(username: string, id: string, counter: number, at: number = Date.now()): boolean {
    if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) return false
    const r = this.#db
      .prepare('UPDATE passkeys SET counter = max(counter, ?1), last_used_at = ?2 WHERE id = ?3 AND username = ?4 AND NOT (?1 <> 0 AND counter <> 0 AND ?1 <= counter)')
      .run(counter, at, id, normalizeUsername(username))
    return Number(r.changes) > 0
  }

  /** Removes one of a user's passkeys; false when they have none with that ID. */
  removePasskey(username: string, id: string): boolean {
    return Number(this.#db.prepare('DELETE FROM passkeys WHERE username = ? AND id = ?').run(normalizeUsername(username), id).changes) > 0
  }

  /** Removes all of a user's passkeys; returns how many there were. */
  removePasskeys(username: string): number {
    return Number(this.#db.prepare('DELETE FROM passkeys WHERE username = ?').run(normalizeUsername(username)).changes)
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE: another process waits, up to the busy timeout). */
  #transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      const out = fn()
      this.#db.exec('COMMIT')
      return out
    } catch (err) {
      this.#db.exec('ROLLBACK')
      throw err
    }
  }

  /**
   * Checks a password in constant time against the stored scrypt hash; for
   * an unknown user it still spends one hash on a fixed dummy so timing does
   * not tell which usernames exist. Returns the user, or null for a wrong
   * password, an unknown user or a disabled one.
   */
  async verify(username: string, password: string): Promise<User | null> {
    const row = this.#row(username)
    return (await passwordMatches(row && row.disabled === 0 ? row.password_hash : null, password)) ? toUser(row!) : null
  }

  /** Closes the database; the store cannot be used after. */
  close(): void {
    if (this.#db.isOpen) this.#db.close()
  }
}

/**
 * The SQLite store as a {@link UserDirectory}: the same statements, each
 * answered at once (node:sqlite is synchronous), so the provider's users
 * behave exactly as the `edgebox user` command's.
 */
export class SqliteUserDirectory implements UserDirectory {
  readonly #store: UserStore

  constructor(store: UserStore) {
    this.#store = store
  }

  /** Opens `<dataDir>/auth/users.sqlite` ({@link UserStore.open}). */
  static async open(dataDir: string): Promise<SqliteUserDirectory> {
    return new SqliteUserDirectory(await UserStore.open(dataDir))
  }

  /** The database file's path. */
  get file(): string {
    return this.#store.file
  }

  async get(username: string): Promise<User | undefined> {
    return this.#store.get(username)
  }

  async list(): Promise<User[]> {
    return this.#store.list()
  }

  add(u: NewUser): Promise<User> {
    return this.#store.add(u)
  }

  setPassword(username: string, password: string): Promise<void> {
    return this.#store.setPassword(username, password)
  }

  async setGroups(username: string, groups: readonly string[]): Promise<void> {
    this.#store.setGroups(username, groups)
  }

  async setTotpSecret(username: string, secret: string | null): Promise<void> {
    this.#store.setTotpSecret(username, secret)
  }

  async remove(username: string): Promise<boolean> {
    return this.#store.remove(username)
  }

  async passkeys(username: string): Promise<Passkey[]> {
    return this.#store.passkeys(username)
  }

  async passkeyCounts(): Promise<Map<string, number>> {
    return this.#store.passkeyCounts()
  }

  async passkeyUserHandle(username: string): Promise<string | null> {
    return this.#store.passkeyUserHandle(username)
  }

  async addPasskey(username: string, p: NewPasskeyRecord, at?: number): Promise<Passkey> {
    return this.#store.addPasskey(username, p, at)
  }

  async usePasskey(username: string, id: string, counter: number, at?: number): Promise<boolean> {
    return this.#store.usePasskey(username, id, counter, at)
  }

  async removePasskey(username: string, id: string): Promise<boolean> {
    return this.#store.removePasskey(username, id)
  }

  async removePasskeys(username: string): Promise<number> {
    return this.#store.removePasskeys(username)
  }

  verify(username: string, password: string): Promise<User | null> {
    return this.#store.verify(username, password)
  }

  async close(): Promise<void> {
    this.#store.close()
  }
}

/**
 * The provider's users: `<dataDir>/auth/users.sqlite`, or with `postgres`
 * the tables the nodes share (pg-users.ts, loaded only then). What the
 * provider and the `edgebox user` command open, so both see the same users.
 */
export async function openUserDirectory(o: { readonly dataDir: string; readonly postgres?: Postgres | undefined }): Promise<UserDirectory> {
  if (!o.postgres) return SqliteUserDirectory.open(o.dataDir)
  const { PgUserDirectory } = await import('./pg-users.ts')
  return PgUserDirectory.open(o.postgres)
}

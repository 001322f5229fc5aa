import type { Postgres } from '../core/postgres.ts'
import { pgMigrate, pgQuery, pgTransaction } from './idp/pg-store.ts'
import {
  checkedGroups,
  checkTotpSecret,
  hashPassword,
  MAX_COUNTER,
  MAX_PASSKEYS,
  newUserFields,
  normalizeUsername,
  passkeyTransports,
  passwordMatches,
  UserError,
  validatePassword,
  type NewPasskeyRecord,
  type NewUser,
  type Passkey,
  type User,
  type UserDirectory,
} from './users.ts'

/**
 * The built-in provider's users and passkeys in the PostgreSQL the nodes
 * share (docs/scale.md): what users.ts keeps in `<dataDir>/auth/users.sqlite`,
 * with the same checks (the same functions), the same refusals and the same
 * messages (the contract suite, test/contracts/user-stores.test.ts, is the
 * judge). Tables are made by `postgres.migrate('users', ...)`.
 *
 * Where PostgreSQL would answer otherwise than SQLite, it is told to answer
 * the same:
 *
 * - Usernames and credential IDs sort by code point (SQLite's BINARY):
 *   their columns use the "C" collation whatever the database's default
 *   (PostgreSQL manual §24.2, "Collation Support").
 * - Text never holds NUL (§8.3): a name with one (typed into the sign-in
 *   form) is no user, as in SQLite, instead of a failed query.
 * - `bigint` comes back from node-pg as text: turned into numbers here.
 *
 * A passkey's counter is checked and stored in one UPDATE, which PostgreSQL
 * re-evaluates on the row as another node left it (§13.2.1): two sign-ins
 * at once on two nodes cannot both pass with one count. A new passkey is
 * added under a lock of its user's row (SELECT ... FOR UPDATE, §13.3.2), so
 * nodes adding passkeys at once count them one after the other.
 */

/** The steps of the `users` store's tables (step i is version i + 1). */
export const USERS_MIGRATIONS: readonly string[] = [
  `CREATE TABLE idp_users (
    username text COLLATE "C" PRIMARY KEY,
    email text,
    name text,
    groups text[] NOT NULL DEFAULT '{}',
    password_hash text NOT NULL,
    totp_secret text,
    created_at bigint NOT NULL,
    password_changed_at bigint NOT NULL,
    disabled boolean NOT NULL DEFAULT false
  );
  CREATE TABLE idp_passkeys (
    id text COLLATE "C" PRIMARY KEY,
    username text COLLATE "C" NOT NULL REFERENCES idp_users (username) ON DELETE CASCADE,
    user_handle text NOT NULL,
    public_key bytea NOT NULL,
    counter bigint NOT NULL DEFAULT 0,
    transports text[] NOT NULL DEFAULT '{}',
    created_at bigint NOT NULL,
    last_used_at bigint
  );
  CREATE INDEX idp_passkeys_username ON idp_passkeys (username);`,
]

interface UserRow {
  username: string
  email: string | null
  name: string | null
  groups: string[]
  password_hash: string
  totp_secret: string | null
  created_at: string
  password_changed_at: string
  disabled: boolean
}

interface PasskeyRow {
  id: string
  username: string
  user_handle: string
  public_key: Buffer
  counter: string
  transports: string[]
  created_at: string
  last_used_at: string | null
}

function toUser(row: UserRow): User {
  return Object.freeze({
    username: row.username,
    email: row.email,
    name: row.name,
    groups: Object.freeze([...row.groups]),
    totpSecret: row.totp_secret,
    createdAt: Number(row.created_at),
    passwordChangedAt: Number(row.password_changed_at),
    disabled: row.disabled,
  })
}

function toPasskey(row: PasskeyRow): Passkey {
  return Object.freeze({
    id: row.id,
    username: row.username,
    userHandle: row.user_handle,
    publicKey: new Uint8Array(row.public_key),
    counter: Number(row.counter),
    transports: Object.freeze([...row.transports]),
    createdAt: Number(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
  })
}

/** Whether a value can be in a text column at all (PostgreSQL text never holds NUL). */
const storable = (s: string): boolean => !s.includes('\0')

/** The provider's users in the shared PostgreSQL. */
export class PgUserDirectory implements UserDirectory {
  readonly #pg: Postgres

  private constructor(pg: Postgres) {
    this.#pg = pg
  }

  /** Makes the tables when needed (`migrate('users', ...)`) and returns the store. */
  static async open(pg: Postgres): Promise<PgUserDirectory> {
    await pgMigrate(pg, 'users', USERS_MIGRATIONS)
    return new PgUserDirectory(pg)
  }

  async #row(username: string): Promise<UserRow | undefined> {
    const n = normalizeUsername(username)
    if (!storable(n)) return undefined
    return (await pgQuery<UserRow>(this.#pg, 'SELECT * FROM idp_users WHERE username = $1', [n])).rows[0]
  }

  async get(username: string): Promise<User | undefined> {
    const row = await this.#row(username)
    return row ? toUser(row) : undefined
  }

  async list(): Promise<User[]> {
    return (await pgQuery<UserRow>(this.#pg, 'SELECT * FROM idp_users ORDER BY username')).rows.map(toUser)
  }

  async add(u: NewUser): Promise<User> {
    const f = newUserFields(u)
    if (await this.#row(f.username)) throw new UserError(`user ${f.username} exists`)
    const hash = await hashPassword(u.password)
    const now = Date.now()
    // another node may have added the name meanwhile: no row comes back, and the answer is the same
    const r = await pgQuery<UserRow>(
      this.#pg,
      `INSERT INTO idp_users (username, email, name, groups, password_hash, totp_secret, created_at, password_changed_at, disabled)
       VALUES ($1, $2, $3, $4, $5, NULL, $6, $6, false) ON CONFLICT (username) DO NOTHING RETURNING *`,
      [f.username, f.email, f.name, f.groups, hash, now],
    )
    if (!r.rows[0]) throw new UserError(`user ${f.username} exists`)
    return toUser(r.rows[0])
  }

  async setPassword(username: string, password: string): Promise<void> {
    const weak = validatePassword(password)
    if (weak) throw new UserError(weak)
    const n = normalizeUsername(username)
    if (!(await this.#row(n))) throw new UserError(`user ${n} does not exist`)
    const hash = await hashPassword(password)
    const r = await pgQuery(this.#pg, 'UPDATE idp_users SET password_hash = $1, password_changed_at = $2 WHERE username = $3', [hash, Date.now(), n])
    if (r.rowCount === 0) throw new UserError(`user ${n} does not exist`)
  }

  async setGroups(username: string, groups: readonly string[]): Promise<void> {
    const checked = checkedGroups(groups)
    await this.#update(username, 'groups', checked)
  }

  async setTotpSecret(username: string, secret: string | null): Promise<void> {
    checkTotpSecret(secret)
    await this.#update(username, 'totp_secret', secret)
  }

  /** Sets one column of a user's row; UserError for an unknown user. */
  async #update(username: string, column: 'groups' | 'totp_secret', value: unknown): Promise<void> {
    const n = normalizeUsername(username)
    const r = storable(n) ? await pgQuery(this.#pg, `UPDATE idp_users SET ${column} = $1 WHERE username = $2`, [value, n]) : { rowCount: 0 }
    if (r.rowCount === 0) throw new UserError(`user ${n} does not exist`)
  }

  async remove(username: string): Promise<boolean> {
    const n = normalizeUsername(username)
    if (!storable(n)) return false
    // the passkeys go with the user in the same statement (ON DELETE CASCADE)
    return ((await pgQuery(this.#pg, 'DELETE FROM idp_users WHERE username = $1', [n])).rowCount ?? 0) > 0
  }

  async passkeys(username: string): Promise<Passkey[]> {
    const n = normalizeUsername(username)
    if (!storable(n)) return []
    return (await pgQuery<PasskeyRow>(this.#pg, 'SELECT * FROM idp_passkeys WHERE username = $1 ORDER BY created_at, id', [n])).rows.map(toPasskey)
  }

  async passkeyCounts(): Promise<Map<string, number>> {
    const rows = (await pgQuery<{ username: string; n: string }>(this.#pg, 'SELECT username, count(*) AS n FROM idp_passkeys GROUP BY username')).rows
    return new Map(rows.map((r) => [r.username, Number(r.n)]))
  }

  async passkeyUserHandle(username: string): Promise<string | null> {
    const n = normalizeUsername(username)
    if (!storable(n)) return null
    const row = (await pgQuery<{ user_handle: string }>(this.#pg, 'SELECT user_handle FROM idp_passkeys WHERE username = $1 ORDER BY created_at, id LIMIT 1', [n])).rows[0]
    return row?.user_handle ?? null
  }

  async addPasskey(username: string, p: NewPasskeyRecord, at: number = Date.now()): Promise<Passkey> {
    const n = normalizeUsername(username)
    const transports = passkeyTransports(p)
    return pgTransaction(this.#pg, async (c) => {
      const user = storable(n) ? (await c.query('SELECT 1 FROM idp_users WHERE username = $1 FOR UPDATE', [n])).rows[0] : undefined
      if (!user) throw new UserError(`user ${n} does not exist`)
      const count = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM idp_passkeys WHERE username = $1', [n])).rows[0]!.n)
      if (count >= MAX_PASSKEYS) throw new UserError(`user ${n} has ${MAX_PASSKEYS} passkeys already, the most one may have`)
      const r = await c.query<PasskeyRow>(
        `INSERT INTO idp_passkeys (id, username, user_handle, public_key, counter, transports, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) ON CONFLICT (id) DO NOTHING RETURNING *`,
        [p.id, n, p.userHandle, Buffer.from(p.publicKey), p.counter, transports, at],
      )
      if (!r.rows[0]) throw new UserError('this passkey is registered already')
      return toPasskey(r.rows[0])
    })
  }

  async usePasskey(username: string, id: string, counter: number, at: number = Date.now()): Promise<boolean> {
    if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) return false
    const n = normalizeUsername(username)
    if (!storable(n) || !storable(id)) return false
    const r = await pgQuery(
      this.#pg,
      'UPDATE idp_passkeys SET counter = GREATEST(counter, $1), last_used_at = $2 WHERE id = $3 AND username = $4 AND NOT ($1 <> 0 AND counter <> 0 AND $1 <= counter)',
      [counter, at, id, n],
    )
    return (r.rowCount ?? 0) > 0
  }

  async removePasskey(username: string, id: string): Promise<boolean> {
    const n = normalizeUsername(username)
    if (!storable(n) || !storable(id)) return false
    return ((await pgQuery(this.#pg, 'DELETE FROM idp_passkeys WHERE username = $1 AND id = $2', [n, id])).rowCount ?? 0) > 0
  }

  async removePasskeys(username: string): Promise<number> {
    const n = normalizeUsername(username)
    if (!storable(n)) return 0
    return (await pgQuery(this.#pg, 'DELETE FROM idp_passkeys WHERE username = $1', [n])).rowCount ?? 0
  }

  async verify(username: string, password: string): Promise<User | null> {
    const row = await this.#row(username)
    return (await passwordMatches(row && !row.disabled ? row.password_hash : null, password)) ? toUser(row!) : null
  }

  /** Nothing to let go of: the pool is the process's (core/postgres.ts). */
  async close(): Promise<void> {}
}

import { closeSync, existsSync, openSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { LRUCache } from 'lru-cache'
import { ensurePrivateDir } from '../core/data-dir.ts'
import type { RedisBus } from '../core/redis.ts'
import type { PendingLogin } from './relying-party.ts'

/**
 * Where single sign-on keeps what is used once: the logins under way (their
 * `state`, nonce and PKCE verifier, OpenID Connect Core §3.1.2.1, RFC 7636)
 * and the back-channel logout tokens already seen (Back-Channel Logout 1.0
 * §2.6 item 9). A login started through one process may come back through
 * any other (another worker, another node behind the same name), and must be
 * accepted there exactly once: `take` reads and removes in one step in every
 * store, so a callback replayed to another process is refused there too.
 *
 * The store follows the sessions' (`auth.sessions.store`): `sqlite` is a
 * file in the data folder shared by every worker of the machine, `redis` is
 * shared by every node, `memory` is this process's only. Keys are SHA-256
 * digests (the caller's): the store never holds a `state` as it was sent.
 */
export interface LoginStore {
  /** Keeps a login under way until `expiresAt` (ms since the epoch). */
  put(key: string, login: PendingLogin, expiresAt: number): Promise<void>
  /** The login under `key`, removed in the same step: undefined when unknown, already taken, or ended by `now`. */
  take(key: string, now: number): Promise<PendingLogin | undefined>
  /** True the first time `key` is marked (the mark lasts until `expiresAt`), false while it lasts. */
  once(key: string, expiresAt: number, now: number): Promise<boolean>
  /** Removes what ended by `now`; returns how many. */
  sweep(now: number): Promise<number>
  close(): Promise<void>
}

/** The message every method of a closed store rejects with. */
export const LOGIN_STORE_CLOSED = 'login store is closed'

/** At most this many logins and marks in memory (the oldest go first). */
const MEMORY_MAX = 100_000

/** This process's only: logins and marks in memory, bounded. */
export class MemoryLoginStore implements LoginStore {
  readonly #logins = new LRUCache<string, { json: string; expiresAt: number }>({ max: MEMORY_MAX })
  readonly #marks = new LRUCache<string, number>({ max: MEMORY_MAX })
  #closed = false

  #check(): void {
    if (this.#closed) throw new Error(LOGIN_STORE_CLOSED)
  }

  async put(key: string, login: PendingLogin, expiresAt: number): Promise<void> {
    this.#check()
    this.#logins.set(key, { json: JSON.stringify(login), expiresAt })
  }

  async take(key: string, now: number): Promise<PendingLogin | undefined> {
    this.#check()
    const held = this.#logins.get(key)
    if (held === undefined) return undefined
    this.#logins.delete(key)
    return held.expiresAt > now ? (JSON.parse(held.json) as PendingLogin) : undefined
  }

  async once(key: string, expiresAt: number, now: number): Promise<boolean> {
    this.#check()
    const until = this.#marks.get(key)
    if (until !== undefined && until > now) return false
    this.#marks.set(key, expiresAt)
    return true
  }

  async sweep(now: number): Promise<number> {
    this.#check()
    let n = 0
    for (const [key, v] of this.#logins.entries()) if (v.expiresAt <= now && this.#logins.delete(key)) n++
    for (const [key, until] of this.#marks.entries()) if (until <= now && this.#marks.delete(key)) n++
    return n
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#logins.clear()
    this.#marks.clear()
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS logins (key TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS logins_by_expiry ON logins (expires_at);
CREATE INDEX IF NOT EXISTS marks_by_expiry ON marks (expires_at);
`

type Row = Record<string, SQLOutputValue>

/**
 * One SQLite file (node:sqlite) that every process of the machine opens:
 * WAL journal and a 2 s busy timeout, as the session store. `take` is one
 * `DELETE … RETURNING` statement, so two processes never both get a login.
 */
export class SqliteLoginStore implements LoginStore {
  readonly file: string
  readonly #db: DatabaseSync
  readonly #put: StatementSync
  readonly #take: StatementSync
  readonly #dropMark: StatementSync
  readonly #mark: StatementSync
  readonly #sweepLogins: StatementSync
  readonly #sweepMarks: StatementSync
  #closed = false

  /** Opens (creating when missing, mode 0600) the file; throws naming it. */
  constructor(file: string) {
    this.file = file
    if (file !== ':memory:' && !existsSync(file)) closeSync(openSync(file, 'a', 0o600))
    let db: DatabaseSync
    try {
      db = new DatabaseSync(file)
    } catch (err) {
      throw new Error(`cannot open the login store ${file}: ${(err as Error).message}`, { cause: err })
    }
    try {
      db.exec('PRAGMA busy_timeout = 2000')
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('PRAGMA synchronous = NORMAL')
      db.exec(SCHEMA)
    } catch (err) {
      db.close()
      throw new Error(`cannot open the login store ${file}: ${(err as Error).message}`, { cause: err })
    }
    this.#db = db
    this.#put = db.prepare('INSERT OR REPLACE INTO logins (key, data, expires_at) VALUES (?, ?, ?)')
    this.#take = db.prepare('DELETE FROM logins WHERE key = ? RETURNING data, expires_at')
    this.#dropMark = db.prepare('DELETE FROM marks WHERE key = ? AND expires_at <= ?')
    this.#mark = db.prepare('INSERT OR IGNORE INTO marks (key, expires_at) VALUES (?, ?)')
    this.#sweepLogins = db.prepare('DELETE FROM logins WHERE expires_at <= ?')
    this.#sweepMarks = db.prepare('DELETE FROM marks WHERE expires_at <= ?')
  }

  #check(): void {
    if (this.#closed) throw new Error(LOGIN_STORE_CLOSED)
  }

  async put(key: string, login: PendingLogin, expiresAt: number): Promise<void> {
    this.#check()
    this.#put.run(key, JSON.stringify(login), expiresAt)
  }

  async take(key: string, now: number): Promise<PendingLogin | undefined> {
    this.#check()
    const row = this.#take.get(key) as Row | undefined
    if (row === undefined || Number(row.expires_at) <= now) return undefined
    return JSON.parse(String(row.data)) as PendingLogin
  }

  async once(key: string, expiresAt: number, now: number): Promise<boolean> {
    this.#check()
    // an ended mark makes way; of two processes inserting at once, the primary key lets one in
    this.#dropMark.run(key, now)
    return Number(this.#mark.run(key, expiresAt).changes) === 1
  }

  async sweep(now: number): Promise<number> {
    this.#check()
    return Number(this.#sweepLogins.run(now).changes) + Number(this.#sweepMarks.run(now).changes)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#db.close()
  }
}

/** Opens the login store in a data folder: `${dataDir}/auth/logins.sqlite` (folder 0700, file 0600). */
export async function openSqliteLoginStore(dataDir: string): Promise<SqliteLoginStore> {
  const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
  return new SqliteLoginStore(path.join(dir, 'logins.sqlite'))
}

/**
 * In Redis, shared by every node: `<keyPrefix>sso-login:<key>` and
 * `<keyPrefix>sso-once:<key>`, each with its end as Redis's own expiry
 * (PXAT), so nothing needs sweeping. `take` is GETDEL and `once` is SET NX:
 * single-key commands, atomic on one Redis and in a Redis Cluster.
 */
export class RedisLoginStore implements LoginStore {
  readonly #redis: RedisBus['command']
  readonly #logins: string
  readonly #marks: string
  #closed = false

  constructor(bus: RedisBus) {
    this.#redis = bus.command
    this.#logins = `${bus.keyPrefix}sso-login:`
    this.#marks = `${bus.keyPrefix}sso-once:`
  }

  #check(): void {
    if (this.#closed) throw new Error(LOGIN_STORE_CLOSED)
  }

  async put(key: string, login: PendingLogin, expiresAt: number): Promise<void> {
    this.#check()
    await this.#redis.set(this.#logins + key, JSON.stringify({ login, expiresAt }), 'PXAT', expiresAt)
  }

  async take(key: string, now: number): Promise<PendingLogin | undefined> {
    this.#check()
    const json = await this.#redis.getdel(this.#logins + key)
    if (json === null) return undefined
    // Redis expires the key by its own clock; the end is kept too, so the caller's `now` decides as in the other stores
    const held = JSON.parse(json) as { login: PendingLogin; expiresAt: number }
    return held.expiresAt > now ? held.login : undefined
  }

  async once(key: string, expiresAt: number, now: number): Promise<boolean> {
    this.#check()
    if (expiresAt <= now) return true
    return (await this.#redis.set(this.#marks + key, '1', 'PXAT', expiresAt, 'NX')) === 'OK'
  }

  async sweep(): Promise<number> {
    this.#check()
    return 0
  }

  /** Stops using the store; the connection is the process's (core/redis.ts) and stays open. */
  async close(): Promise<void> {
    this.#closed = true
  }
}

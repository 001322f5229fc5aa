import { closeSync, existsSync, openSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { ensurePrivateDir } from '../core/data-dir.ts'

/**
 * Server-side session stores for single sign-on. The browser holds only an
 * opaque random session id; the store knows it by its SHA-256 (`key`), so a
 * copy of the store does not let anyone sign in. A store does not judge
 * whether a session is still valid: callers compare `expiresAt` and
 * `lastSeenAt` themselves, and `sweep` removes what has ended.
 */

/** One signed-in session, kept server-side; the browser holds only an opaque id whose SHA-256 is `key`. */
export interface SessionRecord {
  /** base64url SHA-256 of the session id: the store never sees the id itself. */
  readonly key: string
  /** The configured identity provider's name. */
  readonly provider: string
  /** The provider's subject (`sub`). */
  readonly sub: string
  /** The provider's session id (`sid` claim), for back-channel logout; null when the provider gave none. */
  readonly sid: string | null
  /** Claims about the user (from the ID token and userinfo): email, name, groups... Stored as JSON. */
  readonly claims: Readonly<Record<string, unknown>>
  /** The ID token as received (a compact JWT), for RP-initiated logout's `id_token_hint`. */
  readonly idToken: string
  /** The access token, null when none was kept. */
  readonly accessToken: string | null
  /** The refresh token, null when the provider gave none. */
  readonly refreshToken: string | null
  /** When the access token expires (ms since the epoch), null: unknown. */
  readonly tokenExpiresAt: number | null
  /** ms since the epoch */
  readonly createdAt: number
  /** Last request seen (ms since the epoch), for the idle timeout. */
  readonly lastSeenAt: number
  /** The absolute end (ms since the epoch): createdAt + absolute timeout. */
  readonly expiresAt: number
}

/** The token fields a refresh replaces. */
export interface SessionTokens {
  readonly idToken: string
  readonly accessToken: string | null
  readonly refreshToken: string | null
  readonly tokenExpiresAt: number | null
}

/**
 * Where sessions live (node:sqlite by default; an in-memory one for tests and
 * `store: 'memory'`). Every method may be async so a networked store (Redis)
 * fits. Records returned are fresh frozen objects: changing one never changes
 * the store. After close(), every method but close() rejects.
 */
export interface SessionStore {
  /** The session with this key, or undefined. Expired sessions are returned until swept; the caller checks the times. */
  get(key: string): Promise<SessionRecord | undefined>
  /** Inserts or replaces the whole record. */
  put(record: SessionRecord): Promise<void>
  /** Moves lastSeenAt forward (never backward); no-op when the key is unknown. */
  touch(key: string, lastSeenAt: number): Promise<void>
  /** Replaces token fields after a refresh; no-op when the key is unknown. */
  updateTokens(key: string, tokens: SessionTokens): Promise<void>
  /** Deletes one session; returns whether there was one. */
  delete(key: string): Promise<boolean>
  /** Deletes every session of one subject at one provider (`withoutSid`: only those with no provider session id); returns the deleted keys. */
  deleteBySubject(provider: string, sub: string, withoutSid?: boolean): Promise<string[]>
  /** Deletes every session with this provider session id; returns the deleted keys. */
  deleteBySid(provider: string, sid: string): Promise<string[]>
  /** Deletes sessions whose expiresAt <= now or whose lastSeenAt + idleMs <= now; returns how many. */
  sweep(now: number, idleMs: number): Promise<number>
  /** Releases the store; calling it again does nothing. */
  close(): Promise<void>
}

/** The message every method of a closed store rejects with. */
export const SESSION_STORE_CLOSED = 'session store is closed'

/** Freezes a value parsed from JSON and everything in it. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/** The claims as JSON text (what both stores keep), refusing anything that is not a plain JSON object. */
function claimsToJson(claims: Readonly<Record<string, unknown>>): string {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) throw new TypeError('session claims must be an object')
  return JSON.stringify(claims)
}

/** The claims back from JSON text: a fresh, deeply frozen object. */
function claimsFromJson(json: string): Readonly<Record<string, unknown>> {
  return deepFreeze(JSON.parse(json) as Record<string, unknown>)
}

/** A record's fields in the store's own form: claims as JSON text, nothing shared with the caller. */
export interface StoredSession extends Omit<SessionRecord, 'claims'> {
  readonly claimsJson: string
}

/** A record in the store's own form (claims checked and turned into JSON text). */
export function toStored(r: SessionRecord): StoredSession {
  return {
    key: r.key,
    provider: r.provider,
    sub: r.sub,
    sid: r.sid,
    claimsJson: claimsToJson(r.claims),
    idToken: r.idToken,
    accessToken: r.accessToken,
    refreshToken: r.refreshToken,
    tokenExpiresAt: r.tokenExpiresAt,
    createdAt: r.createdAt,
    lastSeenAt: r.lastSeenAt,
    expiresAt: r.expiresAt,
  }
}

/** A stored record back: a fresh, frozen record. */
export function fromStored(s: StoredSession): SessionRecord {
  return Object.freeze({
    key: s.key,
    provider: s.provider,
    sub: s.sub,
    sid: s.sid,
    claims: claimsFromJson(s.claimsJson),
    idToken: s.idToken,
    accessToken: s.accessToken,
    refreshToken: s.refreshToken,
    tokenExpiresAt: s.tokenExpiresAt,
    createdAt: s.createdAt,
    lastSeenAt: s.lastSeenAt,
    expiresAt: s.expiresAt,
  })
}

/** The index key of a (provider, value) pair; JSON keeps any two pairs apart whatever characters they hold. */
const pairKey = (provider: string, value: string): string => JSON.stringify([provider, value])

/** Adds `key` to the set under `index` in `map`. */
function indexAdd(map: Map<string, Set<string>>, index: string, key: string): void {
  let set = map.get(index)
  if (!set) map.set(index, (set = new Set()))
  set.add(key)
}

/** Removes `key` from the set under `index` in `map`, dropping emptied sets. */
function indexRemove(map: Map<string, Set<string>>, index: string, key: string): void {
  const set = map.get(index)
  if (!set) return
  set.delete(key)
  if (set.size === 0) map.delete(index)
}

/** An in-memory session store: a Map by key, indexed by (provider, sub) and (provider, sid). Sessions end with the process. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions: Map<string, StoredSession>
  private readonly bySubject: Map<string, Set<string>>
  private readonly bySid: Map<string, Set<string>>
  private closed: boolean

  constructor() {
    this.sessions = new Map()
    this.bySubject = new Map()
    this.bySid = new Map()
    this.closed = false
  }

  private check(): void {
    if (this.closed) throw new Error(SESSION_STORE_CLOSED)
  }

  private remove(key: string): boolean {
    const s = this.sessions.get(key)
    if (!s) return false
    this.sessions.delete(key)
    indexRemove(this.bySubject, pairKey(s.provider, s.sub), key)
    if (s.sid !== null) indexRemove(this.bySid, pairKey(s.provider, s.sid), key)
    return true
  }

  private removeAll(keys: Set<string> | undefined): string[] {
    const list = keys ? [...keys] : []
    for (const key of list) this.remove(key)
    return list
  }

  async get(key: string): Promise<SessionRecord | undefined> {
    this.check()
    const s = this.sessions.get(key)
    return s && fromStored(s)
  }

  async put(record: SessionRecord): Promise<void> {
    this.check()
    const s = toStored(record)
    this.remove(s.key)
    this.sessions.set(s.key, s)
    indexAdd(this.bySubject, pairKey(s.provider, s.sub), s.key)
    if (s.sid !== null) indexAdd(this.bySid, pairKey(s.provider, s.sid), s.key)
  }

  async touch(key: string, lastSeenAt: number): Promise<void> {
    this.check()
    const s = this.sessions.get(key)
    if (s && lastSeenAt > s.lastSeenAt) this.sessions.set(key, { ...s, lastSeenAt })
  }

  async updateTokens(key: string, tokens: SessionTokens): Promise<void> {
    this.check()
    const s = this.sessions.get(key)
    if (!s) return
    this.sessions.set(key, {
      ...s,
      idToken: tokens.idToken,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      tokenExpiresAt: tokens.tokenExpiresAt,
    })
  }

  async delete(key: string): Promise<boolean> {
    this.check()
    return this.remove(key)
  }

  async deleteBySubject(provider: string, sub: string, withoutSid = false): Promise<string[]> {
    this.check()
    const keys = this.bySubject.get(pairKey(provider, sub))
    return this.removeAll(withoutSid && keys ? new Set([...keys].filter((k) => this.sessions.get(k)?.sid === null)) : keys)
  }

  async deleteBySid(provider: string, sid: string): Promise<string[]> {
    this.check()
    return this.removeAll(this.bySid.get(pairKey(provider, sid)))
  }

  async sweep(now: number, idleMs: number): Promise<number> {
    this.check()
    let n = 0
    for (const s of [...this.sessions.values()]) {
      if (s.expiresAt <= now || s.lastSeenAt + idleMs <= now) n += this.remove(s.key) ? 1 : 0
    }
    return n
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.sessions.clear()
    this.bySubject.clear()
    this.bySid.clear()
  }
}

/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const SESSION_SCHEMA_VERSION = 1

/** Columns in the order the insert statement binds them. */
const COLUMNS = 'key, provider, sub, sid, claims, id_token, access_token, refresh_token, token_expires_at, created_at, last_seen_at, expires_at'

const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS sessions (
  key TEXT PRIMARY KEY NOT NULL,
  provider TEXT NOT NULL,
  sub TEXT NOT NULL,
  sid TEXT,
  claims TEXT NOT NULL,
  id_token TEXT NOT NULL,
  access_token TEXT,
  refresh_token TEXT,
  token_expires_at INTEGER,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_subject ON sessions (provider, sub);
CREATE INDEX IF NOT EXISTS sessions_by_sid ON sessions (provider, sid);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
`

type Row = Record<string, SQLOutputValue>

function text(row: Row, column: string): string {
  const v = row[column]
  if (typeof v !== 'string') throw new Error(`session store: column ${column} is not text`)
  return v
}
function textOrNull(row: Row, column: string): string | null {
  const v = row[column]
  return v === null || v === undefined ? null : text(row, column)
}
function int(row: Row, column: string): number {
  const v = row[column]
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  throw new Error(`session store: column ${column} is not a number`)
}
function intOrNull(row: Row, column: string): number | null {
  const v = row[column]
  return v === null || v === undefined ? null : int(row, column)
}

function rowToRecord(row: Row): SessionRecord {
  return fromStored({
    key: text(row, 'key'),
    provider: text(row, 'provider'),
    sub: text(row, 'sub'),
    sid: textOrNull(row, 'sid'),
    claimsJson: text(row, 'claims'),
    idToken: text(row, 'id_token'),
    accessToken: textOrNull(row, 'access_token'),
    refreshToken: textOrNull(row, 'refresh_token'),
    tokenExpiresAt: intOrNull(row, 'token_expires_at'),
    createdAt: int(row, 'created_at'),
    lastSeenAt: int(row, 'last_seen_at'),
    expiresAt: int(row, 'expires_at'),
  })
}

function userVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as Row | undefined
  return row ? int(row, 'user_version') : 0
}

/**
 * A session store in one SQLite file (node:sqlite), shared safely by several
 * processes or instances: WAL journal, a 2 s busy timeout, `synchronous=NORMAL`.
 * The schema version is the file's `user_version`; a file written by a newer
 * Edgebox is refused rather than misread. A new file is created with mode 0600.
 */
export class SqliteSessionStore implements SessionStore {
  /** The database file. */
  readonly file: string
  private readonly db: DatabaseSync
  private closed: boolean
  private readonly sGet: StatementSync
  private readonly sPut: StatementSync
  private readonly sTouch: StatementSync
  private readonly sUpdateTokens: StatementSync
  private readonly sDelete: StatementSync
  private readonly sDeleteBySubject: StatementSync
  private readonly sDeleteBySubjectNoSid: StatementSync
  private readonly sDeleteBySid: StatementSync
  private readonly sSweep: StatementSync

  /** Opens (creating when missing, mode 0600) the file and brings its schema to the current version; throws naming the file. */
  constructor(file: string) {
    this.file = file
    this.closed = false
    if (file !== ':memory:' && !existsSync(file)) closeSync(openSync(file, 'a', 0o600))
    let db: DatabaseSync
    try {
      db = new DatabaseSync(file)
    } catch (err) {
      throw new Error(`cannot open the session store ${file}: ${(err as Error).message}`, { cause: err })
    }
    this.db = db
    try {
      db.exec('PRAGMA busy_timeout = 2000')
      const found = userVersion(db)
      if (found > SESSION_SCHEMA_VERSION) {
        throw new Error(`the session store ${file} has schema version ${found}, newer than this Edgebox knows (${SESSION_SCHEMA_VERSION}); upgrade Edgebox or remove the file`)
      }
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('PRAGMA synchronous = NORMAL')
      this.migrate()
    } catch (err) {
      db.close()
      const message = (err as Error).message
      throw message.includes(file) ? err : new Error(`cannot open the session store ${file}: ${message}`, { cause: err })
    }
    this.sGet = db.prepare(`SELECT ${COLUMNS} FROM sessions WHERE key = ?`)
    this.sPut = db.prepare(`INSERT OR REPLACE INTO sessions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.sTouch = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE key = ? AND last_seen_at < ?')
    this.sUpdateTokens = db.prepare('UPDATE sessions SET id_token = ?, access_token = ?, refresh_token = ?, token_expires_at = ? WHERE key = ?')
    this.sDelete = db.prepare('DELETE FROM sessions WHERE key = ?')
    this.sDeleteBySubject = db.prepare('DELETE FROM sessions WHERE provider = ? AND sub = ? RETURNING key')
    this.sDeleteBySubjectNoSid = db.prepare('DELETE FROM sessions WHERE provider = ? AND sub = ? AND sid IS NULL RETURNING key')
    this.sDeleteBySid = db.prepare('DELETE FROM sessions WHERE provider = ? AND sid = ? RETURNING key')
    this.sSweep = db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?')
  }

  /** Brings the schema from the file's version to the current one, in one write transaction (re-checked inside it, as another process may have got there first). */
  private migrate(): void {
    if (userVersion(this.db) === SESSION_SCHEMA_VERSION) return
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const version = userVersion(this.db)
      if (version > SESSION_SCHEMA_VERSION) {
        throw new Error(`the session store ${this.file} has schema version ${version}, newer than this Edgebox knows (${SESSION_SCHEMA_VERSION}); upgrade Edgebox or remove the file`)
      }
      if (version < 1) this.db.exec(SCHEMA_V1)
      // later versions: if (version < 2) ...
      this.db.exec(`PRAGMA user_version = ${SESSION_SCHEMA_VERSION}`)
      this.db.exec('COMMIT')
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw err
    }
  }

  private check(): void {
    if (this.closed) throw new Error(SESSION_STORE_CLOSED)
  }

  async get(key: string): Promise<SessionRecord | undefined> {
    this.check()
    const row = this.sGet.get(key) as Row | undefined
    return row && rowToRecord(row)
  }

  async put(record: SessionRecord): Promise<void> {
    this.check()
    const s = toStored(record)
    this.sPut.run(s.key, s.provider, s.sub, s.sid, s.claimsJson, s.idToken, s.accessToken, s.refreshToken, s.tokenExpiresAt, s.createdAt, s.lastSeenAt, s.expiresAt)
  }

  async touch(key: string, lastSeenAt: number): Promise<void> {
    this.check()
    this.sTouch.run(lastSeenAt, key, lastSeenAt)
  }

  async updateTokens(key: string, tokens: SessionTokens): Promise<void> {
    this.check()
    this.sUpdateTokens.run(tokens.idToken, tokens.accessToken, tokens.refreshToken, tokens.tokenExpiresAt, key)
  }

  async delete(key: string): Promise<boolean> {
    this.check()
    return Number(this.sDelete.run(key).changes) > 0
  }

  async deleteBySubject(provider: string, sub: string, withoutSid = false): Promise<string[]> {
    this.check()
    return ((withoutSid ? this.sDeleteBySubjectNoSid : this.sDeleteBySubject).all(provider, sub) as Row[]).map((row) => text(row, 'key'))
  }

  async deleteBySid(provider: string, sid: string): Promise<string[]> {
    this.check()
    return (this.sDeleteBySid.all(provider, sid) as Row[]).map((row) => text(row, 'key'))
  }

  async sweep(now: number, idleMs: number): Promise<number> {
    this.check()
    return Number(this.sSweep.run(now, now - idleMs).changes)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}

/** Opens the session store in a data folder: `${dataDir}/auth/sessions.sqlite`, the folder made private (0700) and the file created 0600. */
export async function openSqliteSessionStore(dataDir: string): Promise<SqliteSessionStore> {
  const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
  return new SqliteSessionStore(path.join(dir, 'sessions.sqlite'))
}

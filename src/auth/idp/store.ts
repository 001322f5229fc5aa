import path from 'node:path'
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import type { Clock } from '../../core/clock.ts'
import { ensurePrivateDir, openPrivateDatabase } from '../../core/data-dir.ts'

/**
 * The built-in provider's state in one SQLite file,
 * `<dataDir>/auth/idp.sqlite` (0600, WAL, a busy timeout): what
 * oidc-provider keeps through its Adapter interface (sessions, grants,
 * interactions, authorization codes, access and refresh tokens, replay
 * records), logins waiting for their second factor, and the last TOTP step
 * each user signed in with (RFC 6238 §5.2: a code is accepted once).
 * Expiry is read from the clock Edgebox gives (`ModuleDeps.clock`); expired
 * rows are never returned and are swept by `sweep()`.
 *
 * `IdpStore` is what the provider uses of it; nodes that share a
 * PostgreSQL keep the same state there instead (pg-store.ts), and both pass
 * the same contract suite (test/contracts/idp-stores.test.ts).
 *
 * Sessions are indexed by the account they are signed in as (and when),
 * so finding the sessions of a removed user (removals.ts) reads an index,
 * not every payload. The index is on expressions of the payload
 * (`json_extract`), kept up to date by SQLite itself on every write: it
 * needs no new column, no data migration and no new schema version, and an
 * older Edgebox opening the file keeps it right without knowing of it.
 */

/** What oidc-provider stores for one model instance (a token, a session...): JSON, with the fields it looks rows up by. */
export interface AdapterPayload {
  [key: string]: unknown
  grantId?: string
  userCode?: string
  uid?: string
  consumed?: number
}

/**
 * oidc-provider's storage interface (docs of oidc-provider 9, "Adapter"):
 * one instance per model name (`Session`, `AccessToken`, `Grant`, ...).
 * `expiresIn` is in seconds.
 */
export interface Adapter {
  upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>
  find(id: string): Promise<AdapterPayload | undefined>
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined>
  findByUid(uid: string): Promise<AdapterPayload | undefined>
  /**
   * Marks the row consumed (now, in seconds), in one statement that takes
   * it only if no one did: rejects with {@link ConsumedError} when it was
   * consumed already (by this process or another node) or is gone, so of
   * two uses of one code at once exactly one goes on.
   */
  consume(id: string): Promise<void>
  destroy(id: string): Promise<void>
  revokeByGrantId(grantId: string): Promise<void>
}

/** A consume that found the row consumed already, or gone: the second use of a single-use code or token. */
export class ConsumedError extends Error {
  override name = 'ConsumedError'
  /** The grant the row was issued under, when it is still there: what the provider revokes (RFC 6749 §4.1.2, RFC 9700 §4.14.2). */
  readonly grantId: string | null

  constructor(model: string, grantId: string | null) {
    super(`${model} already consumed`)
    this.grantId = grantId
  }
}

/**
 * The provider's storage cannot be reached (the shared PostgreSQL is down,
 * or the network to it): the sign-in pages answer 503 with a page that says
 * so, and nothing is half-written (pg-store.ts).
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
  /** The status oidc-provider answers its own endpoints' failures with (it reads `statusCode`): the token endpoint says 503 too. */
  readonly statusCode = 503
}

const SCHEMA_VERSION = 1

interface Row {
  payload: string
  consumed: number | null
}

/**
 * The index of sessions by account and sign-in time (seconds), with the
 * expiry, so the query of the accounts with live sessions is answered from
 * the index alone. Queries name it (`INDEXED BY`) and repeat its
 * expressions exactly: SQLite uses an index on expressions only then.
 */
const SESSION_ACCOUNT_INDEX = `CREATE INDEX IF NOT EXISTS oidc_session_account ON oidc (json_extract(payload, '$.accountId'), json_extract(payload, '$.loginTs'), expires_at) WHERE model = 'Session'`

/** An account that has live provider sessions. */
export interface SessionAccount {
  /** The account the sessions are signed in as (the username). */
  readonly accountId: string
  /** When the earliest of them signed in, in seconds since the epoch (oidc-provider's `loginTs`), or null if unknown. */
  readonly firstLogin: number | null
}

/** A provider session as stored: its ID and its payload (oidc-provider's `Session`: `accountId`, `loginTs`, `authorizations`...). */
export interface StoredSession {
  readonly id: string
  readonly payload: AdapterPayload
}

/**
 * The provider's state, as the provider uses it: adapters for
 * oidc-provider, the TOTP steps used, the sessions by account (removals.ts),
 * the sweep of what expired. Every method is async so a networked store
 * (PostgreSQL, pg-store.ts) fits.
 */
export interface IdpStore {
  /** The adapter of one oidc-provider model (`Session`, `AccessToken`, ...), or of Edgebox's own records (`EdgeboxLogin`). */
  adapter(model: string): Adapter
  /**
   * Records that `username` signed in with TOTP time step `step`, in one
   * statement; false when that step (or a later one) was used already, by
   * any node: the code is refused (RFC 6238 §5.2).
   */
  useTotpStep(username: string, step: number): Promise<boolean>
  /** The accounts that have live provider sessions, each with the sign-in time of its earliest one (in no particular order). */
  sessionAccounts(): Promise<SessionAccount[]>
  /** The live provider sessions signed in as `accountId`, with their payloads. */
  sessionsOf(accountId: string): Promise<StoredSession[]>
  /**
   * Ends a provider session in one transaction: deletes it, its grants,
   * and everything issued under them. True when this call deleted the
   * session; false when it was gone already (another node ended it), so
   * its clients are told once.
   */
  endSession(id: string, grantIds: readonly string[]): Promise<boolean>
  /** Deletes expired rows; resolves with how many. */
  sweep(): Promise<number>
  /** Lets go of the store; it cannot be used after. */
  close(): Promise<void>
}

/** The provider's SQLite file and the adapters over it. */
export class SqliteIdpStore implements IdpStore {
  readonly file: string
  readonly #db: DatabaseSync
  readonly #clock: Clock
  readonly #stmts: {
    upsert: StatementSync
    find: StatementSync
    findByUid: StatementSync
    findByUserCode: StatementSync
    consume: StatementSync
    grantOf: StatementSync
    destroy: StatementSync
    revoke: StatementSync
    sweep: StatementSync
    totp: StatementSync
    sessionAccounts: StatementSync
    sessionsOf: StatementSync
    destroyGrant: StatementSync
  }

  private constructor(db: DatabaseSync, file: string, clock: Clock) {
    this.#db = db
    this.file = file
    this.#clock = clock
    const live = '(expires_at IS NULL OR expires_at > ?)'
    this.#stmts = {
      upsert: db.prepare(
        `INSERT INTO oidc (model, id, payload, grant_id, user_code, uid, expires_at, consumed) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
         ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code,
           uid = excluded.uid, expires_at = excluded.expires_at, consumed = NULL`,
      ),
      find: db.prepare(`SELECT payload, consumed FROM oidc WHERE model = ? AND id = ? AND ${live}`),
      findByUid: db.prepare(`SELECT payload, consumed FROM oidc WHERE model = ? AND uid = ? AND ${live} LIMIT 1`),
      findByUserCode: db.prepare(`SELECT payload, consumed FROM oidc WHERE model = ? AND user_code = ? AND ${live} LIMIT 1`),
      // taken only when no one took it: the second of two uses finds no row to change
      consume: db.prepare('UPDATE oidc SET consumed = ? WHERE model = ? AND id = ? AND consumed IS NULL'),
      grantOf: db.prepare('SELECT grant_id FROM oidc WHERE model = ? AND id = ?'),
      destroy: db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?'),
      // every model's rows of the grant (tokens, codes and the grant itself), as oidc-provider's memory adapter does
      revoke: db.prepare('DELETE FROM oidc WHERE grant_id = ?'),
      sweep: db.prepare('DELETE FROM oidc WHERE expires_at IS NOT NULL AND expires_at <= ?'),
      // accepted only when the step is later than the last one used (insert, or update the smaller)
      totp: db.prepare(
        `INSERT INTO totp_used (username, step) VALUES (?, ?)
         ON CONFLICT (username) DO UPDATE SET step = excluded.step WHERE excluded.step > totp_used.step`,
      ),
      // a scan of the session index alone (no payload read): one row per account
      sessionAccounts: db.prepare(
        `SELECT json_extract(payload, '$.accountId') AS account, min(json_extract(payload, '$.loginTs')) AS first
         FROM oidc INDEXED BY oidc_session_account
         WHERE model = 'Session' AND ${live}
         GROUP BY json_extract(payload, '$.accountId')`,
      ),
      sessionsOf: db.prepare(
        `SELECT id, payload FROM oidc INDEXED BY oidc_session_account
         WHERE model = 'Session' AND json_extract(payload, '$.accountId') = ? AND ${live}`,
      ),
      destroyGrant: db.prepare(`DELETE FROM oidc WHERE model = 'Grant' AND id = ?`),
    }
  }

  /**
   * Opens (creating when needed) `<dataDir>/auth/idp.sqlite`: the folder
   * 0700, the file 0600. A file written by a newer Edgebox is refused.
   */
  static async open(dataDir: string, clock: Clock): Promise<SqliteIdpStore> {
    const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
    const file = path.join(dir, 'idp.sqlite')
    const db = await openPrivateDatabase(file)
    try {
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('BEGIN IMMEDIATE')
      try {
        const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version
        if (version > SCHEMA_VERSION) throw new Error(`${file} has user_version ${version}, newer than this Edgebox understands (${SCHEMA_VERSION}); upgrade Edgebox to use it`)
        if (version < SCHEMA_VERSION) {
          db.exec(`CREATE TABLE IF NOT EXISTS oidc (
            model TEXT NOT NULL,
            id TEXT NOT NULL,
            payload TEXT NOT NULL,
            grant_id TEXT,
            user_code TEXT,
            uid TEXT,
            expires_at INTEGER,
            consumed INTEGER,
            PRIMARY KEY (model, id)
          ) STRICT`)
          db.exec('CREATE INDEX IF NOT EXISTS oidc_grant ON oidc (grant_id) WHERE grant_id IS NOT NULL')
          db.exec('CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (model, uid) WHERE uid IS NOT NULL')
          db.exec('CREATE INDEX IF NOT EXISTS oidc_user_code ON oidc (model, user_code) WHERE user_code IS NOT NULL')
          db.exec('CREATE INDEX IF NOT EXISTS oidc_expiry ON oidc (expires_at) WHERE expires_at IS NOT NULL')
          db.exec('CREATE TABLE IF NOT EXISTS totp_used (username TEXT PRIMARY KEY NOT NULL, step INTEGER NOT NULL) STRICT')
          db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
        }
        // at every open: a file made before the index gets it (built once from the rows there)
        db.exec(SESSION_ACCOUNT_INDEX)
        db.exec('COMMIT')
      } catch (err) {
        db.exec('ROLLBACK')
        throw err
      }
    } catch (err) {
      db.close()
      throw err
    }
    return new SqliteIdpStore(db, file, clock)
  }

  adapter(model: string): Adapter {
    const s = this.#stmts
    const clock = this.#clock
    const read = (row: Row | undefined): AdapterPayload | undefined => {
      if (!row) return undefined
      const payload = JSON.parse(row.payload) as AdapterPayload
      if (row.consumed !== null) payload.consumed = row.consumed
      return payload
    }
    const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
    return {
      async upsert(id, payload, expiresIn) {
        const expiresAt = typeof expiresIn === 'number' && Number.isFinite(expiresIn) ? clock.now() + expiresIn * 1000 : null
        s.upsert.run(model, id, JSON.stringify(payload), str(payload.grantId), str(payload.userCode), str(payload.uid), expiresAt)
      },
      async find(id) {
        return read(s.find.get(model, id, clock.now()) as Row | undefined)
      },
      async findByUid(uid) {
        return read(s.findByUid.get(model, uid, clock.now()) as Row | undefined)
      },
      async findByUserCode(userCode) {
        return read(s.findByUserCode.get(model, userCode, clock.now()) as Row | undefined)
      },
      async consume(id) {
        if (Number(s.consume.run(Math.floor(clock.now() / 1000), model, id).changes) > 0) return
        const row = s.grantOf.get(model, id) as { grant_id: string | null } | undefined
        throw new ConsumedError(model, row?.grant_id ?? null)
      },
      async destroy(id) {
        s.destroy.run(model, id)
      },
      async revokeByGrantId(grantId) {
        s.revoke.run(grantId)
      },
    }
  }

  async useTotpStep(username: string, step: number): Promise<boolean> {
    return Number(this.#stmts.totp.run(username, step).changes) > 0
  }

  /** Read from the session index alone. */
  async sessionAccounts(): Promise<SessionAccount[]> {
    const rows = this.#stmts.sessionAccounts.all(this.#clock.now()) as unknown as { account: unknown; first: unknown }[]
    const out: SessionAccount[] = []
    for (const r of rows) if (typeof r.account === 'string') out.push({ accountId: r.account, firstLogin: typeof r.first === 'number' ? r.first : null })
    return out
  }

  async sessionsOf(accountId: string): Promise<StoredSession[]> {
    const rows = this.#stmts.sessionsOf.all(accountId, this.#clock.now()) as unknown as { id: string; payload: string }[]
    return rows.map((r) => ({ id: r.id, payload: JSON.parse(r.payload) as AdapterPayload }))
  }

  /** Deletes the session, its grants and everything issued under them (authorization codes, access and refresh tokens), so none of them works again. */
  async endSession(id: string, grantIds: readonly string[]): Promise<boolean> {
    const s = this.#stmts
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      for (const g of grantIds) {
        s.revoke.run(g)
        s.destroyGrant.run(g)
      }
      const ended = Number(s.destroy.run('Session', id).changes) > 0
      this.#db.exec('COMMIT')
      return ended
    } catch (err) {
      this.#db.exec('ROLLBACK')
      throw err
    }
  }

  async sweep(): Promise<number> {
    return Number(this.#stmts.sweep.run(this.#clock.now()).changes)
  }

  /** Closes the database. */
  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}

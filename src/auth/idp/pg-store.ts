import type { PoolClient, QueryResult, QueryResultRow } from 'pg'
import type { Clock } from '../../core/clock.ts'
import type { Postgres } from '../../core/postgres.ts'
import type { KeyVault } from './keys.ts'
import { ConsumedError, StoreUnavailableError, type Adapter, type AdapterPayload, type IdpStore, type SessionAccount, type StoredSession } from './store.ts'

/**
 * The built-in provider's state in the PostgreSQL the nodes share
 * (`postgres` in the configuration, docs/scale.md), so a sign-in started on
 * one node goes on on any other, and a code used on one is refused on every
 * other: what store.ts keeps in `<dataDir>/auth/idp.sqlite` (oidc-provider's
 * Adapter rows, logins waiting for their second factor, the last TOTP step
 * of each user) and the signing keys (keys.ts's file).
 *
 * It answers exactly as the SQLite store does (the contract suite,
 * test/contracts/idp-stores.test.ts, is the judge):
 *
 * - Payloads are kept as the JSON text SQLite keeps, not `jsonb`: `jsonb`
 *   refuses the escape `\u0000` that JSON.stringify writes for a NUL in a
 *   string (PostgreSQL manual §8.14, "JSON Types"), and reorders keys.
 * - The account and sign-in time of a session, which SQLite reads from the
 *   payload through an index on expressions, are columns of their own,
 *   written with the payload.
 * - Text never holds NUL (§8.3, "Character Types"): a key with one (an
 *   authorization code or a token as a client sent it) matches no row, as in
 *   SQLite, instead of failing the query.
 * - Times are milliseconds (`bigint`) read from Edgebox's clock on the node
 *   that asks, as in SQLite; node-pg hands `bigint` back as text, turned
 *   into numbers here.
 *
 * Single use across nodes: `consume` and the TOTP step are each one
 * statement whose condition PostgreSQL checks again on the row as the other
 * node left it (§13.2.1, "Read Committed Isolation Level": an UPDATE that
 * waited for another re-evaluates its WHERE clause; INSERT ... ON CONFLICT
 * DO UPDATE "guarantees an atomic INSERT or UPDATE outcome", SQL Commands,
 * INSERT), so of two uses at once exactly one succeeds.
 *
 * PostgreSQL out of reach (down, the network to it cut): every method
 * rejects with a {@link StoreUnavailableError} naming the database, which
 * the sign-in pages turn into a 503 page; a transaction cut midway writes
 * nothing. Tables are made by `postgres.migrate('idp', ...)`.
 */

/** The steps of the `idp` store's tables (core/postgres.ts runs those not yet run: step i is version i + 1). */
export const IDP_MIGRATIONS: readonly string[] = [
  `CREATE TABLE idp_oidc (
    model text NOT NULL,
    id text NOT NULL,
    payload text NOT NULL,
    grant_id text,
    user_code text,
    uid text,
    account_id text,
    login_ts double precision,
    expires_at bigint,
    consumed bigint,
    PRIMARY KEY (model, id)
  );
  CREATE INDEX idp_oidc_grant ON idp_oidc (grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX idp_oidc_uid ON idp_oidc (model, uid) WHERE uid IS NOT NULL;
  CREATE INDEX idp_oidc_user_code ON idp_oidc (model, user_code) WHERE user_code IS NOT NULL;
  CREATE INDEX idp_oidc_expiry ON idp_oidc (expires_at) WHERE expires_at IS NOT NULL;
  CREATE INDEX idp_oidc_session_account ON idp_oidc (account_id, login_ts, expires_at) WHERE model = 'Session';
  CREATE TABLE idp_totp_used (username text PRIMARY KEY, step bigint NOT NULL);
  CREATE TABLE idp_keys (id smallint PRIMARY KEY CHECK (id = 1), doc jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());`,
]

/** Node's codes of a connection that could not be made or broke. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'])
/** SQLSTATEs of a server going away (PostgreSQL manual, Appendix A): admin_shutdown, crash_shutdown, cannot_connect_now. */
const SHUTDOWN_CODES = new Set(['57P01', '57P02', '57P03'])

/**
 * Whether `err` says PostgreSQL could not be reached or the connection
 * broke (as opposed to a query it refused): a network error, SQLSTATE class
 * 08 (connection exception) or a shutdown, or node-pg's own words for a
 * connection that ended or timed out.
 */
export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null
  const code = typeof e?.code === 'string' ? e.code : ''
  if (NETWORK_CODES.has(code) || SHUTDOWN_CODES.has(code) || code.startsWith('08')) return true
  return /Connection terminated|timeout exceeded when trying to connect|not queryable/i.test(String(e?.message ?? ''))
}

/** What went wrong, in a few words: an AggregateError (every address refused) has no message of its own. */
function whatFailed(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: { message?: string }[] }
  return e.message || e.errors?.[0]?.message || e.code || String(err)
}

/** `err` as the stores reject with it: a StoreUnavailableError naming the database when it could not be reached, else as it was. */
export function storeError(pg: Postgres, err: unknown): unknown {
  if (err instanceof StoreUnavailableError || !isUnreachable(err)) return err
  return new StoreUnavailableError(`the identity provider's PostgreSQL (${pg.target}) cannot be reached: ${whatFailed(err)}`, { cause: err })
}

/** One statement on the pool. */
export async function pgQuery<R extends QueryResultRow>(pg: Postgres, text: string, values: unknown[] = []): Promise<QueryResult<R>> {
  try {
    return await pg.pool.query<R>(text, values)
  } catch (err) {
    throw storeError(pg, err)
  }
}

/**
 * Runs `fn` in a transaction on one connection: committed when it resolves,
 * rolled back when it throws (a connection that broke is dropped from the
 * pool, not handed to the next query).
 */
export async function pgTransaction<T>(pg: Postgres, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient
  try {
    client = await pg.pool.connect()
  } catch (err) {
    throw storeError(pg, err)
  }
  let broken = false
  try {
    await client.query('BEGIN')
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true
    })
    throw storeError(pg, err)
  } finally {
    client.release(broken)
  }
}

/** Runs the migrations of `store`, with an unreachable database reported as such. */
export async function pgMigrate(pg: Postgres, store: string, steps: readonly string[]): Promise<void> {
  try {
    await pg.migrate(store, steps)
  } catch (err) {
    throw storeError(pg, err)
  }
}

/** Whether a key can be stored in a text column (PostgreSQL text never holds NUL). */
const storable = (s: string): boolean => !s.includes('\0')

interface OidcRow {
  payload: string
  consumed: string | null
}

/** The provider's tables in the shared PostgreSQL, and the adapters over them. */
export class PgIdpStore implements IdpStore {
  readonly #pg: Postgres
  readonly #clock: Clock

  private constructor(pg: Postgres, clock: Clock) {
    this.#pg = pg
    this.#clock = clock
  }

  /** Makes the tables when needed (`migrate('idp', ...)`) and returns the store. */
  static async open(pg: Postgres, clock: Clock): Promise<PgIdpStore> {
    await pgMigrate(pg, 'idp', IDP_MIGRATIONS)
    return new PgIdpStore(pg, clock)
  }

  adapter(model: string): Adapter {
    const pg = this.#pg
    const clock = this.#clock
    const read = (row: OidcRow | undefined): AdapterPayload | undefined => {
      if (!row) return undefined
      const payload = JSON.parse(row.payload) as AdapterPayload
      if (row.consumed !== null) payload.consumed = Number(row.consumed)
      return payload
    }
    const findBy = async (column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> => {
      if (!storable(value)) return undefined
      const r = await pgQuery<OidcRow>(pg, `SELECT payload, consumed FROM idp_oidc WHERE model = $1 AND ${column} = $2 AND (expires_at IS NULL OR expires_at > $3) LIMIT 1`, [model, value, clock.now()])
      return read(r.rows[0])
    }
    const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
    return {
      async upsert(id, payload, expiresIn) {
        const expiresAt = typeof expiresIn === 'number' && Number.isFinite(expiresIn) ? clock.now() + expiresIn * 1000 : null
        // what SQLite's session index reads from the payload (store.ts), as columns
        const session = model === 'Session'
        const account = session ? str(payload.accountId) : null
        const loginTs = session && typeof payload.loginTs === 'number' && Number.isFinite(payload.loginTs) ? payload.loginTs : null
        await pgQuery(
          pg,
          `INSERT INTO idp_oidc (model, id, payload, grant_id, user_code, uid, account_id, login_ts, expires_at, consumed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)
           ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, user_code = EXCLUDED.user_code, uid = EXCLUDED.uid,
             account_id = EXCLUDED.account_id, login_ts = EXCLUDED.login_ts, expires_at = EXCLUDED.expires_at, consumed = NULL`,
          [model, id, JSON.stringify(payload), str(payload.grantId), str(payload.userCode), str(payload.uid), account, loginTs, expiresAt],
        )
      },
      find: (id) => findBy('id', id),
      findByUid: (uid) => findBy('uid', uid),
      findByUserCode: (userCode) => findBy('user_code', userCode),
      async consume(id) {
        if (!storable(id)) throw new ConsumedError(model, null)
        // one statement: a node that waited for another's consume sees its row consumed and changes nothing
        const r = await pgQuery(pg, 'UPDATE idp_oidc SET consumed = $1 WHERE model = $2 AND id = $3 AND consumed IS NULL', [Math.floor(clock.now() / 1000), model, id])
        if ((r.rowCount ?? 0) > 0) return
        const row = await pgQuery<{ grant_id: string | null }>(pg, 'SELECT grant_id FROM idp_oidc WHERE model = $1 AND id = $2', [model, id])
        throw new ConsumedError(model, row.rows[0]?.grant_id ?? null)
      },
      async destroy(id) {
        if (storable(id)) await pgQuery(pg, 'DELETE FROM idp_oidc WHERE model = $1 AND id = $2', [model, id])
      },
      async revokeByGrantId(grantId) {
        // every model's rows of the grant (tokens, codes and the grant itself), as the SQLite store does
        if (storable(grantId)) await pgQuery(pg, 'DELETE FROM idp_oidc WHERE grant_id = $1', [grantId])
      },
    }
  }

  async useTotpStep(username: string, step: number): Promise<boolean> {
    // accepted only when the step is later than the last one used (insert, or update the smaller), whichever node asks
    const r = await pgQuery(
      this.#pg,
      `INSERT INTO idp_totp_used (username, step) VALUES ($1, $2)
       ON CONFLICT (username) DO UPDATE SET step = EXCLUDED.step WHERE idp_totp_used.step < EXCLUDED.step`,
      [username, step],
    )
    return (r.rowCount ?? 0) > 0
  }

  async sessionAccounts(): Promise<SessionAccount[]> {
    const r = await pgQuery<{ account: string; first: number | null }>(
      this.#pg,
      `SELECT account_id AS account, min(login_ts) AS first FROM idp_oidc
       WHERE model = 'Session' AND account_id IS NOT NULL AND (expires_at IS NULL OR expires_at > $1)
       GROUP BY account_id`,
      [this.#clock.now()],
    )
    return r.rows.map((row) => ({ accountId: row.account, firstLogin: row.first }))
  }

  async sessionsOf(accountId: string): Promise<StoredSession[]> {
    if (!storable(accountId)) return []
    const r = await pgQuery<{ id: string; payload: string }>(
      this.#pg,
      `SELECT id, payload FROM idp_oidc WHERE model = 'Session' AND account_id = $1 AND (expires_at IS NULL OR expires_at > $2)`,
      [accountId, this.#clock.now()],
    )
    return r.rows.map((row) => ({ id: row.id, payload: JSON.parse(row.payload) as AdapterPayload }))
  }

  async endSession(id: string, grantIds: readonly string[]): Promise<boolean> {
    return pgTransaction(this.#pg, async (c) => {
      // the session first: a node ending it at the same moment waits for this one, then finds it gone
      const ended = ((await c.query('DELETE FROM idp_oidc WHERE model = $1 AND id = $2', ['Session', id])).rowCount ?? 0) > 0
      for (const g of grantIds) {
        await c.query('DELETE FROM idp_oidc WHERE grant_id = $1', [g])
        await c.query(`DELETE FROM idp_oidc WHERE model = 'Grant' AND id = $1`, [g])
      }
      return ended
    })
  }

  async sweep(): Promise<number> {
    const r = await pgQuery(this.#pg, 'DELETE FROM idp_oidc WHERE expires_at IS NOT NULL AND expires_at <= $1', [this.#clock.now()])
    return r.rowCount ?? 0
  }

  /** Nothing to let go of: the pool is the process's (core/postgres.ts), closed when Edgebox stops. */
  async close(): Promise<void> {}
}

/** The advisory lock that lets one node at a time make or change the keys. */
const KEYS_LOCK = 'edgebox_idp_keys'

/**
 * The provider's keys in the shared PostgreSQL: one row of `idp_keys`, the
 * same document as the key file. Making the first keys and rotating them
 * happen under a transaction-level advisory lock (PostgreSQL manual §13.3.5,
 * "Advisory Locks"; `pg_advisory_xact_lock`, §9.27.10): of nodes starting at
 * the same moment, the first makes the keys and the others wait, then read
 * them; a rotation reads the row under the lock, so a rotation another node
 * made is taken, not repeated.
 */
export async function openPgKeyVault(pg: Postgres): Promise<KeyVault> {
  await pgMigrate(pg, 'idp', IDP_MIGRATIONS)
  const locked = async (c: PoolClient): Promise<unknown> => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [KEYS_LOCK])
    return (await c.query<{ doc: unknown }>('SELECT doc FROM idp_keys WHERE id = 1')).rows[0]?.doc
  }
  const put = (c: PoolClient, doc: unknown) =>
    c.query('INSERT INTO idp_keys (id, doc) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()', [JSON.stringify(doc)])
  return {
    where: `the idp_keys table of ${pg.target}`,
    load: (first) =>
      pgTransaction(pg, async (c) => {
        const stored = await locked(c)
        if (stored !== undefined) return { doc: stored, made: false }
        const doc = await first()
        await put(c, doc)
        return { doc, made: true }
      }),
    update: (change) =>
      pgTransaction(pg, async (c) => {
        const next = await change(await locked(c))
        if (next !== null) await put(c, next)
      }),
  }
}

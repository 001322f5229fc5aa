import pg from 'pg'
import type { Logger } from './log.ts'
import { ConfigError } from './errors.ts'

/**
 * The PostgreSQL the nodes share (`postgres` in the configuration,
 * docs/scale.md): one connection pool per process, kept for the process's
 * life, and the migrations every store runs at start. A store's tables are
 * made by numbered steps recorded in `edgebox_migrations`; a start runs the
 * steps not yet recorded, one node at a time (an advisory lock), each in a
 * transaction, so nodes starting together never run a step twice.
 */

export interface PostgresSettings {
  /** Absent: DATABASE_URL. */
  readonly url?: string | undefined
  readonly max: number
  readonly connectTimeout: number
}

export interface Postgres {
  readonly pool: pg.Pool
  /** Where it points, without its password, for logs and errors. */
  readonly target: string
  /** Runs `steps` of `store` not yet recorded (step i is version i + 1). */
  migrate(store: string, steps: readonly string[]): Promise<void>
  close(): Promise<void>
}

/** The URL to use: the configuration's, else DATABASE_URL; a ConfigError naming both when neither is set. */
export function postgresUrl(settings: PostgresSettings, env: NodeJS.ProcessEnv = process.env): string {
  const url = settings.url ?? env.DATABASE_URL
  if (url === undefined || url === '') throw new ConfigError(['postgres: give a URL (postgres: "postgres://user:password@host:port/database") or set DATABASE_URL'])
  return url
}

/** Where a URL points, without its password. */
export function postgresTarget(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}`
  } catch {
    return '<invalid postgres url>'
  }
}

/**
 * Opens the pool and checks that PostgreSQL answers: a start with an
 * unreachable database fails here with a message that says where and why.
 */
export async function openPostgres(settings: PostgresSettings, log: Logger): Promise<Postgres> {
  const url = postgresUrl(settings)
  const target = postgresTarget(url)
  const pool = new pg.Pool({ connectionString: url, max: settings.max, connectionTimeoutMillis: settings.connectTimeout, idleTimeoutMillis: 30_000 })
  // an idle connection that breaks (the server restarted) is dropped from the pool; the next query makes a new one
  pool.on('error', (err) => log.warn({ postgres: target, err: err.message }, 'postgres: an idle connection broke'))
  try {
    await pool.query('SELECT 1')
  } catch (err) {
    await pool.end().catch(() => undefined)
    throw new ConfigError([`postgres: cannot reach ${target} (${(err as Error).message})`])
  }
  log.info({ postgres: target }, 'postgres connected')
  return {
    pool,
    target,
    async migrate(store, steps) {
      const client = await pool.connect()
      // a checked-out client that breaks (PostgreSQL gone mid-migration) emits 'error': kept here, the query fails, and the client is dropped
      let broken: Error | undefined
      const onError = (err: Error): void => void (broken ??= err)
      client.on('error', onError)
      try {
        await client.query('SELECT pg_advisory_lock(hashtext($1))', ['edgebox_migrations'])
        await client.query('CREATE TABLE IF NOT EXISTS edgebox_migrations (store text NOT NULL, version integer NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, version))')
        const done = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM edgebox_migrations WHERE store = $1', [store])
        for (let v = (done.rows[0]?.v ?? 0) + 1; v <= steps.length; v++) {
          await client.query('BEGIN')
          try {
            await client.query(steps[v - 1]!)
            await client.query('INSERT INTO edgebox_migrations (store, version) VALUES ($1, $2)', [store, v])
            await client.query('COMMIT')
          } catch (err) {
            await client.query('ROLLBACK')
            throw new Error(`postgres: migration ${v} of ${store} failed: ${(err as Error).message}`)
          }
          log.info({ postgres: target, store, version: v }, 'postgres: migrated')
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['edgebox_migrations']).catch(() => undefined)
        if (broken === undefined) client.off('error', onError)
        client.release(broken)
      }
    },
    close: () => pool.end(),
  }
}

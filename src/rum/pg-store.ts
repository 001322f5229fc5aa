import type pg from 'pg'
import type { Postgres } from '../core/postgres.ts'
import {
  ALL_KEY,
  HISTOGRAM_EDGES,
  MAX_SIZE_ROUNDS,
  NAV_PHASES,
  ROW_COLUMNS,
  RUM_STORE_CLOSED,
  UNKNOWN_KEY,
  breakdownOf,
  compareText,
  fingerprint,
  histogramOf,
  jsonObject,
  pairOf,
  topFrame,
  type ApiCallGroup,
  type ApiCallSort,
  type BrowserFamily,
  type DeviceClass,
  type ErrorGroup,
  type Histogram,
  type HistogramQuery,
  type NavPhase,
  type PageViewPair,
  type PairRow,
  type PercentileQuery,
  type PercentileRow,
  type PhaseBreakdown,
  type RetentionLimits,
  type RowKind,
  type RumGrouping,
  type RumRow,
  type RumStore,
  type SweepResult,
  type TimeWindow,
} from './store.ts'

/**
 * Real-user monitoring's store on PostgreSQL (docs/scale.md), for Edgebox
 * nodes that share one database: the same RumStore contract as the SQLite
 * store (test/contracts/rum-stores.test.ts), the same answers to the same
 * questions, on the process's pool (src/core/postgres.ts).
 *
 * Where the two databases differ, this store gives what the SQLite store
 * gives:
 * - text is compared as code points: every text column is `COLLATE "C"`
 *   (byte order, which for UTF-8 is code-point order: PostgreSQL manual
 *   §24.2, "Collation Support"), whatever the database's default collation;
 * - percentiles are nearest rank in integers, (p*n + 99) / 100, not
 *   percentile_disc's floating-point fraction;
 * - NULLs sort where the SQLite store puts them (PostgreSQL sorts them last
 *   ascending but first descending, manual §7.5, "Sorting Rows"), said
 *   explicitly;
 * - count() and size() are kept in a ledger (`rum_totals`, below) rather
 *   than counted, so neither scans the table; size() is an estimate of
 *   what the rows take, which goes down as rows are deleted (the files do
 *   not), as the SQLite store's pages in use do;
 * - PostgreSQL's text cannot hold U+0000 (manual §8.3, "Character Types"):
 *   a NUL in a row's text is stored as U+FFFD, so one odd beacon never
 *   costs its batch (the collector writes many beacons' rows together).
 *
 * Nothing here holds the event loop: every call is a statement on the
 * pool, so the query API and the sweeps need no worker thread. While
 * PostgreSQL cannot be reached, every method rejects once the pool's
 * `connectTimeout` has passed (at once when the connection is refused),
 * with an error naming PostgreSQL and where it is; a statement that gets
 * no answer fails after its timeout and its connection is dropped.
 */

/**
 * The bytes a row counts in `size()` besides the UTF-8 bytes of its text:
 * what PostgreSQL spends on it in the table and its indexes (the tuple's
 * header and line pointer, its fixed-width columns, an entry in each of
 * the four indexes). Measured: 124,000 rows of typical beacons (vitals,
 * navigation timing, resources, API calls, one error in five) inserted
 * into a fresh table took 305 bytes a row more than their text in
 * pg_total_relation_size. Part of the schema (rum_row_bytes): changing it
 * takes a migration.
 */
export const RUM_ROW_OVERHEAD = 300

/**
 * The schema, as numbered steps for `Postgres.migrate('rum', ...)` (each
 * run once per database, in a transaction, one node at a time). Step 1:
 *
 * ```sql
 * rum_events (
 *   id          bigint identity PRIMARY KEY   -- insertion order (the tie-break when sweeping; a page view's rows)
 *   time        bigint NOT NULL               -- receive time, ms since the epoch
 *   offset_ms   double precision NOT NULL     -- the event's `at`
 *   ...                                       -- every other column of the SQLite store's rum_events; text COLLATE "C", cached boolean
 *   method      text                          -- api: the json's `method` when it is text
 *   phases      double precision[]            -- nav: the json's `phases` when it is an object, in NAV_PHASES order (NULL: not a number)
 * )
 * rum_vitals  ON (kind, name, time)                            -- percentiles, histograms; nav, api and server rows (name NULL) in a window
 * rum_errors  ON (fingerprint, time, id) WHERE kind = 'error'  -- each error group's first message and latest stack
 * rum_time    ON (time, id)                                    -- sweep, oldest first
 * rum_pv      ON (pv, id)                                      -- a page view's rows, in insertion order
 * rum_totals  (rows bigint, bytes bigint)                      -- the ledger count() and size() read
 * ```
 *
 * `method` and `phases` are read from the json when the row is inserted
 * (as the memory store reads them, with jsonObject), so no query parses
 * JSON: the json text is kept exactly as given, and a json that jsonb
 * would refuse (`\u0000`) can fail no query.
 *
 * The ledger is written by statement triggers on rum_events with
 * transition tables (manual §39.1, "Overview of Trigger Behavior"): each
 * INSERT, DELETE and UPDATE of it, Edgebox's or an operator's, adds one
 * row of what it changed, TRUNCATE empties it, and the sweep folds it into
 * one row. A row's bytes (rum_row_bytes) are RUM_ROW_OVERHEAD plus the
 * UTF-8 bytes of its text: an estimate of what it takes in the table and
 * its indexes that goes down as rows are deleted, which
 * pg_total_relation_size does not (PostgreSQL's files keep their size;
 * VACUUM makes the space of deleted rows free for new ones). A size
 * limit measured on the files would, once reached, delete the oldest
 * rows at every sweep for ever.
 */
export const RUM_PG_MIGRATIONS: readonly string[] = [
  `
CREATE TABLE rum_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time bigint NOT NULL,
  offset_ms double precision NOT NULL,
  pv text COLLATE "C" NOT NULL,
  page text COLLATE "C" NOT NULL,
  release text COLLATE "C",
  env text COLLATE "C",
  cached boolean NOT NULL,
  device_class text COLLATE "C" NOT NULL,
  browser text COLLATE "C" NOT NULL,
  country text COLLATE "C",
  address text COLLATE "C",
  kind text COLLATE "C" NOT NULL,
  name text COLLATE "C",
  value double precision,
  rating text COLLATE "C",
  message text COLLATE "C",
  stack text COLLATE "C",
  fingerprint text COLLATE "C",
  count integer NOT NULL,
  url text COLLATE "C",
  status integer,
  duration double precision,
  outcome text COLLATE "C",
  json text COLLATE "C",
  conn text COLLATE "C",
  method text COLLATE "C",
  phases double precision[]
);
CREATE INDEX rum_vitals ON rum_events (kind, name, time);
CREATE INDEX rum_errors ON rum_events (fingerprint, time, id) WHERE kind = 'error';
CREATE INDEX rum_time ON rum_events (time, id);
CREATE INDEX rum_pv ON rum_events (pv, id);
CREATE TABLE rum_totals (rows bigint NOT NULL, bytes bigint NOT NULL);
CREATE FUNCTION rum_row_bytes(r rum_events) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT ${RUM_ROW_OVERHEAD} + octet_length(concat(r.pv, r.page, r.release, r.env, r.device_class, r.browser, r.country, r.address, r.conn, r.kind,
    r.name, r.rating, r.message, r.stack, r.fingerprint, r.url, r.outcome, r.json, r.method))::bigint
$$;
CREATE FUNCTION rum_totals_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO rum_totals SELECT count(*), sum(rum_row_bytes(n)) FROM rum_new n HAVING count(*) > 0;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO rum_totals SELECT -count(*), -sum(rum_row_bytes(o)) FROM rum_old o HAVING count(*) > 0;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO rum_totals SELECT 0, COALESCE((SELECT sum(rum_row_bytes(n)) FROM rum_new n), 0) - COALESCE((SELECT sum(rum_row_bytes(o)) FROM rum_old o), 0);
  ELSE
    DELETE FROM rum_totals;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER rum_totals_insert AFTER INSERT ON rum_events REFERENCING NEW TABLE AS rum_new FOR EACH STATEMENT EXECUTE FUNCTION rum_totals_note();
CREATE TRIGGER rum_totals_delete AFTER DELETE ON rum_events REFERENCING OLD TABLE AS rum_old FOR EACH STATEMENT EXECUTE FUNCTION rum_totals_note();
CREATE TRIGGER rum_totals_update AFTER UPDATE ON rum_events REFERENCING OLD TABLE AS rum_old NEW TABLE AS rum_new FOR EACH STATEMENT EXECUTE FUNCTION rum_totals_note();
CREATE TRIGGER rum_totals_truncate AFTER TRUNCATE ON rum_events FOR EACH STATEMENT EXECUTE FUNCTION rum_totals_note();
`,
]

/** How long, in ms, an insert waits for PostgreSQL's answer by default. */
export const INSERT_TIMEOUT_MS = 10_000
/** How long, in ms, any other statement waits for PostgreSQL's answer by default. */
export const QUERY_TIMEOUT_MS = 60_000

/** How openPostgresRumStore opens the store. */
export interface PostgresRumStoreOptions {
  /**
   * How long, in ms, an insert waits for PostgreSQL's answer before it
   * fails (the collector then drops and counts its rows) and its
   * connection is dropped; default INSERT_TIMEOUT_MS. Without it, a
   * server that stops answering (a network partition) would hold the
   * collector's writes until TCP gives up, many minutes.
   */
  readonly insertTimeout?: number | undefined
  /** The same for every other statement: the queries, the sweep's; default QUERY_TIMEOUT_MS. */
  readonly queryTimeout?: number | undefined
}

/**
 * The advisory lock (manual §13.3.5, "Advisory Locks") a sweep holds, so
 * that of the nodes sweeping the shared table every minute one sweeps at a
 * time: two sweeping at once would each delete "the oldest 10%".
 */
export const RUM_SWEEP_LOCK = 'edgebox_rum_sweep'

/** Rows deleted per statement in a sweep: each statement a short transaction, whatever the sweep deletes. */
const SWEEP_CHUNK = 10_000

/** A statement's text and the name it is prepared under on each connection (parsed and planned once per connection). */
interface Statement {
  readonly name: string
  readonly text: string
}

/** The SQL expression a grouping reads (the SQLite store's, with the same `unknown` and `all`). */
const GROUP_COLUMN: Readonly<Record<RumGrouping, string>> = {
  page: 'page',
  device: 'device_class',
  browser: 'browser',
  country: `COALESCE(country, '${UNKNOWN_KEY}')`,
  network: `COALESCE(address, '${UNKNOWN_KEY}')`,
  conn: `COALESCE(conn, '${UNKNOWN_KEY}')`,
  none: `'${ALL_KEY}'::text`,
}

/** The element of an ascending array at nearest rank p (the rank in integers, as nearestRank). */
const rankOf = (array: string, n: string, p: number): string => `${array}[GREATEST(1, (${p} * ${n} + 99) / 100)]`

/** The columns inserted, their arrays' types, and how the SELECT from the arrays reads each (`phases` comes as array literals). */
const INSERTED: ReadonlyArray<readonly [column: string, arrayType: string, value: (r: RumRow) => unknown]> = [
  ['time', 'bigint[]', (r) => r.time],
  ['offset_ms', 'float8[]', (r) => r.offset],
  ['pv', 'text[]', (r) => clean(r.pv)],
  ['page', 'text[]', (r) => clean(r.page)],
  ['release', 'text[]', (r) => clean(r.release)],
  ['env', 'text[]', (r) => clean(r.env)],
  ['cached', 'boolean[]', (r) => r.cached],
  ['device_class', 'text[]', (r) => clean(r.deviceClass)],
  ['browser', 'text[]', (r) => clean(r.browser)],
  ['country', 'text[]', (r) => clean(r.country)],
  ['address', 'text[]', (r) => clean(r.address)],
  ['conn', 'text[]', (r) => clean(r.conn)],
  ['kind', 'text[]', (r) => clean(r.kind)],
  ['name', 'text[]', (r) => clean(r.name)],
  ['value', 'float8[]', (r) => r.value],
  ['rating', 'text[]', (r) => clean(r.rating)],
  ['message', 'text[]', (r) => clean(r.message)],
  ['stack', 'text[]', (r) => clean(r.stack)],
  // an error row without a fingerprint gets one, as the other stores give it
  ['fingerprint', 'text[]', (r) => clean(r.kind === 'error' && r.fingerprint === null ? fingerprint(r.message ?? '', r.stack) : r.fingerprint)],
  ['count', 'integer[]', (r) => r.count],
  ['url', 'text[]', (r) => clean(r.url)],
  ['status', 'integer[]', (r) => r.status],
  ['duration', 'float8[]', (r) => r.duration],
  ['outcome', 'text[]', (r) => clean(r.outcome)],
  ['json', 'text[]', (r) => clean(r.json)],
  ['method', 'text[]', (r) => clean(apiMethod(r))],
  ['phases', 'text[]', navPhases],
]

/**
 * One statement, however many rows: each column's values as one array,
 * unnested back into rows in their order (WITH ORDINALITY, so the
 * identity gives them ids in that order). A single statement is one
 * transaction (manual §3.4, "Transactions": every statement outside BEGIN
 * is its own), so the rows, and the ledger's row the trigger adds for
 * them, are stored all or none.
 */
const INSERT: Statement = {
  name: 'edgebox_rum_insert',
  text: `INSERT INTO rum_events (${INSERTED.map(([c]) => c).join(', ')})
SELECT ${INSERTED.map(([c]) => (c === 'phases' ? 'phases::float8[]' : c)).join(', ')}
FROM unnest(${INSERTED.map(([, type], i) => `$${i + 1}::${type}`).join(', ')}) WITH ORDINALITY AS u(${INSERTED.map(([c]) => c).join(', ')}, ord)
ORDER BY ord`,
}

const TOTALS: Statement = { name: 'edgebox_rum_totals', text: 'SELECT COALESCE(sum(rows), 0)::float8 AS rows, COALESCE(sum(bytes), 0)::float8 AS bytes FROM rum_totals' }

/** Per grouping and with or without buckets: $1 the metric, $2 since, $3 until, and with buckets $4 the bucket (bigint division is floor for times after 1970). */
const percentileStatement = (by: RumGrouping, bucketed: boolean): Statement => ({
  name: `edgebox_rum_percentiles_${by}${bucketed ? '_bucketed' : ''}`,
  text: `
WITH g AS (
  SELECT ${bucketed ? '(time / $4::bigint) * $4::bigint' : 'NULL::bigint'} AS bucket, ${GROUP_COLUMN[by]} AS key, count(*)::int AS n, array_agg(value ORDER BY value) AS v
  FROM rum_events
  WHERE kind = 'vital' AND name = $1 AND time >= $2 AND time < $3 AND value IS NOT NULL
  GROUP BY 1, 2
)
SELECT bucket::float8 AS bucket, key, n, ${rankOf('v', 'n', 50)} AS p50, ${rankOf('v', 'n', 75)} AS p75, ${rankOf('v', 'n', 95)} AS p95
FROM g ORDER BY bucket, n DESC, key COLLATE "C"`,
})

/**
 * A vital's values counted per bin: width_bucket over the edges (bound as
 * an array, so both stores compare the same numbers) is the bin's number
 * from 1, 0 below the first edge (manual §9.3, "Mathematical Functions").
 * $1 the metric, $2 since, $3 until, $4 the edges, and with a grouping
 * $5 the group's key.
 */
const histogramStatement = (by?: Exclude<RumGrouping, 'none'>): Statement => ({
  name: `edgebox_rum_histogram${by ? `_${by}` : ''}`,
  text: `
SELECT width_bucket(value, $4::float8[]) - 1 AS bin, count(*)::int AS n FROM rum_events
WHERE kind = 'vital' AND name = $1 AND time >= $2 AND time < $3 AND value IS NOT NULL${by ? ` AND ${GROUP_COLUMN[by]} = $5` : ''}
GROUP BY 1`,
})

/** Per page (or the page $3; NULL: every page) with page loads in $1..$2: the loads, and each phase's median (i from 1, in NAV_PHASES order); most loads first, then page. */
const BREAKDOWN: Statement = {
  name: 'edgebox_rum_breakdown',
  text: `
WITH nav AS (
  SELECT page, phases FROM rum_events
  WHERE kind = 'nav' AND name IS NULL AND time >= $1 AND time < $2 AND ($3::text IS NULL OR page = $3) AND phases IS NOT NULL
),
loads AS (SELECT page, count(*)::int AS n FROM nav GROUP BY page),
phase AS (
  SELECT nav.page, p.i::int AS i, count(*)::int AS n, array_agg(p.v ORDER BY p.v) AS v
  FROM nav, unnest(nav.phases) WITH ORDINALITY AS p(v, i)
  WHERE p.v IS NOT NULL
  GROUP BY 1, 2
)
SELECT loads.page, loads.n, phase.i, ${rankOf('phase.v', 'phase.n', 50)} AS median
FROM loads LEFT JOIN phase ON phase.page = loads.page
ORDER BY loads.n DESC, loads.page COLLATE "C", phase.i`,
}

/** API calls by method and URL: $1 since, $2 until, $3 the limit. */
const apiCallsStatement = (sort: ApiCallSort): Statement => ({
  name: `edgebox_rum_api_calls_${sort}`,
  text: `
WITH g AS (
  SELECT COALESCE(method, '') AS method, COALESCE(url, '') AS url, count(*)::int AS count,
    (count(*) FILTER (WHERE COALESCE(outcome, '') <> 'ok' OR COALESCE(status, 0) >= 500))::int AS failures,
    array_agg(duration ORDER BY duration) FILTER (WHERE duration IS NOT NULL) AS d
  FROM rum_events
  WHERE kind = 'api' AND name IS NULL AND time >= $1 AND time < $2
  GROUP BY 1, 2
)
SELECT method, url, count, failures, ${rankOf('d', 'cardinality(d)', 75)} AS p75 FROM g
${sort === 'failing' ? 'WHERE failures > 0 ORDER BY failures DESC' : 'ORDER BY p75 DESC NULLS LAST'}, count DESC, method COLLATE "C", url COLLATE "C"
LIMIT $3`,
})

/**
 * Error groups: $1 since, $2 until, $3 the limit (NULL: none, manual
 * §7.6). Each group's first message and latest stack are read for the
 * groups listed only, each through rum_errors.
 */
const ERROR_GROUPS: Statement = {
  name: 'edgebox_rum_error_groups',
  text: `
WITH g AS (
  SELECT fingerprint, sum(count)::float8 AS total, count(DISTINCT pv)::int AS page_views, min(time)::float8 AS first_seen, max(time)::float8 AS last_seen,
    array_agg(DISTINCT release) FILTER (WHERE release IS NOT NULL) AS releases
  FROM rum_events
  WHERE kind = 'error' AND time >= $1 AND time < $2 AND fingerprint IS NOT NULL
  GROUP BY fingerprint
  ORDER BY total DESC, last_seen DESC, fingerprint COLLATE "C"
  LIMIT $3
)
SELECT g.*,
  (SELECT e.message FROM rum_events e
    WHERE e.kind = 'error' AND e.fingerprint = g.fingerprint AND e.time >= $1 AND e.time < $2
    ORDER BY e.time, e.id LIMIT 1) AS message,
  (SELECT e.stack FROM rum_events e
    WHERE e.kind = 'error' AND e.fingerprint = g.fingerprint AND e.time >= $1 AND e.time < $2 AND e.stack IS NOT NULL
    ORDER BY e.time DESC, e.id DESC LIMIT 1) AS stack
FROM g ORDER BY total DESC, last_seen DESC, fingerprint COLLATE "C"`,
}

/** The page views with a server or nav row in $1..$2, the latest first, at most $3. */
const PAGE_VIEW_IDS: Statement = {
  name: 'edgebox_rum_page_view_ids',
  text: `
SELECT pv, max(time) AS last FROM rum_events
WHERE kind IN ('server', 'nav') AND name IS NULL AND time >= $1 AND time < $2
GROUP BY pv ORDER BY last DESC, pv COLLATE "C" LIMIT $3`,
}

/** The joined rows of the page views $1 (an array), each view's in insertion order: one statement for them all. */
const PAGE_VIEW_ROWS: Statement = {
  name: 'edgebox_rum_page_view_rows',
  text: `
SELECT time::float8 AS time, pv, page, kind, name, value, status, duration, json FROM rum_events
WHERE pv = ANY($1::text[]) AND kind IN ('server', 'nav', 'vital') ORDER BY pv, id`,
}

/** One page view's rows ($1 the id), in insertion order, at most $2. */
const PAGE_VIEW_EVENTS: Statement = {
  name: 'edgebox_rum_page_view_events',
  text: `SELECT ${ROW_COLUMNS.replace('time', 'time::float8 AS time')} FROM rum_events WHERE pv = $1 ORDER BY id LIMIT $2`,
}

/*
 * A sweep's deletes take their ids as an array, read first from rum_time:
 * `id IN (SELECT ...)` lets the planner join, and for thousands of ids it
 * hashes them and scans the whole table; `id = ANY (ARRAY(...))` is one
 * index read for the ids, then one primary-key lookup each.
 */

/** The rows at most $1 (ms since the epoch), the oldest $2 of them. */
const SWEEP_AGE: Statement = {
  name: 'edgebox_rum_sweep_age',
  text: 'DELETE FROM rum_events WHERE id = ANY (ARRAY(SELECT id FROM rum_events WHERE time <= $1 ORDER BY time, id LIMIT $2))',
}

/** The oldest $1 rows (by time, then insertion). */
const SWEEP_OLDEST: Statement = {
  name: 'edgebox_rum_sweep_oldest',
  text: 'DELETE FROM rum_events WHERE id = ANY (ARRAY(SELECT id FROM rum_events ORDER BY time, id LIMIT $1))',
}

/**
 * The ledger folded into one row, in one statement: the rows it deletes
 * are those its snapshot sees, and a row another node's insert adds
 * meanwhile stays for the next fold.
 */
const FOLD_TOTALS: Statement = {
  name: 'edgebox_rum_fold_totals',
  text: 'WITH d AS (DELETE FROM rum_totals RETURNING rows, bytes) INSERT INTO rum_totals SELECT sum(rows), sum(bytes) FROM d HAVING count(*) > 0',
}

type Row = Record<string, unknown>

/**
 * A RUM store in a PostgreSQL database several Edgebox nodes share. Its
 * pool is the process's (src/core/postgres.ts): close() ends this store's
 * calls, not the pool. Open it with openPostgresRumStore.
 */
export class PostgresRumStore implements RumStore {
  /** Where the database is, without its password (for errors and logs). */
  readonly target: string
  private readonly pool: pg.Pool
  private readonly insertTimeout: number
  private readonly queryTimeout: number
  private closed = false
  /** Calls not settled yet: close() waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>()

  constructor(postgres: Postgres, opts: PostgresRumStoreOptions = {}) {
    this.target = postgres.target
    this.pool = postgres.pool
    this.insertTimeout = opts.insertTimeout ?? INSERT_TIMEOUT_MS
    this.queryTimeout = opts.queryTimeout ?? QUERY_TIMEOUT_MS
  }

  /** Runs one call of the store, unless it is closed; close() waits for it. */
  private call<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(RUM_STORE_CLOSED))
    const running = work()
    const settled = (): void => void this.inFlight.delete(running)
    this.inFlight.add(running)
    running.then(settled, settled)
    return running
  }

  private check(): void {
    if (this.closed) throw new Error(RUM_STORE_CLOSED)
  }

  /** A PostgreSQL error, or the pool's, as the store's: naming PostgreSQL and where it is. */
  private failure(err: unknown): Error {
    return new Error(`the RUM store's PostgreSQL (${this.target}) failed: ${describe(err)}`, { cause: err })
  }

  /** Runs a statement on a connection of the pool (or `client`); its rows, and how many rows it changed. */
  private async run(statement: Statement, values: readonly unknown[], opts: { timeout?: number; client?: pg.PoolClient } = {}): Promise<{ rows: Row[]; changed: number }> {
    const config = { name: statement.name, text: statement.text, values: values as unknown[], query_timeout: opts.timeout ?? this.queryTimeout }
    try {
      const result = await (opts.client ?? this.pool).query<Row>(config)
      return { rows: result.rows, changed: result.rowCount ?? 0 }
    } catch (err) {
      throw this.failure(err)
    }
  }

  private async rows(statement: Statement, values: readonly unknown[]): Promise<Row[]> {
    return (await this.run(statement, values)).rows
  }

  insert(rows: readonly RumRow[]): Promise<void> {
    return this.call(async () => {
      if (rows.length === 0) return
      const values = INSERTED.map(([, , value]) => rows.map(value))
      await this.run(INSERT, values, { timeout: this.insertTimeout })
    })
  }

  count(): Promise<number> {
    return this.call(async () => (await this.totals()).rows)
  }

  /** The ledger's sums: the rows there are and their bytes. */
  private async totals(client?: pg.PoolClient): Promise<{ rows: number; bytes: number }> {
    const [t] = (await this.run(TOTALS, [], client ? { client } : {})).rows
    return { rows: t!.rows as number, bytes: t!.bytes as number }
  }

  percentiles(q: PercentileQuery): Promise<PercentileRow[]> {
    return this.call(async () => {
      const bucketed = q.bucket !== undefined
      const values = [q.metric, since(q), until(q), ...(bucketed ? [q.bucket] : [])]
      return (await this.rows(percentileStatement(q.by, bucketed), values)).map((r) => {
        const stats = { key: r.key as string, n: r.n as number, p50: r.p50 as number, p75: r.p75 as number, p95: r.p95 as number }
        return bucketed ? { bucket: r.bucket as number, ...stats } : stats
      })
    })
  }

  histogram(q: HistogramQuery): Promise<Histogram> {
    return this.call(async () => {
      const values = [q.metric, since(q), until(q), HISTOGRAM_EDGES[q.metric], ...(q.of ? [clean(q.of.key)] : [])]
      const counts = new Map<number, number>()
      for (const r of await this.rows(histogramStatement(q.of?.by), values)) {
        if ((r.bin as number) >= 0) counts.set(r.bin as number, r.n as number)
      }
      return histogramOf(q.metric, counts)
    })
  }

  breakdown(q: TimeWindow & { readonly page?: string | undefined }): Promise<PhaseBreakdown[]> {
    return this.call(async () => {
      const pages = new Map<string, { n: number; medians: Map<NavPhase, number> }>()
      for (const r of await this.rows(BREAKDOWN, [since(q), until(q), clean(q.page ?? null)])) {
        const page = r.page as string
        let p = pages.get(page)
        if (!p) pages.set(page, (p = { n: r.n as number, medians: new Map() }))
        if (r.median !== null) p.medians.set(NAV_PHASES[(r.i as number) - 1]!, r.median as number)
      }
      return [...pages].map(([page, p]) => breakdownOf(page, p.n, p.medians))
    })
  }

  apiCalls(q: TimeWindow & { readonly sort: ApiCallSort; readonly limit: number }): Promise<ApiCallGroup[]> {
    return this.call(async () =>
      (await this.rows(apiCallsStatement(q.sort), [since(q), until(q), wholeLimit(q.limit)])).map((r) => ({
        method: r.method as string,
        url: r.url as string,
        count: r.count as number,
        failures: r.failures as number,
        p75: r.p75 as number | null,
      })),
    )
  }

  errorGroups(q: TimeWindow & { readonly limit?: number | undefined }): Promise<ErrorGroup[]> {
    return this.call(async () =>
      (await this.rows(ERROR_GROUPS, [since(q), until(q), q.limit === undefined ? null : wholeLimit(q.limit)])).map((r) => ({
        fingerprint: r.fingerprint as string,
        message: (r.message as string | null) ?? '',
        count: r.total as number,
        pageViews: r.page_views as number,
        firstSeen: r.first_seen as number,
        lastSeen: r.last_seen as number,
        topFrame: topFrame(r.stack as string | null),
        releases: ((r.releases as string[] | null) ?? []).sort(compareText),
      })),
    )
  }

  pageViews(q: TimeWindow & { readonly pv?: string | undefined; readonly limit: number }): Promise<PageViewPair[]> {
    return this.call(async () => {
      const ids = q.pv !== undefined ? [clean(q.pv)] : (await this.rows(PAGE_VIEW_IDS, [since(q), until(q), wholeLimit(q.limit)])).map((r) => r.pv as string)
      if (ids.length === 0) return []
      const byView = new Map<string, PairRow[]>()
      for (const r of await this.rows(PAGE_VIEW_ROWS, [ids])) {
        const pv = r.pv as string
        let list = byView.get(pv)
        if (!list) byView.set(pv, (list = []))
        list.push(r as unknown as PairRow)
      }
      return ids.flatMap((pv) => {
        const rows = byView.get(pv)
        return rows ? [pairOf(pv, rows)] : []
      })
    })
  }

  pageViewEvents(pv: string, limit: number): Promise<RumRow[]> {
    return this.call(async () => (await this.rows(PAGE_VIEW_EVENTS, [clean(pv), wholeLimit(limit)])).map(rowOf))
  }

  size(): Promise<number> {
    return this.call(async () => (await this.totals()).bytes)
  }

  /**
   * Sweeps on a connection of its own holding RUM_SWEEP_LOCK: while another
   * node sweeps, this one deletes nothing ({ byAge: 0, bySize: 0 }). Rows
   * go SWEEP_CHUNK at a time, each chunk its own statement; the ledger is
   * folded at the end. A connection that fails is dropped, which also
   * frees the lock (a session's advisory locks end with it).
   */
  sweep(now: number, limits: RetentionLimits): Promise<SweepResult> {
    return this.call(async () => {
      let client: pg.PoolClient
      try {
        client = await this.pool.connect()
      } catch (err) {
        throw this.failure(err)
      }
      // a connection that breaks while checked out emits 'error' besides failing its query: unheard, that would end the process
      let failed: Error | undefined
      const broke = (err: Error): void => void (failed ??= err)
      client.on('error', broke)
      try {
        const [lock] = (await this.run(LOCK, [RUM_SWEEP_LOCK], { client })).rows
        if (lock!.ok !== true) return { byAge: 0, bySize: 0 }
        try {
          return await this.sweepLocked(client, now, limits)
        } finally {
          await this.run(UNLOCK, [RUM_SWEEP_LOCK], { client })
        }
      } catch (err) {
        failed ??= err as Error
        throw err
      } finally {
        // a sound connection goes back to the pool (which listens to it while idle); a failed one is dropped, still heard
        if (failed === undefined) client.off('error', broke)
        client.release(failed)
      }
    })
  }

  private async sweepLocked(client: pg.PoolClient, now: number, limits: RetentionLimits): Promise<SweepResult> {
    const cutoff = bound(Math.floor(now - limits.maxAge))
    let byAge = 0
    for (;;) {
      this.check()
      const n = (await this.run(SWEEP_AGE, [cutoff, SWEEP_CHUNK], { client })).changed
      byAge += n
      if (n < SWEEP_CHUNK) break
    }
    let bySize = 0
    for (let round = 0; round < MAX_SIZE_ROUNDS; round++) {
      this.check()
      const { rows, bytes } = await this.totals(client)
      if (bytes <= limits.maxSize || rows === 0) break
      for (let left = Math.ceil(rows / 10); left > 0; ) {
        this.check()
        const n = (await this.run(SWEEP_OLDEST, [Math.min(left, SWEEP_CHUNK)], { client })).changed
        bySize += n
        left -= n
        if (n === 0) break
      }
    }
    await this.run(FOLD_TOTALS, [], { client })
    return { byAge, bySize }
  }

  /** Refuses new calls and waits for those in flight to settle (a sweep stops at its next chunk); the pool stays open. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.inFlight])
  }
}

const LOCK: Statement = { name: 'edgebox_rum_sweep_lock', text: 'SELECT pg_try_advisory_lock(hashtext($1)) AS ok' }
const UNLOCK: Statement = { name: 'edgebox_rum_sweep_unlock', text: 'SELECT pg_advisory_unlock(hashtext($1))' }

/**
 * Opens the RUM store in the database `postgres` points at: its tables
 * made or brought up to date first (RUM_PG_MIGRATIONS, under the
 * migrations' lock, so nodes starting together make them once). A
 * database that cannot be reached or migrated fails here, naming
 * PostgreSQL and where it is; so does one a newer Edgebox migrated.
 */
export async function openPostgresRumStore(postgres: Postgres, opts: PostgresRumStoreOptions = {}): Promise<RumStore> {
  let version: number
  try {
    await postgres.migrate('rum', RUM_PG_MIGRATIONS)
    const found = await postgres.pool.query<{ v: number | null }>("SELECT max(version) AS v FROM edgebox_migrations WHERE store = 'rum'")
    version = found.rows[0]?.v ?? 0
  } catch (err) {
    throw new Error(`cannot open the RUM store on PostgreSQL (${postgres.target}): ${describe(err)}`, { cause: err })
  }
  // a database a newer Edgebox migrated: its tables may not be what these statements expect (the SQLite store refuses such a file too)
  if (version > RUM_PG_MIGRATIONS.length) {
    throw new Error(`the RUM store on PostgreSQL (${postgres.target}) has schema version ${version}, newer than this Edgebox knows (${RUM_PG_MIGRATIONS.length}); upgrade Edgebox`)
  }
  return new PostgresRumStore(postgres, opts)
}

/** An error's own words: a connection refused on every address is an AggregateError without a message of its own. */
function describe(err: unknown): string {
  if (err instanceof AggregateError && !err.message) return err.errors.map(describe).join('; ')
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name)
  return String(err)
}

/** Text as PostgreSQL can hold it: U+0000 as U+FFFD (text cannot hold NUL, manual §8.3). */
function clean<T extends string | null>(text: T): T {
  return (text !== null && text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text) as T
}

/** An api row's method, read from its json as the memory store reads it; null for any other row. */
function apiMethod(r: RumRow): string | null {
  if (r.kind !== 'api') return null
  const method = jsonObject(r.json)?.method
  return typeof method === 'string' ? method : null
}

/** A nav row's phases as a float8[] literal (NAV_PHASES order; NULL: not a number) when its json's `phases` is an object; null otherwise. */
function navPhases(r: RumRow): string | null {
  if (r.kind !== 'nav') return null
  const phases = jsonObject(r.json)?.phases
  if (phases === null || typeof phases !== 'object' || Array.isArray(phases)) return null
  return `{${NAV_PHASES.map((p) => {
    const v = (phases as Record<string, unknown>)[p]
    return typeof v === 'number' ? String(v) : 'NULL'
  }).join(',')}}`
}

/** A whole number of ms a bigint compares with, within the numbers a double holds exactly. */
const bound = (ms: number): number => Math.min(Number.MAX_SAFE_INTEGER, Math.max(Number.MIN_SAFE_INTEGER, ms))
/** A window's bounds as whole ms: for whole times, `time >= since` is `time >= ceil(since)`, and `time < until` is `time < ceil(until)`. */
const since = (w: TimeWindow): number => bound(Math.ceil(w.since))
const until = (w: TimeWindow): number => bound(Math.ceil(w.until))
/** A LIMIT: a whole number, at least 0. */
const wholeLimit = (n: number): number => Math.max(0, Math.floor(n))

/** A stored row read back (the columns of ROW_COLUMNS). */
function rowOf(r: Row): RumRow {
  return {
    time: r.time as number,
    offset: r.offset_ms as number,
    pv: r.pv as string,
    page: r.page as string,
    release: r.release as string | null,
    env: r.env as string | null,
    cached: r.cached as boolean,
    deviceClass: r.device_class as DeviceClass,
    browser: r.browser as BrowserFamily,
    country: r.country as string | null,
    address: r.address as string | null,
    conn: r.conn as string | null,
    kind: r.kind as RowKind,
    name: r.name as string | null,
    value: r.value as number | null,
    rating: r.rating as string | null,
    message: r.message as string | null,
    stack: r.stack as string | null,
    fingerprint: r.fingerprint as string | null,
    count: r.count as number,
    url: r.url as string | null,
    status: r.status as number | null,
    duration: r.duration as number | null,
    outcome: r.outcome as string | null,
    json: r.json as string | null,
  }
}

/**
 * What a handler shows the operator and what the operator may switch on it
 * (docs/admin.md): the admin API, the Prometheus metrics and the dashboard
 * all read these views. A view is made when someone asks (a scrape, an API
 * call, the dashboard's one-second tick), never per request: on the hot
 * path a handler only adds to plain number fields that the view reads.
 *
 * Counters count from the handler's start: a reload makes new handlers,
 * so they begin again at zero (Prometheus's `rate()` and `increase()` take
 * such resets in their stride; the dashboard charts differences).
 */

/** One upstream of a proxy route (or a proxy-with-cache route). */
export interface UpstreamView {
  /** The upstream's id as the configuration and the logs name it: its URL (`http://127.0.0.1:3000`). */
  readonly id: string
  /** Taken by the balancer now: neither down by active checks, ejected, nor in maintenance. */
  readonly healthy: boolean
  /** Put in maintenance by the operator (the admin API's drain switch): the balancer skips it; requests in flight finish. */
  readonly maintenance: boolean
  /** Why it is or is not taken, in words (`health check failed: 503`, `in maintenance since 2026-12-06T20:00:00Z`, `ok`). */
  readonly reason: string
  /** Requests sent to it (each attempt, retries included). */
  readonly attempts: number
  /** Attempts that failed (connection error, timeout, a 5xx the route treats as failure). */
  readonly failures: number
  /** Attempts that were retries of an earlier failed attempt. */
  readonly retries: number
  /** Passive ejections so far. */
  readonly ejections: number
  /** Requests to it in flight now. */
  readonly inFlight: number
  /** Sum of the response-head times (ms from the attempt to the upstream's status line) of the attempts that got one, and their number. */
  readonly latencyMsSum: number
  readonly latencyCount: number
}

/** A cache (a proxy route's `cache`). */
export interface CacheView {
  /** Lookups by outcome, as `Cache-Status` and the access log name them. */
  readonly hits: number
  readonly misses: number
  /** Stale responses served (stale-while-revalidate, stale-if-error). */
  readonly stale: number
  /** Conditional requests sent upstream to revalidate a stored response. */
  readonly revalidations: number
  /** Entries removed by purges (PURGE requests and the admin API). */
  readonly purges: number
  /** What is stored now. */
  readonly objects: number
  readonly bytes: number
  /** The store is the machine's, shared by its workers (the disk store): `objects` and `bytes` are the node's in every worker. */
  readonly shared?: boolean
  /** The most-hit stored entries, most first (at most `top` of them, as asked). */
  readonly topKeys: readonly { readonly key: string; readonly hits: number; readonly bytes: number }[]
}

/** A realtime hub (a `realtime` route, or the admin listener's own). */
export interface RealtimeView {
  /** Open connections by transport. */
  readonly connections: { readonly websocket: number; readonly sse: number; readonly longPoll: number }
  /** Short polls answered so far (a short poll holds no connection). */
  readonly shortPolls: number
  /** Messages published so far, and messages delivered to subscribers (one per subscriber). */
  readonly published: number
  readonly delivered: number
  /** How many channels have subscribers or history now (all of them, whatever `top`). */
  readonly channelCount: number
  /** The channels with subscribers or history now (at most `top` of them, most subscribers first). */
  readonly channels: readonly { readonly name: string; readonly subscribers: number; readonly history: number; readonly published: number }[]
  /** Messages kept in history over every channel. */
  readonly historySize: number
}

/** One address of a DNS balanced name (`dns.balance`) as the operator sees it (src/dns/gslb.ts makes it). */
export interface EdgeView {
  /** The balanced name (`www.example.com.`). */
  readonly name: string
  readonly edge: string
  readonly address: string
  readonly region: string
  /** Given in answers now: its health check passes and it is not in maintenance. */
  readonly healthy: boolean
  readonly maintenance: boolean
  /** Why, in words: the health check's last result, or `in maintenance since <time>`. */
  readonly reason: string
  /** Times it was given in an answer so far. */
  readonly answers: number
}

/** Everything a handler shows; each part only where the handler has it. */
export interface HandlerView {
  readonly upstreams?: readonly UpstreamView[]
  readonly cache?: CacheView
  readonly realtime?: RealtimeView
}

/** What a cache purge removes: one URL (every variant), every URL under a prefix, or every entry with a tag. */
export type PurgeTarget = { readonly url: string } | { readonly prefix: string } | { readonly tag: string }

/** The operator's side of a handler: its view and its switches. */
export interface HandlerAdmin {
  /** The handler's view now; `top` bounds the lists (cache keys, channels), default 20. */
  view(top?: number): HandlerView
  /**
   * Puts an upstream in maintenance (on) or back (off), as HAProxy's drain:
   * the balancer stops choosing it, requests in flight finish, health checks
   * go on. Returns false when the handler has no upstream with that id.
   */
  maintenance?(upstream: string, on: boolean): boolean
  /** Removes stored responses; returns how many entries went. `host` is the site host the keys belong to. */
  purge?(target: PurgeTarget, host: string): number
  /** Publishes a message from the server itself on a channel (the admin hub's live feed). */
  publish?(channel: string, data: unknown): Promise<void>
}

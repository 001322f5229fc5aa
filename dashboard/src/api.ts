import { onBeforeUnmount, onMounted, ref, shallowRef, type Ref, type ShallowRef } from 'vue'
import { liveState, onLiveTick } from './live.ts'

/**
 * The dashboard's side of the admin API (docs/admin.md, "The admin API"):
 * JSON under /api/v1/ on the same origin as the page. Every failure becomes
 * an `ApiError` whose message the page shows in place (the status and the
 * API's own `{"error": ...}` text), never a console error.
 */

/** The time series' samples and the recent errors, as the server makes them. */
export type { RecentError, Sample } from '../../src/admin/samples.ts'
import type { Sample } from '../../src/admin/samples.ts'

export interface Overview {
  readonly uptimeSeconds: number
  readonly requestsPerSecond: number
  readonly bytesPerSecond: number
  readonly statusMix: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>
  readonly p50: number | null
  readonly p95: number | null
  readonly p99: number | null
  readonly cacheHitRatio: number | null
  readonly errorsPerSecond: number
  readonly totals: { readonly requests: number; readonly bytes: number; readonly errors: number }
  readonly connections: Readonly<Record<'http/1.1' | 'h2' | 'websocket' | 'sse', number>>
}

/** What handlers show, as the API sends them: the server's own types (they have no imports, so they check as browser code). */
export type { CacheView, EdgeView, RealtimeView, UpstreamView } from '../../src/core/observe.ts'
import type { CacheView, EdgeView, RealtimeView, UpstreamView } from '../../src/core/observe.ts'

export interface CacheRoute {
  readonly route: string
  readonly site: string
  readonly view: CacheView
}
export interface UpstreamRoute {
  readonly route: string
  readonly site?: string
  readonly upstreams: readonly UpstreamView[]
}
export interface RealtimeRoute {
  readonly route: string
  readonly site?: string
  readonly view: RealtimeView
}

/** A balanced name and its edges, as GET /api/v1/edges groups them (each edge without the name). */
export interface BalancedName {
  readonly name: string
  readonly edges: readonly Omit<EdgeView, 'name'>[]
}

export interface Security {
  readonly refusals: { readonly rateLimit: number; readonly csrf: number; readonly cors: number }
  readonly rateLimited: readonly { readonly client: string; readonly count: number; readonly last: number }[]
}

export interface Certificate {
  readonly id?: string
  readonly names: readonly string[]
  readonly subject?: string
  readonly issuer: string
  readonly notBefore?: string
  /** ISO 8601. */
  readonly notAfter: string
  readonly daysLeft: number
}

export interface ConfigChange {
  readonly at: number | string
  readonly source: string
  readonly diff: readonly { readonly path: string; readonly before?: unknown; readonly after?: unknown }[]
}

/** A failed call: `status` 0 when the admin listener did not answer at all. */
export class ApiError extends Error {
  readonly status: number
  readonly path: string
  constructor(path: string, status: number, message: string) {
    super(message)
    this.name = 'ApiError'
    this.path = path
    this.status = status
  }
}

/** The words for a failed answer: the API's own `error` text when it gave one (all its refusals are `{"error": ...}`). */
async function failure(path: string, res: Response): Promise<ApiError> {
  let why = res.statusText || 'no reason given'
  try {
    const body = (await res.json()) as { error?: unknown }
    if (typeof body?.error === 'string') why = body.error
  } catch {
    // not JSON: the status text stands
  }
  return new ApiError(path, res.status, `${path}: ${res.status} ${why}`)
}

/**
 * One request to the admin API. Unsafe methods send JSON
 * (`Content-Type: application/json`); the browser adds `Origin` to a
 * same-origin POST (Fetch standard, "append a request `Origin` header"),
 * which is what the admin listener's check wants.
 */
async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      ...(signal ? { signal } : {}),
    })
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new ApiError(path, 0, `${path}: the admin listener did not answer (${(err as Error).message})`)
  }
  if (!res.ok) throw await failure(path, res)
  try {
    return (await res.json()) as T
  } catch {
    throw new ApiError(path, res.status, `${path}: the answer is not JSON`)
  }
}

export const getJson = <T>(path: string, signal?: AbortSignal): Promise<T> => call<T>('GET', path, undefined, signal)
export const postJson = <T>(path: string, body: unknown): Promise<T> => call<T>('POST', path, body)

/**
 * The list an answer carries: the answer itself when it is an array, else
 * its `key` field, else its only array field. The API's list answers are
 * objects (`{ routes: [...] }`); reading them this way keeps a page working
 * whichever name a list is given.
 */
export function listOf<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[]
  if (body && typeof body === 'object') {
    const rec = body as Record<string, unknown>
    if (Array.isArray(rec[key])) return rec[key] as T[]
    const arrays = Object.values(rec).filter(Array.isArray)
    if (arrays.length === 1) return arrays[0] as T[]
  }
  return []
}

/**
 * The series answer as samples, oldest first: the API's columns
 * (`{ step, start, series: { requests: [...], ... } }`, `start` being the
 * first sample's time in ms and each next one `step` seconds later), or a
 * list of samples (`{ step, samples }`) as the metrics hold them.
 */
export function samplesOf(body: unknown): { stepMs: number; samples: Sample[] } {
  const b = (body ?? {}) as { step?: number; start?: number; samples?: Sample[]; series?: Record<string, number[]> }
  // the step in ms: the API gives seconds (1, 60); a value of 1000 or more is already ms
  const step = typeof b.step === 'number' && b.step > 0 ? (b.step < 1000 ? b.step * 1000 : b.step) : 1000
  if (Array.isArray(b.samples)) return { stepMs: step, samples: b.samples.slice() }
  const cols = b.series ?? {}
  const n = Math.max(0, ...Object.values(cols).map((c) => c.length))
  const samples: Sample[] = []
  for (let i = 0; i < n; i++) {
    const row: Record<string, number> = { at: cols.at?.[i] ?? (b.start ?? 0) + i * step }
    for (const [name, col] of Object.entries(cols)) if (name !== 'at') row[name] = col[i] ?? 0
    samples.push(row as unknown as Sample)
  }
  return { stepMs: step, samples }
}

export interface Resource<T> {
  readonly data: ShallowRef<T | undefined>
  readonly error: Ref<string>
  readonly loading: Ref<boolean>
  reload(): Promise<void>
}

/**
 * A GET the page keeps fresh while it is shown: fetched when the page
 * mounts, then again as the admin hub's messages come (live.ts): on its
 * one-second sample once `everyMs` has passed, and at once when an event says
 * something changed (0: only on `reload`); while the live feed is down, on a
 * timer of `everyMs`. Stopped when the page goes. A failure keeps the last good data and sets `error` (cleared by
 * the next success), so a page never goes blank on one missed poll.
 */
export function useResource<T>(path: () => string | null, everyMs = 0): Resource<T> {
  const data = shallowRef<T>()
  const error = ref('')
  const loading = ref(true)
  let timer: ReturnType<typeof setInterval> | undefined
  let stopLive: (() => void) | undefined
  let gone = false
  let inflight: AbortController | undefined
  /** When the last fetch started (ms). */
  let last = 0

  async function reload(): Promise<void> {
    const p = path()
    if (p === null) {
      loading.value = false
      return
    }
    inflight?.abort()
    const ctl = new AbortController()
    inflight = ctl
    last = Date.now()
    try {
      data.value = await getJson<T>(p, ctl.signal)
      error.value = ''
    } catch (err) {
      if ((err as Error).name === 'AbortError') return
      error.value = (err as Error).message
    } finally {
      if (inflight === ctl) {
        inflight = undefined
        loading.value = false
      }
    }
  }

  /** Fetches again once `everyMs` has passed since the last fetch (and none is under way). */
  function due(): void {
    if (!gone && inflight === undefined && Date.now() - last >= everyMs) void reload()
  }

  onMounted(() => {
    void reload()
    if (everyMs <= 0) return
    // the hub's messages drive the updates: its one-second sample (at this resource's pace), and at once an event
    stopLive = onLiveTick((kind) => (kind === 'event' ? void reload() : due()))
    // while the live feed is down, a timer of its own keeps the page current
    timer = setInterval(() => {
      if (liveState.value !== 'connected') due()
    }, everyMs)
  })
  onBeforeUnmount(() => {
    gone = true
    clearInterval(timer)
    stopLive?.()
    inflight?.abort()
  })
  return { data, error, loading, reload }
}

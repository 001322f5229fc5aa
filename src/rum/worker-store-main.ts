import { parentPort } from 'node:worker_threads'
import { RUM_STORE_CLOSED, openSqliteRumStore, type RumStore, type SqliteRumStore } from './store.ts'

/**
 * The worker thread of a WorkerRumStore (src/rum/worker-store.ts): it opens
 * its own SqliteRumStore on the RUM store file and answers the main
 * thread's calls on it, so a query over millions of rows (node:sqlite is
 * synchronous) takes this thread's time, never the one serving pages. WAL
 * lets this connection read while the collector's connection writes.
 *
 * Every request is `{id, method, args}` and every answer `{id, ok, value}`
 * or `{id, ok: false, error}` (the error's message), in structured-clone
 * form (HTML Standard, "StructuredSerialize"): plain objects, arrays,
 * numbers, strings and null.
 */

/** The RumStore methods a worker answers (close is its own request). */
export type StoreMethod = Exclude<keyof RumStore, 'close'>

/** Every method the worker answers: the store's, `open` (args: the data folder) and `close`. */
export type WorkerMethod = StoreMethod | 'open' | 'close'

/** A call from the main thread. */
export interface WorkerRequest {
  readonly id: number
  readonly method: WorkerMethod
  readonly args: readonly unknown[]
}

/** The worker's answer to the request with the same id. */
export type WorkerAnswer = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string }

/** The store methods a request may name: every one of RumStore's but close (the type checker holds the list to the interface). */
const STORE_METHODS: Readonly<Record<StoreMethod, true>> = {
  insert: true,
  count: true,
  percentiles: true,
  histogram: true,
  breakdown: true,
  apiCalls: true,
  errorGroups: true,
  pageViews: true,
  pageViewEvents: true,
  size: true,
  sweep: true,
}

/**
 * How long, in ms, the worker's connection waits for the write lock (a
 * sweep's DELETE while the collector writes, or another process holds it).
 * The connections on the main thread wait only RUM_BUSY_TIMEOUT_MS: there a
 * wait holds every request. Here it holds no one but this thread's next call.
 */
export const WORKER_BUSY_TIMEOUT_MS = 2_000

/** The store once `open` succeeded; null before, and after `close`. */
let store: SqliteRumStore | null = null
/** Set once `close` was asked: later calls get RUM_STORE_CLOSED. */
let closed = false

/** Runs one request on the store and gives its value. */
async function run(req: WorkerRequest): Promise<unknown> {
  if (req.method === 'open') {
    if (store !== null || closed) throw new Error('the RUM store worker is already open')
    store = await openSqliteRumStore(String(req.args[0]), { busyTimeout: WORKER_BUSY_TIMEOUT_MS })
    return null
  }
  if (req.method === 'close') {
    closed = true
    const s = store
    store = null
    await s?.close()
    return null
  }
  if (!Object.hasOwn(STORE_METHODS, req.method)) throw new Error(`the RUM store worker has no method ${JSON.stringify(req.method)}`)
  if (store === null) throw new Error(closed ? RUM_STORE_CLOSED : 'the RUM store worker has not opened the store')
  const method = store[req.method] as (...args: readonly unknown[]) => Promise<unknown>
  return method.apply(store, [...req.args])
}

/** Answers one request: its value, or its error's message (a thrown non-Error as text). */
async function answer(req: WorkerRequest): Promise<void> {
  let reply: WorkerAnswer
  try {
    reply = { id: req.id, ok: true, value: await run(req) }
  } catch (err) {
    reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) }
  }
  parentPort!.postMessage(reply)
}

if (parentPort === null) throw new Error('the RUM store worker runs as the worker thread of a WorkerRumStore (src/rum/worker-store.ts), not on its own')
parentPort.on('message', (req: WorkerRequest) => {
  void answer(req)
})

import { Worker } from 'node:worker_threads'
import type { Logger } from '../core/log.ts'
import {
  RUM_STORE_CLOSED,
  rumStoreFile,
  type ApiCallGroup,
  type ApiCallSort,
  type ErrorGroup,
  type Histogram,
  type PageViewPair,
  type PercentileQuery,
  type PercentileRow,
  type PhaseBreakdown,
  type RetentionLimits,
  type RumMetric,
  type RumRow,
  type RumStore,
  type SweepResult,
  type TimeWindow,
} from './store.ts'
import type { WorkerAnswer, WorkerMethod, WorkerRequest } from './worker-store-main.ts'

/**
 * A RumStore whose every call runs in a worker thread (node:worker_threads)
 * with its own SqliteRumStore on the RUM store file (docs/monitoring.md).
 * node:sqlite is synchronous: a p75 by page over a million rows takes
 * seconds, and on the thread that serves pages it would hold every site
 * that long. Through this store the query API and the retention sweeps
 * take the worker's time; the main thread only posts a message and gets
 * the answer. The collector keeps its own connection on the main thread:
 * WAL (https://sqlite.org/wal.html) lets the worker read while it writes.
 *
 * One worker per store. A worker that stops (an uncaught error, out of
 * memory) rejects the calls it had not answered, naming why, with one
 * warning in the log; the next call starts a new one. close() waits for
 * the calls in flight, closes the worker's connection, then ends the thread.
 * An idle store does not keep the process alive.
 */

/**
 * The worker's script, beside this module: the TypeScript source when
 * Edgebox runs from src/ (Node strips the types), the compiled .js when it
 * runs from dist/ (`tsc -p tsconfig.build.json` rewrites import
 * specifiers, not this URL, so the extension follows this file's own).
 */
export const WORKER_ENTRY = new URL(`./worker-store-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

/** The thread's name, as the inspector and diagnostics show it. */
const THREAD_NAME = 'edgebox-rum-store'

export interface WorkerRumStoreOptions {
  /** Where a worker that stopped is reported (one warning per stop); none: not reported. */
  readonly log?: Logger | undefined
}

/** A call posted and not answered yet. */
interface Pending {
  readonly resolve: (value: unknown) => void
  readonly reject: (err: Error) => void
}

/**
 * One worker thread and the calls it owes. It is referenced (keeps the
 * process alive) only while a call is pending.
 */
class StoreThread {
  readonly worker: Worker
  /** Resolves once the worker has opened the store; rejects with the open's error. */
  readonly opened: Promise<void>
  /** The worker has exited. */
  private gone = false
  /** stop() is ending it: its exit is not reported. */
  private stopping = false
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  /** The worker's uncaught error, reported with its exit. */
  private crash: Error | null = null

  /** Starts the worker and asks it to open the store in `dataDir`; `onStop` hears of an exit not asked for. */
  constructor(dataDir: string, onStop: (thread: StoreThread, why: string, failed: number) => void) {
    // no flags from the main process (`--input-type`, `--eval`... are refused in a worker): the store needs none
    this.worker = new Worker(WORKER_ENTRY, { name: THREAD_NAME, execArgv: [] })
    this.worker.on('message', (a: WorkerAnswer) => this.settle(a))
    this.worker.on('error', (err: Error) => {
      this.crash = err
    })
    // an answer that could not be read: its call cannot be told apart, so the thread goes (every pending call is rejected) and the next call starts another
    this.worker.on('messageerror', (err: Error) => {
      this.crash = err
      void this.worker.terminate()
    })
    this.worker.on('exit', (code: number) => {
      this.gone = true
      const why = this.crash ? this.crash.message : `exit code ${code}`
      const failed = this.pending.size
      const err = new Error(`the RUM store's worker thread stopped before answering (${why})`, { cause: this.crash ?? undefined })
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      if (!this.stopping) onStop(this, why, failed)
    })
    this.opened = this.request('open', [dataDir]).then(() => undefined)
    // the open's rejection is the caller's; it is never unhandled here
    this.opened.catch(() => {})
  }

  /** The worker is running (not exited, not being ended). */
  get alive(): boolean {
    return !this.gone && !this.stopping
  }

  /** Posts one call and gives its answer; rejects with the worker's error message. */
  request(method: WorkerMethod, args: readonly unknown[]): Promise<unknown> {
    if (this.gone) return Promise.reject(new Error("the RUM store's worker thread has stopped"))
    const id = this.nextId++
    return new Promise<unknown>((resolve, reject) => {
      const message: WorkerRequest = { id, method, args }
      try {
        this.worker.postMessage(message)
      } catch (err) {
        // not structured-cloneable (HTML Standard, StructuredSerialize): nothing was sent
        return reject(err as Error)
      }
      this.pending.set(id, { resolve, reject })
      this.worker.ref()
    })
  }

  /** Settles the call an answer is for. */
  private settle(a: WorkerAnswer): void {
    const p = this.pending.get(a.id)
    if (p === undefined) return
    this.pending.delete(a.id)
    if (this.pending.size === 0) this.worker.unref()
    if (a.ok) p.resolve(a.value)
    else p.reject(new Error(a.error))
  }

  /** Closes the worker's connection (after the calls posted before), then ends the thread. */
  async stop(): Promise<void> {
    if (this.stopping) return
    if (!this.gone) await this.request('close', []).catch(() => {})
    this.stopping = true
    await this.worker.terminate()
  }
}

/** A RumStore answered by a worker thread; open it with `openWorkerRumStore`. */
export class WorkerRumStore implements RumStore {
  /** The database file the worker opens. */
  readonly file: string
  private readonly dataDir: string
  private readonly log: Logger | undefined
  /** The worker now; null before the first call after a stop, and after close(). */
  private current: StoreThread | null = null
  /** Calls not settled yet: close() waits for them. */
  private readonly inflight = new Set<Promise<unknown>>()
  private closing: Promise<void> | null = null

  /** A store for `dataDir`, with no worker yet: `openWorkerRumStore` starts it. */
  constructor(dataDir: string, opts: WorkerRumStoreOptions = {}) {
    this.dataDir = dataDir
    this.file = rumStoreFile(dataDir)
    this.log = opts.log
  }

  /** The worker thread answering now: for diagnostics (its threadId, resourceLimits). Null when none is running. */
  get thread(): Worker | null {
    return this.current?.alive ? this.current.worker : null
  }

  /** Starts the worker (when none runs) and waits until it has opened the store; a refusal rejects with the worker's message. */
  async open(): Promise<void> {
    await this.ready()
  }

  /** The running worker once it has opened the store: a new one after a stop; one that cannot open is ended, and its error given. */
  private async ready(): Promise<StoreThread> {
    if (this.closing) throw new Error(RUM_STORE_CLOSED)
    const thread = this.running()
    try {
      await thread.opened
    } catch (err) {
      if (this.current === thread) this.current = null
      await thread.stop()
      throw err
    }
    return thread
  }

  /** The running worker, or a new one. */
  private running(): StoreThread {
    if (this.current?.alive) return this.current
    this.current = new StoreThread(this.dataDir, (thread, why, failed) => this.stopped(thread, why, failed))
    return this.current
  }

  /** A worker exited unasked: one warning; the next call starts another. */
  private stopped(thread: StoreThread, why: string, failed: number): void {
    if (this.current === thread) this.current = null
    this.log?.warn({ why, failed, file: this.file }, 'the monitoring store worker thread stopped; its unanswered queries failed, and the next one starts a new worker')
  }

  /** One call on the worker, once it has opened the store; counted in flight until it settles. */
  private call<T>(method: WorkerMethod, args: readonly unknown[]): Promise<T> {
    if (this.closing) return Promise.reject(new Error(RUM_STORE_CLOSED))
    const p = (async () => {
      // the thread that opened the store answers (if it stops in between, the call fails as any it owed)
      const thread = await this.ready()
      return (await thread.request(method, args)) as T
    })()
    this.inflight.add(p)
    const done = () => void this.inflight.delete(p)
    p.then(done, done)
    return p
  }

  insert(rows: readonly RumRow[]): Promise<void> {
    return this.call('insert', [rows])
  }

  count(): Promise<number> {
    return this.call('count', [])
  }

  percentiles(q: PercentileQuery): Promise<PercentileRow[]> {
    return this.call('percentiles', [q])
  }

  histogram(q: TimeWindow & { readonly metric: RumMetric }): Promise<Histogram> {
    return this.call('histogram', [q])
  }

  breakdown(q: TimeWindow & { readonly page?: string | undefined }): Promise<PhaseBreakdown[]> {
    return this.call('breakdown', [q])
  }

  apiCalls(q: TimeWindow & { readonly sort: ApiCallSort; readonly limit: number }): Promise<ApiCallGroup[]> {
    return this.call('apiCalls', [q])
  }

  errorGroups(q: TimeWindow & { readonly limit?: number | undefined }): Promise<ErrorGroup[]> {
    return this.call('errorGroups', [q])
  }

  pageViews(q: TimeWindow & { readonly pv?: string | undefined; readonly limit: number }): Promise<PageViewPair[]> {
    return this.call('pageViews', [q])
  }

  size(): Promise<number> {
    return this.call('size', [])
  }

  sweep(now: number, limits: RetentionLimits): Promise<SweepResult> {
    return this.call('sweep', [now, limits])
  }

  pageViewEvents(pv: string, limit: number): Promise<RumRow[]> {
    return this.call('pageViewEvents', [pv, limit])
  }

  /** Refuses new calls, waits for those in flight to settle, closes the worker's connection and ends the thread; again: the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inflight])
      const thread = this.current
      this.current = null
      await thread?.stop()
    })()
    return this.closing
  }
}

/**
 * Opens the RUM store in a data folder (`<dataDir>/rum/rum.sqlite`, as
 * `openSqliteRumStore` does) in a worker thread; resolves once the worker
 * has opened the file, rejects with the worker's message when it cannot
 * (a schema version newer than this Edgebox knows, a folder it may not write).
 */
export async function openWorkerRumStore(dataDir: string, opts: WorkerRumStoreOptions = {}): Promise<WorkerRumStore> {
  const store = new WorkerRumStore(dataDir, opts)
  await store.open()
  return store
}

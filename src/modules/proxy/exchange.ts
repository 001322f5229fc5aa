import type { Dispatcher } from 'undici'
import type { Headers } from '../../http/cache-control.ts'
import type { BodySink, BodySource } from '../../core/types.ts'

export type { BodySink, BodySource }

/**
 * One request to one upstream, driven through undici's dispatch handler API
 * rather than `request()`: the response body reaches Edgebox as plain chunks
 * handed to a sink, with no stream object, no AbortSignal and no promise
 * per chunk in between. Backpressure is explicit: a sink that returns false
 * from `data` pauses the upstream connection until `resume()`.
 */

/** The response head, resolved as soon as it arrives; the body follows. */
export interface UpstreamHead {
  status: number
  headers: Headers
  body: BodySource
}

/** Chunks kept while no sink is attached yet, before the upstream is paused. */
const PREBUFFER = 64 * 1024

class Aborted extends Error {
  constructor() {
    super('the request was abandoned')
    this.name = 'AbortError'
  }
}

/** A request that waited for one of the pool's connections longer than its queue timeout. */
export class QueueTimeoutError extends Error {
  readonly waited: number
  constructor(waited: number) {
    super(`no connection to the upstream became free within ${waited} ms`)
    this.name = 'QueueTimeoutError'
    this.waited = waited
  }
}

/**
 * HAProxy's `timeout queue` for one undici Pool. While all of a pool's
 * connections are busy, undici queues further requests inside the pool and
 * says nothing about it, so a request could wait for a connection forever.
 * `PoolQueue` counts the exchanges handed to the pool: one that arrives
 * when all `connections` are taken is queued, and gets `timeout` ms to be
 * handed a connection (undici's `onRequestStart`), else it is aborted with
 * a QueueTimeoutError. A request that finds a free connection gets no
 * deadline here: connecting is `timeouts.connect`'s business.
 */
export class PoolQueue {
  readonly connections: number
  readonly timeout: number
  private inFlight = 0

  constructor(connections: number, timeout: number) {
    this.connections = connections
    this.timeout = timeout
  }

  /** One more request for the pool: how long it may wait for a connection, or 0 when one is free. */
  enter(): number {
    return this.inFlight++ >= this.connections ? this.timeout : 0
  }

  leave(): void {
    this.inFlight--
  }
}

/**
 * The dispatch handler and the body source of one upstream request.
 * `head` resolves on the final response head (1xx go to `onInterim`) and rejects
 * on any failure before it; later failures go to the body's sink.
 */
export class Exchange implements Dispatcher.DispatchHandler, BodySource {
  readonly head: Promise<UpstreamHead>
  private resolveHead!: (h: UpstreamHead) => void
  private rejectHead!: (err: Error) => void
  private controller: Dispatcher.DispatchController | null = null
  private started = false
  /** Body finished (ended, failed or destroyed). */
  private settled = false
  private abandoned = false
  private sink: BodySink | null = null
  private pending: Buffer[] | null = null
  private pendingBytes = 0
  private ended = false
  private failure: Error | null = null
  private readonly onDone: (() => void) | undefined
  private queueTimer: NodeJS.Timeout | undefined
  /** Called with each 1xx interim response (RFC 9110 §15.2) before the final head; set right after `start`. */
  onInterim: ((status: number, headers: Headers) => void) | null = null

  /**
   * Sends a request through `dispatcher` (a Pool, an Agent) and returns its
   * exchange; with `queue`, the dispatcher's PoolQueue, a request that has
   * to wait for a connection is aborted past the queue timeout.
   */
  static start(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, onDone?: () => void, queue?: PoolQueue): Exchange {
    const wait = queue ? queue.enter() : 0
    const exchange = new Exchange(
      queue
        ? () => {
            queue.leave()
            onDone?.()
          }
        : onDone,
    )
    if (wait > 0) exchange.queueTimer = setTimeout(() => exchange.destroy(new QueueTimeoutError(wait)), wait)
    dispatcher.dispatch(opts, exchange)
    return exchange
  }

  constructor(onDone?: () => void) {
    this.onDone = onDone
    this.head = new Promise((resolve, reject) => {
      this.resolveHead = resolve
      this.rejectHead = reject
    })
  }

  /** The client left: abort the upstream request wherever it is. */
  abandon(): void {
    if (this.settled) return
    this.abandoned = true
    this.destroy(new Aborted())
  }

  get wasAbandoned(): boolean {
    return this.abandoned
  }

  // ---- undici dispatch handler ----

  onRequestStart(controller: Dispatcher.DispatchController): void {
    clearTimeout(this.queueTimer) // a connection is ours: the wait is over
    // Given up while it waited for a connection (client gone, queue timeout):
    // nothing was written yet. Throwing makes undici drop just this request;
    // controller.abort() here would also destroy the connection it was given.
    if (this.settled) throw this.failure ?? new Aborted()
    this.controller = controller
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Headers): void {
    if (this.settled) return
    if (status < 200) return void this.onInterim?.(status, headers) // informational: the final head follows
    this.started = true
    this.resolveHead({ status, headers, body: this })
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return
    const sink = this.sink
    if (sink) {
      if (!sink.data(chunk)) controller.pause()
      return
    }
    ;(this.pending ??= []).push(chunk)
    this.pendingBytes += chunk.length
    if (this.pendingBytes >= PREBUFFER) controller.pause()
  }

  onResponseEnd(): void {
    if (this.settled) return
    this.finish()
    if (this.sink) this.sink.end()
    else this.ended = true
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.settled) return
    this.finish()
    if (!this.started) return this.rejectHead(err)
    if (this.sink) this.sink.error(err)
    else this.failure = err
  }

  // ---- body source ----

  attach(sink: BodySink): void {
    this.sink = sink
    const pending = this.pending
    let more = true
    if (pending) {
      this.pending = null
      this.pendingBytes = 0
      for (const chunk of pending) more = sink.data(chunk) && more
    }
    if (this.ended) return sink.end()
    if (this.failure) return sink.error(this.failure)
    if (more && this.controller?.paused) this.controller.resume()
  }

  resume(): void {
    if (!this.settled && this.controller?.paused) this.controller.resume()
  }

  destroy(err?: Error): void {
    if (this.settled) return
    this.finish()
    this.sink = null
    this.pending = null
    const reason = err ?? new Aborted()
    this.failure = reason
    if (!this.started) this.rejectHead(reason)
    this.controller?.abort(reason)
  }

  private finish(): void {
    this.settled = true
    clearTimeout(this.queueTimer)
    this.onDone?.()
  }
}

/** A sink that reads and drops a body (so the upstream connection can be reused). */
export const DISCARD: BodySink = { data: () => true, end() {}, error() {} }

/**
 * Reads a whole body into memory, up to `limit` bytes. Past the limit it
 * stops reading and resolves with `rest`: the chunks read so far followed by
 * the remainder, ready for another sink. `rest` hands those chunks over as
 * fast as its sink takes them (a slow client then holds the upstream back
 * instead of Edgebox buffering for it), and the upstream goes on only once
 * they are all out.
 */
export function collect(source: BodySource, limit: number): Promise<{ body: Buffer; rest: null } | { body: null; rest: BodySource }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    let over: BodySink | null = null
    /** The first of `chunks` not yet handed to `over`. */
    let next = 0
    let ended = false
    let failure: Error | null = null
    let finished = false
    const backlog = () => next < chunks.length
    /** Hands the chunks read ahead to the sink until it says wait; then the end, or more from the source. */
    const flush = (): void => {
      const sink = over
      if (!sink || finished) return
      while (backlog()) {
        const c = chunks[next]!
        chunks[next++] = EMPTY // delivered: no longer held here
        if (!sink.data(c)) return
      }
      chunks.length = 0
      next = 0
      if (ended || failure) {
        finished = true
        return failure ? sink.error(failure) : sink.end()
      }
      source.resume()
    }
    const tail: BodySource = {
      attach(sink) {
        over = sink
        flush()
      },
      resume: flush,
      destroy: (err) => {
        finished = true
        chunks.length = 0
        source.destroy(err)
      },
    }
    source.attach({
      data(chunk) {
        if (over && !backlog()) return over.data(chunk)
        chunks.push(chunk)
        if (over) return false // behind what is still to be handed over
        total += chunk.length
        if (total <= limit) return true
        if (total - chunk.length <= limit) resolve({ body: null, rest: tail })
        return false // paused until the tail is attached
      },
      end() {
        if (over && !backlog()) {
          finished = true
          return over.end()
        }
        if (!over && total <= limit) resolve({ body: Buffer.concat(chunks, total), rest: null })
        else ended = true
      },
      error(err) {
        if (over && !backlog()) {
          finished = true
          return over.error(err)
        }
        if (!over && total <= limit) reject(err)
        else failure = err
      },
    })
  })
}

const EMPTY = Buffer.alloc(0)

/**
 * The same body for one sink, while `observer` sees every chunk and learns
 * whether the body ended normally (`end(true)`) or not.
 */
export function tee(source: BodySource, observer: { data(chunk: Buffer): void; end(complete: boolean): void }): BodySource {
  let done = false
  const end = (complete: boolean) => {
    if (done) return
    done = true
    observer.end(complete)
  }
  return {
    attach(sink) {
      source.attach({
        data(chunk) {
          observer.data(chunk)
          return sink.data(chunk)
        },
        end() {
          end(true)
          sink.end()
        },
        error(err) {
          end(false)
          sink.error(err)
        },
      })
    },
    resume: () => source.resume(),
    destroy(err) {
      end(false)
      source.destroy(err)
    },
  }
}

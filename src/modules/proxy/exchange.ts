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

/**
 * The dispatch handler and the body source of one upstream request.
 * `head` resolves on the final response head (1xx are skipped) and rejects
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

  /** Sends a request through `dispatcher` (a Pool, an Agent) and returns its exchange. */
  static start(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, onDone?: () => void): Exchange {
    const exchange = new Exchange(onDone)
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
    this.controller = controller
    if (this.settled) controller.abort(this.failure ?? new Aborted())
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Headers): void {
    if (status < 200 || this.settled) return // 1xx: informational, the final head follows
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
    this.onDone?.()
  }
}

/** A sink that reads and drops a body (so the upstream connection can be reused). */
export const DISCARD: BodySink = { data: () => true, end() {}, error() {} }

/**
 * Reads a whole body into memory, up to `limit` bytes. Past the limit it
 * stops reading and resolves with `rest`: the chunks read so far followed by
 * the remainder, ready for another sink.
 */
export function collect(source: BodySource, limit: number): Promise<{ body: Buffer; rest: null } | { body: null; rest: BodySource }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    let over: BodySink | null = null
    let ended = false
    let failure: Error | null = null
    const tail: BodySource = {
      attach(sink) {
        over = sink
        for (const c of chunks.splice(0)) sink.data(c)
        if (ended) return sink.end()
        if (failure) return sink.error(failure)
        source.resume()
      },
      resume: () => source.resume(),
      destroy: (err) => source.destroy(err),
    }
    source.attach({
      data(chunk) {
        if (over) return over.data(chunk)
        chunks.push(chunk)
        total += chunk.length
        if (total <= limit) return true
        if (total - chunk.length <= limit) resolve({ body: null, rest: tail })
        return false // paused until the tail is attached
      },
      end() {
        if (over) return over.end()
        if (total <= limit) resolve({ body: Buffer.concat(chunks, total), rest: null })
        else ended = true
      },
      error(err) {
        if (over) return over.error(err)
        if (total <= limit) reject(err)
        else failure = err
      },
    })
  })
}

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

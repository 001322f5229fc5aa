import type { Context, Headers } from '../../core/context.ts'
import type { BodySink, BodySource } from '../../core/types.ts'
import type { Position } from '../engine.ts'
import { formatPositions, type ChannelRule, type Hub } from '../hub.ts'
import type { Timer } from '../../core/clock.ts'

/**
 * Server-Sent Events (HTML Living Standard, "Server-sent events"): one
 * stream carries every channel the client asked for. Each envelope is one
 * event, `data: <json>`, whose `id:` is the composite position of all the
 * channels (`a@e1/4,b@e2/9`); a reconnecting EventSource sends it back as
 * Last-Event-ID and every channel resumes. The stream opens with `retry:`
 * and the `sub`/`gap` envelopes, and a `: keep-alive` comment goes out every
 * `keepAlive` ms so intermediaries do not cut an idle stream. When Edgebox
 * stops, the stream ends cleanly (`: server shutting down`) and the client
 * reconnects, resuming every channel.
 *
 * The stream is a BodySource for ctx.relay: the context writes it, applies
 * the response filters, and logs it when it ends. A client that does not
 * read is cut once `maxBuffered` bytes wait for it.
 */

export interface SseOptions {
  readonly keepAlive: number
  readonly retry: number
  readonly maxBuffered: number
  /** The name presence shows for this connection. */
  readonly who: string
  /** When the client's token expires (ms since the epoch): the stream ends then, and the client reconnects with a new token. */
  readonly until?: number | undefined
}

export function serveSse(ctx: Context, hub: Hub, subs: ReadonlyArray<{ ch: string; after: Position | undefined; rule: ChannelRule }>, headers: Headers, opts: SseOptions): void {
  // Channels not yet confirmed keep the position the client asked for.
  const positions = new Map<string, Position>()
  for (const sub of subs) if (sub.after) positions.set(sub.ch, sub.after)
  let sink: BodySink | null = null
  let stops: Array<() => void> = []
  const clock = hub.clock
  let timer: Timer | undefined
  let expiry: Timer | undefined
  let waiting = 0 // bytes written since the client last drained
  let over = false
  /** Counted in the hub's open SSE streams (from attach to the first end). */
  let counted = false
  let release: () => void = () => {}

  const write = (text: string) => {
    if (!sink || over) return
    const chunk = Buffer.from(text)
    if (sink.data(chunk)) waiting = 0
    else {
      waiting += chunk.length
      if (waiting > opts.maxBuffered) {
        over = true
        sink.error(new Error(`SSE client not reading: ${waiting} bytes waiting (slow consumer)`))
        end()
      }
    }
  }

  const end = () => {
    if (counted) {
      counted = false
      hub.counts.sse--
    }
    release()
    clock.clearInterval(timer)
    clock.clearTimeout(expiry)
    for (const stop of stops) stop()
    stops = []
  }

  /** Ends the stream cleanly (the whole body, chunked or END_STREAM): an EventSource reconnects after `retry`. */
  const finish = (comment: string) => {
    if (over) return
    write(`: ${comment}\n\n`)
    over = true
    end()
    sink?.end()
  }

  const source: BodySource = {
    attach(s) {
      sink = s
      counted = true
      hub.counts.sse++
      write(`retry: ${opts.retry}\n\n`)
      release = hub.hold(() => finish('server shutting down'))
      if (over) return
      void (async () => {
        try {
          for (const sub of subs) {
            if (over) return
            const stop = await hub.follow(
              sub.ch,
              sub.after,
              sub.rule,
              (json, position) => {
                positions.set(sub.ch, position) // the composite id names every channel's position
                write(`id: ${formatPositions(positions)}\ndata: ${json}\n\n`)
              },
              opts.who,
            )
            if (over) stop()
            else stops.push(stop)
          }
        } catch (err) {
          over = true
          sink?.error(err as Error)
          end()
        }
      })()
      timer = clock.setInterval(() => write(': keep-alive\n\n'), opts.keepAlive)
      timer.unref()
      if (opts.until !== undefined) {
        expiry = clock.setTimeout(() => finish('token expired'), Math.max(0, opts.until - clock.now()))
        expiry.unref()
      }
    },
    resume() {
      waiting = 0
    },
    destroy() {
      over = true
      end()
    },
  }
  ctx.relay(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' }, source)
}

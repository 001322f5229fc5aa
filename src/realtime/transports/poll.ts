import type { Context, Headers } from '../../core/context.ts'
import type { Position } from '../engine.ts'
import type { ChannelRule, Hub } from '../hub.ts'
import type { Timer } from '../../core/clock.ts'

/**
 * Short and long polling: `GET <prefix>poll?ch=<name>@<epoch>/<offset>...`
 * answers a JSON array of envelopes: every message after each position (or
 * a `gap`), and `sub` for a channel asked without a position (so the client
 * learns where it starts). Short polling answers at once. Long polling
 * (`wait=1`) answers at once when there is anything to say, else holds the
 * request until a message arrives (then everything that arrived in that
 * turn) or `timeout` passes (then `[]`); a client that leaves releases it.
 * When Edgebox stops, a held poll is answered at once, as at the timeout.
 */

export interface PollOptions {
  readonly wait: boolean
  readonly timeout: number
}

export async function servePoll(ctx: Context, hub: Hub, subs: ReadonlyArray<{ ch: string; after: Position | undefined; rule: ChannelRule }>, headers: Headers, opts: PollOptions): Promise<void> {
  const out: string[] = []
  const stops: Array<() => void> = []
  let done = false
  let timer: Timer | undefined
  let scheduled = false
  /** Set once the history has been read and the request is being held. */
  let holding = false
  const res = ctx.res
  let unhold: () => void = () => {}
  const release = () => {
    // a held poll stops being held (the hub's longPolls count)
    if (holding) {
      holding = false
      hub.counts.longPolls--
    }
    unhold()
    hub.clock.clearTimeout(timer)
    for (const stop of stops.splice(0)) stop()
  }
  const answer = () => {
    if (done) return
    done = true
    release()
    if (res.destroyed || res.writableEnded) return
    ctx.send(200, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' }, `[${out.join(',')}]`)
  }
  const onClose = () => {
    if (done) return
    done = true
    release()
    // the client left a held poll: answering now logs it (a 499, nothing sent)
    ctx.send(200, {}, '')
  }
  res.once('close', onClose)
  try {
    for (const sub of subs) {
      const stop = await hub.follow(sub.ch, sub.after, sub.rule, (json) => {
        if (done) return
        // A position the client already holds needs no `sub` back; everything else does.
        if (sub.after !== undefined && json.startsWith('{"t":"sub"')) return
        out.push(json)
        // Held poll: answer once this turn's deliveries are in (several channels, a burst).
        if (opts.wait && holding && !scheduled) {
          scheduled = true
          setImmediate(answer)
        }
      })
      if (done) stop()
      else stops.push(stop)
    }
  } catch (err) {
    release()
    throw err
  }
  if (done) return
  if (!opts.wait) hub.counts.shortPolls++
  if (!opts.wait || out.length > 0) return answer()
  holding = true
  hub.counts.longPolls++
  // asked while the client is connected: the log line is written when the hold ends
  void ctx.clientAddress
  timer = hub.clock.setTimeout(answer, opts.timeout)
  // Shutdown answers it at once, as the timeout would: the client polls again, elsewhere or later.
  unhold = hub.hold(answer)
}


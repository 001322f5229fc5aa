import type { Engine, HistoryLimits, Message, Position, Since } from './engine.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { RealtimeView } from '../core/observe.ts'

/**
 * The hub: channel rules, the envelope, and the one way every transport
 * follows a channel from a position (docs/realtime.md). Transports turn the
 * envelopes into frames, events or response bodies; the hub never knows
 * which transport it feeds.
 */

/** Channel names: 1-128 of A-Z a-z 0-9 : _ - . */
export const CHANNEL = /^[A-Za-z0-9:_.-]{1,128}$/
/** Epochs as engines make them. */
const EPOCH = /^[A-Za-z0-9]{1,32}$/

export interface ChannelRule {
  readonly pattern: string
  /** Who may publish: clients (anyone who may subscribe), token holders, signed-in users (single sign-on), or back ends only. */
  readonly publish: 'clients' | 'token' | 'signedIn' | 'backend'
  /** Who may subscribe: anyone, token holders, or signed-in users (single sign-on). */
  readonly subscribe: 'anyone' | 'token' | 'signedIn'
  /** For `signedIn`: whether a signed-in user's claims let them in (the channel's `who`); absent: anyone signed in. */
  readonly who?: ((claims: Readonly<Record<string, unknown>>) => boolean) | undefined
  readonly history: HistoryLimits
  readonly presence: boolean
}

/** What a client may do, from its token or its sign-on session (or anonymous: undefined). */
export interface Grant {
  readonly user?: string | undefined
  /** A signed-in user's claims (single sign-on, docs/sso.md): what `signedIn` channels check. */
  readonly claims?: Readonly<Record<string, unknown>> | undefined
  readonly subscribe: readonly RegExp[]
  readonly publish: readonly RegExp[]
}

export type Envelope =
  | { t: 'msg'; ch: string; e: string; o: number; d: unknown; id?: string }
  | { t: 'sub' | 'gap'; ch: string; e: string; o: number }
  | { t: 'ack'; ref: string; ch: string; e: string; o: number }
  | { t: 'join' | 'leave'; ch: string; who: string }
  | { t: 'presence'; ch: string; members: string[] }
  | { t: 'err'; code: ErrCode; msg: string; ch?: string; ref?: string }
  | { t: 'pong' }

export type ErrCode = 'unknown-channel' | 'forbidden' | 'bad-request' | 'too-large' | 'rate'

/** A refusal that becomes an `err` envelope (or an HTTP status, for HTTP requests). */
export class HubError extends Error {
  readonly code: ErrCode
  readonly ch: string | undefined
  constructor(code: ErrCode, message: string, ch?: string) {
    super(message)
    this.code = code
    this.ch = ch
  }
  envelope(ref?: string): Envelope {
    const e: Envelope = { t: 'err', code: this.code, msg: this.message }
    if (this.ch !== undefined) e.ch = this.ch
    if (ref !== undefined) e.ref = ref
    return e
  }
}

/** `*` in a pattern matches any run of characters; everything else literally. */
export function patternRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)
}

/** `chat:a@k3j2/41` -> the channel and, if given, the position after which to go on. */
export function parseChannelPosition(v: string): { ch: string; after?: Position } {
  const at = v.lastIndexOf('@')
  const ch = at === -1 ? v : v.slice(0, at)
  if (!CHANNEL.test(ch)) throw new HubError('bad-request', `${JSON.stringify(ch)} is not a channel name (1-128 of A-Z a-z 0-9 : _ - .)`)
  if (at === -1) return { ch }
  const m = /^([A-Za-z0-9]{1,32})\/(\d{1,15})$/.exec(v.slice(at + 1))
  if (!m) throw new HubError('bad-request', `${JSON.stringify(v)}: a position is <channel>@<epoch>/<offset>`)
  return { ch, after: { e: m[1]!, o: Number(m[2]) } }
}

/** The composite position list (SSE event ids): `a@e1/4,b@e2/9`. */
export function formatPositions(positions: ReadonlyMap<string, Position>): string {
  let out = ''
  for (const [ch, p] of positions) out += `${out ? ',' : ''}${ch}@${p.e}/${p.o}`
  return out
}

export function parsePositions(list: string): Map<string, Position> {
  const out = new Map<string, Position>()
  for (const part of list.split(',')) {
    if (!part) continue
    const { ch, after } = parseChannelPosition(part.trim())
    if (after) out.set(ch, after)
  }
  return out
}

/**
 * The JSON text of a message's envelope, made once per message whatever the
 * number of subscribers. A fan-out hands the same message to every
 * subscriber in a row, so the last one is checked first (no hashing); the
 * WeakMap serves messages read again from the history.
 */
const encoded = new WeakMap<Message, string>()
let lastMessage: Message | undefined
let lastJson = ''
export function messageJson(m: Message): string {
  if (m === lastMessage) return lastJson
  let s = encoded.get(m)
  if (s === undefined) {
    s = JSON.stringify(m.id === undefined ? { t: 'msg', ch: m.ch, e: m.e, o: m.o, d: m.d } : { t: 'msg', ch: m.ch, e: m.e, o: m.o, d: m.d, id: m.id })
    encoded.set(m, s)
  }
  lastMessage = m
  lastJson = s
  return s
}

/**
 * What a transport hands `follow`: `send` gets each envelope (as JSON text)
 * in order, with the channel position it leaves the subscriber at, and the
 * message when it is one (for transports that cache their own framing per
 * message).
 */
function noop(): void {}

export type Deliver = (json: string, position: Position, message?: Message) => void

/**
 * A subscriber whose transport sends every message as the same bytes to all
 * its subscribers (a WebSocket text frame). Once it has caught up with the
 * channel, the channel's fan-out writes those bytes to `socket` itself, made
 * once per message for all, while `conn.readyState` is 1 (a WebSocket's
 * OPEN: no data frame after a Close frame, RFC 6455 §5.5.1) and the socket
 * holds at most `limit` unsent bytes; otherwise that message goes through
 * the subscriber's `send`, which decides (drop, or cut a slow consumer).
 */
export interface Direct {
  readonly socket: { write(b: Buffer): boolean; readonly writableLength: number }
  readonly conn: { readonly readyState: number }
  readonly limit: number
  /** A message's bytes; called once per message for the subscribers that share this function. */
  readonly frame: (json: string, m: Message) => Buffer
}

/** One subscriber of a channel, as its fan-out sees it. */
interface Follower {
  readonly send: Deliver
  /** The direct path, while the follower is live (cleared when it stops). */
  direct: Direct | undefined
  /** Live messages that arrived while the history was read (null once merged). */
  held: Message[] | null
  /** Where it has been brought to (null until its `sub` or `gap`); the fan's position once live. */
  last: Position | null
  /** Its index in the fan's live list, -1 while it is catching up. */
  index: number
  stopped: boolean
}

/**
 * A channel's fan-out: the one engine listener of the channel in this hub.
 * Followers that have caught up are `live`: each message goes to them in one
 * flat loop, all at the fan's position `last`. Followers still reading the
 * history, or not yet at the fan's position, are `joining`: each merges
 * messages by offset on its own until it stands where the live ones stand.
 */
interface Fan {
  readonly ch: string
  /** The hub's counts, which deliveries add to. */
  readonly counts: HubCounts
  unlisten: () => void
  live: Follower[]
  joining: Follower[]
  /** The position of every live follower. */
  last: Position | null
  /** Set while the live list is walked: stops then only mark (the list is compacted after the walk). */
  walking: boolean
  compact: boolean
  /** Stops listening once no follower is left. */
  release: () => void
}

/**
 * What the operator's view counts (core/observe.ts RealtimeView): plain
 * numbers the transports and the fan-out add to, read when the view is made.
 */
export interface HubCounts {
  /** SSE streams open now. */
  sse: number
  /** Long polls held now (waiting for a message or their timeout). */
  longPolls: number
  /** Short polls answered so far. */
  shortPolls: number
  /** Messages published so far (a publish id already seen publishes nothing and is not counted). */
  published: number
  /** Messages delivered to subscribers so far: one per subscriber a message reached. */
  delivered: number
}

export class Hub {
  readonly engine: Engine
  /** See HubCounts. */
  readonly counts: HubCounts = { sse: 0, longPolls: 0, shortPolls: 0, published: 0, delivered: 0 }
  private readonly rules: ReadonlyArray<ChannelRule & { re: RegExp }>
  readonly maxMessageSize: number
  /** The time the transports' timers run on: long-poll holds, keep-alives, heartbeats, token expiry. */
  readonly clock: Clock
  /** How each open WebSocket, SSE stream and held long poll is ended when Edgebox stops (`drain`). */
  private readonly open = new Set<() => void>()
  private drained = false

  constructor(rules: readonly ChannelRule[], engine: Engine, opts: { maxMessageSize: number; clock?: Clock }) {
    this.rules = rules.map((r) => ({ ...r, re: patternRegExp(r.pattern) }))
    this.engine = engine
    this.maxMessageSize = opts.maxMessageSize
    this.clock = opts.clock ?? systemClock
  }

  /** The rule for a channel; unknown or malformed names are refused. */
  rule(ch: string): ChannelRule {
    if (!CHANNEL.test(ch)) throw new HubError('bad-request', `${JSON.stringify(ch)} is not a channel name (1-128 of A-Z a-z 0-9 : _ - .)`, ch)
    const r = this.rules.find((x) => x.re.test(ch))
    if (!r) throw new HubError('unknown-channel', `no channel ${ch} here`, ch)
    return r
  }

  /** Refuses a subscription the grant does not allow. */
  checkSubscribe(ch: string, grant: Grant | undefined): ChannelRule {
    const r = this.rule(ch)
    if (r.subscribe === 'token' && !grant?.subscribe.some((re) => re.test(ch))) throw new HubError('forbidden', `subscribing to ${ch} needs a token that allows it`, ch)
    if (r.subscribe === 'signedIn' && !signedIn(r, grant)) throw new HubError('forbidden', grant?.claims ? `${ch} is not open to this account` : `subscribing to ${ch} needs a signed-in user`, ch)
    return r
  }

  /** Publishes from a client (WebSocket or HTTP), after the channel's publish rule. */
  async publish(ch: string, data: unknown, id: string | undefined, grant: Grant | undefined, from: 'client' | 'backend'): Promise<Message> {
    const r = this.rule(ch)
    if (from === 'client') {
      if (r.publish === 'backend') throw new HubError('forbidden', `${ch} takes publishes from back ends only`, ch)
      if (r.publish === 'token' && !grant?.publish.some((re) => re.test(ch))) throw new HubError('forbidden', `publishing to ${ch} needs a token that allows it`, ch)
      if ((r.publish === 'signedIn' || r.subscribe === 'signedIn') && !signedIn(r, grant)) throw new HubError('forbidden', grant?.claims ? `${ch} is not open to this account` : `publishing to ${ch} needs a signed-in user`, ch)
      if (r.subscribe === 'token' && !grant?.subscribe.some((re) => re.test(ch)) && !grant?.publish.some((re) => re.test(ch))) {
        throw new HubError('forbidden', `publishing to ${ch} needs a token that allows it`, ch)
      }
    }
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 128)) throw new HubError('bad-request', 'a publish id is a string of 1-128 characters', ch)
    const size = JSON.stringify(data ?? null).length
    if (size > this.maxMessageSize) throw new HubError('too-large', `the message is ${size} bytes of JSON; the limit is ${this.maxMessageSize}`, ch)
    const res = await this.engine.publish(ch, data ?? null, { id, history: r.history })
    if (!res.duplicate) this.counts.published++
    return res.message
  }

  /**
   * The operator's view (core/observe.ts RealtimeView): open connections
   * (`websocket` is the WebSocket transport's own count), the counts, and the
   * `top` channels with subscribers or history, most subscribers first.
   */
  view(top: number, websocket: number): RealtimeView {
    const c = this.counts
    const byName = new Map<string, { name: string; subscribers: number; history: number; published: number }>()
    let historySize = 0
    for (const s of this.engine.channels?.() ?? []) {
      historySize += s.history
      byName.set(s.ch, { name: s.ch, subscribers: 0, history: s.history, published: s.published })
    }
    for (const fan of this.fans.values()) {
      const subscribers = fan.live.length + fan.joining.length
      const known = byName.get(fan.ch)
      if (known) known.subscribers = subscribers
      else byName.set(fan.ch, { name: fan.ch, subscribers, history: 0, published: 0 })
    }
    const active = [...byName.values()].filter((x) => x.subscribers > 0 || x.history > 0)
    const channels = active
      .sort((a, b) => b.subscribers - a.subscribers || b.published - a.published || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .slice(0, Math.max(0, Math.floor(top)))
    return { connections: { websocket, sse: c.sse, longPoll: c.longPolls }, shortPolls: c.shortPolls, published: c.published, delivered: c.delivered, channelCount: active.length, channels, historySize }
  }

  /**
   * Follows a channel for a subscriber: first `sub` (or `gap`), then the
   * messages after `after` from the history, then live messages, each
   * exactly once and in order. A position from another epoch gets `gap`
   * just before the oldest message of the current epoch, and that epoch's
   * history follows; a position the history no longer reaches in the same
   * epoch gets `gap` at the current position. Live messages that arrive while the history
   * is being read are held and merged by offset. With `direct`, the live
   * messages are written to the subscriber's socket by the channel's
   * fan-out (see Direct). Returns the function that stops following.
   */
  async follow(ch: string, after: Position | undefined, rule: ChannelRule, send: Deliver, who?: string, direct?: Direct): Promise<() => void> {
    if (after !== undefined && !EPOCH.test(after.e)) after = { e: 'invalid', o: 0 }
    const f: Follower = { send, direct: undefined, held: [], last: null, index: -1, stopped: false }
    const fan = this.fanOf(ch)
    fan.joining.push(f)
    const stop = () => this.unfollow(fan, f)
    try {
      if (after === undefined) {
        const p = await this.engine.position(ch)
        f.last = p
        send(JSON.stringify({ t: 'sub', ch, e: p.e, o: p.o }), p)
      } else {
        const s = await this.engine.since(ch, after, rule.history)
        const restart = s.gap && after.e !== s.position.e ? await this.restarted(ch, s, rule) : undefined
        if (restart) {
          f.last = restart.from
          send(JSON.stringify({ t: 'gap', ch, e: restart.from.e, o: restart.from.o }), restart.from)
          for (const m of restart.messages) deliver(ch, f, m, this.counts)
        } else if (s.gap) {
          f.last = s.position
          send(JSON.stringify({ t: 'gap', ch, e: s.position.e, o: s.position.o }), s.position)
        } else {
          f.last = after
          send(JSON.stringify({ t: 'sub', ch, e: after.e, o: after.o }), after)
          for (const m of s.messages) deliver(ch, f, m, this.counts)
        }
      }
    } catch (err) {
      stop()
      throw err
    }
    const pending = f.held!
    f.held = null
    for (const m of pending) deliver(ch, f, m, this.counts)
    if (!f.stopped) {
      f.direct = direct
      join(fan, f)
    }
    if (!rule.presence || who === undefined) return stop
    // Presence: this connection's subscriber hears joins and leaves from now on, and counts as present.
    const position = () => (f.index >= 0 ? fan.last : f.last) ?? { e: '', o: 0 }
    const stopPresence = this.engine.listenPresence(ch, (ev) => send(JSON.stringify(ev), position()))
    await this.engine.join(ch, who)
    return () => {
      stop()
      stopPresence()
      void this.engine.leave(ch, who)
    }
  }

  private readonly fans = new Map<string, Fan>()

  /** The channel's fan-out, listening to the engine from its first follower on. */
  private fanOf(ch: string): Fan {
    let fan = this.fans.get(ch)
    if (fan === undefined) {
      const created: Fan = { ch, counts: this.counts, unlisten: noop, live: [], joining: [], last: null, walking: false, compact: false, release: noop }
      created.unlisten = this.engine.listen(ch, (m) => fanOut(created, m))
      created.release = () => {
        if (created.live.length > 0 || created.joining.length > 0 || created.walking) return
        created.unlisten()
        if (this.fans.get(ch) === created) this.fans.delete(ch)
      }
      this.fans.set(ch, created)
      fan = created
    }
    return fan
  }

  private unfollow(fan: Fan, f: Follower): void {
    if (f.stopped) return
    f.stopped = true
    f.direct = undefined
    if (f.index >= 0) {
      if (fan.walking) fan.compact = true
      else removeLive(fan, f)
    } else {
      const k = fan.joining.indexOf(f)
      if (k >= 0) fan.joining.splice(k, 1)
    }
    fan.release()
  }

  /**
   * A position from another epoch: the channel's history was lost (the
   * memory engine after a restart) and a new epoch began. Everything the new
   * epoch still holds was published (and acknowledged) after the subscriber
   * last heard from the channel, so it goes on from just before the oldest
   * message held, not from the current end. Undefined when the history has
   * moved on meanwhile (then the gap is at the current position).
   */
  private async restarted(ch: string, s: Since, rule: ChannelRule): Promise<{ from: Position; messages: readonly Message[] } | undefined> {
    const from = { e: s.position.e, o: Math.max(0, (s.oldest ?? 1) - 1) }
    if (from.o >= s.position.o) return { from: s.position, messages: [] }
    const held = await this.engine.since(ch, from, rule.history)
    if (held.gap) return undefined
    return { from, messages: held.messages }
  }

  /**
   * Registers a long-lived exchange (a WebSocket, an SSE stream, a held long
   * poll) with the function that ends it the way its client takes as "come
   * back later". Returns the function that unregisters it, for when it ends
   * on its own. Once the hub is draining, `end` runs at once instead.
   */
  hold(end: () => void): () => void {
    if (this.drained) {
      end()
      return noop
    }
    this.open.add(end)
    return () => this.open.delete(end)
  }

  /**
   * Edgebox is stopping: ends every exchange held now or later, so clients
   * reconnect (to this server once it is back, or to another) instead of
   * holding their connections until the shutdown timeout cuts them.
   */
  drain(): void {
    this.drained = true
    const ends = [...this.open]
    this.open.clear()
    for (const end of ends) end()
  }

  /** Who is subscribed to a presence channel now. */
  async members(ch: string, grant: Grant | undefined): Promise<string[]> {
    const r = this.checkSubscribe(ch, grant)
    if (!r.presence) throw new HubError('bad-request', `${ch} has no presence (presence: true in its rule)`, ch)
    return this.engine.members(ch)
  }
}

/** Whether a grant is a signed-in user the channel's `who` lets in. */
function signedIn(r: ChannelRule, grant: Grant | undefined): boolean {
  const claims = grant?.claims
  return claims !== undefined && (r.who === undefined || r.who(claims))
}

/** A follower's own merge (while it catches up): each message once, by offset, with `gap` on an epoch change; counted in `counts.delivered`. */
function deliver(ch: string, f: Follower, m: Message, counts: HubCounts): void {
  const last = f.last
  if (last === null) return
  if (m.e === last.e && m.o <= last.o) return // already delivered (history and live overlap)
  if (m.e !== last.e || m.o > last.o + 1) {
    // The channel's history was lost meanwhile, or messages went by that the engine could not read again: say so, then go on.
    const before = { e: m.e, o: m.o - 1 }
    f.send(JSON.stringify({ t: 'gap', ch, e: before.e, o: before.o }), before)
  }
  f.last = m // a message is its own position (e, o): nothing allocated per delivery
  counts.delivered++
  f.send(messageJson(m), m, m)
}

/** A caught-up follower joins the live list when it stands where the live ones stand (or none is live). */
function join(fan: Fan, f: Follower): void {
  const last = f.last
  if (last === null) return
  if (fan.live.length > 0) {
    const at = fan.last!
    if (last.e !== at.e || last.o !== at.o) return // not yet: it goes on merging until it is there
  } else fan.last = last
  const k = fan.joining.indexOf(f)
  if (k >= 0) fan.joining.splice(k, 1)
  f.index = fan.live.length
  fan.live.push(f)
}

function removeLive(fan: Fan, f: Follower): void {
  const live = fan.live
  const k = f.index
  const moved = live.pop()!
  if (moved !== f) {
    live[k] = moved
    moved.index = k
  }
  f.index = -1
}

/**
 * One message to a channel's followers. The live ones are all at the fan's
 * position, so the order and exactly-once checks are made once for all; the
 * envelope's JSON and the direct subscribers' bytes are made once, and each
 * direct subscriber costs one check and one write.
 */
function fanOut(fan: Fan, m: Message): void {
  const live = fan.live
  if (live.length > 0) {
    const at = fan.last!
    if (m.e !== at.e || m.o > at.o) {
      fan.walking = true
      try {
        if (m.e !== at.e || m.o > at.o + 1) {
          // The channel's history was lost meanwhile (a new epoch), or messages went by that the engine could not read again
          // (a shared engine's node cut off for longer than the history): every live follower hears it, then goes on.
          const before = { e: m.e, o: m.o - 1 }
          const gap = JSON.stringify({ t: 'gap', ch: fan.ch, e: before.e, o: before.o })
          for (let i = 0; i < live.length; i++) if (!live[i]!.stopped) live[i]!.send(gap, before)
        }
        fan.last = m
        const json = messageJson(m)
        let frame: ((json: string, m: Message) => Buffer) | undefined
        let bytes: Buffer | undefined
        let delivered = 0
        for (let i = 0; i < live.length; i++) {
          const f = live[i]!
          const d = f.direct
          if (d !== undefined && d.conn.readyState === 1 && d.socket.writableLength <= d.limit) {
            if (d.frame !== frame) bytes = (frame = d.frame)(json, m)
            d.socket.write(bytes!)
            delivered++
          } else if (!f.stopped) {
            f.send(json, m, m)
            delivered++
          }
        }
        fan.counts.delivered += delivered
      } finally {
        // Even if a send broke its contract and threw: the list is compacted and the fan can be released.
        fan.walking = false
        if (fan.compact) {
          fan.compact = false
          fan.live = live.filter((f) => !f.stopped)
          for (let i = 0; i < fan.live.length; i++) fan.live[i]!.index = i
          for (const f of live) if (f.stopped) f.index = -1
          fan.release()
        }
      }
    }
  } else fan.last = m
  const joining = fan.joining
  if (joining.length === 0) return
  for (const f of [...joining]) {
    if (f.stopped) continue
    if (f.held !== null) f.held.push(m)
    else {
      deliver(fan.ch, f, m, fan.counts)
      join(fan, f)
    }
  }
}

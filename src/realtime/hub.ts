import type { Engine, HistoryLimits, Message, Position, Since } from './engine.ts'
import { systemClock, type Clock } from '../core/clock.ts'

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
  /** Who may publish: clients (anyone who may subscribe), token holders, or back ends only. */
  readonly publish: 'clients' | 'token' | 'backend'
  /** Who may subscribe: anyone, or token holders. */
  readonly subscribe: 'anyone' | 'token'
  readonly history: HistoryLimits
  readonly presence: boolean
}

/** What a client may do, from its token (or anonymous: undefined). */
export interface Grant {
  readonly user?: string | undefined
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

export class Hub {
  readonly engine: Engine
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
    return r
  }

  /** Publishes from a client (WebSocket or HTTP), after the channel's publish rule. */
  async publish(ch: string, data: unknown, id: string | undefined, grant: Grant | undefined, from: 'client' | 'backend'): Promise<Message> {
    const r = this.rule(ch)
    if (from === 'client') {
      if (r.publish === 'backend') throw new HubError('forbidden', `${ch} takes publishes from back ends only`, ch)
      if (r.publish === 'token' && !grant?.publish.some((re) => re.test(ch))) throw new HubError('forbidden', `publishing to ${ch} needs a token that allows it`, ch)
      if (r.subscribe === 'token' && !grant?.subscribe.some((re) => re.test(ch)) && !grant?.publish.some((re) => re.test(ch))) {
        throw new HubError('forbidden', `publishing to ${ch} needs a token that allows it`, ch)
      }
    }
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 128)) throw new HubError('bad-request', 'a publish id is a string of 1-128 characters', ch)
    const size = JSON.stringify(data ?? null).length
    if (size > this.maxMessageSize) throw new HubError('too-large', `the message is ${size} bytes of JSON; the limit is ${this.maxMessageSize}`, ch)
    const res = await this.engine.publish(ch, data ?? null, { id, history: r.history })
    return res.message
  }

  /**
   * Follows a channel for a subscriber: first `sub` (or `gap`), then the
   * messages after `after` from the history, then live messages, each
   * exactly once and in order. A position from another epoch gets `gap`
   * just before the oldest message of the current epoch, and that epoch's
   * history follows; a position the history no longer reaches in the same
   * epoch gets `gap` at the current position. Live messages that arrive while the history
   * is being read are held and merged by offset. Returns the function that
   * stops following.
   */
  async follow(ch: string, after: Position | undefined, rule: ChannelRule, send: Deliver, who?: string): Promise<() => void> {
    if (after !== undefined && !EPOCH.test(after.e)) after = { e: 'invalid', o: 0 }
    let held: Message[] | null = []
    let last: Position | null = null
    const deliver = (m: Message) => {
      if (last === null) return
      if (m.e === last.e && m.o <= last.o) return // already delivered (history and live overlap)
      if (m.e !== last.e) {
        // The channel's history was lost meanwhile: say so, then go on.
        const before = { e: m.e, o: m.o - 1 }
        send(JSON.stringify({ t: 'gap', ch, e: before.e, o: before.o }), before)
      }
      last = m // a message is its own position (e, o): nothing allocated per delivery
      send(messageJson(m), m, m)
    }
    const stop = this.engine.listen(ch, (m) => {
      if (held) held.push(m)
      else deliver(m)
    })
    try {
      if (after === undefined) {
        const p = await this.engine.position(ch)
        last = p
        send(JSON.stringify({ t: 'sub', ch, e: p.e, o: p.o }), p)
      } else {
        const s = await this.engine.since(ch, after, rule.history)
        const restart = s.gap && after.e !== s.position.e ? await this.restarted(ch, s, rule) : undefined
        if (restart) {
          last = restart.from
          send(JSON.stringify({ t: 'gap', ch, e: restart.from.e, o: restart.from.o }), restart.from)
          for (const m of restart.messages) deliver(m)
        } else if (s.gap) {
          last = s.position
          send(JSON.stringify({ t: 'gap', ch, e: s.position.e, o: s.position.o }), s.position)
        } else {
          last = after
          send(JSON.stringify({ t: 'sub', ch, e: after.e, o: after.o }), after)
          for (const m of s.messages) deliver(m)
        }
      }
    } catch (err) {
      stop()
      throw err
    }
    const pending = held
    held = null
    for (const m of pending) deliver(m)
    if (!rule.presence || who === undefined) return stop
    // Presence: this connection's subscriber hears joins and leaves from now on, and counts as present.
    const position = () => last ?? { e: '', o: 0 }
    const stopPresence = this.engine.listenPresence(ch, (ev) => send(JSON.stringify(ev), position()))
    await this.engine.join(ch, who)
    return () => {
      stop()
      stopPresence()
      void this.engine.leave(ch, who)
    }
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

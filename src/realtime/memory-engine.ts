import { randomBytes } from 'node:crypto'
import type { ChannelStats, Engine, HistoryLimits, Message, Position, PresenceEvent, PublishResult, Since } from './engine.ts'
import { systemClock, type Clock } from '../core/clock.ts'

/**
 * The embedded engine: channels in this process's memory. Each channel gets
 * a random epoch when first used, so positions from before a restart are
 * recognised as such (a gap) instead of being mistaken for new offsets.
 * History is trimmed on every publish and read (count, then age).
 */

interface Channel {
  readonly epoch: string
  /** Offset of the latest message (0: none yet). */
  offset: number
  /** Oldest first; offsets are consecutive. */
  history: Message[]
  /** Publisher id -> message, for the messages still in the history. */
  readonly ids: Map<string, Message>
  readonly listeners: Set<(m: Message) => void>
  /** Presence: name -> connections subscribed under it. */
  readonly members: Map<string, number>
  readonly presence: Set<(e: PresenceEvent) => void>
}

export class MemoryEngine implements Engine {
  private readonly byName = new Map<string, Channel>()
  /** What message times (`at`) and the history's age bound are measured with. */
  private readonly clock: Clock

  constructor(opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? systemClock
  }

  private channel(ch: string): Channel {
    let c = this.byName.get(ch)
    if (!c) {
      c = { epoch: randomBytes(6).toString('base64url').replace(/[-_]/g, 'x'), offset: 0, history: [], ids: new Map(), listeners: new Set(), members: new Map(), presence: new Set() }
      this.byName.set(ch, c)
    }
    return c
  }

  private trim(c: Channel, limits: HistoryLimits): void {
    const h = c.history
    let drop = Math.max(0, h.length - limits.size)
    if (limits.age > 0) {
      const oldest = this.clock.now() - limits.age
      while (drop < h.length && h[drop]!.at < oldest) drop++
    }
    if (drop === 0) return
    for (let i = 0; i < drop; i++) {
      const id = h[i]!.id
      if (id !== undefined) c.ids.delete(id)
    }
    c.history = h.slice(drop)
  }

  async publish(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): Promise<PublishResult> {
    return this.publishNow(ch, data, opts)
  }

  /** Synchronous publish (the memory engine needs no I/O); listeners run before it returns. */
  publishNow(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): PublishResult {
    const c = this.channel(ch)
    this.trim(c, opts.history)
    if (opts.id !== undefined) {
      const seen = c.ids.get(opts.id)
      if (seen) return { message: seen, duplicate: true }
    }
    c.offset++
    const at = this.clock.now()
    const message: Message = Object.freeze(opts.id === undefined ? { ch, e: c.epoch, o: c.offset, d: data, at } : { ch, e: c.epoch, o: c.offset, d: data, id: opts.id, at })
    if (opts.history.size > 0) {
      c.history.push(message)
      if (opts.id !== undefined) c.ids.set(opts.id, message)
      this.trim(c, opts.history)
    }
    for (const listener of c.listeners) listener(message)
    return { message, duplicate: false }
  }

  async since(ch: string, after: Position, history: HistoryLimits): Promise<Since> {
    return this.sinceNow(ch, after, history)
  }

  sinceNow(ch: string, after: Position, history: HistoryLimits): Since {
    const c = this.channel(ch)
    this.trim(c, history)
    const position = { e: c.epoch, o: c.offset }
    const oldest = c.history[0]?.o ?? c.offset + 1
    if (after.e !== c.epoch || after.o > c.offset || after.o < 0) return { gap: true, messages: [], position, oldest }
    if (after.o === c.offset) return { gap: false, messages: [], position }
    const first = c.history[0]
    // The message right after `after` must still be held.
    if (!first || first.o > after.o + 1) return { gap: true, messages: [], position, oldest }
    return { gap: false, messages: c.history.slice(after.o + 1 - first.o), position }
  }

  /** The channel's epoch, if it has been used here (nothing is made for a channel that has not). */
  epochOf(ch: string): string | undefined {
    return this.byName.get(ch)?.epoch
  }

  async position(ch: string): Promise<Position> {
    const c = this.channel(ch)
    return { e: c.epoch, o: c.offset }
  }

  listen(ch: string, listener: (m: Message) => void): () => void {
    const c = this.channel(ch)
    c.listeners.add(listener)
    return () => {
      c.listeners.delete(listener)
    }
  }

  async join(ch: string, who: string): Promise<void> {
    const c = this.channel(ch)
    const n = c.members.get(who) ?? 0
    c.members.set(who, n + 1)
    if (n === 0) for (const l of c.presence) l({ t: 'join', ch, who })
  }

  async leave(ch: string, who: string): Promise<void> {
    const c = this.channel(ch)
    const n = c.members.get(who) ?? 0
    if (n === 0) return
    if (n > 1) return void c.members.set(who, n - 1)
    c.members.delete(who)
    for (const l of c.presence) l({ t: 'leave', ch, who })
  }

  async members(ch: string): Promise<string[]> {
    return [...this.channel(ch).members.keys()]
  }

  listenPresence(ch: string, listener: (event: PresenceEvent) => void): () => void {
    const c = this.channel(ch)
    c.presence.add(listener)
    return () => {
      c.presence.delete(listener)
    }
  }

  /** Every channel used so far: its history as held now (trimmed on the next publish or read) and its offset, the messages published in it. */
  *channels(): Iterable<ChannelStats> {
    for (const [ch, c] of this.byName) yield { ch, history: c.history.length, published: c.offset }
  }

  async close(): Promise<void> {
    for (const c of this.byName.values()) {
      c.listeners.clear()
      c.presence.clear()
    }
  }
}

/**
 * The realtime engine: where channel history, offsets, epochs, publish
 * de-duplication and fan-out live (docs/realtime.md). The in-memory engine
 * (memory-engine.ts) is the embedded default; an engine shared by several
 * nodes (Redis) implements the same interface and passes the same contract
 * suite (test/contracts/engines.test.ts).
 */

/** A published message, as stored and delivered. Frozen once published. */
export interface Message {
  /** Channel name. */
  readonly ch: string
  /** The channel's epoch when it was published. */
  readonly e: string
  /** Offset in the channel: 1, 2, 3, ... without holes. */
  readonly o: number
  /** Any JSON value. */
  readonly d: unknown
  /** The publisher's id for exactly-once publishing, if it gave one. */
  readonly id?: string
  /** When it was published (ms since the epoch). */
  readonly at: number
}

/** Where a subscriber is in a channel: after the message with this epoch and offset (offset 0: before any). */
export interface Position {
  readonly e: string
  readonly o: number
}

/** What a channel keeps: at most `size` messages, none older than `age` ms (0: no age bound). */
export interface HistoryLimits {
  readonly size: number
  readonly age: number
}

export interface PublishResult {
  readonly message: Message
  /** The id was already in the history: nothing was published, `message` is the original. */
  readonly duplicate: boolean
}

/**
 * The messages after a position. `gap`: the position's epoch is not the
 * channel's, or messages right after it have left the history (or it lies
 * in the future); `messages` is then empty and `position` is where the
 * subscriber goes on from.
 */
export interface Since {
  readonly gap: boolean
  readonly messages: readonly Message[]
  /** The channel's position after the messages returned (the latest one). */
  readonly position: Position
  /**
   * On a gap: the offset of the oldest message the history still holds
   * (`position.o + 1` when it holds none). A subscriber from another epoch
   * (the channel was lost, e.g. a restart) goes on from there, so it gets
   * every message of the new epoch still held. Engines that leave it out
   * are taken to hold the new epoch from offset 1.
   */
  readonly oldest?: number
}

export interface Engine {
  /**
   * Appends a message with the channel's next offset and delivers it to the
   * channel's listeners, in publish order. With an `id` already in the
   * channel's history, publishes nothing and returns the original.
   */
  publish(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): Promise<PublishResult>
  /** The messages after `after` (all of the history's, when `after` is its epoch at offset 0), or a gap. */
  since(ch: string, after: Position, history: HistoryLimits): Promise<Since>
  /** The channel's current position (a new channel gets its epoch here, at offset 0). */
  position(ch: string): Promise<Position>
  /**
   * Calls `listener` with every message published to `ch` from now on, in
   * order, until the returned function is called. Listeners must not throw.
   */
  listen(ch: string, listener: (m: Message) => void): () => void
  /**
   * Presence: `who` has one more (join) or one fewer (leave) connection
   * subscribed to `ch`. The first join and the last leave of a name are
   * announced to the channel's presence listeners.
   */
  join(ch: string, who: string): Promise<void>
  leave(ch: string, who: string): Promise<void>
  /** Who is subscribed to `ch` now (each name once). */
  members(ch: string): Promise<string[]>
  listenPresence(ch: string, listener: (event: PresenceEvent) => void): () => void
  /** Releases timers and connections. */
  close(): Promise<void>
  /**
   * The channels this engine holds now, for the operator's view (core/observe.ts
   * RealtimeView): each one's messages kept in history and messages published
   * in it so far. Optional: an engine without it shows only the channels with
   * subscribers here, with no history.
   */
  channels?(): Iterable<ChannelStats>
}

/** One channel as an engine holds it (Engine.channels). */
export interface ChannelStats {
  readonly ch: string
  /** Messages kept in its history now. */
  readonly history: number
  /** Messages published in it so far (in this engine's lifetime). */
  readonly published: number
}

export interface PresenceEvent {
  readonly t: 'join' | 'leave'
  readonly ch: string
  readonly who: string
}

import type { Broadcast } from '../core/broadcast.ts'
import type { SharedRateLimitStore, Take } from '../core/rate-limit-store.ts'
import type { Engine, HistoryLimits, Message, Position, PresenceEvent, PublishResult, Since } from '../realtime/engine.ts'

/**
 * A worker's side of the channel to the cluster primary (docs/scale.md,
 * server/cluster.ts): requests answered by the primary (the realtime
 * engine's operations, rate-limit takes), and messages the primary sends on
 * its own (realtime deliveries, broadcasts from the other workers, reload
 * and shutdown). One Node IPC channel carries them all, in order both ways:
 * that order is what makes a worker's subscription safe (it is registered
 * before the history is read) and a publish's delivery come before its
 * answer.
 */

/** Messages a worker sends the primary. */
export type ToPrimary =
  | { readonly t: 'req'; readonly id: number; readonly op: string; readonly args: readonly unknown[] }
  | { readonly t: 'listen'; readonly ns: string; readonly ch: string; readonly on: boolean }
  | { readonly t: 'bc'; readonly topic: string; readonly m: unknown }
  | { readonly t: 'state'; readonly state: 'listening' | 'reloaded' | 'reload-refused' | 'failed'; readonly urls?: readonly string[]; readonly detail?: string }
  /** This worker's metrics (prom-client's JSON) for a `metrics` request; null: it keeps none (no admin listener configured). */
  | { readonly t: 'metrics'; readonly id: number; readonly metrics: readonly unknown[] | null }

/** Messages the primary sends a worker. */
export type ToWorker =
  | { readonly t: 'res'; readonly id: number; readonly ok: boolean; readonly value?: unknown; readonly error?: string }
  | { readonly t: 'msg'; readonly ns: string; readonly m: Message }
  | { readonly t: 'presence'; readonly ns: string; readonly ev: PresenceEvent }
  | { readonly t: 'bc'; readonly topic: string; readonly m: unknown }
  | { readonly t: 'reload' }
  /** The primary gathers the node's metrics: this worker's, please, under `id`. */
  | { readonly t: 'metrics'; readonly id: number }
  | { readonly t: 'reopen-logs' }
  | { readonly t: 'shutdown' }

/** The channel as a worker uses it. */
export class WorkerChannel {
  readonly #send: (m: ToPrimary) => void
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  readonly #handlers = new Map<ToWorker['t'], Set<(m: ToWorker) => void>>()
  #next = 1

  /** `send`: process.send; `receive`: subscribes to the primary's messages (process.on('message')). */
  constructor(send: (m: ToPrimary) => void, receive: (fn: (m: ToWorker) => void) => void) {
    this.#send = send
    receive((m) => {
      if (m.t === 'res') {
        const p = this.#pending.get(m.id)
        if (!p) return
        this.#pending.delete(m.id)
        if (m.ok) p.resolve(m.value)
        else p.reject(new Error(m.error ?? 'the primary refused'))
        return
      }
      for (const fn of this.#handlers.get(m.t) ?? []) fn(m)
    })
  }

  /** Asks the primary to run `op`; settles with its answer. */
  request<T>(op: string, ...args: unknown[]): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#send({ t: 'req', id, op, args })
    })
  }

  send(m: ToPrimary): void {
    this.#send(m)
  }

  on<K extends ToWorker['t']>(t: K, fn: (m: Extract<ToWorker, { t: K }>) => void): () => void {
    let set = this.#handlers.get(t)
    if (!set) this.#handlers.set(t, (set = new Set()))
    const f = fn as (m: ToWorker) => void
    set.add(f)
    return () => set.delete(f)
  }
}

/**
 * The realtime engine of a worker: channels live in the primary's memory
 * engine, so a message published through any worker reaches the
 * subscribers of every worker, in one order, and the history outlives a
 * worker's restart and every reload.
 */
export class WorkerEngine implements Engine {
  readonly #ch: WorkerChannel
  readonly #ns: string
  readonly #listeners = new Map<string, Set<(m: Message) => void>>()
  readonly #presence = new Map<string, Set<(e: PresenceEvent) => void>>()
  readonly #stop: Array<() => void> = []

  constructor(channel: WorkerChannel, namespace: string) {
    this.#ch = channel
    this.#ns = namespace
    this.#stop.push(
      channel.on('msg', (x) => {
        if (x.ns !== this.#ns) return
        for (const fn of this.#listeners.get(x.m.ch) ?? []) fn(Object.freeze(x.m))
      }),
      channel.on('presence', (x) => {
        if (x.ns !== this.#ns) return
        for (const fn of this.#presence.get(x.ev.ch) ?? []) fn(x.ev)
      }),
    )
  }

  publish(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): Promise<PublishResult> {
    return this.#ch.request('rt.publish', this.#ns, ch, data, opts.id, opts.history)
  }

  since(ch: string, after: Position, history: HistoryLimits): Promise<Since> {
    return this.#ch.request('rt.since', this.#ns, ch, after, history)
  }

  position(ch: string): Promise<Position> {
    return this.#ch.request('rt.position', this.#ns, ch)
  }

  /** The first listener of a channel here tells the primary; the primary sends its messages from then on (before answering anything asked after). */
  listen(ch: string, listener: (m: Message) => void): () => void {
    return this.#add(this.#listeners, ch, listener)
  }

  listenPresence(ch: string, listener: (event: PresenceEvent) => void): () => void {
    return this.#add(this.#presence, ch, listener)
  }

  #add<F>(map: Map<string, Set<F>>, ch: string, fn: F): () => void {
    let set = map.get(ch)
    if (!set) {
      map.set(ch, (set = new Set()))
      if (!this.#listening(ch, map)) this.#ch.send({ t: 'listen', ns: this.#ns, ch, on: true })
    }
    set.add(fn)
    const held = set
    return () => {
      held.delete(fn)
      if (held.size > 0 || map.get(ch) !== held) return
      map.delete(ch)
      if (!this.#listening(ch)) this.#ch.send({ t: 'listen', ns: this.#ns, ch, on: false })
    }
  }

  /** Whether anything here listens to `ch` (messages or presence), leaving out `except`. */
  #listening(ch: string, except?: Map<string, unknown>): boolean {
    return (except !== this.#listeners && this.#listeners.has(ch)) || (except !== this.#presence && this.#presence.has(ch))
  }

  join(ch: string, who: string): Promise<void> {
    return this.#ch.request('rt.join', this.#ns, ch, who)
  }

  leave(ch: string, who: string): Promise<void> {
    return this.#ch.request('rt.leave', this.#ns, ch, who)
  }

  members(ch: string): Promise<string[]> {
    return this.#ch.request('rt.members', this.#ns, ch)
  }

  async close(): Promise<void> {
    for (const ch of new Set([...this.#listeners.keys(), ...this.#presence.keys()])) this.#ch.send({ t: 'listen', ns: this.#ns, ch, on: false })
    this.#listeners.clear()
    this.#presence.clear()
    for (const stop of this.#stop) stop()
  }
}

/** Rate limits counted by the primary: every worker of the machine takes from one bucket per key. */
export class WorkerRateLimitStore implements SharedRateLimitStore {
  readonly #ch: WorkerChannel
  constructor(channel: WorkerChannel) {
    this.#ch = channel
  }
  take(key: string, now: number, capacity: number, refillPerMs: number): Promise<Take> {
    return this.#ch.request('rl.take', key, now, capacity, refillPerMs)
  }
}

/** Broadcasts to the other workers of this machine, relayed by the primary. */
export function workerBroadcast(channel: WorkerChannel): Broadcast {
  return {
    async send(topic, message) {
      channel.send({ t: 'bc', topic, m: message })
      return true
    },
    on(topic, fn) {
      return channel.on('bc', (x) => {
        if (x.topic === topic) fn(x.m)
      })
    },
  }
}

import { randomBytes } from 'node:crypto'
import type { RedisBus } from './redis.ts'

/**
 * Messages every other Edgebox process of the deployment hears: the other
 * nodes (over Redis pub/sub) and, later, the other workers of this machine.
 * What one process does that all must do too goes through it: a purge
 * empties every cache. A message is JSON; the sender never hears its own.
 * Delivery is at most once: a process that is cut off when a message goes
 * out does not get it later, so what uses it must be safe to miss (a purge
 * missed leaves an entry to expire on its own) and says when it could not
 * send (`send` resolves false).
 */
export interface Broadcast {
  /** Sends `message` on `topic` to every other process; false if it could not be sent (Redis unreachable). */
  send(topic: string, message: unknown): Promise<boolean>
  /** Calls `fn` with every message another process sends on `topic`, until the returned function is called. */
  on(topic: string, fn: (message: unknown) => void): () => void
}

/** A broadcast over Redis pub/sub: one channel per topic, `<keyPrefix>bc:<topic>`. */
export function redisBroadcast(bus: RedisBus): Broadcast {
  const self = randomBytes(9).toString('base64url')
  const channel = (topic: string) => `${bus.keyPrefix}bc:${topic}`
  return {
    send(topic, message) {
      return bus.publish(channel(topic), JSON.stringify({ from: self, m: message }))
    },
    on(topic, fn) {
      const sub = bus.subscribe(channel(topic), (payload) => {
        let parsed: { from?: unknown; m?: unknown }
        try {
          parsed = JSON.parse(payload) as { from?: unknown; m?: unknown }
        } catch {
          return // not ours
        }
        if (parsed.from !== self) fn(parsed.m)
      })
      return () => sub.stop()
    },
  }
}

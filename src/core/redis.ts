import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from './log.ts'

/**
 * The connection to Redis that several Edgebox nodes share (`redis` in the
 * configuration, docs/scale.md): one connection for commands and one for
 * pub/sub, per process, kept across configuration reloads while the
 * settings are the same. What uses it (the realtime engine, purge
 * broadcast, rate-limit counters, sign-on sessions) goes through this
 * service, so an outage is seen, logged and recovered from in one place:
 *
 * - Commands fail at once while Redis is unreachable (no offline queue, a
 *   short command timeout): each user falls back to its per-node behaviour
 *   instead of waiting.
 * - Subscriptions are made again on every reconnection, and each
 *   subscriber is told once its channel is subscribed again (`resumed`), so
 *   it can read what it missed from a stream before going on.
 */

export interface RedisSettings {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). */
  readonly url: string
  /** Prefix of every key and pub/sub channel Edgebox uses (several deployments can share one Redis). */
  readonly keyPrefix: string
  /** PEM file of the authority that signed a `rediss://` server's certificate (default: the system's). */
  readonly ca?: string | undefined
  /** A command that takes longer fails (and its user falls back). */
  readonly commandTimeout: number
  /** Redis Sentinel: the sentinels to ask for the master `name` (the URL's host is then not used). */
  readonly sentinel?: { readonly name: string; readonly hosts: readonly string[]; readonly password?: string | undefined } | undefined
}

/** A pub/sub subscription's handle. */
export interface Subscription {
  /** Settles once the channel is subscribed (messages published after that are delivered). */
  readonly ready: Promise<void>
  stop(): void
}

export interface RedisBus {
  /** The command connection (fails at once while Redis is down). */
  readonly command: Redis
  readonly keyPrefix: string
  /** This process's name among the users of the Redis (random, new at each start): what its presence entries are kept under. */
  readonly nodeId: string
  /** Whether the command connection is ready now. */
  readonly up: boolean
  readonly settings: RedisSettings
  /**
   * Subscribes to a pub/sub channel (its full name, prefix included):
   * `message` with each payload, in order; `resumed` each time the
   * subscription is made again after Redis was away.
   */
  subscribe(channel: string, message: (payload: string) => void, resumed?: () => void): Subscription
  /** Publishes `payload`; false if Redis is unreachable (nothing was sent). */
  publish(channel: string, payload: string): Promise<boolean>
  /** Called with `true` when Redis becomes reachable again and `false` when it goes away. */
  onChange(fn: (up: boolean) => void): () => void
  /** Waits until the command connection is ready, at most `ms`; false on timeout. */
  whenUp(ms: number): Promise<boolean>
  close(): Promise<void>
}

interface Channel {
  readonly listeners: Set<{ message: (payload: string) => void; resumed: (() => void) | undefined }>
  ready: Promise<void>
}

/** Same settings: the running bus can be kept across a reload. */
export function sameRedis(a: RedisSettings, b: RedisSettings): boolean {
  return a.url === b.url && a.keyPrefix === b.keyPrefix && a.ca === b.ca && a.commandTimeout === b.commandTimeout && JSON.stringify(a.sentinel) === JSON.stringify(b.sentinel)
}

/** Where a URL points, without its password, for logs. */
export function redisTarget(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname === '/' ? '' : u.pathname}`
  } catch {
    return '<invalid redis url>'
  }
}

export function openRedis(settings: RedisSettings, log: Logger): RedisBus {
  const target = settings.sentinel ? `sentinel ${settings.sentinel.name} (${settings.sentinel.hosts.join(', ')})` : redisTarget(settings.url)
  const tls = settings.url.startsWith('rediss:') ? { ...(settings.ca ? { ca: readFileSync(settings.ca, 'utf8') } : {}) } : undefined
  const sentinel = settings.sentinel
  const base: RedisOptions = {
    ...(tls ? { tls } : {}),
    // with Sentinel, ioredis asks the sentinels for the master, and again after a failover
    ...(sentinel
      ? {
          name: sentinel.name,
          sentinels: sentinel.hosts.map((h) => {
            const at = h.lastIndexOf(':')
            return { host: h.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(h.slice(at + 1)) }
          }),
          ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
          ...(tls ? { enableTLSForSentinelMode: true } : {}),
        }
      : {}),
    // reconnect forever, backing off to one attempt a second
    retryStrategy: (times) => Math.min(times * 100, 1_000),
    connectTimeout: 5_000,
    lazyConnect: false,
  }
  const command = new Redis(settings.url, { ...base, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: settings.commandTimeout })
  // the subscriber queues its SUBSCRIBEs until it is connected, and re-subscribes itself on each reconnection (below)
  const sub = new Redis(settings.url, { ...base, autoResubscribe: false, maxRetriesPerRequest: null })
  const channels = new Map<string, Channel>()
  const changes = new Set<(up: boolean) => void>()
  /** unknown until the first connection attempt settles */
  let state: 'unknown' | 'up' | 'down' = 'unknown'
  let closed = false
  let lastError = ''

  const mark = (now: boolean) => {
    const next = now ? 'up' : 'down'
    if (closed || state === next) return
    const was = state
    state = next
    if (now) log.info({ redis: target }, was === 'down' ? 'redis is reachable again: shared state resumes' : 'redis connected')
    else log.warn({ redis: target, err: lastError || undefined }, 'redis is unreachable: realtime delivery, purges and rate limits are per node until it returns')
    for (const fn of changes) fn(now)
  }
  const onError = (err: Error) => {
    lastError = err.message
  }
  command.on('error', onError)
  sub.on('error', onError)
  command.on('ready', () => mark(true))
  command.on('close', () => mark(false))
  command.on('reconnecting', () => mark(false))

  sub.on('message', (channel: string, payload: string) => {
    const c = channels.get(channel)
    if (c) for (const l of c.listeners) l.message(payload)
  })
  let subReady = false
  sub.on('ready', () => {
    const again = subReady
    subReady = true
    if (channels.size === 0) return
    const names = [...channels.keys()]
    const subscribed = sub.subscribe(...names).then(
      () => undefined,
      () => undefined,
    )
    for (const name of names) channels.get(name)!.ready = subscribed
    if (again)
      void subscribed.then(() => {
        for (const name of names) for (const l of channels.get(name)?.listeners ?? []) l.resumed?.()
      })
  })

  return {
    command,
    keyPrefix: settings.keyPrefix,
    nodeId: randomBytes(9).toString('base64url'),
    settings,
    get up() {
      return state === 'up'
    },
    subscribe(channel, message, resumed) {
      let c = channels.get(channel)
      const entry = { message, resumed }
      if (!c) {
        c = { listeners: new Set(), ready: Promise.resolve() }
        channels.set(channel, c)
        c.ready = sub.subscribe(channel).then(
          () => undefined,
          () => undefined,
        )
      }
      c.listeners.add(entry)
      const held = c
      return {
        ready: held.ready,
        stop() {
          held.listeners.delete(entry)
          if (held.listeners.size > 0 || channels.get(channel) !== held) return
          channels.delete(channel)
          if (sub.status === 'ready') void sub.unsubscribe(channel).catch(() => undefined)
        },
      }
    },
    async publish(channel, payload) {
      try {
        await command.publish(channel, payload)
        return true
      } catch {
        return false
      }
    },
    onChange(fn) {
      changes.add(fn)
      return () => changes.delete(fn)
    },
    whenUp(ms) {
      if (state === 'up') return Promise.resolve(true)
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          changes.delete(on)
          resolve(false)
        }, ms)
        timer.unref()
        const on = (now: boolean) => {
          if (!now) return
          clearTimeout(timer)
          changes.delete(on)
          resolve(true)
        }
        changes.add(on)
      })
    },
    async close() {
      closed = true
      changes.clear()
      channels.clear()
      command.disconnect()
      sub.disconnect()
    },
  }
}

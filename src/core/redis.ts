import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
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
 *
 * The Redis is one server, the master Redis Sentinel names, or a Redis
 * Cluster. With a cluster, commands go to the node that serves their key's
 * slot (ioredis follows MOVED and ASK, and the slots after a failover); the
 * keys each script or multi-key command touches share a hash tag, so they
 * are in one slot. Pub/sub is Redis's classic one, which a cluster delivers
 * on every node: the subscriber connection is to any one node, and moves to
 * another when that node goes away.
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
  /** Redis Cluster: some of its nodes, `host:port` (the URL then gives only the user, password and scheme). */
  readonly cluster?: readonly string[] | undefined
}

/** A pub/sub subscription's handle. */
export interface Subscription {
  /** Settles once the channel is subscribed (messages published after that are delivered). */
  readonly ready: Promise<void>
  stop(): void
}

export interface RedisBus {
  /** The command connection (fails at once while Redis is down): to the one server, or to every master of a cluster. */
  readonly command: Redis | Cluster
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
  return (
    a.url === b.url &&
    a.keyPrefix === b.keyPrefix &&
    a.ca === b.ca &&
    a.commandTimeout === b.commandTimeout &&
    JSON.stringify(a.sentinel) === JSON.stringify(b.sentinel) &&
    JSON.stringify(a.cluster) === JSON.stringify(b.cluster)
  )
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

/** host:port (an IPv6 address in brackets) as ioredis takes it. */
function hostPort(h: string): { host: string; port: number } {
  const at = h.lastIndexOf(':')
  return { host: h.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(h.slice(at + 1)) }
}

/** Reconnect forever, backing off to one attempt a second. */
const retry = (times: number): number => Math.min(times * 100, 1_000)

interface Connections {
  readonly command: Redis | Cluster
  /** The pub/sub connection, which does not subscribe again by itself: openRedis does, on each `ready`. */
  readonly sub: Redis
  /** Where it points, without a password, for logs. */
  readonly target: string
}

/** One server, or the master the sentinels name. */
function serverConnections(settings: RedisSettings, tls: RedisOptions['tls']): Connections {
  const sentinel = settings.sentinel
  const base: RedisOptions = {
    ...(tls ? { tls } : {}),
    // with Sentinel, ioredis asks the sentinels for the master, and again after a failover
    ...(sentinel
      ? {
          name: sentinel.name,
          sentinels: sentinel.hosts.map(hostPort),
          ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
          ...(tls ? { enableTLSForSentinelMode: true } : {}),
        }
      : {}),
    retryStrategy: retry,
    connectTimeout: 5_000,
    lazyConnect: false,
  }
  return {
    command: new Redis(settings.url, { ...base, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: settings.commandTimeout }),
    // the subscriber queues its SUBSCRIBEs until it is connected
    sub: new Redis(settings.url, { ...base, autoResubscribe: false, maxRetriesPerRequest: null }),
    target: sentinel ? `sentinel ${sentinel.name} (${sentinel.hosts.join(', ')})` : redisTarget(settings.url),
  }
}

/**
 * A Redis Cluster: the command side is an ioredis Cluster, which learns the
 * slots from any seed that answers and sends each command to its slot's
 * master. Without an offline queue it refuses commands at once while it
 * has no slots (the cluster unreachable); a command for a slot whose master
 * is down fails (by the command timeout at the latest) until a replica
 * takes the slot over.
 *
 * The subscriber is a plain connection to one node of the cluster, since
 * classic pub/sub reaches every node (Redis Cluster specification,
 * "Publish/Subscribe"). ioredis's Cluster also subscribes through one node,
 * but moves its subscriptions to another node without telling, and the bus
 * must tell each subscriber when its subscription is made again
 * (`resumed`), so the subscriber connection is this one: each reconnection
 * goes to another node the cluster has (or a seed), and its `ready` makes
 * the subscriptions again as with one server.
 */
function clusterConnections(settings: RedisSettings, seedList: readonly string[], tls: RedisOptions['tls']): Connections {
  const url = new URL(settings.url)
  const node: RedisOptions = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(tls ? { tls } : {}),
    connectTimeout: 5_000,
  }
  const seeds = seedList.map(hostPort)
  const command = new Cluster(seeds, {
    redisOptions: { ...node, maxRetriesPerRequest: 0, commandTimeout: settings.commandTimeout },
    enableOfflineQueue: false,
    clusterRetryStrategy: retry,
    lazyConnect: false,
  })
  // ioredis connects to a node at its first command; each is connected as soon as it is known instead, so a node that
  // goes away is seen (and dropped) at once, and a cluster all of whose nodes went away is said to be closed (down)
  command.on('+node', (n: Redis) => {
    if (n.status === 'wait') n.connect().catch(() => undefined)
  })
  const key = (n: { host?: string | undefined; port?: number | undefined }) => `${n.host}:${n.port}`
  let turn = 0
  /** The next node to subscribe through: one the cluster has now, or a seed, other than the one just lost. */
  const nextNode = (lost: string): { host: string; port: number } => {
    const known = new Map<string, { host: string; port: number }>()
    for (const n of command.nodes('all')) if (n.options.host && n.options.port) known.set(key(n.options), { host: n.options.host, port: n.options.port })
    for (const s of seeds) known.set(key(s), s)
    const others = [...known.values()].filter((n) => key(n) !== lost)
    const from = others.length > 0 ? others : [...known.values()]
    return from[turn++ % from.length]!
  }
  const sub: Redis = new Redis({
    ...node,
    ...seeds[0]!,
    autoResubscribe: false,
    maxRetriesPerRequest: null,
    // each reconnection tries another node (ioredis connects to its options' host and port at each attempt)
    retryStrategy: (times) => {
      Object.assign(sub.options, nextNode(key(sub.options)))
      return retry(times)
    },
    lazyConnect: false,
  })
  return { command, sub, target: `cluster ${url.protocol}//${url.username ? `${decodeURIComponent(url.username)}@` : ''}${seedList.join(',')}` }
}

export function openRedis(settings: RedisSettings, log: Logger): RedisBus {
  const tls = settings.url.startsWith('rediss:') ? { ...(settings.ca ? { ca: readFileSync(settings.ca, 'utf8') } : {}) } : undefined
  const { command, sub, target } = settings.cluster ? clusterConnections(settings, settings.cluster, tls) : serverConnections(settings, tls)
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
  const onError = (err: Error & { lastNodeError?: Error }) => {
    // a cluster that no seed answers says why through the last node's error
    lastError = err.lastNodeError?.message ?? err.message
  }
  command.on('error', onError)
  // a cluster's node that fails, while the others answer
  command.on('node error', (err: Error, node: string) => {
    lastError = `${node}: ${err.message}`
  })
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

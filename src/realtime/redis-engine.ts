import { randomBytes } from 'node:crypto'
import type { Engine, HistoryLimits, Message, Position, PresenceEvent, PublishResult, Since } from './engine.ts'
import { MemoryEngine } from './memory-engine.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { Logger } from '../core/log.ts'
import type { RedisBus, Subscription } from '../core/redis.ts'

/**
 * The realtime engine that several Edgebox nodes (or workers) share, on
 * Redis (docs/realtime.md, docs/scale.md). Per channel:
 *
 * - `…:m`, a hash: the channel's epoch `e` and latest offset `o`;
 * - `…:s`, a stream: the history, one entry per message with the stream ID
 *   `<offset>-0`, so a position is read with one XRANGE; fields `m` (the
 *   message as JSON), `a` (when it was published) and `i` (its publish id);
 * - `…:i`, a hash: publish id -> offset, for the ids still in the history;
 * - `…:p`, a hash: presence, name -> connections subscribed under it;
 * - one pub/sub channel, on which each message (`m` + JSON) and each
 *   presence event (`p` + JSON) is sent to every node.
 *
 * Publishing is one Lua script (trim, de-duplicate, append, fan out), so a
 * channel's offsets, its history and its fan-out are in one order on every
 * node. Keys carry a hash tag (`{namespace:channel}`), so in a Redis Cluster
 * a channel's keys share a slot.
 *
 * Pub/sub loses what is sent while a node's subscriber is disconnected. Each
 * node remembers the last message it delivered per channel; a message that
 * does not follow it (after a reconnection) makes the node read the missing
 * ones from the stream first, so listeners still get every message once and
 * in order, and a hole the history no longer holds reaches the hub as a gap.
 *
 * While Redis is unreachable the engine degrades to the in-memory engine
 * (this node's subscribers only, under an epoch of its own, which clients see
 * as a gap) and goes back to Redis, reading what it missed, when it returns.
 */

const PUBLISH = `
${trimLua()}
local meta, stream, ids = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
end
local size, age, now = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[6])
trim(stream, ids, size, age, now)
local id = ARGV[4]
if id ~= '' then
  local seen = redis.call('HGET', ids, id)
  if seen then
    local e = redis.call('XRANGE', stream, seen .. '-0', seen .. '-0')
    if #e == 1 then return {1, e[1][2][2]} end
  end
end
local o = redis.call('HINCRBY', meta, 'o', 1)
local idField = ''
if id ~= '' then idField = ',"id":' .. ARGV[5] end
local m = '{"ch":' .. ARGV[2] .. ',"e":"' .. epoch .. '","o":' .. o .. ',"d":' .. ARGV[3] .. idField .. ',"at":' .. ARGV[6] .. '}'
if size > 0 then
  if id ~= '' then
    redis.call('XADD', stream, o .. '-0', 'm', m, 'a', ARGV[6], 'i', id)
    redis.call('HSET', ids, id, o)
  else
    redis.call('XADD', stream, o .. '-0', 'm', m, 'a', ARGV[6])
  end
  trim(stream, ids, size, age, now)
end
redis.call('PUBLISH', ARGV[9], 'm' .. m)
return {0, m}
`

/** Returns {gap, epoch, offset, oldest, message...}. A size below 0 reads without trimming (a node catching up). */
const SINCE = `
${trimLua()}
local meta, stream, ids = KEYS[1], KEYS[2], KEYS[3]
redis.call('HSETNX', meta, 'e', ARGV[1])
redis.call('HSETNX', meta, 'o', 0)
local size, age, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if size >= 0 then trim(stream, ids, size, age, now) end
local cur = redis.call('HMGET', meta, 'e', 'o')
local epoch, off = cur[1], tonumber(cur[2])
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local oldest = off + 1
if #first == 1 then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
local afterE, afterO = ARGV[2], tonumber(ARGV[3])
if afterE ~= epoch or afterO > off or afterO < 0 then return {1, epoch, off, oldest} end
if afterO == off then return {0, epoch, off, oldest} end
if oldest > afterO + 1 then return {1, epoch, off, oldest} end
local out = {0, epoch, off, oldest}
for _, e in ipairs(redis.call('XRANGE', stream, (afterO + 1) .. '-0', '+')) do out[#out + 1] = e[2][2] end
return out
`

const POSITION = `
redis.call('HSETNX', KEYS[1], 'e', ARGV[1])
redis.call('HSETNX', KEYS[1], 'o', 0)
return redis.call('HMGET', KEYS[1], 'e', 'o')
`

/**
 * Presence is kept per node, so a node that dies does not leave its
 * members behind: `…:pn`, the set of nodes with members in the channel;
 * `…:p:<node>`, a hash of that node's names (`w:<name>` -> connections) and
 * when it last said it is alive (`_seen`, refreshed every third of the
 * presence lifetime while it has members). A node whose `_seen` is older
 * than the lifetime is reaped by whichever node looks next: its names that
 * no live node has are announced as left. Every script touches keys of one
 * channel only (one hash-tag slot).
 */
const PRESENCE_LUA = `
local function alive(hash, now, ttl)
  return tonumber(redis.call('HGET', hash, '_seen') or '0') >= now - ttl
end
-- whether a live node other than \`except\` has \`field\`
local function elsewhere(set, base, except, field, now, ttl)
  for _, node in ipairs(redis.call('SMEMBERS', set)) do
    if node ~= except then
      local h = base .. node
      if alive(h, now, ttl) and redis.call('HEXISTS', h, field) == 1 then return true end
    end
  end
  return false
end
local function event(t, ch, who)
  return 'p{"t":"' .. t .. '","ch":' .. ch .. ',"who":' .. cjson.encode(who) .. '}'
end
-- removes dead nodes' names, announcing those no live node has
local function reap(set, base, now, ttl, topic, ch)
  for _, node in ipairs(redis.call('SMEMBERS', set)) do
    local h = base .. node
    if not alive(h, now, ttl) then
      local fields = redis.call('HKEYS', h)
      redis.call('DEL', h)
      redis.call('SREM', set, node)
      for _, f in ipairs(fields) do
        if string.sub(f, 1, 2) == 'w:' and not elsewhere(set, base, '', f, now, ttl) then
          redis.call('PUBLISH', topic, event('leave', ch, string.sub(f, 3)))
        end
      end
    end
  end
end
`

/** KEYS[1]: the channel's node set. ARGV: hash base, node, name, now, ttl, topic, channel as JSON, 'join' | 'leave'. Returns 1 when announced. */
const PRESENCE = `${PRESENCE_LUA}
local set, base, node, who, now, ttl, topic, ch, t = KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
reap(set, base, now, ttl, topic, ch)
local h, f = base .. node, 'w:' .. who
if t == 'join' then
  redis.call('SADD', set, node)
  redis.call('HSET', h, '_seen', now)
  if redis.call('HINCRBY', h, f, 1) ~= 1 or elsewhere(set, base, node, f, now, ttl) then return 0 end
else
  local n = tonumber(redis.call('HGET', h, f) or '0')
  if n <= 0 then return 0 end
  if n > 1 then
    redis.call('HINCRBY', h, f, -1)
    return 0
  end
  redis.call('HDEL', h, f)
  if redis.call('HLEN', h) <= 1 then
    redis.call('DEL', h)
    redis.call('SREM', set, node)
  end
  if elsewhere(set, base, node, f, now, ttl) then return 0 end
end
redis.call('PUBLISH', topic, event(t, ch, who))
return 1
`

/** The live nodes' names (reaping the dead ones first). KEYS[1]: the node set; ARGV: hash base, now, ttl, topic, channel as JSON. */
const MEMBERS = `${PRESENCE_LUA}
local set, base, now, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
reap(set, base, now, ttl, ARGV[4], ARGV[5])
local seen, out = {}, {}
for _, node in ipairs(redis.call('SMEMBERS', set)) do
  for _, f in ipairs(redis.call('HKEYS', base .. node)) do
    if string.sub(f, 1, 2) == 'w:' and not seen[f] then
      seen[f] = true
      out[#out + 1] = string.sub(f, 3)
    end
  end
end
return out
`

/** Drops the oldest entries beyond `size`, then those older than `age` ms, and their publish ids. */
function trimLua(): string {
  return `
local function trim(stream, ids, size, age, now)
  local last = nil
  local drop = redis.call('XLEN', stream) - size
  if drop > 0 then
    for _, e in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', drop)) do
      last = e[1]
      if e[2][6] then redis.call('HDEL', ids, e[2][6]) end
    end
  end
  if age > 0 then
    local cutoff = now - age
    local from = '-'
    if last then from = '(' .. last end
    local more = true
    while more do
      local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', 64)
      if #batch == 0 then break end
      for _, e in ipairs(batch) do
        if tonumber(e[2][4]) >= cutoff then more = false break end
        last = e[1]
        if e[2][6] then redis.call('HDEL', ids, e[2][6]) end
      end
      if last then from = '(' .. last end
    end
  end
  if last then redis.call('XTRIM', stream, 'MINID', (tonumber(string.match(last, '^(%d+)')) + 1) .. '-0') end
end
`
}

type Reply = Array<string | number>

interface RedisScripts {
  ebPublish(meta: string, stream: string, ids: string, ...args: Array<string | number>): Promise<[number, string]>
  ebSince(meta: string, stream: string, ids: string, ...args: Array<string | number>): Promise<Reply>
  ebPosition(meta: string, ...args: string[]): Promise<[string, string]>
  ebPresence(nodes: string, ...args: Array<string | number>): Promise<number>
  ebMembers(nodes: string, ...args: Array<string | number>): Promise<string[]>
}

/** A channel this node listens to: its listeners and where its delivery stands. */
interface Listened {
  readonly ch: string
  readonly listeners: Set<(m: Message) => void>
  readonly presence: Set<(e: PresenceEvent) => void>
  readonly subscription: Subscription
  readonly stopLocal: () => void
  /** The last message from Redis delivered here (null: none yet). */
  last: Position | null
  /**
   * Until a message arrives: the first position read of the channel since
   * it was listened to (every subscriber here stands at or after it), where
   * a catch-up starts from. Re-delivering a message a subscriber has is
   * harmless: the hub drops it by its offset.
   */
  floor: Position | null
  /** Messages that arrived while the missing ones are read (null: not catching up). */
  queue: Message[] | null
  /** A catch-up is running; `again`: one more round was asked for meanwhile. */
  catching: boolean
  again: boolean
  /** Publishes from this node waiting for their message to be delivered here (offset -> resolve). */
  readonly waiting: Map<number, () => void>
  /** Joins and leaves from this node waiting for their event to be heard here (`t who` -> resolves, in order). */
  readonly heard: Map<string, Array<() => void>>
}

/** How long a node's names stay present after it last said it is alive (RedisEngine's presenceTtl). */
const PRESENCE_TTL = 15_000
/** How long a publish waits for its own message to come back before it returns anyway. */
const ECHO_WAIT = 1_000
/** How long a catch-up waits for the command connection, and how many reads it tries, before it lets a hole through. */
const CATCH_UP_WAIT = 2_000
const CATCH_UP_TRIES = 3
const CATCH_UP_PAUSE = 100
/** Messages kept for Redis while it is away (beyond: this node's subscribers only, logged). */
const MAX_OUTBOX = 10_000
/** The publish id given to a message published while Redis was away that had none. */
const REPLAY_ID = 'eb-'

export class RedisEngine implements Engine {
  readonly #bus: RedisBus
  readonly #redis: RedisBus['command'] & RedisScripts
  readonly #clock: Clock
  readonly #log: Logger
  /** Key prefix of this hub's channels (`<keyPrefix>rt:{<namespace>:`). */
  readonly #keys: string
  readonly #topics: string
  /** What serves while Redis is unreachable: this node's memory. */
  readonly #local: MemoryEngine
  readonly #listened = new Map<string, Listened>()
  #fallbackSaid = false
  #closed = false
  /** Messages published here while Redis was away, oldest first, to publish there when it returns. */
  readonly #outbox: Array<{ ch: string; data: unknown; id: string; history: HistoryLimits; localOffset: number }> = []
  /**
   * Per channel published to while Redis was away: the Redis position this
   * node had delivered before (null if it did not listen), and where each
   * of its messages from meanwhile (by the memory engine's offset) landed
   * in Redis, so a subscriber that saw them here resumes right after them.
   */
  readonly #outages = new Map<string, { from: Position | null; landed: Map<number, Position> }>()
  /** Publish ids of this node's outbox messages: their copies from Redis are not delivered here again. */
  readonly #replays = new Set<string>()
  #flushing: Promise<void> | null = null
  #outboxFullSaid = false
  readonly #stopChange: () => void
  readonly #presenceTtl: number
  /** Channels this node has present names in, with how many joins. */
  readonly #present = new Map<string, number>()
  readonly #heartbeat: NodeJS.Timeout

  /**
   * `presenceTtl`: how long a node's names stay present after it last said
   * it is alive (it says so every third of it): how soon the members of a
   * node that died are announced as left (default 15 s).
   */
  constructor(bus: RedisBus, opts: { namespace: string; clock?: Clock; log: Logger; presenceTtl?: number }) {
    this.#bus = bus
    this.#presenceTtl = opts.presenceTtl ?? PRESENCE_TTL
    this.#clock = opts.clock ?? systemClock
    this.#log = opts.log
    this.#local = new MemoryEngine({ clock: this.#clock })
    this.#keys = `${bus.keyPrefix}rt:{${opts.namespace}:`
    this.#topics = `${bus.keyPrefix}rt:${opts.namespace}:`
    const r = bus.command as RedisBus['command'] & Partial<RedisScripts>
    if (r.ebPublish === undefined) {
      r.defineCommand('ebPublish', { numberOfKeys: 3, lua: PUBLISH })
      r.defineCommand('ebSince', { numberOfKeys: 3, lua: SINCE })
      r.defineCommand('ebPosition', { numberOfKeys: 1, lua: POSITION })
      r.defineCommand('ebPresence', { numberOfKeys: 1, lua: PRESENCE })
      r.defineCommand('ebMembers', { numberOfKeys: 1, lua: MEMBERS })
    }
    this.#redis = r as RedisBus['command'] & RedisScripts
    this.#stopChange = bus.onChange((up) => {
      if (up && this.#outbox.length > 0) void this.#flush()
    })
    this.#heartbeat = setInterval(() => this.#beat(), Math.max(100, Math.floor(this.#presenceTtl / 3)))
    this.#heartbeat.unref()
  }

  /**
   * Every third of the presence lifetime: this node is alive in each channel
   * it has names in, and the channels whose presence it listens to are
   * reaped (a dead node's names announced as left, within the lifetime).
   */
  #beat(): void {
    if (!this.#bus.up) return
    const now = this.#clock.now()
    for (const ch of this.#present.keys()) void this.#redis.hset(this.#key(ch, 'p:') + this.#bus.nodeId, '_seen', now).catch(() => undefined)
    for (const l of this.#listened.values()) if (l.presence.size > 0) void this.members(l.ch).catch(() => undefined)
  }

  #key(ch: string, part: 'm' | 's' | 'i' | 'pn' | 'p:'): string {
    return `${this.#keys}${ch}}:${part}`
  }

  /** Whether to use Redis now; logs the first fallback of each outage. */
  #useRedis(): boolean {
    if (this.#bus.up) {
      this.#fallbackSaid = false
      return true
    }
    return this.#fallback()
  }

  #fallback(err?: unknown): false {
    if (!this.#fallbackSaid) {
      this.#fallbackSaid = true
      this.#log.warn({ err: err instanceof Error ? err.message : undefined }, 'realtime: redis is unreachable, messages reach this node only until it returns (clients see a gap)')
    }
    return false
  }

  async publish(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): Promise<PublishResult> {
    if (!this.#useRedis()) return this.#publishHere(ch, data, opts)
    // what was published here while Redis was away goes first, so every node gets this node's messages in order
    if (this.#outbox.length > 0) await this.#flush()
    if (this.#outbox.length > 0) return this.#publishHere(ch, data, opts)
    const l = this.#listened.get(ch)
    if (l) await l.subscription.ready
    let reply: [number, string]
    try {
      reply = await this.#send(ch, data, opts.id, opts.history)
    } catch (err) {
      this.#fallback(err)
      return this.#publishHere(ch, data, opts)
    }
    const message = parse(reply[1])
    if (reply[0] === 1) return { message, duplicate: true }
    // Listeners here hear of it before the publish returns, as with one process.
    if (l && l.listeners.size > 0) await this.#delivered(l, message)
    return { message, duplicate: false }
  }

  #send(ch: string, data: unknown, id: string | undefined, history: HistoryLimits): Promise<[number, string]> {
    return this.#redis.ebPublish(
      this.#key(ch, 'm'),
      this.#key(ch, 's'),
      this.#key(ch, 'i'),
      newEpoch(),
      JSON.stringify(ch),
      JSON.stringify(data) ?? 'null',
      id ?? '',
      id === undefined ? '' : JSON.stringify(id),
      this.#clock.now(),
      history.size,
      history.age,
      this.#topics + ch,
    )
  }

  /**
   * Redis is away: the message reaches this node's subscribers now (under
   * the memory engine's epoch) and waits in the outbox for Redis, which
   * gives it to every other node when it returns. It gets a publish id if
   * it has none, so this node knows its own copy when it comes back (its
   * subscribers have it already) and Redis never stores it twice.
   */
  #publishHere(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): PublishResult {
    const res = this.#local.publishNow(ch, data, opts)
    if (res.duplicate) return res
    if (this.#outbox.length >= MAX_OUTBOX) {
      if (!this.#outboxFullSaid) this.#log.warn({ max: MAX_OUTBOX }, 'realtime: the outbox for redis is full; messages published here from now on reach this node only')
      this.#outboxFullSaid = true
      return res
    }
    const id = opts.id ?? `${REPLAY_ID}${randomBytes(9).toString('base64url')}`
    this.#replays.add(id)
    this.#outbox.push({ ch, data, id, history: opts.history, localOffset: res.message.o })
    if (!this.#outages.has(ch)) this.#outages.set(ch, { from: this.#listened.get(ch)?.last ?? null, landed: new Map() })
    return res
  }

  /** Publishes the outbox to Redis, in order; stops at the first failure (the rest waits for the next reconnection). */
  #flush(): Promise<void> {
    this.#flushing ??= (async () => {
      let sent = 0
      try {
        while (this.#outbox.length > 0 && this.#bus.up) {
          const m = this.#outbox[0]!
          let reply: [number, string]
          try {
            reply = await this.#send(m.ch, m.data, m.id, m.history)
          } catch {
            break
          }
          this.#outbox.shift()
          const landed = parse(reply[1])
          this.#outages.get(m.ch)?.landed.set(m.localOffset, { e: landed.e, o: landed.o })
          // already in Redis (a publisher's retry reached another node): no copy of it comes back
          if (reply[0] === 1) this.#replays.delete(m.id)
          sent++
          // a channel nobody here listens to will not echo it back: forget the id once its echo would have come
          if (!this.#listened.has(m.ch)) setTimeout(() => this.#replays.delete(m.id), ECHO_WAIT).unref()
        }
      } finally {
        this.#flushing = null
      }
      if (sent > 0) this.#log.info({ sent, left: this.#outbox.length }, 'realtime: messages published here while redis was away are now shared')
      if (this.#outbox.length === 0) this.#outboxFullSaid = false
    })()
    return this.#flushing
  }

  /** Settles once `m` has been delivered to this node's listeners (or after ECHO_WAIT). */
  #delivered(l: Listened, m: Message): Promise<void> {
    const last = l.last
    if (last !== null && last.e === m.e && last.o >= m.o) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ECHO_WAIT)
      function done() {
        clearTimeout(timer)
        l.waiting.delete(m.o)
        resolve()
      }
      l.waiting.set(m.o, done)
    })
  }

  async since(ch: string, after: Position, history: HistoryLimits): Promise<Since> {
    if (!this.#useRedis()) return this.#sinceHere(ch, after, history)
    const l = this.#listened.get(ch)
    if (l) await l.subscription.ready
    try {
      const s = (await this.#resumedHere(ch, after, history)) ?? (await this.#since(ch, after, history.size, history.age))
      if (l && l.floor === null) l.floor = s.position
      return s
    } catch (err) {
      this.#fallback(err)
      return this.#sinceHere(ch, after, history)
    }
  }

  /**
   * `since` while Redis is away. A subscriber at a Redis position stays
   * there (nothing is known of it here) unless this node has published to
   * the channel meanwhile: then it goes on, after a gap, from the first of
   * those messages in the memory engine's epoch. Messages published here in
   * an earlier outage are in Redis by now, and no subscriber is sent back
   * to them.
   */
  #sinceHere(ch: string, after: Position, history: HistoryLimits): Since {
    const local = this.#local.epochOf(ch)
    if (after.e !== local) {
      const first = this.#outbox.find((m) => m.ch === ch)
      if (first === undefined) {
        // what Redis has after it is read when Redis returns (see `floor`), so none of it reaches the subscriber with a hole
        const l = this.#listened.get(ch)
        if (l && l.last === null && l.floor === null) l.floor = after
        return { gap: false, messages: [], position: after }
      }
      const s = this.#local.sinceNow(ch, after, history)
      return { gap: true, messages: [], position: s.position, oldest: Math.max(first.localOffset, s.oldest ?? first.localOffset) }
    }
    return this.#local.sinceNow(ch, after, history)
  }

  /**
   * A subscriber that followed the channel here while Redis was away stands
   * in the memory engine's epoch: it has this node's messages from then up
   * to its offset, and resumes right after where the last of them landed in
   * Redis (a gap there: messages other nodes published before it landed
   * may be missing, never one it has already). One whose position is not
   * known there (it subscribed here while Redis was away, or its messages
   * never reached Redis) goes on from the channel's current position, after
   * a gap: never from the start of Redis's history, which it may have had.
   * Undefined for a position not in the memory engine's epoch.
   */
  async #resumedHere(ch: string, after: Position, history: HistoryLimits): Promise<Since | undefined> {
    if (after.e !== this.#local.epochOf(ch)) return undefined
    const outage = this.#outages.get(ch)
    const at = (after.o === 0 ? outage?.from : outage?.landed.get(after.o)) ?? null
    if (at === null) {
      const [e, o] = await this.#redis.ebPosition(this.#key(ch, 'm'), newEpoch())
      return { gap: true, messages: [], position: { e, o: Number(o) }, oldest: Number(o) + 1 }
    }
    const s = await this.#since(ch, at, history.size, history.age)
    if (s.gap) return s
    // the hub goes on from `oldest - 1`: just after the subscriber's last message
    return { gap: true, messages: [], position: s.position, oldest: at.o + 1 }
  }

  async #since(ch: string, after: Position, size: number, age: number): Promise<Since> {
    const r = await this.#redis.ebSince(this.#key(ch, 'm'), this.#key(ch, 's'), this.#key(ch, 'i'), newEpoch(), after.e, after.o, size, age, this.#clock.now())
    const position = { e: String(r[1]), o: Number(r[2]) }
    const oldest = Number(r[3])
    if (Number(r[0]) === 1) return { gap: true, messages: [], position, oldest }
    const messages: Message[] = []
    for (let i = 4; i < r.length; i++) messages.push(parse(String(r[i])))
    return { gap: false, messages, position }
  }

  async position(ch: string): Promise<Position> {
    if (!this.#useRedis()) return this.#local.position(ch)
    const l = this.#listened.get(ch)
    if (l) await l.subscription.ready
    try {
      const [e, o] = await this.#redis.ebPosition(this.#key(ch, 'm'), newEpoch())
      const p = { e, o: Number(o) }
      if (l && l.floor === null) l.floor = p
      return p
    } catch (err) {
      this.#fallback(err)
      return this.#local.position(ch)
    }
  }

  listen(ch: string, listener: (m: Message) => void): () => void {
    const l = this.#listen(ch)
    l.listeners.add(listener)
    return () => {
      l.listeners.delete(listener)
      this.#release(l)
    }
  }

  listenPresence(ch: string, listener: (event: PresenceEvent) => void): () => void {
    const l = this.#listen(ch)
    l.presence.add(listener)
    const stopLocal = this.#local.listenPresence(ch, listener)
    return () => {
      stopLocal()
      l.presence.delete(listener)
      this.#release(l)
    }
  }

  #listen(ch: string): Listened {
    let l = this.#listened.get(ch)
    if (l) return l
    const listeners = new Set<(m: Message) => void>()
    const created: Listened = {
      ch,
      listeners,
      presence: new Set(),
      subscription: this.#bus.subscribe(
        this.#topics + ch,
        (payload) => this.#received(created, payload),
        () => this.#catchUp(created),
      ),
      // while Redis is away, this node's own publishes reach its listeners through the memory engine
      stopLocal: this.#local.listen(ch, (m) => {
        for (const fn of listeners) fn(m)
      }),
      last: null,
      floor: null,
      queue: null,
      catching: false,
      again: false,
      waiting: new Map(),
      heard: new Map(),
    }
    l = created
    this.#listened.set(ch, l)
    return l
  }

  #release(l: Listened): void {
    if (l.listeners.size > 0 || l.presence.size > 0 || this.#listened.get(l.ch) !== l) return
    this.#listened.delete(l.ch)
    l.subscription.stop()
    l.stopLocal()
  }

  #received(l: Listened, payload: string): void {
    if (payload.charCodeAt(0) === 0x70 /* p */) {
      const event = JSON.parse(payload.slice(1)) as PresenceEvent
      for (const fn of l.presence) fn(event)
      if (l.heard.size > 0) l.heard.get(`${event.t} ${event.who}`)?.shift()?.()
      return
    }
    const m = parse(payload.slice(1))
    if (l.queue !== null) {
      l.queue.push(m)
      return
    }
    const at = l.last ?? l.floor
    if (at !== null) {
      if (at.e === m.e && m.o <= at.o) return // already delivered (read while catching up)
      if (at.e === m.e ? m.o > at.o + 1 : m.o > 1) {
        // messages went by while this node was not subscribed (or the channel began anew meanwhile): read them first
        l.queue = [m]
        void this.#catchUp(l)
        return
      }
    }
    this.#deliver(l, m)
  }

  #deliver(l: Listened, m: Message): void {
    l.last = m
    // this node's own message from while Redis was away: its subscribers have it already
    if (m.id !== undefined && this.#replays.size > 0 && this.#replays.delete(m.id)) return
    for (const fn of l.listeners) fn(m)
    if (l.waiting.size > 0) l.waiting.get(m.o)?.()
  }

  /**
   * Reads the messages after the last one delivered here from the history,
   * delivers them, then what arrived meanwhile. One at a time per channel:
   * a call while one runs makes it go round once more.
   */
  async #catchUp(l: Listened): Promise<void> {
    if (l.queue === null) l.queue = []
    if (l.catching) {
      l.again = true
      return
    }
    l.catching = true
    try {
      do {
        l.again = false
        const from = l.last ?? l.floor
        let missed: readonly Message[] = []
        if (from !== null) missed = await this.#missed(l.ch, from)
        const queued = l.queue
        l.queue = []
        // delivery is synchronous: nothing arrives until the loop is done
        for (const m of [...missed, ...queued]) {
          const at = l.last ?? l.floor
          if (at !== null && at.e === m.e && m.o <= at.o) continue
          this.#deliver(l, m)
        }
      } while (l.again)
    } finally {
      l.catching = false
      l.queue = null
    }
  }

  /**
   * The messages after `from` that Redis holds, for a catch-up. The
   * subscriber connection may come back before the command connection
   * (each reconnects on its own): the read waits for it (CATCH_UP_WAIT, a
   * few tries) rather than delivering what arrived meanwhile with a hole
   * before it. Empty when Redis stays away or the history no longer
   * reaches back: the next message shows the hole, and the hub says `gap`.
   */
  async #missed(ch: string, from: Position): Promise<readonly Message[]> {
    for (let tries = 1; ; tries++) {
      try {
        let s = await this.#since(ch, from, -1, 0)
        if (s.gap && s.position.e !== from.e) {
          // the channel began anew in Redis (restarted empty, its keys lost): the new epoch from its start, as the hub does
          s = await this.#since(ch, { e: s.position.e, o: Math.max(0, (s.oldest ?? 1) - 1) }, -1, 0)
        }
        return s.gap ? [] : s.messages
      } catch {
        if (tries >= CATCH_UP_TRIES || this.#closed) return []
        if (this.#bus.up) await new Promise((r) => setTimeout(r, CATCH_UP_PAUSE).unref())
        else if (!(await this.#bus.whenUp(CATCH_UP_WAIT))) return []
      }
    }
  }

  async join(ch: string, who: string): Promise<void> {
    return this.#presence(ch, who, 'join')
  }

  async leave(ch: string, who: string): Promise<void> {
    return this.#presence(ch, who, 'leave')
  }

  /** A join or leave: counted in Redis; the first join and last leave of a name are announced to every node, and heard here before it returns. */
  async #presence(ch: string, who: string, t: 'join' | 'leave'): Promise<void> {
    if (!this.#useRedis()) return this.#local[t](ch, who)
    const l = this.#listened.get(ch)
    if (l) await l.subscription.ready
    // listeners here hear the event before this returns: wait for it from before it is sent (pub/sub may beat the reply)
    const echo = l && l.presence.size > 0 ? heardOn(l, `${t} ${who}`) : undefined
    let announced: number
    try {
      announced = await this.#redis.ebPresence(this.#key(ch, 'pn'), this.#key(ch, 'p:'), this.#bus.nodeId, who, this.#clock.now(), this.#presenceTtl, this.#topics + ch, JSON.stringify(ch), t)
      // this node's names in the channel are kept alive by the heartbeat while it has any
      const n = (this.#present.get(ch) ?? 0) + (t === 'join' ? 1 : -1)
      if (n > 0) this.#present.set(ch, n)
      else this.#present.delete(ch)
    } catch (err) {
      echo?.cancel()
      this.#fallback(err)
      return this.#local[t](ch, who)
    }
    if (announced === 1) await echo?.heard
    else echo?.cancel()
  }

  async members(ch: string): Promise<string[]> {
    if (!this.#useRedis()) return this.#local.members(ch)
    try {
      return await this.#redis.ebMembers(this.#key(ch, 'pn'), this.#key(ch, 'p:'), this.#clock.now(), this.#presenceTtl, this.#topics + ch, JSON.stringify(ch))
    } catch (err) {
      this.#fallback(err)
      return this.#local.members(ch)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#stopChange()
    clearInterval(this.#heartbeat)
    if (this.#outbox.length > 0 && this.#bus.up) await this.#flush()
    for (const l of this.#listened.values()) {
      l.subscription.stop()
      l.stopLocal()
      for (const done of l.waiting.values()) done()
    }
    this.#listened.clear()
    await this.#local.close()
  }
}

/** Waits for a presence event to be heard on this node (at most ECHO_WAIT). */
function heardOn(l: Listened, key: string): { heard: Promise<void>; cancel(): void } {
  let done = () => {}
  const heard = new Promise<void>((resolve) => {
    const timer = setTimeout(() => done(), ECHO_WAIT)
    done = () => {
      clearTimeout(timer)
      const list = l.heard.get(key)
      const k = list?.indexOf(done) ?? -1
      if (k >= 0) list!.splice(k, 1)
      if (list?.length === 0) l.heard.delete(key)
      resolve()
    }
  })
  const list = l.heard.get(key)
  if (list) list.push(done)
  else l.heard.set(key, [done])
  return { heard, cancel: done }
}

/** A fresh epoch, offered to a channel Redis does not hold yet (the first offer wins). */
function newEpoch(): string {
  return randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')
}

function parse(json: string): Message {
  return Object.freeze(JSON.parse(json) as Message)
}

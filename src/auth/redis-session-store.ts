import type { RedisBus } from '../core/redis.ts'
import { fromStored, SESSION_STORE_CLOSED, toStored, type SessionRecord, type SessionStore, type SessionTokens, type StoredSession } from './session-store.ts'

/**
 * Single sign-on sessions in Redis (docs/sso.md, docs/scale.md), so a user
 * signed in through one node is signed in on every node sharing the Redis.
 *
 * - `<p>{sso}:s:<key>`, a hash: the record's fields (a null field is
 *   absent; claims as JSON text);
 * - `<p>{sso}:sub:<provider, sub>` and `<p>{sso}:sid:<provider, sid>`, sets
 *   of keys: back-channel logout and user removal find sessions by them;
 * - `<p>{sso}:end` and `<p>{sso}:seen`, sorted sets of keys by absolute
 *   end and by last request: what `sweep` removes is a range of them.
 *
 * Every change is one Lua script, so a session and its indexes change
 * together. There is no expiry in Redis: the stores' contract is that a
 * session is kept until swept (the caller judges its times). The keys share the `{sso}` hash tag: in a Redis Cluster they
 * live in one slot, as a script needs. Each script is given one of the keys it touches (KEYS[1]; the others it
 * builds from the prefix), so a cluster runs it on the node that serves that slot.
 */

const FIELDS = ['provider', 'sub', 'sid', 'claimsJson', 'idToken', 'accessToken', 'refreshToken', 'tokenExpiresAt', 'createdAt', 'lastSeenAt', 'expiresAt'] as const

/** Removes a session and its index entries (a Lua function shared by the scripts). */
const REMOVE = `
local function remove(p, key)
  local s = p .. 's:' .. key
  local f = redis.call('HMGET', s, '_sub', '_sid')
  if not f[1] then return 0 end
  redis.call('DEL', s)
  redis.call('SREM', p .. f[1], key)
  if f[2] then redis.call('SREM', p .. f[2], key) end
  redis.call('ZREM', p .. 'end', key)
  redis.call('ZREM', p .. 'seen', key)
  return 1
end
`

/**
 * KEYS[1]: the session's hash. ARGV: prefix, key, its subject index (`sub:...`), its sid index
 * (`sid:...` or ''), lastSeenAt, expiresAt, then the field/value pairs.
 * The index names are kept in the hash (`_sub`, `_sid`), so a removal
 * finds them without rebuilding them.
 */
const PUT = `${REMOVE}
local p, key = ARGV[1], ARGV[2]
remove(p, key)
local s = p .. 's:' .. key
redis.call('HSET', s, '_sub', ARGV[3])
redis.call('SADD', p .. ARGV[3], key)
if ARGV[4] ~= '' then
  redis.call('HSET', s, '_sid', ARGV[4])
  redis.call('SADD', p .. ARGV[4], key)
end
for i = 7, #ARGV, 2 do redis.call('HSET', s, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', p .. 'seen', ARGV[5], key)
redis.call('ZADD', p .. 'end', ARGV[6], key)
return 1
`

const TOUCH = `
local s = ARGV[1] .. 's:' .. ARGV[2]
local seen = redis.call('HGET', s, 'lastSeenAt')
if seen and tonumber(ARGV[3]) > tonumber(seen) then
  redis.call('HSET', s, 'lastSeenAt', ARGV[3])
  redis.call('ZADD', ARGV[1] .. 'seen', ARGV[3], ARGV[2])
end
return 0
`

/** KEYS[1]: the session's hash. ARGV: prefix, key, idToken, then accessToken, refreshToken, tokenExpiresAt ('' for null). */
const TOKENS = `
local s = ARGV[1] .. 's:' .. ARGV[2]
if redis.call('EXISTS', s) == 0 then return 0 end
redis.call('HSET', s, 'idToken', ARGV[3])
local names = {'accessToken', 'refreshToken', 'tokenExpiresAt'}
for i = 1, 3 do
  if ARGV[3 + i] == '' then redis.call('HDEL', s, names[i]) else redis.call('HSET', s, names[i], ARGV[3 + i]) end
end
return 1
`

const DELETE = `${REMOVE}
return remove(ARGV[1], ARGV[2])
`

/** KEYS[1]: the index set. ARGV: prefix, index key (sub:... or sid:...), withoutSid ('1' or ''). Returns the deleted keys. */
const DELETE_BY = `${REMOVE}
local p = ARGV[1]
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', p .. ARGV[2])) do
  if ARGV[3] ~= '1' or redis.call('HEXISTS', p .. 's:' .. key, 'sid') == 0 then
    if remove(p, key) == 1 then out[#out + 1] = key end
  end
end
return out
`

/** KEYS[1]: the `end` set. ARGV: prefix, now, now - idle. */
const SWEEP = `${REMOVE}
local p = ARGV[1]
local n = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', p .. 'end', '-inf', ARGV[2])) do n = n + remove(p, key) end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', p .. 'seen', '-inf', ARGV[3])) do n = n + remove(p, key) end
return n
`

interface Scripts {
  ebSsoPut(...args: string[]): Promise<number>
  ebSsoTouch(...args: string[]): Promise<number>
  ebSsoTokens(...args: string[]): Promise<number>
  ebSsoDelete(...args: string[]): Promise<number>
  ebSsoDeleteBy(...args: string[]): Promise<string[]>
  ebSsoSweep(...args: string[]): Promise<number>
}

export class RedisSessionStore implements SessionStore {
  readonly #redis: RedisBus['command'] & Scripts
  /** `<keyPrefix>{sso}:` (or another name space, for tests). */
  readonly #p: string
  #closed = false

  constructor(bus: RedisBus, space = 'sso') {
    const r = bus.command as RedisBus['command'] & Partial<Scripts>
    if (r.ebSsoPut === undefined) {
      r.defineCommand('ebSsoPut', { numberOfKeys: 1, lua: PUT })
      r.defineCommand('ebSsoTouch', { numberOfKeys: 1, lua: TOUCH })
      r.defineCommand('ebSsoTokens', { numberOfKeys: 1, lua: TOKENS })
      r.defineCommand('ebSsoDelete', { numberOfKeys: 1, lua: DELETE })
      r.defineCommand('ebSsoDeleteBy', { numberOfKeys: 1, lua: DELETE_BY })
      r.defineCommand('ebSsoSweep', { numberOfKeys: 1, lua: SWEEP })
    }
    this.#redis = r as RedisBus['command'] & Scripts
    this.#p = `${bus.keyPrefix}{${space}}:`
  }

  #check(): void {
    if (this.#closed) throw new Error(SESSION_STORE_CLOSED)
  }

  async get(key: string): Promise<SessionRecord | undefined> {
    this.#check()
    const h = await this.#redis.hgetall(`${this.#p}s:${key}`)
    if (h.provider === undefined) return undefined
    const num = (v: string | undefined) => (v === undefined ? null : Number(v))
    const stored: StoredSession = {
      key,
      provider: h.provider,
      sub: h.sub!,
      sid: h.sid ?? null,
      claimsJson: h.claimsJson!,
      idToken: h.idToken!,
      accessToken: h.accessToken ?? null,
      refreshToken: h.refreshToken ?? null,
      tokenExpiresAt: num(h.tokenExpiresAt),
      createdAt: Number(h.createdAt),
      lastSeenAt: Number(h.lastSeenAt),
      expiresAt: Number(h.expiresAt),
    }
    return fromStored(stored)
  }

  async put(record: SessionRecord): Promise<void> {
    this.#check()
    const s = toStored(record)
    const args: string[] = [this.#p, s.key, `sub:${pairKey(s.provider, s.sub)}`, s.sid === null ? '' : `sid:${pairKey(s.provider, s.sid)}`, String(s.lastSeenAt), String(s.expiresAt)]
    for (const f of FIELDS) {
      const v = s[f]
      if (v !== null) args.push(f, String(v))
    }
    await this.#redis.ebSsoPut(`${this.#p}s:${s.key}`, ...args)
  }

  async touch(key: string, lastSeenAt: number): Promise<void> {
    this.#check()
    await this.#redis.ebSsoTouch(`${this.#p}s:${key}`, this.#p, key, String(lastSeenAt))
  }

  async updateTokens(key: string, tokens: SessionTokens): Promise<void> {
    this.#check()
    const or = (v: string | number | null) => (v === null ? '' : String(v))
    await this.#redis.ebSsoTokens(`${this.#p}s:${key}`, this.#p, key, tokens.idToken, or(tokens.accessToken), or(tokens.refreshToken), or(tokens.tokenExpiresAt))
  }

  async delete(key: string): Promise<boolean> {
    this.#check()
    return (await this.#redis.ebSsoDelete(`${this.#p}s:${key}`, this.#p, key)) === 1
  }

  async deleteBySubject(provider: string, sub: string, withoutSid = false): Promise<string[]> {
    this.#check()
    const index = `sub:${pairKey(provider, sub)}`
    return this.#redis.ebSsoDeleteBy(this.#p + index, this.#p, index, withoutSid ? '1' : '')
  }

  async deleteBySid(provider: string, sid: string): Promise<string[]> {
    this.#check()
    const index = `sid:${pairKey(provider, sid)}`
    return this.#redis.ebSsoDeleteBy(this.#p + index, this.#p, index, '')
  }

  async sweep(now: number, idleMs: number): Promise<number> {
    this.#check()
    return this.#redis.ebSsoSweep(`${this.#p}end`, this.#p, String(now), String(now - idleMs))
  }

  /** Stops using the store; the connection is the process's (core/redis.ts) and stays open. */
  async close(): Promise<void> {
    this.#closed = true
  }
}

/** The index key of a (provider, value) pair; JSON keeps any two pairs apart whatever characters they hold. */
function pairKey(provider: string, value: string): string {
  return JSON.stringify([provider, value])
}

import { createHash, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Clock, Timer } from '../core/clock.ts'
import type { Broadcast } from '../core/broadcast.ts'
import type { Logger } from '../core/log.ts'
import type { SessionRecord, SessionStore } from './session-store.ts'

/**
 * Signed-in sessions: the store (session-store.ts) with a bounded memory
 * cache in front (by the id itself, in this process's memory only), so a
 * request with a known session reads no database and computes no hash. The
 * browser holds only the session id (32 random bytes, base64url); the store
 * knows its SHA-256 (`key`), so neither a copy of the database nor a log line
 * gives a usable cookie.
 *
 * Times: a session ends `idleMs` after its last request, or `absoluteMs`
 * after its login, whichever comes first. The last request's time is kept in
 * memory on every request and written to the store at most once a minute (or
 * once per tenth of the idle timeout, if shorter).
 */

export interface SessionTimes {
  readonly idleMs: number
  readonly absoluteMs: number
}

/** A session as the gate uses it: its record and what this process keeps beside it. */
export interface LiveSession {
  /** The id the cookie holds: this process's memory only (the cache's key, so a known session costs no hash); never stored or logged. */
  readonly id: string
  readonly key: string
  record: SessionRecord
  /** The last request seen here (the record's lastSeenAt is what the store last heard). */
  lastSeenAt: number
  /** A token refresh under way: one per session at a time. */
  refreshing: Promise<void> | null
  /** Per-route views made from this session (the identity a route's handler and upstream see), by the route's gate. */
  readonly views: Map<object, unknown>
}

/** What a new session starts with. */
export type NewSession = Omit<SessionRecord, 'key' | 'createdAt' | 'lastSeenAt' | 'expiresAt'>

/** base64url SHA-256 of a session id: the key the store knows it by. */
export function sessionKey(id: string): string {
  return createHash('sha256').update(id).digest('base64url')
}

/** The broadcast topic of ended sessions (their keys). */
const ENDED_TOPIC = 'sso:ended'

/** A session id is 32 bytes in base64url: 43 characters of the URL-safe alphabet. */
const ID = /^[A-Za-z0-9_-]{43}$/

export class Sessions {
  readonly store: SessionStore
  private readonly times: SessionTimes
  private readonly clock: Clock
  private readonly log: Logger
  private readonly cache: LRUCache<string, LiveSession>
  /** Store reads under way, by id. */
  private readonly loading = new Map<string, Promise<LiveSession | null>>()
  private readonly touchEvery: number
  private readonly sweeper: Timer

  /** Says which sessions ended here to the other processes sharing the store; null: none to tell. */
  private readonly broadcast: Broadcast | null
  private readonly stopHearing: () => void

  /**
   * `broadcast`: the other processes that share the store (the machine's
   * workers, the nodes on the same Redis) hear of each session ended here
   * and drop it from their caches at once; one that misses it (Redis away)
   * finds the session gone at its next store check, within `touchEvery`.
   */
  constructor(store: SessionStore, times: SessionTimes, cacheSize: number, clock: Clock, log: Logger, broadcast?: Broadcast) {
    this.store = store
    this.times = times
    this.clock = clock
    this.log = log
    this.cache = new LRUCache({ max: Math.max(1, cacheSize) })
    this.touchEvery = Math.min(60_000, Math.max(1_000, Math.floor(times.idleMs / 10)))
    // expired sessions leave the store even when their browsers never come back
    this.sweeper = clock.setInterval(() => void this.sweep(), Math.min(times.idleMs, 10 * 60_000))
    this.sweeper.unref()
    this.broadcast = broadcast ?? null
    this.stopHearing = broadcast
      ? broadcast.on(ENDED_TOPIC, (m) => {
          const keys = (m as { keys?: unknown } | null)?.keys
          if (Array.isArray(keys)) this.forget(keys.filter((k): k is string => typeof k === 'string'))
        })
      : () => {}
  }

  /** Drops sessions another process ended from this process's cache. */
  forget(keys: readonly string[]): void {
    if (keys.length === 0) return
    const gone = new Set(keys)
    const ids: string[] = []
    for (const [id, s] of this.cache.entries()) if (gone.has(s.key)) ids.push(id)
    for (const id of ids) this.cache.delete(id)
  }

  /** Tells the other processes sharing the store that these sessions ended. */
  private announce(keys: readonly string[]): void {
    if (this.broadcast === null || keys.length === 0) return
    this.broadcast.send(ENDED_TOPIC, { keys }).then(
      (sent) => {
        if (!sent) this.log.warn({ sessions: keys.length }, 'ended sessions could not be announced to the other processes; they drop them at their next store check')
      },
      (err: unknown) => this.log.warn({ err }, 'ended sessions could not be announced'),
    )
  }

  /** Starts a session: a new id (never one the browser brought: no fixation), stored before it is returned. */
  async create(data: NewSession): Promise<{ id: string; session: LiveSession }> {
    const id = randomBytes(32).toString('base64url')
    const now = this.clock.now()
    const record: SessionRecord = { ...data, key: sessionKey(id), createdAt: now, lastSeenAt: now, expiresAt: now + this.times.absoluteMs }
    await this.store.put(record)
    const session = this.live(id, record)
    return { id, session }
  }

  /**
   * The live session a cookie names, or null (unknown, malformed, ended,
   * expired: an expired one is deleted). From the cache without waiting;
   * from the store otherwise.
   */
  find(id: string): LiveSession | null | Promise<LiveSession | null> {
    const cached = this.cache.get(id)
    if (cached) return this.check(cached)
    if (!ID.test(id)) return null
    // requests that arrive together for a session not in memory share one read, and so one LiveSession (one refresh)
    let loading = this.loading.get(id)
    if (!loading) {
      loading = this.store.get(sessionKey(id)).then(
        (record) => {
          this.loading.delete(id)
          return record ? (this.cache.get(id) ?? this.live(id, record)) : null
        },
        (err: unknown) => {
          this.loading.delete(id)
          throw err
        },
      )
      this.loading.set(id, loading)
    }
    return loading.then((s) => (s ? this.check(s) : null))
  }

  /** Ends one session (logout). */
  async end(session: LiveSession): Promise<void> {
    this.cache.delete(session.id)
    await this.store.delete(session.key)
    this.announce([session.key])
  }

  /**
   * Ends the sessions of a provider session (`sid`), or of a subject
   * (`sub`): with both, the sessions of that sid and the subject's sessions
   * that have no sid (back-channel logout); returns how many ended.
   */
  async endWhere(provider: string, by: { sub?: string; sid?: string }): Promise<number> {
    const keys = new Set<string>()
    if (by.sid !== undefined) for (const k of await this.store.deleteBySid(provider, by.sid)) keys.add(k)
    const matches = (r: SessionRecord) => (by.sid !== undefined && r.sid === by.sid) || (by.sub !== undefined && r.sub === by.sub && (by.sid === undefined || r.sid === null))
    if (by.sub !== undefined) {
      // the subject's sessions (all of them, or with a sid given those without one), read first so none with another sid goes
      for (const k of await this.store.deleteBySubject(provider, by.sub, by.sid !== undefined)) keys.add(k)
    }
    // a session cached here but no longer stored (a store shared with another process) goes too
    const cached: string[] = []
    for (const [id, s] of this.cache.entries()) {
      if (s.record.provider !== provider) continue
      if (matches(s.record)) {
        cached.push(id)
        keys.add(s.key)
      }
    }
    for (const id of cached) this.cache.delete(id)
    this.announce([...keys])
    return keys.size
  }

  /** Replaces a session's tokens after a refresh. */
  async updateTokens(session: LiveSession, tokens: { idToken: string; accessToken: string | null; refreshToken: string | null; tokenExpiresAt: number | null }): Promise<void> {
    await this.store.updateTokens(session.key, tokens)
    session.record = { ...session.record, ...tokens }
  }

  async close(): Promise<void> {
    this.stopHearing()
    this.clock.clearInterval(this.sweeper)
    this.cache.clear()
    await this.store.close()
  }

  private live(id: string, record: SessionRecord): LiveSession {
    const session: LiveSession = { id, key: record.key, record, lastSeenAt: record.lastSeenAt, refreshing: null, views: new Map() }
    this.cache.set(id, session)
    return session
  }

  /** The session if it is still within its times (and its last request moved forward), else null, ended. */
  private check(session: LiveSession): LiveSession | null {
    const now = this.clock.now()
    if (now >= session.record.expiresAt || now >= session.lastSeenAt + this.times.idleMs) {
      void this.end(session).catch((err: unknown) => this.log.warn({ err }, 'an expired session could not be deleted'))
      return null
    }
    session.lastSeenAt = now
    if (now - session.record.lastSeenAt >= this.touchEvery) {
      session.record = { ...session.record, lastSeenAt: now }
      void this.recheck(session, now)
    }
    return session
  }

  /**
   * The store's word on a cached session, once per `touchEvery`: still
   * there, its last request moves forward; gone (ended through another
   * process whose announcement did not arrive), it leaves the cache, so the
   * next request finds it ended.
   */
  private async recheck(session: LiveSession, now: number): Promise<void> {
    try {
      if ((await this.store.get(session.key)) === undefined) {
        if (this.cache.peek(session.id) === session) this.cache.delete(session.id)
        return
      }
      await this.store.touch(session.key, now)
    } catch (err) {
      this.log.warn({ err }, 'a session could not be touched')
    }
  }

  private async sweep(): Promise<void> {
    try {
      // the store's lastSeenAt may trail this process's by up to touchEvery: never sweep a session still live here
      const n = await this.store.sweep(this.clock.now(), this.times.idleMs + this.touchEvery)
      if (n > 0) this.log.debug({ sessions: n }, 'expired sessions removed')
    } catch (err) {
      this.log.warn({ err }, 'expired sessions could not be removed')
    }
  }
}

import { LRUCache } from 'lru-cache'
import type { BodyLimits } from '../core/body.ts'
import type { Broadcast } from '../core/broadcast.ts'
import type { Clock } from '../core/clock.ts'
import type { Context } from '../core/context.ts'
import type { Endpoint } from '../core/endpoints.ts'
import { ConfigError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { RedisBus } from '../core/redis.ts'
import type { RouteParts } from '../core/types.ts'
import { loadAssertionSigner } from './assertion.ts'
import { authEndpoints } from './endpoints.ts'
import { createGate, gateParts } from './gate.ts'
import { MemoryLoginStore, openSqliteLoginStore, RedisLoginStore, type LoginStore } from './login-store.ts'
import { RedisSessionStore } from './redis-session-store.ts'
import { RelyingParty } from './relying-party.ts'
import { gateFor, type AuthConfig, type GateOption } from './schema.ts'
import { MemorySessionStore, openSqliteSessionStore } from './session-store.ts'
import { Sessions } from './sessions.ts'
import { LOGIN_TTL_MS, type AuthState, type ForwardMode } from './state.ts'

/**
 * Single sign-on (docs/sso.md): the top-level `auth` (providers, sessions)
 * made into one service per configuration, which gives each route with a
 * gate its access step and upgrade check, and each site with a gate its
 * `/_edgebox/auth/` endpoints.
 */
export interface Auth {
  /** The gate of a route (its own `auth`, else its site's), as the parts the pipeline places under `auth`; null: no gate here. */
  route(id: string, route: GateOption | undefined, site: GateOption | undefined, forward?: ForwardMode): RouteParts | null
  /** The endpoints of a site with any gate. */
  readonly endpoints: readonly Endpoint[]
  /** Ends what this configuration started; what a newer one took over stays. */
  close(): Promise<void>
}

export interface AuthDeps {
  readonly dataDir: string
  readonly log: Logger
  readonly clock: Clock
  readonly limits: BodyLimits
  /** The CSRF filter's origin check, for the sign-out form. */
  readonly csrfCheck: (ctx: Context) => void
  /** The deployment's Redis (the top-level `redis`): where sessions and logins live by default when set. */
  readonly redis?: RedisBus
  /** The other processes of the deployment (workers, nodes): they hear of the sessions ended here. */
  readonly broadcast?: Broadcast
}

/** What a reload hands on: the sessions and logins under way, when the session settings did not change. */
interface Shared {
  readonly key: string
  readonly sessions: Sessions
  readonly logins: LoginStore
  readonly pendingByClient: LRUCache<string, string[]>
  handedOver: boolean
}

const sharedOf = new WeakMap<Auth, Shared>()

export async function createAuth(config: AuthConfig, deps: AuthDeps, previous?: Auth): Promise<Auth> {
  const s = config.sessions
  const where = s.store ?? (deps.redis ? 'redis' : 'sqlite')
  if (where === 'redis' && !deps.redis) throw new ConfigError(["auth.sessions.store: the redis store needs the top-level redis (redis: 'redis://host:port')"])
  const key = JSON.stringify([deps.dataDir, where, s.idleTimeout, s.absoluteTimeout, s.cacheSize])
  const before = previous ? sharedOf.get(previous) : undefined
  let shared: Shared
  if (before && before.key === key && !before.handedOver) {
    before.handedOver = true
    shared = { ...before, handedOver: false }
  } else {
    const [store, logins] =
      where === 'redis'
        ? [new RedisSessionStore(deps.redis!), new RedisLoginStore(deps.redis!)]
        : where === 'memory'
          ? [new MemorySessionStore(), new MemoryLoginStore()]
          : await Promise.all([openSqliteSessionStore(deps.dataDir), openSqliteLoginStore(deps.dataDir)])
    // a memory store is this process's alone: nothing to tell the others
    const broadcast = where === 'memory' ? undefined : deps.broadcast
    shared = {
      key,
      sessions: new Sessions(store, { idleMs: s.idleTimeout, absoluteMs: s.absoluteTimeout }, s.cacheSize, deps.clock, deps.log, broadcast),
      logins,
      pendingByClient: new LRUCache({ max: 100_000, ttl: LOGIN_TTL_MS }),
      handedOver: false,
    }
  }
  const state: AuthState = {
    config,
    providers: new Map(Object.entries(config.providers).map(([name, p]) => [name, new RelyingParty(name, p, deps.clock)])),
    sessions: shared.sessions,
    logins: shared.logins,
    pendingByClient: shared.pendingByClient,
    signer: await loadAssertionSigner(deps.dataDir),
    clock: deps.clock,
    log: deps.log,
    gates: new Map(),
    csrfCheck: deps.csrfCheck,
    limits: deps.limits,
  }
  const auth: Auth = {
    route(id, route, site, forward) {
      const options = gateFor(route, site)
      return options ? gateParts(state, createGate(state, id, options, forward ?? null)) : null
    },
    endpoints: authEndpoints(state),
    async close() {
      if (!shared.handedOver) await Promise.all([shared.sessions.close(), shared.logins.close()])
    },
  }
  sharedOf.set(auth, shared)
  return auth
}

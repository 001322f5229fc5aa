import { LRUCache } from 'lru-cache'
import type { BodyLimits } from '../core/body.ts'
import type { Clock } from '../core/clock.ts'
import type { Context } from '../core/context.ts'
import type { Endpoint } from '../core/endpoints.ts'
import type { Logger } from '../core/log.ts'
import type { RouteParts } from '../core/types.ts'
import { loadAssertionSigner } from './assertion.ts'
import { authEndpoints, LOGOUT_WINDOW_S } from './endpoints.ts'
import { createGate, gateParts } from './gate.ts'
import { RelyingParty, type PendingLogin } from './relying-party.ts'
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
}

/** What a reload hands on: the sessions and logins under way, when the session settings did not change. */
interface Shared {
  readonly key: string
  readonly sessions: Sessions
  readonly pending: LRUCache<string, PendingLogin>
  readonly pendingByClient: LRUCache<string, string[]>
  readonly seenLogoutTokens: LRUCache<string, true>
  handedOver: boolean
}

const sharedOf = new WeakMap<Auth, Shared>()

export async function createAuth(config: AuthConfig, deps: AuthDeps, previous?: Auth): Promise<Auth> {
  const s = config.sessions
  const key = JSON.stringify([deps.dataDir, s.store, s.idleTimeout, s.absoluteTimeout, s.cacheSize])
  const before = previous ? sharedOf.get(previous) : undefined
  let shared: Shared
  if (before && before.key === key && !before.handedOver) {
    before.handedOver = true
    shared = { ...before, handedOver: false }
  } else {
    const store = s.store === 'memory' ? new MemorySessionStore() : await openSqliteSessionStore(deps.dataDir)
    shared = {
      key,
      sessions: new Sessions(store, { idleMs: s.idleTimeout, absoluteMs: s.absoluteTimeout }, s.cacheSize, deps.clock, deps.log),
      pending: new LRUCache({ max: 100_000, ttl: LOGIN_TTL_MS }),
      pendingByClient: new LRUCache({ max: 100_000, ttl: LOGIN_TTL_MS }),
      seenLogoutTokens: new LRUCache({ max: 100_000, ttl: (LOGOUT_WINDOW_S + 120) * 1000 }),
      handedOver: false,
    }
  }
  const state: AuthState = {
    config,
    providers: new Map(Object.entries(config.providers).map(([name, p]) => [name, new RelyingParty(name, p, deps.clock)])),
    sessions: shared.sessions,
    pending: shared.pending,
    pendingByClient: shared.pendingByClient,
    seenLogoutTokens: shared.seenLogoutTokens,
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
      if (!shared.handedOver) await shared.sessions.close()
    },
  }
  sharedOf.set(auth, shared)
  return auth
}

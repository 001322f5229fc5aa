import type { Clock } from '../../core/clock.ts'
import type { Logger } from '../../core/log.ts'
import type { UserDirectory } from '../users.ts'
import type { OidcProvider } from './provider.ts'
import type { IdpStore } from './store.ts'

/**
 * Sign-ins of removed and disabled users, ended everywhere (docs/idp.md,
 * "Users"). `edgebox user remove` (or a user disabled) writes the user
 * store from another process (or another node changes the users the nodes
 * share in PostgreSQL): the provider refuses that user new tokens at once
 * (findAccount reads the store at every use), but the relying parties keep
 * their own sessions until a refresh fails, up to the access token
 * lifetime. So every few seconds the provider looks at the accounts its
 * live sessions are signed in as (the store's session index, one query)
 * and looks each one up in the user store (read fresh). The sessions of an
 * account that is gone, disabled, or was added again after they signed in
 * (removed, then a new user of the same name) are ended: each is deleted
 * with its grants and everything issued under them (codes, access and
 * refresh tokens), then each client of it that registered a
 * `backchannelLogoutUri` is sent a logout token (OpenID Connect
 * Back-Channel Logout 1.0, with `sub` and the client's `sid`), signed and
 * posted by oidc-provider itself (`Client#backchannelLogout`) through the
 * dispatcher the provider is configured with. One attempt per client: a
 * client that does not answer is logged and left (its sessions end at its
 * next refresh, which fails). The session being deleted first, it is never
 * found (nor notified) twice: checks in this process run one at a time, and
 * a session another node ended first (nodes sharing a PostgreSQL each run
 * this watcher) is left to that node to tell.
 */

/** How often the sessions are checked against the user store. */
export const REMOVALS_EVERY_MS = 5_000
/** The most logout tokens in flight at once (a bulk removal sends many). */
const CONCURRENCY = 8

/** What the watcher needs. */
export interface RemovalDeps {
  readonly store: IdpStore
  readonly users: UserDirectory
  /** The provider that signs and sends logout tokens: the current one (it is rebuilt when the keys rotate). */
  readonly provider: () => Promise<OidcProvider>
  readonly clock: Clock
  readonly log: Logger
}

/** The running watcher of one `idp` route. */
export interface RemovalWatcher {
  /** Checks now (as a tick does); resolves once the logout tokens of what it ended were sent or failed, with how many sessions it ended. */
  check(): Promise<number>
  /** Stops the ticks and waits for a check under way. */
  close(): Promise<void>
}

/** Why an account's sessions end. */
type Reason = 'removed' | 'disabled' | 'added again'

/** A logout token to send: to `clientId`, for `sub`'s session `sid` there. */
interface Notice {
  readonly clientId: string
  readonly sub: string
  readonly sid: string | undefined
}

/** Starts the watcher: a check every {@link REMOVALS_EVERY_MS} on `deps.clock` (the timer unref'd). */
export function watchRemovals(deps: RemovalDeps): RemovalWatcher {
  const { log } = deps
  let running: Promise<number> | null = null
  let lastError: string | null = null

  const check = (): Promise<number> => {
    // one check at a time: a tick during a slow one (a client taking its time) is skipped
    if (running) return running
    running = pass(deps).then(
      (n) => {
        if (lastError !== null) log.info('identity provider: checks for removed users work again')
        lastError = null
        return n
      },
      (err: unknown) => {
        // once per kind of failure, not every 5 seconds while it lasts
        const description = (err as Error).message
        if (description !== lastError) log.warn({ description }, 'identity provider: the check for removed users failed; it runs again in a few seconds')
        lastError = description
        return 0
      },
    )
    const done = running
    void done.finally(() => {
      if (running === done) running = null
    })
    return done
  }

  const timer = deps.clock.setInterval(() => void check(), REMOVALS_EVERY_MS)
  timer.unref()
  return {
    check,
    async close() {
      deps.clock.clearInterval(timer)
      await running
    },
  }
}

/** One check: ends the sessions of accounts that are gone, then sends their logout tokens. */
async function pass(deps: RemovalDeps): Promise<number> {
  const { store, users, log } = deps
  const ended: Ended[] = []
  // a failure (a store busy or out of reach) stops nothing else: what was ended is still told, the rest is found next time
  let failure: unknown
  for (const { accountId, firstLogin } of await store.sessionAccounts()) {
    try {
      const found = await endSessionsOf(store, users, accountId, firstLogin)
      if (found?.sessions) ended.push(found)
      if (found?.error !== undefined) failure ??= found.error
    } catch (err) {
      failure ??= err
    }
  }
  let total = 0
  if (ended.length) {
    let provider: OidcProvider | undefined
    try {
      provider = await deps.provider()
    } catch (err) {
      failure ??= err
    }
    for (const e of ended) {
      total += e.sessions
      const sent = provider ? await notify(provider, e.notices, log) : { notified: 0, failed: e.notices.length }
      log.info({ user: e.user, reason: e.reason, sessions: e.sessions, ...sent }, `identity provider: sessions of a ${e.reason === 'disabled' ? 'disabled' : 'removed'} user ended`)
    }
  }
  if (failure !== undefined) throw failure
  return total
}

/** What one account's check ended: how many sessions, the logout tokens to send, and the error that stopped it, if one did. */
interface Ended {
  readonly user: string
  readonly reason: Reason
  readonly sessions: number
  readonly notices: Notice[]
  readonly error?: unknown
}

/** Ends the sessions of `accountId` when its user is gone (or disabled, or new since they signed in); null when the user is fine. */
async function endSessionsOf(store: IdpStore, users: UserDirectory, accountId: string, firstLogin: number | null): Promise<Ended | null> {
  const user = await users.get(accountId)
  let reason: Reason | null = null
  let signedInBefore = Infinity
  // as findAccount (provider.ts): removed, disabled or renamed is no account
  if (!user || user.username !== accountId) reason = 'removed'
  else if (user.disabled) reason = 'disabled'
  // created after a sign-in of the account (loginTs is whole seconds): a new user of an old name, not the one signed in
  else if (firstLogin !== null && user.createdAt >= (firstLogin + 1) * 1000) {
    reason = 'added again'
    signedInBefore = Math.floor(user.createdAt / 1000) - 1
  }
  if (!reason) return null
  const notices: Notice[] = []
  let sessions = 0
  for (const { id, payload } of await store.sessionsOf(accountId)) {
    if (payload.accountId !== accountId) continue
    if (reason === 'added again' && !(typeof payload.loginTs === 'number' && payload.loginTs <= signedInBefore)) continue
    const authorizations = isRecord(payload.authorizations) ? payload.authorizations : {}
    const grants: string[] = []
    const told: Notice[] = []
    for (const [clientId, a] of Object.entries(authorizations)) {
      if (!isRecord(a)) continue
      if (typeof a.grantId === 'string') grants.push(a.grantId)
      told.push({ clientId, sub: accountId, sid: typeof a.sid === 'string' ? a.sid : undefined })
    }
    try {
      // another node ended it first: that node tells its clients
      if (!(await store.endSession(id, grants))) continue
    } catch (error) {
      // told only once it is gone: a session that could not be deleted is found again at the next check, and told then
      return { user: accountId, reason, sessions, notices, error }
    }
    notices.push(...told)
    sessions++
  }
  return { user: accountId, reason, sessions, notices }
}

/** Sends the logout tokens (at most {@link CONCURRENCY} at once); counts those sent and those that failed. */
async function notify(provider: OidcProvider, notices: readonly Notice[], log: Logger): Promise<{ notified: number; failed: number }> {
  let notified = 0
  let failed = 0
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < notices.length) {
      const n = notices[next++]!
      let client
      try {
        client = await provider.Client.find(n.clientId)
      } catch {
        client = undefined
      }
      // a client no longer configured, or one without a back-channel logout URI: nothing to tell
      if (!client?.backchannelLogoutUri) continue
      try {
        await client.backchannelLogout(n.sub, n.sid)
        notified++
      } catch (err) {
        failed++
        const e = err as Error & { cause?: { code?: string; message?: string } }
        log.warn({ client: n.clientId, description: e.message, ...(e.cause ? { cause: e.cause.code ?? e.cause.message } : {}) }, 'identity provider: back-channel logout failed')
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, notices.length) }, worker))
  return { notified, failed }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Clock } from '../../core/clock.ts'
import type { Logger } from '../../core/log.ts'
import { UserError, type User, type UserDirectory } from '../users.ts'
import type { LoginLimiter } from './limits.ts'
import { enrolPage, loginPage, messagePage, totpPage, type FormState, type InteractionPaths, type Page, type PasskeyOffer } from './pages.ts'
import type { InteractionDetails, OidcProvider } from './provider.ts'
import type { IdpConfig } from './schema.ts'
import type { Adapter, IdpStore } from './store.ts'
import { newTotpSecret, totpStep, totpUri } from './totp.ts'
import {
  authenticationOptions,
  FAILURE_TEXT,
  newChallenge,
  newUserHandle,
  PASSKEY_SCRIPT,
  PASSKEY_SCRIPT_VERSION,
  registrationOptions,
  relyingPartyOf,
  verifyAuthentication,
  verifyRegistration,
  type PasskeyFailure,
} from './webauthn.ts'

/**
 * The sign-in steps (oidc-provider's "interactions"), on Edgebox's own pages:
 *
 *   GET  <base><uid>         the page of the step the sign-in is at
 *   POST <base><uid>/login   username and password
 *   POST <base><uid>/totp    a code from the user's authenticator app
 *   POST <base><uid>/passkey a passkey's answer (WebAuthn assertion) instead
 *   POST <base><uid>/enrol   the first code of a new authenticator (secondFactor 'required')
 *   POST <base><uid>/passkey-register  a new passkey (WebAuthn attestation) instead
 *   POST <base><uid>/abort   cancel: the client gets `access_denied`
 *   GET  <base>passkey.js    the script of the passkey forms (webauthn.ts)
 *
 * Each POST is answered with a 303 to the next step (Post/Redirect/Get, so
 * reloading a page never sends a form again) or with the same page and its
 * error. A form belongs to the browser that started the sign-in: the
 * interaction cookie oidc-provider set (signed, SameSite=Lax) must name the
 * same interaction, and a browser's `Sec-Fetch-Site`, else `Origin`, must be
 * the provider's own origin (Fetch Metadata; RFC 6454).
 *
 * A wrong username or password gets the same page with one error, "Wrong
 * username or password", status 200 (not 401: RFC 9110 §15.5.2 ties 401 to
 * an HTTP authentication challenge, which a form is not); unknown and
 * disabled users cost a password hash too (users.ts), so neither the answer
 * nor its timing tells which names exist. Attempts are limited before any
 * hash is computed (limits.ts): an empty bucket answers 429 with
 * `Retry-After`.
 *
 * The second factor is what the user has: TOTP, passkeys, or both (the
 * page offers each). The challenge of a passkey ceremony is made for the
 * page that offers it and kept with the pending sign-in; the next passkey
 * answer takes it away before it is checked, so each is used once. The
 * steps of one sign-in run one at a time (in this process), so two answers
 * posted at once cannot both use one challenge. Nodes that share a
 * PostgreSQL order the steps each on its own; what must hold across them
 * is checked in one statement of the store: a TOTP step is accepted once
 * (IdpStore.useTotpStep), a passkey's signature counter goes up
 * (UserDirectory.usePasskey).
 */

/** A sign-in waiting for its second factor, kept in the store under the interaction's uid. */
interface PendingLogin {
  readonly username: string
  /** `totp`: asked for a second factor (a code, a passkey: what the user has); `enrol`: setting one up. */
  readonly step: 'totp' | 'enrol'
  /** The new secret being set up (enrol). */
  readonly secret?: string
  /** Wrong codes and refused passkeys so far. */
  readonly failures: number
  /** The WebAuthn challenge of the page shown last (base64url): taken by the next passkey answer. */
  readonly challenge?: string
  /** The user handle a new passkey is registered with (enrol), base64url. */
  readonly handle?: string
}

/** Wrong codes accepted for one sign-in before it starts again from the password. */
const MAX_CODE_FAILURES = 5
/** How long a pending sign-in is kept when its interaction says nothing (oidc-provider's Interaction TTL, provider.ts). */
const INTERACTION_TTL_S = 15 * 60
/** The largest form accepted. */
const MAX_FORM_BYTES = 16 * 1024

const WRONG_PASSWORD = 'Wrong username or password.'
const WRONG_CODE = 'That code is not right. Check that the time on your device is correct, then enter the code it shows now.'

/** What the sign-in steps need: the provider, the users, the store, the limits, the clock. */
export interface InteractionDeps {
  /** The current provider (it is replaced when keys rotate). */
  provider(): OidcProvider
  readonly config: IdpConfig
  readonly users: UserDirectory
  readonly store: IdpStore
  readonly limiter: LoginLimiter
  readonly clock: Clock
  readonly log: Logger
  /** `<issuer path>/interaction/`. */
  readonly base: string
  /** The provider's name on pages and in authenticator apps. */
  readonly name: string
  readonly formAction: string
}

/** The interaction routes, for the provider's internal server: true when the request was one of them (and is being answered). */
export function createInteractions(d: InteractionDeps): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean> {
  const pending: Adapter = d.store.adapter('EdgeboxLogin')
  const issuerOrigin = new URL(d.config.issuer).origin
  const rp = relyingPartyOf(d.config.issuer, d.name)
  const script = `${d.base}passkey.js?v=${PASSKEY_SCRIPT_VERSION}`
  const serial = keyedSerial()
  const clientName = (details: InteractionDetails): string => {
    const id = typeof details.params.client_id === 'string' ? details.params.client_id : ''
    const c = d.config.clients.find((x) => x.clientId === id)
    return c?.name ?? id
  }
  const pathsOf = (uid: string): InteractionPaths => ({
    login: `${d.base}${uid}/login`,
    totp: `${d.base}${uid}/totp`,
    enrol: `${d.base}${uid}/enrol`,
    passkey: `${d.base}${uid}/passkey`,
    passkeyRegister: `${d.base}${uid}/passkey-register`,
    abort: `${d.base}${uid}/abort`,
  })
  /** A user's passkeys, where browsers can use them (not on an issuer that is an IP address: webauthn.ts). */
  const passkeysOf = async (username: string) => (rp.usable ? d.users.passkeys(username) : [])
  const retryHeaders = (ms: number) => ({ 'retry-after': String(Math.ceil(ms / 1000)) })
  const tooMany = (ms: number): FormState => ({ error: `Too many sign-in attempts. Wait ${waitText(ms)}, then try again.` })

  const loginForm = (details: InteractionDetails, status: number, username: string, state: FormState, headers?: Record<string, string>): Page =>
    loginPage({ status, provider: d.name, client: clientName(details), username, paths: pathsOf(details.uid), formAction: d.formAction, state, ...(headers ? { headers } : {}) })

  const savePending = async (details: InteractionDetails, p: PendingLogin) => {
    // as long as the interaction lives (its exp is oidc-provider's, seconds on the system clock)
    const ttl = Number.isFinite(details.exp) ? Math.max(1, details.exp - Math.floor(Date.now() / 1000)) : INTERACTION_TTL_S
    await pending.upsert(details.uid, { ...p }, ttl)
  }

  const finish = async (req: IncomingMessage, res: ServerResponse, details: InteractionDetails, user: User, amr: string[]) => {
    await pending.destroy(details.uid)
    d.log.info({ user: user.username, client: clientName(details), amr, address: addressOf(req) }, 'identity provider: signed in')
    await d.provider().interactionFinished(req, res, { login: { accountId: user.username, amr, remember: true } }, { mergeWithLastSubmission: false })
  }

  /** After a good password, or a code: the next step, or the end of the sign-in. */
  const afterPassword = async (req: IncomingMessage, res: ServerResponse, details: InteractionDetails, user: User) => {
    const mode = d.config.secondFactor
    if (mode !== 'off' && (user.totpSecret !== null || (await passkeysOf(user.username)).length > 0)) {
      await savePending(details, { username: user.username, step: 'totp', failures: 0 })
      return redirect(res, `${d.base}${details.uid}`)
    }
    if (mode === 'required') {
      await savePending(details, { username: user.username, step: 'enrol', secret: newTotpSecret(), failures: 0 })
      return redirect(res, `${d.base}${details.uid}`)
    }
    await finish(req, res, details, user, ['pwd'])
  }

  /** The page of the step a sign-in is at; a page that offers a passkey ceremony has a new challenge, saved with the sign-in. */
  const show = async (res: ServerResponse, details: InteractionDetails, state: FormState = {}, status = 200, headers?: Record<string, string>): Promise<void> => {
    const p = (await pending.find(details.uid)) as PendingLogin | undefined
    const extra = headers ? { headers } : {}
    if (p?.step === 'totp') {
      const user = await d.users.get(p.username)
      const passkeys = user ? await passkeysOf(user.username) : []
      let passkey: PasskeyOffer | undefined
      if (passkeys.length > 0) {
        const challenge = newChallenge()
        await savePending(details, { ...p, challenge })
        passkey = { options: JSON.stringify(await authenticationOptions(rp, challenge, passkeys)), script }
      }
      // the code field when the user has TOTP (or, having lost every factor meanwhile, nothing else to be offered)
      const totp = (user?.totpSecret ?? null) !== null || !passkey
      return send(res, totpPage({ status, username: p.username, paths: pathsOf(details.uid), formAction: d.formAction, state, totp, ...(passkey ? { passkey } : {}), ...extra }))
    }
    if (p?.step === 'enrol' && p.secret) {
      let passkey: PasskeyOffer | undefined
      const user = await d.users.get(p.username)
      if (rp.usable && user) {
        const challenge = newChallenge()
        const handle = p.handle ?? (await d.users.passkeyUserHandle(user.username)) ?? newUserHandle()
        await savePending(details, { ...p, challenge, handle })
        const options = await registrationOptions(rp, { username: user.username, displayName: user.name ?? user.username, handle }, challenge, await d.users.passkeys(user.username))
        passkey = { options: JSON.stringify(options), script }
      }
      return send(res, enrolPage({ status, username: p.username, uri: totpUri(d.name, p.username, p.secret), secret: p.secret, paths: pathsOf(details.uid), formAction: d.formAction, state, ...(passkey ? { passkey } : {}), ...extra }))
    }
    const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 256) : ''
    send(res, loginForm(details, status, hint, state, headers))
  }

  /** A code for the pending sign-in (`totp`: the user's secret; `enrol`: the new one): its checks, limits and failures. */
  const code = async (req: IncomingMessage, res: ServerResponse, details: InteractionDetails, form: URLSearchParams, step: 'totp' | 'enrol') => {
    const p = (await pending.find(details.uid)) as PendingLogin | undefined
    // nothing pending for this step (expired, done, another tab went on): show where the sign-in is
    if (!p || p.step !== step) return redirect(res, `${d.base}${details.uid}`)
    const wait = await d.limiter.take(p.username, addressOf(req))
    if (wait !== null) return show(res, details, tooMany(wait), 429, retryHeaders(wait))
    const user = await d.users.get(p.username)
    if (!user || user.disabled) {
      await pending.destroy(details.uid)
      return send(res, loginForm(details, 200, '', { error: WRONG_PASSWORD }))
    }
    const secret = step === 'totp' ? user.totpSecret : (p.secret ?? null)
    const entered = (form.get('code') ?? '').replace(/\s+/g, '')
    const at = secret === null ? null : totpStep(secret, entered, d.clock.now())
    // RFC 6238 §5.2: a code is good once; a later step than the last one used is required
    if (at === null || !(await d.store.useTotpStep(user.username, at))) {
      const failures = p.failures + 1
      d.log.info({ user: user.username, step, address: addressOf(req) }, 'identity provider: wrong code')
      if (failures >= MAX_CODE_FAILURES) {
        await pending.destroy(details.uid)
        return send(res, loginForm(details, 200, user.username, { error: 'Too many wrong codes. Sign in again.' }))
      }
      await savePending(details, { ...p, failures })
      return show(res, details, { error: WRONG_CODE })
    }
    if (step === 'enrol') {
      await d.users.setTotpSecret(user.username, secret!)
      d.log.info({ user: user.username }, 'identity provider: second factor set up')
    }
    await finish(req, res, details, user, ['pwd', 'otp'])
  }

  /**
   * A passkey's answer for the pending sign-in (`totp`: an assertion by one
   * of the user's passkeys; `enrol`: a new passkey): its limits, checks and
   * failures, as for a code. The page's challenge is taken before anything
   * is checked, so whatever the outcome it is not used again.
   */
  const passkeyAnswer = async (req: IncomingMessage, res: ServerResponse, details: InteractionDetails, form: URLSearchParams, step: 'totp' | 'enrol') => {
    const p = (await pending.find(details.uid)) as PendingLogin | undefined
    if (!p || p.step !== step || !rp.usable) return redirect(res, `${d.base}${details.uid}`)
    const wait = await d.limiter.take(p.username, addressOf(req))
    if (wait !== null) {
      d.log.info({ address: addressOf(req) }, 'identity provider: sign-in attempts over the limit')
      return show(res, details, tooMany(wait), 429, retryHeaders(wait))
    }
    const user = await d.users.get(p.username)
    if (!user || user.disabled) {
      await pending.destroy(details.uid)
      return send(res, loginForm(details, 200, '', { error: WRONG_PASSWORD }))
    }
    const { challenge, ...rest } = p
    await savePending(details, rest)
    const field = form.get('response')
    const refused = async (reason: PasskeyFailure, passkeyId?: string) => {
      const failures = rest.failures + 1
      d.log.info({ user: user.username, step: step === 'totp' ? 'passkey' : 'passkey-register', reason, ...(passkeyId ? { passkey: passkeyId } : {}), address: addressOf(req) }, 'identity provider: passkey refused')
      if (failures >= MAX_CODE_FAILURES) {
        await pending.destroy(details.uid)
        return send(res, loginForm(details, 200, user.username, { error: 'Too many failed attempts at the second factor. Sign in again.' }))
      }
      await savePending(details, { ...rest, failures })
      return show(res, details, { error: FAILURE_TEXT[reason], passkey: true })
    }
    if (step === 'totp') {
      const result = await verifyAuthentication(rp, field, challenge, await d.users.passkeys(user.username))
      if (!result.ok) return refused(result.reason, result.passkeyId)
      // the counter stored in the same statement that checks it: two sign-ins at once cannot both pass with one count
      if (!(await d.users.usePasskey(user.username, result.passkey.id, result.counter, d.clock.now()))) return refused('counter', result.passkey.id)
      // RFC 8176 §2: pwd, and pop: proof of possession of a key (hardware or software: a passkey may be either)
      return finish(req, res, details, user, ['pwd', 'pop'])
    }
    const result = await verifyRegistration(rp, field, challenge)
    if (!result.ok) return refused(result.reason)
    try {
      await d.users.addPasskey(user.username, { ...result.passkey, userHandle: rest.handle ?? newUserHandle() }, d.clock.now())
    } catch (err) {
      if (err instanceof UserError) return refused('registered', result.passkey.id)
      throw err
    }
    d.log.info({ user: user.username, passkey: result.passkey.id }, 'identity provider: passkey registered')
    await finish(req, res, details, user, ['pwd', 'pop'])
  }

  /** A form of the sign-in `details`. */
  const step = async (req: IncomingMessage, res: ServerResponse, details: InteractionDetails, form: URLSearchParams, action: string): Promise<void> => {
    if (action === 'abort') {
      await pending.destroy(details.uid)
      await d.provider().interactionFinished(req, res, { error: 'access_denied', error_description: 'the user cancelled the sign-in' }, { mergeWithLastSubmission: false })
      return
    }
    if (action === 'totp' || action === 'enrol') {
      await code(req, res, details, form, action)
      return
    }
    if (action === 'passkey' || action === 'passkey-register') {
      await passkeyAnswer(req, res, details, form, action === 'passkey' ? 'totp' : 'enrol')
      return
    }
    // login: the limits first, then one password hash
    const username = (form.get('username') ?? '').trim()
    const password = form.get('password') ?? ''
    // an empty field is no attempt at all (the form requires both): it costs no hash, and it makes no bucket either, so
    // it cannot be used to crowd the limiter's memory
    if (!username || !password) {
      send(res, loginForm(details, 200, username, { error: WRONG_PASSWORD }))
      return
    }
    const wait = await d.limiter.take(username, addressOf(req))
    if (wait !== null) {
      d.log.info({ address: addressOf(req) }, 'identity provider: sign-in attempts over the limit')
      send(res, loginForm(details, 429, username, tooMany(wait), retryHeaders(wait)))
      return
    }
    const user = await d.users.verify(username, password)
    if (!user) {
      const known = username ? await d.users.get(username) : undefined
      // the name typed is logged only when it is a user's: a password typed into the username field stays out of the log
      d.log.info({ ...(known ? { user: known.username } : {}), address: addressOf(req) }, 'identity provider: wrong username or password')
      send(res, loginForm(details, 200, username, { error: WRONG_PASSWORD }))
      return
    }
    await afterPassword(req, res, details, user)
  }

  return async function interaction(req, res, path) {
    if (!path.startsWith('/interaction/')) return false
    if (path === '/interaction/passkey.js') {
      sendScript(req, res)
      return true
    }
    const m = /^\/interaction\/([A-Za-z0-9_-]{1,128})(?:\/(login|totp|enrol|passkey|passkey-register|abort))?$/.exec(path)
    if (!m) {
      send(res, messagePage(404, 'Not found', '<p>There is no such page.</p>', d.formAction))
      return true
    }
    const uid = m[1]!
    const action = m[2]
    const method = req.method ?? 'GET'
    const allowed = action ? ['POST'] : ['GET', 'HEAD']
    if (!allowed.includes(method)) {
      send(res, messagePage(405, 'Method not allowed', '<p>This page takes another method.</p>', d.formAction, { allow: allowed.join(', ') }))
      return true
    }
    let details: InteractionDetails
    try {
      details = await d.provider().interactionDetails(req, res)
    } catch (err) {
      if ((err as Error).name !== 'SessionNotFound') throw err
      send(res, expired(d.formAction))
      return true
    }
    // the cookie names another sign-in than the address: an old tab, or a page from elsewhere
    if (details.uid !== uid) {
      send(res, expired(d.formAction))
      return true
    }
    if (!action) {
      if (details.prompt.name === 'consent') await consent(d.provider(), req, res, details)
      else await serial(uid, () => show(res, details))
      return true
    }
    if (!fromHere(req, issuerOrigin)) {
      d.log.info({ address: addressOf(req), site: req.headers['sec-fetch-site'], origin: req.headers.origin }, 'identity provider: a sign-in form from another site refused')
      send(res, messagePage(403, 'Refused', '<p>This form was sent from another site, so it was not accepted. Go back to the application and sign in again.</p>', d.formAction))
      return true
    }
    const form = await readForm(req)
    if (form === null) {
      send(res, messagePage(415, 'Not a form', '<p>The sign-in pages take HTML forms (application/x-www-form-urlencoded) of at most 16 KiB.</p>', d.formAction))
      return true
    }
    // one step of a sign-in at a time: a challenge or a count of failures read by one is not read by another meanwhile
    await serial(uid, () => step(req, res, details, form, action))
    return true
  }
}

/** First-party clients get every scope without a page: what a consent page would have recorded. */
async function consent(provider: OidcProvider, req: IncomingMessage, res: ServerResponse, details: InteractionDetails): Promise<void> {
  const accountId = details.session?.accountId
  const clientId = typeof details.params.client_id === 'string' ? details.params.client_id : ''
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId: accountId!, clientId })
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '))
  const grantId = await grant.save()
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
}

function expired(formAction: string): Page {
  return messagePage(400, 'Sign-in expired', '<p>This sign-in has expired or was finished in another tab. Go back to the application and sign in again.</p>', formAction)
}

/** The client's address, as Edgebox forwarded it (the internal server is reachable only through Edgebox). */
function addressOf(req: IncomingMessage): string {
  const v = req.headers['x-forwarded-for']
  return (Array.isArray(v) ? v[0] : v) ?? ''
}

/**
 * Whether a form comes from the provider's own pages: Fetch Metadata's
 * `Sec-Fetch-Site` when the browser sends it, else `Origin`. Neither (an old
 * browser, a script): allowed, the interaction cookie (SameSite=Lax, so not
 * sent with another site's POST) still binds the form to the browser.
 */
export function fromHere(req: IncomingMessage, issuerOrigin: string): boolean {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined) return site === 'same-origin'
  const origin = req.headers.origin
  if (origin !== undefined) return origin === issuerOrigin
  return true
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const type = req.headers['content-type'] ?? ''
  if (!/^application\/x-www-form-urlencoded\s*(?:;|$)/i.test(type)) {
    req.resume()
    return null
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_FORM_BYTES) return null
    chunks.push(chunk)
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

/**
 * Runs tasks one at a time per key (a sign-in's uid), in the order they
 * came; a key's queue is dropped when it empties.
 */
function keyedSerial(): <T>(key: string, task: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>()
  return async <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const before = tails.get(key) ?? Promise.resolve()
    const run = before.then(task, task)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    tails.set(key, tail)
    try {
      return await run
    } finally {
      if (tails.get(key) === tail) tails.delete(key)
    }
  }
}

/** The passkey forms' script: versioned by its URL (`?v=`), so cached for good. */
function sendScript(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('GET only\n')
    return
  }
  res.writeHead(200, {
    'content-type': 'text/javascript; charset=utf-8',
    'cache-control': 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    'cross-origin-resource-policy': 'same-origin',
  })
  res.end(req.method === 'HEAD' ? undefined : PASSKEY_SCRIPT)
}

function send(res: ServerResponse, page: Page): void {
  res.writeHead(page.status, page.headers)
  res.end(page.body)
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': '0' })
  res.end()
}

/** `ms` as a person reads a wait: seconds under two minutes, else minutes. */
function waitText(ms: number): string {
  const s = Math.ceil(ms / 1000)
  if (s < 120) return `${s} second${s === 1 ? '' : 's'}`
  return `${Math.ceil(s / 60)} minutes`
}


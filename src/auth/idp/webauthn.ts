import { createHash, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server'
import { decodeAttestationObject, isoCBOR } from '@simplewebauthn/server/helpers'
import { z } from 'zod'
import { safeEqual } from '../../core/secrets.ts'
import type { Passkey } from '../users.ts'

/**
 * Passkeys as the built-in provider's second factor: the WebAuthn
 * ceremonies (W3C Web Authentication Level 3, "WebAuthn" below) on
 * @simplewebauthn/server, and the small script the sign-in pages load to
 * run them in the browser.
 *
 * - The Relying Party ID is the issuer's host name and the origin the
 *   issuer's origin (§4 "RP ID", §13.4.9): a passkey made here works only on
 *   this host, and an answer made for any other origin is refused.
 * - Challenges are 32 random bytes (§13.4.3: at least 16), made for each page
 *   that offers a ceremony and kept with the sign-in (interactions.ts): used
 *   once, whatever the outcome, and gone when the sign-in ends.
 * - User verification is `preferred` (§5.8.6): a PIN or a fingerprint when
 *   the authenticator has one; the password was checked already.
 * - Attestation is `none` (§5.4.7): nothing is learnt about the
 *   authenticator's make, and nothing fetched to check it (§8.7).
 * - The signature counter is checked after the signature, and must go up
 *   when both it and the stored one are non-zero (§6.1.1, §7.2).
 *
 * Each check that can fail gives a reason (`PasskeyFailure`), which the
 * pages turn into a sentence and the log records.
 */

/**
 * The public key algorithms offered at registration (COSE identifiers,
 * RFC 9053, RFC 8812): EdDSA, ES256, RS256, what authenticators make. Named
 * here (not the library's default) so that no post-quantum algorithm is
 * offered, whose support the library would probe with an experimental
 * Node API.
 */
export const PASSKEY_ALGORITHMS: readonly number[] = [-8, -7, -257]

/** How long the browser waits for the user at the authenticator (§15.1 recommends 5-10 minutes; a sign-in lasts 15). */
const CEREMONY_TIMEOUT_MS = 300_000
/** Credential IDs are at most 1023 bytes (§4, "Credential ID"): 1364 characters of base64url. */
const MAX_CREDENTIAL_ID = 1364

/** Where passkeys are used: the issuer's host name and origin (WebAuthn §4 "RP ID", §13.4.9). */
export interface RelyingParty {
  /** The RP ID: the issuer's host name. */
  readonly id: string
  /** The origin the browser must report in `clientDataJSON` (RFC 6454 §6.2 serialisation). */
  readonly origin: string
  /** The name authenticators show (`rp.name`). */
  readonly name: string
  /**
   * Whether browsers allow passkeys for it: an RP ID is a domain, never an
   * IP address (§4 "RP ID": a valid domain), so an issuer on an address
   * offers no passkeys.
   */
  readonly usable: boolean
}

/** The relying party of an issuer (`https://id.example.com/sub` is `id.example.com` at `https://id.example.com`). */
export function relyingPartyOf(issuer: string, name: string): RelyingParty {
  const url = new URL(issuer)
  const host = url.hostname
  return { id: host, origin: url.origin, name, usable: isIP(host.replace(/^\[|\]$/g, '')) === 0 }
}

/** A new challenge: 32 random bytes, base64url (WebAuthn §13.4.3). */
export function newChallenge(): string {
  return randomBytes(32).toString('base64url')
}

/** A new user handle: 64 random bytes, base64url (WebAuthn §5.4.3 recommends it; it says nothing of the user). */
export function newUserHandle(): string {
  return randomBytes(64).toString('base64url')
}

/** Why a passkey answer was refused. */
export type PasskeyFailure =
  /** No answer, or one that is not a credential's JSON. */
  | 'malformed'
  /** Made for another challenge than this page's: an older page, or one already used. */
  | 'challenge'
  /** A registration where a sign-in was expected, or the other way round (`clientDataJSON.type`). */
  | 'type'
  /** Made on another origin (or in a frame, which these pages never are). */
  | 'origin'
  /** Made by the authenticator for another RP ID (`rpIdHash`). */
  | 'rp'
  /** The authenticator did not test that the user was there (flag UP). */
  | 'presence'
  /** Not one of this user's passkeys. */
  | 'credential'
  /** The user handle it carries is not the one it was registered with. */
  | 'user-handle'
  /** A public key algorithm not offered. */
  | 'algorithm'
  /** The signature does not verify with the registered public key. */
  | 'signature'
  /** The signature counter did not go up (§6.1.1): the credential may have been cloned. */
  | 'counter'
  /** The credential is registered already (to anyone: §7.1, "not yet registered"). */
  | 'registered'
  /** A registration whose attestation object could not be read or checked. */
  | 'attestation'

/** What the pages say for each refusal. */
export const FAILURE_TEXT: Readonly<Record<PasskeyFailure, string>> = {
  malformed: 'The browser sent no passkey answer, or one that could not be read. Try again.',
  challenge: 'That passkey answer was for an earlier request (already used, or from another tab). Try again.',
  type: 'That passkey answer was for another kind of request. Try again.',
  origin: 'That passkey answer was made for another site, so it was not accepted.',
  rp: 'That passkey belongs to another site, so it was not accepted.',
  presence: 'The authenticator did not confirm that you were there. Try again, and touch or unlock it when it asks.',
  credential: 'That passkey is not registered for this account. Use another one.',
  'user-handle': 'That passkey was made for another account. Use another one.',
  algorithm: 'That passkey uses a kind of key this provider does not take. Use another authenticator.',
  signature: 'That passkey answer could not be verified, so it was not accepted.',
  counter: "That passkey's signature counter went backwards, a sign it may have been copied, so it was not accepted. Ask an administrator to check your passkeys.",
  registered: 'That passkey is registered already. Use another authenticator.',
  attestation: 'The new passkey could not be read. Try again, or use another authenticator.',
}

/** The registration options for a user (for `navigator.credentials.create()`, WebAuthn §5.4, in their JSON form, §5.1.8). */
export async function registrationOptions(rp: RelyingParty, user: { username: string; displayName: string; handle: string }, challenge: string, exclude: readonly Passkey[]): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.username,
    userDisplayName: user.displayName,
    userID: Buffer.from(user.handle, 'base64url'),
    challenge: Buffer.from(challenge, 'base64url'),
    timeout: CEREMONY_TIMEOUT_MS,
    attestationType: 'none',
    // an authenticator that holds one of the user's passkeys already is not asked for another (§5.4 excludeCredentials)
    excludeCredentials: exclude.map((p) => ({ id: p.id, transports: [...p.transports] })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
  })
}

/** The sign-in options for a user's passkeys (for `navigator.credentials.get()`, WebAuthn §5.5, JSON form §5.1.9). */
export async function authenticationOptions(rp: RelyingParty, challenge: string, passkeys: readonly Passkey[]): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.id,
    challenge: Buffer.from(challenge, 'base64url'),
    timeout: CEREMONY_TIMEOUT_MS,
    userVerification: 'preferred',
    allowCredentials: passkeys.map((p) => ({ id: p.id, transports: [...p.transports] })),
  })
}

const b64url = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+$/)

/** A credential's answer to `create()`, as the script sends it (`RegistrationResponseJSON`, WebAuthn §5.1). */
const registrationSchema = z.object({
  id: b64url(MAX_CREDENTIAL_ID),
  rawId: b64url(MAX_CREDENTIAL_ID),
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).nullish(),
  response: z.object({
    clientDataJSON: b64url(8192),
    attestationObject: b64url(12_000),
    transports: z.array(z.string().max(32)).max(16).optional(),
  }),
})

/** A credential's answer to `get()` (`AuthenticationResponseJSON`, WebAuthn §5.1). */
const authenticationSchema = z.object({
  id: b64url(MAX_CREDENTIAL_ID),
  rawId: b64url(MAX_CREDENTIAL_ID),
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).nullish(),
  response: z.object({
    clientDataJSON: b64url(8192),
    authenticatorData: b64url(4096),
    signature: b64url(2048),
    userHandle: b64url(128).nullish(),
  }),
})

function parseJson(field: string | null): unknown {
  if (!field) return undefined
  try {
    return JSON.parse(field) as unknown
  } catch {
    return undefined
  }
}

/** `clientDataJSON` (WebAuthn §5.8.1), checked as §7.1 and §7.2 say; null when it is good. */
function checkClientData(b64: string, type: 'webauthn.create' | 'webauthn.get', expectedChallenge: string | undefined, rp: RelyingParty): PasskeyFailure | null {
  let c: { type?: unknown; challenge?: unknown; origin?: unknown; crossOrigin?: unknown; topOrigin?: unknown }
  try {
    c = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8')) as typeof c
  } catch {
    return 'malformed'
  }
  if (typeof c !== 'object' || c === null) return 'malformed'
  if (c.type !== type) return 'type'
  if (expectedChallenge === undefined || typeof c.challenge !== 'string' || !safeEqual(c.challenge, expectedChallenge)) return 'challenge'
  if (c.origin !== rp.origin) return 'origin'
  // the provider's pages are never framed (frame-ancestors 'none'): an answer made in a frame is not theirs (§5.8.1 crossOrigin, topOrigin)
  if (c.crossOrigin === true || c.topOrigin !== undefined) return 'origin'
  return null
}

/** The start of authenticator data (WebAuthn §6.1): the RP ID's hash and the user-present flag; null when they are right. */
function checkAuthData(authData: Uint8Array, rp: RelyingParty): PasskeyFailure | null {
  if (authData.length < 37) return 'malformed'
  const rpIdHash = createHash('sha256').update(rp.id).digest()
  if (!Buffer.from(authData.subarray(0, 32)).equals(rpIdHash)) return 'rp'
  // flags: bit 0 UP (§6.1); required whatever the user verification asked for (§7.1, §7.2)
  if ((authData[32]! & 0x01) === 0) return 'presence'
  return null
}

/** The 4-byte big-endian signature counter of authenticator data (§6.1). */
function counterOf(authData: Uint8Array): number {
  return Buffer.from(authData).readUInt32BE(33)
}

/**
 * Whether a sign-in's signature counter may follow the stored one (WebAuthn
 * §6.1.1, §7.2): when both are non-zero it must be greater; a
 * counter at 0 on either side is an authenticator that does not count
 * (synced passkeys report 0).
 */
export function counterAcceptable(stored: number, received: number): boolean {
  return stored === 0 || received === 0 || received > stored
}

/** A passkey registration that passed: what to store. */
export interface NewPasskey {
  readonly id: string
  readonly publicKey: Uint8Array
  readonly counter: number
  readonly transports: readonly string[]
}

/** A registration's outcome. */
export type RegistrationResult = { readonly ok: true; readonly passkey: NewPasskey } | { readonly ok: false; readonly reason: PasskeyFailure }

/**
 * Verifies a registration (WebAuthn §7.1) posted as the form field
 * `field`, against the challenge of the page it came from (undefined when
 * it was used already: refused). The attestation statement is not checked:
 * `none` was asked for (§5.4.7), and one sent anyway is dropped, as a
 * client may do (§5.4.7, "none"), so no certificate is read or fetched.
 */
export async function verifyRegistration(rp: RelyingParty, field: string | null, expectedChallenge: string | undefined): Promise<RegistrationResult> {
  const parsed = registrationSchema.safeParse(parseJson(field))
  if (!parsed.success || parsed.data.id !== parsed.data.rawId) return { ok: false, reason: 'malformed' }
  const r = parsed.data
  const bad = checkClientData(r.response.clientDataJSON, 'webauthn.create', expectedChallenge, rp)
  if (bad) return { ok: false, reason: bad }
  let attestationObject = r.response.attestationObject
  try {
    const decoded = decodeAttestationObject(Buffer.from(attestationObject, 'base64url'))
    const authData = decoded.get('authData')
    if (!(authData instanceof Uint8Array)) return { ok: false, reason: 'attestation' }
    const badAuth = checkAuthData(authData, rp)
    if (badAuth) return { ok: false, reason: badAuth }
    if (decoded.get('fmt') !== 'none' || decoded.get('attStmt')?.size) {
      const none = new Map<string, unknown>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ])
      attestationObject = Buffer.from(isoCBOR.encode(none as Parameters<typeof isoCBOR.encode>[0])).toString('base64url')
    }
  } catch {
    return { ok: false, reason: 'attestation' }
  }
  const response: RegistrationResponseJSON = {
    id: r.id,
    rawId: r.rawId,
    type: 'public-key',
    clientExtensionResults: {},
    ...(r.authenticatorAttachment ? { authenticatorAttachment: r.authenticatorAttachment } : {}),
    response: { clientDataJSON: r.response.clientDataJSON, attestationObject, ...(r.response.transports ? { transports: r.response.transports } : {}) },
  }
  let info
  try {
    info = await verifyRegistrationResponse({
      response,
      expectedChallenge: expectedChallenge!,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      requireUserVerification: false,
      supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
    })
  } catch (err) {
    return { ok: false, reason: /public key alg/i.test((err as Error).message) ? 'algorithm' : 'attestation' }
  }
  if (!info.verified) return { ok: false, reason: 'attestation' }
  const c = info.registrationInfo.credential
  // the credential's ID in its answer is the one the authenticator put in the attested data (§6.5.1)
  if (c.id !== r.id || c.id.length > MAX_CREDENTIAL_ID) return { ok: false, reason: 'malformed' }
  return { ok: true, passkey: { id: c.id, publicKey: new Uint8Array(c.publicKey), counter: c.counter, transports: (c.transports ?? []).filter((t) => typeof t === 'string') } }
}

/** A sign-in's outcome: the passkey used and its new signature counter, or why not. */
export type AuthenticationResult =
  | { readonly ok: true; readonly passkey: Passkey; readonly counter: number; readonly userVerified: boolean }
  | { readonly ok: false; readonly reason: PasskeyFailure; readonly passkeyId?: string }

/**
 * Verifies a sign-in (an assertion, WebAuthn §7.2) posted as `field`
 * against the challenge of its page and the user's passkeys: the origin,
 * the challenge, the RP ID, user presence, the credential (one of theirs,
 * with their user handle), the signature, then the counter. The caller
 * stores the new counter (UserStore.usePasskey, which checks it again in
 * the same statement).
 */
export async function verifyAuthentication(rp: RelyingParty, field: string | null, expectedChallenge: string | undefined, passkeys: readonly Passkey[]): Promise<AuthenticationResult> {
  const parsed = authenticationSchema.safeParse(parseJson(field))
  if (!parsed.success || parsed.data.id !== parsed.data.rawId) return { ok: false, reason: 'malformed' }
  const r = parsed.data
  const bad = checkClientData(r.response.clientDataJSON, 'webauthn.get', expectedChallenge, rp)
  if (bad) return { ok: false, reason: bad }
  const authData = Buffer.from(r.response.authenticatorData, 'base64url')
  const badAuth = checkAuthData(authData, rp)
  if (badAuth) return { ok: false, reason: badAuth }
  // §7.2: the user was identified (by their password), so the credential is one of theirs
  const passkey = passkeys.find((p) => p.id === r.id)
  if (!passkey) return { ok: false, reason: 'credential' }
  if (r.response.userHandle && r.response.userHandle !== passkey.userHandle) return { ok: false, reason: 'user-handle', passkeyId: passkey.id }
  const response: AuthenticationResponseJSON = {
    id: r.id,
    rawId: r.rawId,
    type: 'public-key',
    clientExtensionResults: {},
    ...(r.authenticatorAttachment ? { authenticatorAttachment: r.authenticatorAttachment } : {}),
    response: { clientDataJSON: r.response.clientDataJSON, authenticatorData: r.response.authenticatorData, signature: r.response.signature, ...(r.response.userHandle ? { userHandle: r.response.userHandle } : {}) },
  }
  let info
  try {
    info = await verifyAuthenticationResponse({
      response,
      expectedChallenge: expectedChallenge!,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      // the counter is checked below, after the signature (§7.2: the signature, then the counter), with the rule of counterAcceptable; the library would check it first
      credential: { id: passkey.id, publicKey: new Uint8Array(passkey.publicKey), counter: 0 },
      requireUserVerification: false,
    })
  } catch {
    return { ok: false, reason: 'signature', passkeyId: passkey.id }
  }
  if (!info.verified) return { ok: false, reason: 'signature', passkeyId: passkey.id }
  const counter = counterOf(authData)
  if (!counterAcceptable(passkey.counter, counter)) return { ok: false, reason: 'counter', passkeyId: passkey.id }
  return { ok: true, passkey, counter, userVerified: info.authenticationInfo.userVerified }
}

/**
 * The script the second-factor pages load (from the provider, under the
 * page's CSP nonce): it shows the passkey forms when the browser has
 * WebAuthn, runs the ceremony with the options in the form's
 * `data-options`, and posts the credential's answer as the form field
 * `response`. Without JavaScript (or WebAuthn) the forms stay hidden and
 * the page works as before (a TOTP code). Errors of the browser (the user
 * cancelled, a timeout) are shown on the page, and nothing is posted.
 */
export const PASSKEY_SCRIPT = `// Edgebox's passkey forms (src/auth/idp/webauthn.ts): WebAuthn ceremonies posted as ordinary forms.
'use strict'
;(() => {
  const forms = document.querySelectorAll('form[data-passkey]')
  if (forms.length === 0 || !window.PublicKeyCredential || !navigator.credentials) return
  const fromB64u = (s) => {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4))
    const out = new Uint8Array(b.length)
    for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i)
    return out
  }
  const b64u = (buf) => {
    const bytes = new Uint8Array(buf)
    let b = ''
    for (let i = 0; i < bytes.length; i++) b += String.fromCharCode(bytes[i])
    return btoa(b).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')
  }
  const descriptors = (list) => (list || []).map((c) => ({ type: c.type, id: fromB64u(c.id), ...(c.transports ? { transports: c.transports } : {}) }))
  const say = (form, text) => {
    const status = form.querySelector('[data-passkey-status]')
    if (!status) return
    status.textContent = text
    status.hidden = !text
  }
  const explain = (err) => {
    const name = err && err.name
    if (name === 'NotAllowedError' || name === 'AbortError') return 'The passkey request was cancelled or timed out. Try again.'
    if (name === 'InvalidStateError') return 'This authenticator holds a passkey for this account already.'
    if (name === 'SecurityError') return 'This browser does not allow passkeys for this site.'
    if (name === 'NotSupportedError') return 'This authenticator cannot make a passkey of a kind this provider takes.'
    return 'The passkey could not be used' + (name ? ' (' + name + ')' : '') + '. Try again.'
  }
  for (const unsupported of document.querySelectorAll('[data-passkey-unsupported]')) unsupported.hidden = true
  for (const form of forms) {
    const create = form.dataset.passkey === 'create'
    let options
    try {
      options = JSON.parse(form.dataset.options || '')
    } catch {
      continue
    }
    form.hidden = false
    const button = form.querySelector('button')
    if (button && form.hasAttribute('data-passkey-focus')) button.focus()
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      say(form, '')
      if (button) button.disabled = true
      try {
        let answer
        if (create) {
          const publicKey = { ...options, challenge: fromB64u(options.challenge), user: { ...options.user, id: fromB64u(options.user.id) }, excludeCredentials: descriptors(options.excludeCredentials) }
          const cred = await navigator.credentials.create({ publicKey })
          const r = cred.response
          answer = { clientDataJSON: b64u(r.clientDataJSON), attestationObject: b64u(r.attestationObject), transports: typeof r.getTransports === 'function' ? r.getTransports() : [] }
          answer = { id: cred.id, rawId: b64u(cred.rawId), type: cred.type, authenticatorAttachment: cred.authenticatorAttachment || undefined, response: answer }
        } else {
          const publicKey = { ...options, challenge: fromB64u(options.challenge), allowCredentials: descriptors(options.allowCredentials) }
          const cred = await navigator.credentials.get({ publicKey })
          const r = cred.response
          answer = { clientDataJSON: b64u(r.clientDataJSON), authenticatorData: b64u(r.authenticatorData), signature: b64u(r.signature), userHandle: r.userHandle ? b64u(r.userHandle) : undefined }
          answer = { id: cred.id, rawId: b64u(cred.rawId), type: cred.type, authenticatorAttachment: cred.authenticatorAttachment || undefined, response: answer }
        }
        form.elements.namedItem('response').value = JSON.stringify(answer)
        HTMLFormElement.prototype.submit.call(form)
      } catch (err) {
        say(form, explain(err))
        if (button) button.disabled = false
      }
    })
  }
})()
`

/** A short hash of the script, in its URL (`passkey.js?v=...`), so it can be cached for good and a new Edgebox's is fetched anew. */
export const PASSKEY_SCRIPT_VERSION = createHash('sha256').update(PASSKEY_SCRIPT).digest('base64url').slice(0, 12)

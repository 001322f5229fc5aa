import { safeEqual } from '../core/secrets.ts'
import { isLoopback } from '../http/address.ts'

/**
 * Who may use the admin listener (docs/admin.md, "Who gets in"). A request
 * with the configured token (`Authorization: Bearer`) gets in from
 * anywhere the listener is reachable. Without it, only a request that is
 * plainly from this machine's own user gets in, all of these holding:
 *
 * - the peer is a loopback address;
 * - no proxy is in between: no `Forwarded`, `X-Forwarded-*` or `Via` field
 *   (a local reverse proxy would otherwise hand the world a loopback peer);
 * - `Host` is `localhost`, `127.0.0.1` or `[::1]` with the admin port, so a
 *   page of another site whose name was made to resolve to 127.0.0.1 (DNS
 *   rebinding) is refused: its requests carry its own name;
 * - an unsafe method carries `Origin` of that same host and port, so a page
 *   of another origin cannot post to it (a form, or `fetch` with `no-cors`).
 *
 * With the single sign-on gate (`admin.auth`), the loopback rules give way to
 * it: every request without the token goes on to the gate (verdict
 * `signOn`), from this machine too, which lets in a session or a provider's
 * access token its rules allow. Only one rule is the door's own then: an
 * unsafe method that relies on a session cookie carries `Origin` of the
 * admin listener itself (CSRF; a bearer token is never sent by a browser on
 * its own, so a request with one needs no Origin). The Host check against
 * DNS rebinding is not needed there: a browser sends a session cookie only
 * to the host it was set for, so a page of another name rebound to this
 * address carries none and is asked to sign in.
 */

export interface AdminRequest {
  readonly method: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly peer: string
  /** The request target as sent (`/api/v1/config?x=1`); only the sign-on gate's back-channel logout path is told apart by it. */
  readonly url?: string | undefined
}

/** In (`signOn`: once the sign-on gate lets it in), or refused with a status. */
export type AdminVerdict = { readonly ok: true; readonly signOn?: true } | { readonly ok: false; readonly status: 401 | 403; readonly message: string; readonly headers: Readonly<Record<string, string>> }

/** The realm of the admin listener's challenge (RFC 6750 §3). */
export const ADMIN_REALM = 'edgebox admin'

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])
/** Where an identity provider posts its logout tokens (Back-Channel Logout 1.0 §2.5): a server's request, with no Origin, that proves itself with a signed token. */
const BACKCHANNEL_LOGOUT = '/_edgebox/auth/backchannel-logout'
const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '[::1]'])

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/** The bearer token a request presents (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1), or undefined. */
function bearer(headers: AdminRequest['headers']): string | undefined {
  const m = /^bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(first(headers.authorization) ?? '')
  return m?.[1]
}

export function adminAccess(req: AdminRequest, opts: { readonly port: number; readonly token?: string | undefined; readonly signOn?: boolean | undefined }): AdminVerdict {
  const challenge = { 'www-authenticate': `Bearer realm="${ADMIN_REALM}"` }
  const given = bearer(req.headers)
  if (opts.token !== undefined && given !== undefined) {
    if (safeEqual(given, opts.token)) return { ok: true }
    // with the sign-on gate, another bearer token may be a provider's access token: the gate checks it
    if (!opts.signOn) return { ok: false, status: 401, message: 'the admin token is not valid', headers: { 'www-authenticate': `Bearer realm="${ADMIN_REALM}", error="invalid_token"` } }
  }
  if (opts.signOn) return toTheGate(req, given !== undefined)
  const refuse = (message: string): AdminVerdict =>
    opts.token !== undefined ? { ok: false, status: 401, message: `${message}; or send Authorization: Bearer <admin.token>`, headers: challenge } : { ok: false, status: 403, message, headers: {} }
  if (!isLoopback(req.peer)) return { ok: false, status: 401, message: 'the admin listener answers other machines only with its token (Authorization: Bearer <admin.token>)', headers: challenge }
  const h = req.headers
  if (h.forwarded !== undefined || h.via !== undefined || Object.keys(h).some((k) => k.startsWith('x-forwarded-'))) {
    return refuse('a request through a proxy (Forwarded, X-Forwarded-*, Via) is not taken as this machine\'s own')
  }
  const host = (first(h.host) ?? '').toLowerCase()
  const colon = host.lastIndexOf(':')
  const name = colon > host.lastIndexOf(']') ? host.slice(0, colon) : host
  const port = colon > host.lastIndexOf(']') ? host.slice(colon + 1) : ''
  if (!LOCAL_NAMES.has(name) || port !== String(opts.port)) {
    return refuse(`Host must be localhost, 127.0.0.1 or [::1] with the admin port ${opts.port} (not ${JSON.stringify(host.slice(0, 80))}): a page of another name is not let in`)
  }
  if (!SAFE.has(req.method)) {
    const origin = first(h.origin)
    if (origin !== `http://${host}`) return refuse(`a ${req.method} needs Origin: http://${host} (it has ${origin === undefined ? 'none' : JSON.stringify(origin.slice(0, 80))})`)
  }
  return { ok: true }
}

/**
 * With the sign-on gate: every request goes on to it, but an unsafe method
 * carried by a session cookie needs `Origin` of the admin listener itself
 * (the host and port it was asked by), so no page of another origin, nor of
 * another port of the same host (cookies are not isolated by port, RFC 6265
 * §8.5), can post with the operator's session (CSRF). A request with a bearer
 * token needs none (browsers never add one by themselves), nor the provider's
 * back-channel logout, which carries a signed logout token.
 */
function toTheGate(req: AdminRequest, hasBearer: boolean): AdminVerdict {
  if (SAFE.has(req.method) || hasBearer) return { ok: true, signOn: true }
  if (req.method === 'POST' && (req.url ?? '').split('?')[0] === BACKCHANNEL_LOGOUT) return { ok: true, signOn: true }
  const host = (first(req.headers.host) ?? '').toLowerCase()
  const origin = first(req.headers.origin)
  if (origin !== `http://${host}`) return { ok: false, status: 403, message: `a ${req.method} with a session needs Origin: http://${host} (it has ${origin === undefined ? 'none' : JSON.stringify(origin.slice(0, 80))}); a script sends Authorization: Bearer instead`, headers: {} }
  return { ok: true, signOn: true }
}

import { isToken } from './token.ts'

/**
 * CORS as the Fetch standard defines it (https://fetch.spec.whatwg.org/,
 * "CORS protocol"), as pure functions: which requests a browser sends
 * without a preflight, and what a server answers to a preflight and to the
 * actual request. No I/O; the pipeline applies them (src/security/cors.ts).
 */

/** Fetch §2.2.1 "CORS-safelisted method". */
export const SAFELISTED_METHODS = new Set(['GET', 'HEAD', 'POST'])

/** Fetch §2.2.2 "CORS-unsafe request-header byte": 0x00-0x08, 0x0A-0x1F (not TAB), "():<>?@[\]{}, DEL. */
const UNSAFE_BYTE = /[\x00-\x08\x0a-\x1f"():<>?@[\\\]{}\x7f]/

const SAFELISTED_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'])

/**
 * Fetch §2.2.2 "CORS-safelisted request-header": accept, accept-language,
 * content-language, content-type (one of three essences) and range (one
 * simple bytes range), each with its value rules and at most 128 bytes.
 */
export function isSafelistedRequestHeader(name: string, value: string): boolean {
  if (Buffer.byteLength(value) > 128) return false
  switch (name.toLowerCase()) {
    case 'accept':
      return !UNSAFE_BYTE.test(value)
    case 'accept-language':
    case 'content-language':
      return /^[0-9A-Za-z *,\-.;=]*$/.test(value)
    case 'content-type': {
      if (UNSAFE_BYTE.test(value)) return false
      const essence = value.split(';')[0]!.trim().toLowerCase()
      return SAFELISTED_TYPES.has(essence)
    }
    case 'range':
      return /^bytes=\d+-\d*$/.test(value)
    default:
      return false
  }
}

/**
 * Fetch §4.1 "main fetch" / §4.8 "CORS-preflight fetch": whether a browser
 * sends a preflight before this cross-origin request (in "cors" mode): a
 * method other than GET, HEAD, POST, or a header that is not safelisted
 * (also when the safelisted ones together pass 1,024 bytes).
 */
export function needsPreflight(method: string, headers: Record<string, string>): boolean {
  if (!SAFELISTED_METHODS.has(method)) return true // methods are case-sensitive (RFC 9110 §9.1)
  let total = 0
  for (const [name, value] of Object.entries(headers)) {
    if (!isSafelistedRequestHeader(name, value)) return true
    total += Buffer.byteLength(value)
  }
  return total > 1024
}

export interface CorsPolicy {
  /** Whether this Origin may read responses. */
  allows(origin: string): boolean
  /** Every origin is allowed (then `*` may be answered, without credentials). */
  readonly anyOrigin: boolean
  /** Upper case. */
  readonly methods: readonly string[]
  /** Lower case; request headers a preflight may ask for besides the safelisted ones. */
  readonly allowHeaders: readonly string[]
  readonly exposeHeaders: readonly string[]
  readonly credentials: boolean
  /** Seconds a browser may cache a preflight answer. */
  readonly maxAge: number
}

export type PreflightResult = { ok: true; headers: Record<string, string> } | { ok: false; reason: string }

/**
 * The answer to a preflight (an OPTIONS request with Origin and
 * Access-Control-Request-Method): the exact methods and headers allowed, or
 * a refusal (then the response carries no CORS headers, and the browser
 * refuses the actual request).
 */
export function preflight(policy: CorsPolicy, origin: string, requestMethod: string, requestHeaders: string | undefined): PreflightResult {
  if (!policy.allows(origin)) return { ok: false, reason: `origin ${origin} is not allowed` }
  const method = requestMethod.trim()
  if (!isToken(method)) return { ok: false, reason: `Access-Control-Request-Method ${JSON.stringify(requestMethod)} is not a method` }
  // Methods are case-sensitive (RFC 9110 §9.1); browsers upper-case the standard ones.
  if (!SAFELISTED_METHODS.has(method) && !policy.methods.includes(method)) return { ok: false, reason: `method ${method} is not allowed` }
  const asked = (requestHeaders ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean)
  for (const h of asked) {
    if (!isToken(h)) return { ok: false, reason: `Access-Control-Request-Headers names ${JSON.stringify(h)}, not a header` }
    if (!policy.allowHeaders.includes(h)) return { ok: false, reason: `request header ${h} is not allowed` }
  }
  const headers: Record<string, string> = {
    'access-control-allow-origin': allowOrigin(policy, origin),
    'access-control-allow-methods': policy.methods.join(', '),
    'access-control-max-age': String(policy.maxAge),
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  }
  if (asked.length) headers['access-control-allow-headers'] = asked.join(', ')
  if (policy.credentials) headers['access-control-allow-credentials'] = 'true'
  return { ok: true, headers }
}

/**
 * The CORS headers of an actual response to an allowed origin (Fetch
 * §3.2.3). Browsers list in Access-Control-Request-Headers only the headers
 * whose value is not safelisted (a Content-Type of application/json, say),
 * so a policy names those it takes (`content-type`).
 */
export function responseHeaders(policy: CorsPolicy, origin: string): Record<string, string> {
  const headers: Record<string, string> = { 'access-control-allow-origin': allowOrigin(policy, origin) }
  if (policy.credentials) headers['access-control-allow-credentials'] = 'true'
  if (policy.exposeHeaders.length) headers['access-control-expose-headers'] = policy.exposeHeaders.join(', ')
  return headers
}

/** Whether answers differ by Origin (then every response says `Vary: Origin`, so no cache mixes them up). */
export function variesByOrigin(policy: CorsPolicy): boolean {
  return !(policy.anyOrigin && !policy.credentials)
}

/** `*` only for a policy that allows any origin without credentials (Fetch §3.2.5: never `*` with credentials). */
function allowOrigin(policy: CorsPolicy, origin: string): string {
  return policy.anyOrigin && !policy.credentials ? '*' : origin
}

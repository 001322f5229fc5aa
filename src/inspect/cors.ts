/**
 * CORS as a browser applies it, for `edgebox inspect`: whether a script's
 * request is preflighted, whether the preflight answer lets it through, and
 * whether the script may read the actual response (Fetch standard,
 * https://fetch.spec.whatwg.org/, "CORS-preflight fetch" and "CORS check").
 * Every verdict comes with its reasons in plain words. Pure functions.
 */

import { isSafelistedRequestHeader, SAFELISTED_METHODS } from '../http/cors.ts'
import { isToken } from '../http/token.ts'

/** A response header map; names in any case (Node gives lower case). */
export type ResponseHeaders = Record<string, string | string[] | undefined>

export interface CorsPlan {
  /** Whether the browser sends an OPTIONS preflight before the request. */
  preflight: boolean
  /** Why (or why not), in words. */
  why: string[]
  /** The method the browser sends (it upper-cases the standard ones). */
  method: string
  /**
   * The lower-case, sorted header names the preflight lists in
   * Access-Control-Request-Headers (the CORS-unsafe ones); empty when
   * there is no preflight or only the method needs one.
   */
  requestHeaders: string[]
}

export interface PreflightInput {
  /** The page's origin, serialized: `https://app.example`. */
  origin: string
  method: string
  /**
   * The request headers: either names (taken as the CORS-unsafe names the
   * preflight lists, as in CorsPlan.requestHeaders), or name → value (the
   * unsafe ones are picked out exactly as corsPlan does).
   */
  headers: string[] | Record<string, string>
  /** Whether the request includes credentials (cookies, HTTP auth): `credentials: 'include'`. */
  credentials: boolean
  status: number
  responseHeaders: ResponseHeaders
}

export interface PreflightVerdict {
  /** Whether the browser goes on to send the actual request. */
  allowed: boolean
  /** Each rule checked, passed or failed, in words. */
  reasons: string[]
  /** Access-Control-Max-Age as the server sent it, in seconds; null when absent or invalid (browsers then cache the answer 5 s). */
  maxAgeSeconds: number | null
}

export interface ResponseInput {
  origin: string
  credentials: boolean
  responseHeaders: ResponseHeaders
}

export interface ResponseVerdict {
  /** Whether the script may read the response. */
  allowed: boolean
  /** Each rule checked, and warnings (such as a missing Vary: Origin), in words. */
  reasons: string[]
  /**
   * Lower-case names of this response's headers the script can read
   * (`response.headers.get()`): the CORS-safelisted ones and those named in
   * Access-Control-Expose-Headers. Empty when not allowed.
   */
  exposed: string[]
}

const SAFELISTED_LIST = 'GET, HEAD, POST'

/** Fetch "normalize a method": these six are upper-cased whatever case a script writes. */
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'])

/** Fetch "forbidden method": a browser refuses to send these at all. */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])

/** Fetch "forbidden request-header": scripts cannot set these; the browser drops them. */
const FORBIDDEN_REQUEST_HEADERS = new Set([
  'accept-charset',
  'accept-encoding',
  'access-control-request-headers',
  'access-control-request-method',
  'connection',
  'content-length',
  'cookie',
  'cookie2',
  'date',
  'dnt',
  'expect',
  'host',
  'keep-alive',
  'origin',
  'referer',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'via',
])

/** Fetch "CORS-safelisted response-header name": readable by scripts without Access-Control-Expose-Headers. */
export const SAFELISTED_RESPONSE_HEADERS = ['cache-control', 'content-language', 'content-length', 'content-type', 'expires', 'last-modified', 'pragma'] as const

/** Fetch "forbidden response-header name": never readable by scripts. */
const FORBIDDEN_RESPONSE_HEADERS = new Set(['set-cookie', 'set-cookie2'])

/** Chromium caps Access-Control-Max-Age at 2 hours, Firefox at 24 hours. */
const CHROMIUM_MAX_AGE = 7200
const FIREFOX_MAX_AGE = 86400

function isForbiddenRequestHeader(name: string): boolean {
  const n = name.toLowerCase()
  return FORBIDDEN_REQUEST_HEADERS.has(n) || n.startsWith('proxy-') || n.startsWith('sec-')
}

function normalizeMethod(method: string): string {
  const upper = method.toUpperCase()
  return NORMALIZED_METHODS.has(upper) ? upper : method
}

/** Fetch "CORS-unsafe request-header names": lower case, sorted, forbidden ones left out (the browser never sends them). */
function unsafeHeaderNames(headers: Record<string, string>): string[] {
  const unsafe: string[] = []
  const potentially: string[] = []
  let size = 0
  for (const [name, value] of Object.entries(headers)) {
    const n = name.toLowerCase()
    if (isForbiddenRequestHeader(n)) continue
    if (!isSafelistedRequestHeader(n, value)) unsafe.push(n)
    else {
      potentially.push(n)
      size += Buffer.byteLength(value)
    }
  }
  if (size > 1024) unsafe.push(...potentially)
  return [...new Set(unsafe)].sort()
}

/** Why one header is not CORS-safelisted, in words. */
function whyUnsafe(name: string, value: string): string {
  const n = name.toLowerCase()
  if (!['accept', 'accept-language', 'content-language', 'content-type', 'range'].includes(n)) return `the header ${n} is not CORS-safelisted`
  if (Buffer.byteLength(value) > 128) return `the ${n} value is longer than 128 bytes, the most a header may have without a preflight`
  switch (n) {
    case 'content-type': {
      const essence = value.split(';')[0]!.trim().toLowerCase()
      if (['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'].includes(essence)) {
        return `the Content-Type value ${JSON.stringify(value)} has a character browsers do not allow without a preflight`
      }
      return `Content-Type ${essence} is not one of the three a form can send (application/x-www-form-urlencoded, multipart/form-data, text/plain)`
    }
    case 'range':
      return `Range ${value} is not a single simple byte range (bytes=N- or bytes=N-M)`
    case 'accept':
      return `the Accept value ${JSON.stringify(value)} has a character browsers do not allow without a preflight`
    default:
      return `the ${n} value ${JSON.stringify(value)} has characters other than letters, digits, space and * , - . ; =`
  }
}

/**
 * Whether a browser preflights this cross-origin request from a script
 * (fetch or XMLHttpRequest in "cors" mode), and why, in words.
 */
export function corsPlan(method: string, headers: Record<string, string>): CorsPlan {
  const why: string[] = []
  const sent = normalizeMethod(method)
  if (sent !== method) why.push(`the browser sends ${method} as ${sent} (it upper-cases the standard methods)`)
  if (FORBIDDEN_METHODS.has(sent.toUpperCase())) why.push(`browsers refuse to send ${sent.toUpperCase()} at all: fetch() throws a TypeError`)

  const kept: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (isForbiddenRequestHeader(name)) why.push(`a script cannot set ${name.toLowerCase()}: the browser ignores it (and sets its own when needed)`)
    else kept[name.toLowerCase()] = value
  }

  const methodNeeds = !SAFELISTED_METHODS.has(sent)
  if (methodNeeds) why.push(`${sent} is not one of ${SAFELISTED_LIST}`)

  let size = 0
  let headerNeeds = false
  for (const [name, value] of Object.entries(kept)) {
    if (isSafelistedRequestHeader(name, value)) size += Buffer.byteLength(value)
    else {
      headerNeeds = true
      why.push(whyUnsafe(name, value))
    }
  }
  if (size > 1024) {
    headerNeeds = true
    why.push(`the safelisted headers together are longer than 1,024 bytes`)
  }

  const preflight = methodNeeds || headerNeeds
  if (!preflight) {
    const names = Object.keys(kept)
    why.push(
      `a simple request: ${sent} is one of ${SAFELISTED_LIST} and ${names.length ? `every header (${names.join(', ')}) is CORS-safelisted` : 'it sets no header of its own'}, so the browser sends it directly and only checks the response`,
    )
  }
  return { preflight, why, method: sent, requestHeaders: preflight ? unsafeHeaderNames(kept) : [] }
}

/** Case-insensitive lookup; several field lines are combined with ", " (RFC 9110 §5.3). */
function header(headers: ResponseHeaders, name: string): string | undefined {
  let found: string[] | undefined
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name || v === undefined) continue
    found = (found ?? []).concat(v)
  }
  return found?.join(', ')
}

/** Fetch "extract header list values" for a #token list; null when absent, 'failure' when a value is not a token. */
function tokenList(value: string | undefined): string[] | null | 'failure' {
  if (value === undefined) return null
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  return items.every((s) => isToken(s)) ? items : 'failure'
}

/**
 * Fetch "CORS check": Access-Control-Allow-Origin (and, with credentials,
 * Access-Control-Allow-Credentials). Pushes its reasons; returns success.
 */
function corsCheck(origin: string, credentials: boolean, headers: ResponseHeaders, reasons: string[]): boolean {
  const acao = header(headers, 'access-control-allow-origin')
  if (acao === undefined) {
    reasons.push(`no Access-Control-Allow-Origin header: the server does not allow ${origin} (or any other origin) to read the response`)
    return false
  }
  const value = acao.trim()
  if (value === '*') {
    if (credentials) {
      reasons.push(
        'Access-Control-Allow-Origin is *, which browsers refuse for a request with credentials: the server must name the origin exactly and send Access-Control-Allow-Credentials: true',
      )
      return false
    }
    reasons.push('Access-Control-Allow-Origin is *: any origin may read it (fine for public data, as no cookies are involved)')
  } else if (value !== origin) {
    let hint = ''
    if (value.includes(',')) hint = ': it lists several origins, but the header takes exactly one (the server should echo the one that asked)'
    else if (value.replace(/\/$/, '').toLowerCase() === origin.toLowerCase()) hint = ': it must match byte for byte (scheme, host and port, lower case, no trailing slash)'
    reasons.push(`Access-Control-Allow-Origin is ${value}, not ${origin}${hint}`)
    return false
  } else {
    reasons.push(`Access-Control-Allow-Origin names ${origin} exactly`)
    if (origin === 'null') reasons.push('allowing the origin "null" lets any sandboxed iframe or local file read the response too')
  }

  const acac = header(headers, 'access-control-allow-credentials')
  if (!credentials) {
    if (acac?.trim() === 'true') reasons.push('Access-Control-Allow-Credentials: true has no effect here: the request sends no credentials')
    return true
  }
  if (acac?.trim() === 'true') {
    reasons.push('Access-Control-Allow-Credentials is true: the request may carry cookies and the script may read the answer')
    return true
  }
  if (acac === undefined) reasons.push('with credentials, the response must say Access-Control-Allow-Credentials: true, and it does not')
  else reasons.push(`Access-Control-Allow-Credentials is ${JSON.stringify(acac)}; only exactly "true" (lower case) lets a request with credentials through`)
  return false
}

/**
 * How a browser judges the answer to a preflight (Fetch "CORS-preflight
 * fetch"): an ok status, the CORS check, the method and every CORS-unsafe
 * header allowed. All failures are listed, not just the first.
 */
export function judgePreflight(input: PreflightInput): PreflightVerdict {
  const reasons: string[] = []
  const { origin, credentials, status, responseHeaders } = input
  const method = normalizeMethod(input.method)
  let allowed = true

  if (status >= 200 && status <= 299) reasons.push(`the preflight got ${status}, an ok status`)
  else {
    allowed = false
    reasons.push(
      `the preflight got ${status}, not a 2xx status: browsers treat that as a refusal, whatever the headers say${
        status === 404 || status === 405 || status === 501 ? ' (the server likely does not handle OPTIONS for this path)' : status === 401 || status === 403 ? ' (preflights carry no cookies or Authorization, so the server must answer them without authentication)' : ''
      }`,
    )
  }
  if (!corsCheck(origin, credentials, responseHeaders, reasons)) allowed = false

  // Methods
  const methods = tokenList(header(responseHeaders, 'access-control-allow-methods'))
  if (methods === 'failure') {
    allowed = false
    reasons.push('Access-Control-Allow-Methods is not a comma-separated list of methods: browsers reject the preflight')
  } else if (SAFELISTED_METHODS.has(method)) {
    reasons.push(`${method} is one of ${SAFELISTED_LIST}, allowed without being listed`)
  } else if (methods?.includes(method)) {
    reasons.push(`Access-Control-Allow-Methods lists ${method}`)
  } else if (methods?.includes('*') && !credentials) {
    reasons.push(`Access-Control-Allow-Methods is *, which allows ${method} (a wildcard only for requests without credentials)`)
  } else {
    allowed = false
    if (!methods) reasons.push(`no Access-Control-Allow-Methods header, so only ${SAFELISTED_LIST} are allowed, not ${method}`)
    else if (methods.includes('*')) reasons.push(`with credentials, * in Access-Control-Allow-Methods is not a wildcard (it would mean a method literally named *): ${method} must be listed`)
    else if (methods.some((m) => m.toUpperCase() === method.toUpperCase())) reasons.push(`Access-Control-Allow-Methods lists ${methods.join(', ')}; methods are case-sensitive, so ${method} must be listed exactly so`)
    else reasons.push(`Access-Control-Allow-Methods lists ${methods.join(', ')}, not ${method}`)
  }

  // Headers
  const asked = Array.isArray(input.headers)
    ? [...new Set(input.headers.map((h) => h.trim().toLowerCase()).filter((h) => h && !isForbiddenRequestHeader(h)))].sort()
    : unsafeHeaderNames(input.headers)
  const allowHeaders = tokenList(header(responseHeaders, 'access-control-allow-headers'))
  if (allowHeaders === 'failure') {
    allowed = false
    reasons.push('Access-Control-Allow-Headers is not a comma-separated list of header names: browsers reject the preflight')
  } else {
    const listed = new Set((allowHeaders ?? []).map((h) => h.toLowerCase()))
    const wildcard = listed.has('*') && !credentials
    if (listed.has('*') && credentials && asked.length) reasons.push('with credentials, * in Access-Control-Allow-Headers is not a wildcard: each header must be listed by name')
    for (const h of asked) {
      if (listed.has(h)) reasons.push(`Access-Control-Allow-Headers lists ${h}`)
      else if (h === 'authorization') {
        allowed = false
        reasons.push(
          wildcard
            ? 'Authorization is never covered by * in Access-Control-Allow-Headers: it must be listed by name'
            : 'Access-Control-Allow-Headers does not list authorization',
        )
      } else if (wildcard) reasons.push(`Access-Control-Allow-Headers is *, which covers ${h}`)
      else {
        allowed = false
        reasons.push(allowHeaders ? `Access-Control-Allow-Headers (${allowHeaders.join(', ')}) does not list ${h}` : `no Access-Control-Allow-Headers header, so the request header ${h} is not allowed`)
      }
    }
  }

  // Max-Age
  const rawMaxAge = header(responseHeaders, 'access-control-max-age')?.trim()
  let maxAgeSeconds: number | null = null
  if (rawMaxAge === undefined) reasons.push('no Access-Control-Max-Age: browsers remember this preflight for 5 s, so most requests pay for a preflight first')
  else if (!/^\d+$/.test(rawMaxAge)) reasons.push(`Access-Control-Max-Age ${JSON.stringify(rawMaxAge)} is not a number of seconds: browsers use 5 s`)
  else {
    maxAgeSeconds = Number(rawMaxAge)
    if (maxAgeSeconds === 0) reasons.push('Access-Control-Max-Age is 0: browsers do not cache the preflight, every request pays for one')
    else if (maxAgeSeconds > CHROMIUM_MAX_AGE) {
      reasons.push(
        `Access-Control-Max-Age is ${maxAgeSeconds} s, but browsers cap it: Chromium at ${CHROMIUM_MAX_AGE} s (2 hours), Firefox at ${FIREFOX_MAX_AGE} s (24 hours)`,
      )
    } else reasons.push(`Access-Control-Max-Age: browsers may reuse this preflight for ${maxAgeSeconds} s`)
  }
  if (allowed) reasons.push(`the browser goes on to send the ${method} request`)
  else reasons.push(`the browser stops here: the ${method} request is never sent, and the script gets a network error`)
  return { allowed, reasons, maxAgeSeconds }
}

/**
 * How a browser judges the actual response (Fetch "CORS check"), which
 * headers the script may read, and a caching hazard when the answer varies
 * by origin without saying so.
 */
export function judgeResponse(input: ResponseInput): ResponseVerdict {
  const reasons: string[] = []
  const { origin, credentials, responseHeaders } = input
  const allowed = corsCheck(origin, credentials, responseHeaders, reasons)

  const acao = header(responseHeaders, 'access-control-allow-origin')?.trim()
  if (acao !== undefined && acao !== '*') {
    const vary = (header(responseHeaders, 'vary') ?? '')
      .split(',')
      .map((v) => v.trim().toLowerCase())
    if (!vary.includes('origin') && !vary.includes('*')) {
      reasons.push(
        'Vary: Origin is missing although Access-Control-Allow-Origin names one origin: a shared cache (CDN, proxy) or the browser cache may serve this answer to a page on another origin, which is then refused, or the other way round',
      )
    }
  }

  const present = Object.entries(responseHeaders)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k.toLowerCase())
  const exposeRaw = header(responseHeaders, 'access-control-expose-headers')
  const expose = tokenList(exposeRaw)
  const listed = new Set(expose === 'failure' || expose === null ? [] : expose.map((h) => h.toLowerCase()))
  const wildcard = listed.has('*') && !credentials
  const readable = new Set<string>(SAFELISTED_RESPONSE_HEADERS)
  const safelistedText = 'Cache-Control, Content-Language, Content-Length, Content-Type, Expires, Last-Modified, Pragma'
  if (expose === 'failure') reasons.push(`Access-Control-Expose-Headers is not a list of header names; browsers ignore it, so scripts read only ${safelistedText}`)
  else if (expose === null) reasons.push(`no Access-Control-Expose-Headers: scripts can read only the CORS-safelisted response headers (${safelistedText})`)
  else if (wildcard) reasons.push('Access-Control-Expose-Headers is *: scripts can read every response header except Set-Cookie')
  else {
    if (listed.has('*')) reasons.push('with credentials, * in Access-Control-Expose-Headers is not a wildcard: headers must be listed by name')
    const named = [...listed].filter((h) => h !== '*')
    if (named.length) reasons.push(`Access-Control-Expose-Headers lets scripts read ${named.join(', ')}, besides the CORS-safelisted ones`)
  }
  for (const h of listed) if (h !== '*') readable.add(h)

  const exposed = allowed ? [...new Set(present)].filter((h) => !FORBIDDEN_RESPONSE_HEADERS.has(h) && (wildcard || readable.has(h))).sort() : []
  if (allowed) {
    const hidden = [...new Set(present)].filter((h) => !FORBIDDEN_RESPONSE_HEADERS.has(h) && !exposed.includes(h) && !h.startsWith(':'))
    if (hidden.length) reasons.push(`hidden from scripts: ${hidden.sort().join(', ')}`)
    reasons.push('the script can read the response')
  } else reasons.push('the browser blocks the script from reading the response (the request itself did reach the server)')
  return { allowed, reasons, exposed }
}

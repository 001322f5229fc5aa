/**
 * Content Security Policy (W3C CSP Level 3), as far as Edgebox needs it: the
 * policies a response's `Content-Security-Policy` field enforces, and
 * whether they let the page load one same-origin, parser-inserted
 * `<script src>` (the RUM SDK's tag, rum/inject.ts). Pure.
 *
 * `Content-Security-Policy-Report-Only` policies never block (CSP3 §2.2:
 * their disposition is "report"), so they are not read here. A policy in a
 * `<meta http-equiv>` element of the page is not seen either.
 */

/** One policy: its directives by (lower-case) name, each with its value's tokens. */
export interface CspPolicy {
  readonly directives: ReadonlyMap<string, readonly string[]>
}

/** What the checked script request is: its page's origin, its path there, and the nonce its element carries (if any). */
export interface ScriptRequest {
  /** The page's origin, `https://example.test:8443`: the script is on the same one. */
  readonly origin: string
  /** The script's path on that origin, `/_edgebox/rum/sdk.js`. */
  readonly path: string
  /** The element's `nonce` attribute; undefined: none. */
  readonly nonce: string | undefined
}

/** ASCII whitespace (Infra): TAB, LF, FF, CR, SPACE. */
const WHITESPACE = /[\t\n\f\r ]+/
const TRIM = /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g
const ASCII = /^[\x00-\x7f]*$/

/**
 * CSP3 §2.2.1 "parse a serialized CSP": directives separated by `;`, the
 * name ASCII case-insensitive, the first of a repeated name wins, tokens
 * that are empty or not ASCII skipped.
 */
export function parseSerializedCsp(text: string): CspPolicy {
  const directives = new Map<string, string[]>()
  for (const raw of text.split(';')) {
    const token = raw.replace(TRIM, '')
    if (token === '' || !ASCII.test(token)) continue
    const [name, ...value] = token.split(WHITESPACE)
    const lower = name!.toLowerCase()
    if (directives.has(lower)) continue
    directives.set(lower, value)
  }
  return { directives }
}

/**
 * CSP3 §2.2.2 "parse a response's Content Security Policies": each
 * comma-separated member of the field (on one line or several) is a policy
 * of its own, and every one of them is enforced. Empty policies are dropped.
 */
export function parseCspList(field: string | number | readonly string[] | undefined): CspPolicy[] {
  if (field === undefined) return []
  const lines = Array.isArray(field) ? (field as readonly string[]) : [String(field)]
  const policies: CspPolicy[] = []
  for (const line of lines) {
    for (const member of line.split(',')) {
      const policy = parseSerializedCsp(member)
      if (policy.directives.size > 0) policies.push(policy)
    }
  }
  return policies
}

/** Whether every policy lets the page load the script (CSP3: a request is blocked when any enforced policy blocks it). */
export function scriptAllowed(policies: readonly CspPolicy[], script: ScriptRequest): boolean {
  const url = new LazyUrl(script)
  for (const policy of policies) if (!policyAllowsScript(policy, script, url)) return false
  return true
}

/**
 * One policy's verdict on an external, parser-inserted script element:
 * a `sandbox` without `allow-scripts` runs no script at all (HTML's
 * sandboxed scripts browsing context flag); otherwise the effective
 * directive is the first of script-src-elem, script-src and default-src
 * (CSP3 §6.8.3 directive fallback list) and its source list decides
 * (§6.1.3 script-src-elem pre-request check: a matching nonce allows;
 * then 'strict-dynamic' blocks a parser-inserted element; then the URL must
 * match a source expression). A policy with none of them allows.
 */
function policyAllowsScript(policy: CspPolicy, script: ScriptRequest, url: LazyUrl): boolean {
  const sandbox = policy.directives.get('sandbox')
  if (sandbox !== undefined && !sandbox.some((flag) => flag.toLowerCase() === 'allow-scripts')) return false
  const list = policy.directives.get('script-src-elem') ?? policy.directives.get('script-src') ?? policy.directives.get('default-src')
  if (list === undefined) return true
  if (script.nonce !== undefined && nonceMatches(list, script.nonce)) return true
  if (list.some((e) => e.toLowerCase() === "'strict-dynamic'")) return false
  return urlMatchesList(list, url)
}

/** CSP3 §6.7.2.3 "does nonce match source list": `'nonce-<value>'`, the keyword case-insensitive, the value exactly. */
function nonceMatches(list: readonly string[], nonce: string): boolean {
  if (nonce === '') return false
  for (const e of list) if (e.length === nonce.length + 8 && e.slice(0, 7).toLowerCase() === "'nonce-" && e.endsWith("'") && e.slice(7, -1) === nonce) return true
  return false
}

/** CSP3 §6.7.2.6 "does url match source list": an empty list and `'none'` alone match nothing. */
function urlMatchesList(list: readonly string[], url: LazyUrl): boolean {
  if (list.length === 0) return false
  if (list.length === 1 && list[0]!.toLowerCase() === "'none'") return false
  return list.some((e) => urlMatchesExpression(e, url))
}

// CSP3 §2.3.1 source expression grammar
const SCHEME_SOURCE = /^([a-z][a-z0-9+.-]*):$/i
const HOST_SOURCE = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\*|[0-9]+))?(\/[^?#]*)?$/i

/**
 * CSP3 §6.7.2.8 "does url match expression in origin" for a URL on the
 * page's own origin: `*` and `'self'` match it; a scheme-source or
 * host-source matches by scheme, host, port and path; keywords, nonces and
 * hashes never match a URL.
 */
function urlMatchesExpression(expression: string, url: LazyUrl): boolean {
  if (expression === '*') return true
  if (expression.toLowerCase() === "'self'") return true
  if (expression.startsWith("'")) return false
  const scheme = SCHEME_SOURCE.exec(expression)
  if (scheme !== null) {
    const u = url.get()
    return u !== null && schemeMatches(scheme[1]!.toLowerCase(), u.protocol.slice(0, -1))
  }
  const host = HOST_SOURCE.exec(expression)
  if (host === null) return false
  const u = url.get()
  if (u === null || u.hostname === '') return false
  const urlScheme = u.protocol.slice(0, -1)
  // without a scheme, the page's own: always the script's, on the same origin
  if (host[1] !== undefined && !schemeMatches(host[1].toLowerCase(), urlScheme)) return false
  if (!hostMatches(host[2]!, u.hostname)) return false
  if (!portMatches(host[3] ?? '', u.port, urlScheme)) return false
  if (host[4] !== undefined && host[4] !== '' && !pathMatches(host[4], u.pathname)) return false
  return true
}

/** CSP3 §6.7.2.9 "scheme-part match": the same scheme, or a secure upgrade of it (http: allows https:). */
function schemeMatches(pattern: string, scheme: string): boolean {
  return pattern === scheme || (pattern === 'http' && scheme === 'https') || (pattern === 'ws' && (scheme === 'wss' || scheme === 'http' || scheme === 'https')) || (pattern === 'wss' && scheme === 'https')
}

/** CSP3 §6.7.2.10 "host-part match": `*.example.com` matches its subdomains (not example.com itself); otherwise the same host. */
function hostMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase()
  if (pattern.startsWith('*')) {
    const rest = pattern.slice(1).toLowerCase()
    return h.endsWith(rest)
  }
  return pattern.toLowerCase() === h
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' }

/** CSP3 §6.7.2.11 "port-part match": `*` any port; none, the scheme's default; else that port (the URL's default port spelled out matches too). */
function portMatches(pattern: string, port: string, scheme: string): boolean {
  if (pattern === '*') return true
  const wanted = pattern === '' ? '' : String(Number(pattern))
  if (wanted === port) return true
  return port === '' && wanted === DEFAULT_PORTS[scheme]
}

/** CSP3 §6.7.2.12 "path-part match": a path ending in `/` matches everything under it; otherwise the exact path; segments compared percent-decoded. */
function pathMatches(pattern: string, path: string): boolean {
  if (pattern === '/' && path === '') return true
  const exact = !pattern.endsWith('/')
  const a = pattern.split('/')
  const b = path.split('/')
  if (a.length > b.length) return false
  if (exact && a.length !== b.length) return false
  if (!exact) a.pop()
  for (let i = 0; i < a.length; i++) if (decode(a[i]!) !== decode(b[i]!)) return false
  return true
}

function decode(piece: string): string {
  try {
    return decodeURIComponent(piece)
  } catch {
    return piece
  }
}

/** The script's URL, parsed only when a scheme- or host-source needs it (most policies say 'self'). */
class LazyUrl {
  readonly #script: ScriptRequest
  #url: URL | null | undefined = undefined
  constructor(script: ScriptRequest) {
    this.#script = script
  }
  get(): URL | null {
    if (this.#url === undefined) {
      try {
        this.#url = new URL(this.#script.path, this.#script.origin)
      } catch {
        this.#url = null
      }
    }
    return this.#url
  }
}

import { isIP } from 'node:net'

/**
 * The one parser for what a client says it wants: the request target
 * (RFC 9112 §3.2), the Host field and HTTP/2's `:authority` (RFC 9110 §7.2,
 * RFC 9113 §8.3.1). Everything downstream (routing, the forward proxy, the
 * upstream URL, redirects, logs, cache keys) reads the values made here;
 * nothing else splits a host on `:` or gives client input to `new URL`.
 * Pure functions: strings in, immutable values out, a TargetError with a
 * message that names the problem for anything else.
 */

export class TargetError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TargetError'
  }
}

/** `host[:port]` as the client wrote it, checked and normalised. */
export interface Authority {
  /** Lower case, IPv6 without brackets, without a trailing dot. */
  readonly host: string
  /** The explicit port, or null when none was given. */
  readonly port: number | null
  /** `host` or `host:port`, IPv6 in brackets: what a Host field carries. */
  readonly text: string
}

export type TargetForm = 'origin' | 'absolute' | 'authority' | 'asterisk'

export interface RequestTarget {
  readonly form: TargetForm
  /** The scheme of an absolute-form target; null otherwise. */
  readonly scheme: 'http' | 'https' | null
  /** An absolute-form or authority-form target's authority; null otherwise. */
  readonly authority: Authority | null
  /** The path as sent, still percent-encoded, without the query (`*` for asterisk-form, the `host:port` for authority-form). */
  readonly rawPath: string
  /** Decoded, dot segments resolved, repeated slashes merged: what routing and the file system see. */
  readonly path: string
  /** The same segments as `path`, each kept in the client's own percent-encoding: what is sent upstream. */
  readonly encodedPath: string
  /** The query with its `?`, or ''. */
  readonly query: string
}

/** Characters that make a path need the slow, careful path. */
const NEEDS_WORK = /[%\\]|\/\.|\/\/|\0/
/** RFC 3986 §3.3 pchar, plus `/`, `?` is cut off before: anything else in a path is refused. */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/

/**
 * Decodes and normalises an origin-form path (RFC 3986 §5.2.4). Returns
 * null for anything that could reach outside the tree it is resolved
 * against, or that is not a faithful path: invalid percent-encoding, invalid
 * or overlong UTF-8, NUL bytes, encoded slashes (`%2F`), backslashes
 * (literal or `%5C`), and `..` segments that climb above the root.
 */
export function normalizePath(raw: string): string | null {
  return normalizeSegments(raw)?.[0] ?? null
}

/** [decoded path, the same segments in their original encoding], or null (see normalizePath). */
function normalizeSegments(raw: string): [string, string] | null {
  if (raw.charCodeAt(0) !== 47 /* / */) return null
  if (!NEEDS_WORK.test(raw)) return [raw, raw]
  if (raw.includes('\\')) return null
  const segments = raw.split('/')
  const out: string[] = []
  const kept: string[] = []
  for (let i = 1; i < segments.length; i++) {
    const enc = segments[i]!
    let seg: string
    try {
      // decodeURIComponent rejects malformed escapes and invalid or overlong UTF-8.
      seg = enc.includes('%') ? decodeURIComponent(enc) : enc
    } catch {
      return null
    }
    if (seg.includes('/') || seg.includes('\\') || seg.includes('\0')) return null
    const last = i === segments.length - 1
    if (seg === '.' || (seg === '' && !last)) {
      if (last) {
        out.push('')
        kept.push('')
      }
      continue
    }
    if (seg === '..') {
      if (out.length === 0) return null
      out.pop()
      kept.pop()
      if (last) {
        out.push('')
        kept.push('')
      }
      continue
    }
    out.push(seg)
    kept.push(enc)
  }
  return ['/' + out.join('/'), '/' + kept.join('/')]
}

function originForm(target: string, form: TargetForm, scheme: 'http' | 'https' | null, authority: Authority | null): RequestTarget {
  const q = target.indexOf('?')
  const rawPath = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q)
  if (!PATH_CHARS.test(rawPath)) throw new TargetError('the request target has characters a path cannot have')
  if (query !== '' && !QUERY_CHARS.test(query)) throw new TargetError('the query has characters a URI cannot have')
  const paths = normalizeSegments(rawPath)
  if (paths === null) throw new TargetError('request target is not a safe path')
  return { form, scheme, authority, rawPath, path: paths[0], encodedPath: paths[1], query }
}

const ASTERISK: RequestTarget = { form: 'asterisk', scheme: null, authority: null, rawPath: '*', path: '*', encodedPath: '*', query: '' }

/**
 * Parses a request target (RFC 9112 §3.2): origin-form (`/path?q`),
 * absolute-form (`http://host:port/path?q`, RFC 9112 §3.2.2), authority-form
 * (`host:port`, CONNECT only, RFC 9112 §3.2.3) or asterisk-form (`*`,
 * OPTIONS only, RFC 9112 §3.2.4).
 */
export function parseRequestTarget(method: string, target: string): RequestTarget {
  if (method === 'CONNECT') {
    const authority = parseAuthority(target)
    if (authority.port === null) throw new TargetError('CONNECT needs a host:port target')
    return { form: 'authority', scheme: null, authority, rawPath: target, path: '', encodedPath: '', query: '' }
  }
  const first = target.charCodeAt(0)
  if (first === 47 /* / */) return originForm(target, 'origin', null, null)
  if (target === '*') {
    if (method !== 'OPTIONS') throw new TargetError('asterisk-form is only for OPTIONS')
    return ASTERISK
  }
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(target)
  if (!m) throw new TargetError('request target is not a path or an absolute http(s) URI')
  const rest = m[3]!
  if (rest.includes('#')) throw new TargetError('a request target has no fragment')
  const authority = parseAuthority(m[2]!)
  const scheme = m[1]!.toLowerCase() as 'http' | 'https'
  return originForm(rest === '' || rest.charCodeAt(0) === 63 /* ? */ ? '/' + rest : rest, 'absolute', scheme, authority)
}

/** An IPv4 address in dotted-decimal form, each part 0-255 without leading zeros. */
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/
/** A last label that resolvers read as a number (`127.1`, `0x7f.1`, `2130706433`): the WHATWG URL standard's "ends in a number". */
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|\d+)$/i
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

/**
 * Parses `host[:port]` (RFC 3986 §3.2.2-3.2.3, as RFC 9110 §4.2.1 and §7.2
 * use it): a DNS name, a dotted-decimal IPv4 address, or an IPv6 address in
 * brackets. Refused: userinfo (RFC 9110 §4.2.4), percent-encoded or non-DNS
 * names, IPv4 in any other notation, IPv6 zone identifiers and IPvFuture,
 * ports that are not 1-65535. An empty port (`host:`) counts as none.
 */
export function parseAuthority(value: string): Authority {
  if (value.includes('@')) throw new TargetError('the authority carries userinfo (user@host), which HTTP does not allow (RFC 9110 §4.2.4)')
  if (value === '') throw new TargetError('the authority is empty')
  let host: string
  let portText: string
  if (value.charCodeAt(0) === 91 /* [ */) {
    const end = value.indexOf(']')
    if (end === -1) throw new TargetError(`${JSON.stringify(value)} has an unclosed IPv6 bracket`)
    host = value.slice(1, end).toLowerCase()
    // no zone identifier (RFC 6874): it names an interface of the client's, not a host
    if (isIP(host) !== 6 || host.includes('%')) throw new TargetError(`${JSON.stringify(value)} is not an IPv6 address in brackets`)
    const after = value.slice(end + 1)
    if (after !== '' && after.charCodeAt(0) !== 58 /* : */) throw new TargetError(`${JSON.stringify(value)} has characters after the IPv6 address`)
    portText = after.slice(1)
  } else {
    const colon = value.indexOf(':')
    host = (colon === -1 ? value : value.slice(0, colon)).toLowerCase()
    portText = colon === -1 ? '' : value.slice(colon + 1)
    // `example.com.` is the same name as `example.com` (RFC 1034 §3.1)
    if (host.length > 1 && host.charCodeAt(host.length - 1) === 46 /* . */) host = host.slice(0, -1)
    checkName(host, value)
  }
  let port: number | null = null
  if (portText !== '') {
    if (!/^\d{1,5}$/.test(portText)) throw new TargetError(`${JSON.stringify(value)} has a port that is not a number`)
    port = Number(portText)
    if (port < 1 || port > 65535) throw new TargetError(`${JSON.stringify(value)} has a port out of range (1-65535)`)
  }
  const bracketed = host.includes(':') ? `[${host}]` : host
  return { host, port, text: port === null ? bracketed : `${bracketed}:${port}` }
}

/** A DNS name (letters, digits, `-`, `_`; labels of 1-63, 253 in all) or a dotted-decimal IPv4 address. */
function checkName(host: string, value: string): void {
  if (host === '') throw new TargetError(`${JSON.stringify(value)} has no host`)
  if (host.length > 253) throw new TargetError('the host name is longer than 253 characters')
  const labels = host.split('.')
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    if (DOTTED_QUAD.test(host)) return
    throw new TargetError(`${JSON.stringify(host)} is an IPv4 address in a notation other than dotted decimal`)
  }
  for (const label of labels) {
    if (!LABEL.test(label)) throw new TargetError(`${JSON.stringify(host)} is not a valid host name`)
  }
}

/**
 * The Host fields of a request, as HTTP/1.1 demands them (RFC 9112 §3.2):
 * exactly one in an HTTP/1.1 request, at most one in HTTP/1.0. `count` is
 * the number of Host field lines the client sent (Node keeps only the first).
 */
export function checkHostCount(count: number, version: '1.0' | '1.1'): 'ok' | 'missing' | 'duplicate' {
  if (count > 1) return 'duplicate'
  if (count === 0 && version === '1.1') return 'missing'
  return 'ok'
}

/**
 * HTTP/2 carries the authority in `:authority`; a `Host` field beside it
 * must name the same one (RFC 9113 §8.3.1: otherwise the request is
 * malformed). Returns the authority text to parse, or undefined when there
 * is neither.
 */
export function h2Authority(pseudo: string | undefined, host: string | undefined): string | undefined {
  if (pseudo !== undefined && host !== undefined && pseudo.toLowerCase() !== host.toLowerCase()) {
    throw new TargetError(`Host ${JSON.stringify(host)} differs from :authority ${JSON.stringify(pseudo)} (RFC 9113 §8.3.1)`)
  }
  return pseudo ?? host
}

/**
 * The encoded path below a route prefix: the prefix covers whole segments of
 * the decoded path (the router matches at segment boundaries), so the same
 * number of segments is dropped from the encoded one.
 */
export function encodedBelow(encodedPath: string, prefix: string): string {
  let segments = 0
  for (let i = 1; i < prefix.length; i++) if (prefix.charCodeAt(i) === 47 /* / */) segments++
  if (prefix.length > 1 && prefix.charCodeAt(prefix.length - 1) !== 47) segments++
  let at = 0
  for (let n = 0; n < segments; n++) {
    const next = encodedPath.indexOf('/', at + 1)
    if (next === -1) return '/'
    at = next
  }
  return at === 0 ? encodedPath : encodedPath.slice(at)
}

/**
 * The origin of an absolute http(s) URL a client sent in a field (Referer),
 * serialised as browsers do (WHATWG URL: scheme, host, and the port only
 * when it is not the scheme's default): `https://example.test:8443`. Its
 * authority goes through the same rules as Host; null for anything else.
 */
export function originOf(url: string): string | null {
  const m = /^(https?):\/\/([^/?#]*)/i.exec(url)
  if (!m) return null
  let authority: Authority
  try {
    authority = parseAuthority(m[2]!)
  } catch (err) {
    if (err instanceof TargetError) return null
    throw err
  }
  const scheme = m[1]!.toLowerCase()
  const host = authority.host.includes(':') ? `[${authority.host}]` : authority.host
  const port = authority.port === null || authority.port === (scheme === 'https' ? 443 : 80) ? '' : `:${authority.port}`
  return `${scheme}://${host}${port}`
}

/** Percent-encodes a decoded path for use in a Location header. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}

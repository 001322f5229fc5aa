import { createHash } from 'node:crypto'
import { safeEqual } from '../../core/secrets.ts'
import { addressSet } from '../../http/address.ts'

/**
 * Who may use the forward proxy, and where to. Never an open proxy: the
 * configuration requires `clients` or `credentials` (schema.ts).
 *
 *   client address in `clients`          allowed (no credential needed)
 *   else a valid `Proxy-Authorization`   allowed (RFC 9110 §11.7.1, Basic: RFC 7617)
 *   else, credentials configured         407 + Proxy-Authenticate: the client may authenticate
 *   else                                 403
 */

export type Verdict = 'allowed' | 'authenticate' | 'forbidden'

export const REALM = 'edgebox proxy'
export const PROXY_AUTHENTICATE = `Basic realm="${REALM}", charset="UTF-8"`

export interface Access {
  check(address: string, authorization: string | undefined): Verdict
  /** Whether a destination host (lower case, as the client wrote it) is allowed. */
  hostAllowed(host: string): boolean
}

export interface AccessConfig {
  clients: readonly string[]
  credentials: ReadonlyArray<{ user: string; password: string }>
  allowHosts: readonly string[]
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

export function createAccess(cfg: AccessConfig): Access {
  const isClient = addressSet(cfg.clients)
  // Compared as fixed-length digests in constant time, every entry each time.
  const secrets = cfg.credentials.map((c) => digest(`${c.user}:${c.password}`))
  const hostAllowed = compileHosts(cfg.allowHosts)

  function validCredential(authorization: string | undefined): boolean {
    if (!authorization || secrets.length === 0) return false
    const m = /^basic[ \t]+([A-Za-z0-9+/]+=*)[ \t]*$/i.exec(authorization)
    if (!m) return false
    const given = digest(Buffer.from(m[1]!, 'base64').toString('utf8'))
    let ok = false
    for (const s of secrets) ok = safeEqual(s, given) || ok
    return ok
  }

  return {
    check(address, authorization) {
      if (isClient(address)) return 'allowed'
      if (validCredential(authorization)) return 'allowed'
      return secrets.length > 0 ? 'authenticate' : 'forbidden'
    },
    hostAllowed,
  }
}

/**
 * Destination host patterns: `example.com` (that name), `*.example.com`
 * (any name below it, not example.com itself), `*` (any). Case-insensitive;
 * IPv6 literals are written without brackets or with them. Empty list: any.
 */
export function compileHosts(patterns: readonly string[]): (host: string) => boolean {
  if (patterns.length === 0 || patterns.includes('*')) return () => true
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const p of patterns) {
    const h = p.toLowerCase().replace(/^\[(.*)\]$/, '$1')
    if (h.startsWith('*.')) suffixes.push(h.slice(1))
    else exact.add(h.endsWith('.') ? h.slice(0, -1) : h)
  }
  return (host) => {
    const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')
    if (exact.has(h)) return true
    for (const s of suffixes) if (h.length > s.length && h.endsWith(s)) return true
    return false
  }
}

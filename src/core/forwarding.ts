import { addressSet, forwardedNode, nodeAddress, unmapped } from '../http/address.ts'
import { forwardedValue, parseForwarded } from '../http/forwarded.ts'
import { parseAuthority, TargetError } from '../http/target.ts'
import type { Req } from './types.ts'

/**
 * The one client-address and forwarding service (docs/configuration.md,
 * "Client addresses behind proxies"). From the top-level `trustedProxies`
 * and `clientAddressHeader` it tells, for a request:
 *
 * - the client's address: the peer's, unless the peer is a trusted proxy;
 *   then the one field the operator's proxies set (`X-Forwarded-For` or
 *   `Forwarded`, as nginx's `real_ip_header` names one) is walked from the
 *   right, past every trusted proxy, to the first address that is not one.
 *   The other field is never read: a client behind a proxy that sets only
 *   one of them could otherwise write the other itself;
 * - the scheme and the host as the client used them (behind a proxy that
 *   terminates TLS, `https`), for same-origin checks;
 * - the forwarding fields to send upstream: both `X-Forwarded-For` and
 *   `Forwarded` carry the same chain (the trusted part of what arrived, plus
 *   this hop), so an upstream reading either gets the same answer.
 *
 * Logs, rate limits, CSRF, CORS, the proxy and the realtime hub all ask it;
 * nothing else reads these fields.
 */

export type ClientAddressHeader = 'x-forwarded-for' | 'forwarded'

export interface ForwardingOptions {
  readonly trustedProxies: readonly string[]
  readonly clientAddressHeader: ClientAddressHeader
}

/** What the connection itself says, before any forwarding field is read. */
export interface Own {
  readonly scheme: 'http' | 'https'
  /** The authority the request named (Host, `:authority` or an absolute-form target), or ''. */
  readonly authority: string
}

export interface ClientView {
  /** The client's address. */
  readonly address: string
  /** The scheme the client used. */
  readonly scheme: 'http' | 'https'
  /** The authority the client asked for (`host[:port]`), or ''. */
  readonly host: string
  /** The immediate peer's address, and whether it is a trusted proxy. */
  readonly peer: string
  readonly trusted: boolean
  /** The chain a trusted peer handed on (oldest first), as RFC 7239 nodes: empty from anyone else. */
  readonly chain: readonly string[]
}

export interface Forwarding {
  readonly header: ClientAddressHeader
  /** Whether any proxy is trusted; without one, the client is always the peer (the fast path of `peer`). */
  readonly trusting: boolean
  /** The peer's address (an IPv4-mapped IPv6 address as the IPv4 one). */
  peer(req: Req): string
  /** The view of one request. */
  view(req: Req, own: Own): ClientView
  /** Sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and Forwarded on headers going upstream (mutates `out`). */
  addUpstreamFields(out: Record<string, string | string[] | undefined>, view: ClientView, own: Own): void
}

interface Hop {
  /** The address, or null when the node is `unknown`, obfuscated or malformed. */
  readonly address: string | null
  /** The node as an RFC 7239 `for=` value (for the chain handed on). */
  readonly node: string
  readonly proto?: string | undefined
  readonly host?: string | undefined
}

export function createForwarding(opts: ForwardingOptions): Forwarding {
  const isTrusted = addressSet(opts.trustedProxies)
  const header = opts.clientAddressHeader

  function hops(req: Req): Hop[] {
    const value = req.headers[header]
    if (value === undefined) return []
    const text = Array.isArray(value) ? value.join(',') : value
    if (header === 'x-forwarded-for') {
      return text.split(',').map((entry) => {
        const address = nodeAddress(entry)
        return { address, node: address === null ? 'unknown' : forwardedNode(address) }
      })
    }
    return parseForwarded(text).map((el) => {
      const v = el?.for
      const address = v === undefined ? null : nodeAddress(v)
      return { address, node: v === undefined ? 'unknown' : forwardedValue(v), proto: el?.proto, host: el?.host }
    })
  }

  function view(req: Req, own: Own): ClientView {
    const peer = unmapped(req.socket?.remoteAddress ?? '')
    if (!isTrusted(peer)) return { address: peer, scheme: own.scheme, host: own.authority, peer, trusted: false, chain: [] }
    const chain = hops(req)
    // Walk from the hop nearest to us; stop at the first one no trusted proxy vouches for.
    let address = peer
    let at = -1
    for (let i = chain.length - 1; i >= 0; i--) {
      const a = chain[i]!.address
      if (a === null) break // unknown or malformed: what is further left cannot be trusted
      address = a
      at = i
      if (!isTrusted(a)) break
    }
    let scheme = own.scheme
    let host = own.authority
    if (header === 'forwarded') {
      const hop = at === -1 ? undefined : chain[at]
      if (hop?.proto === 'http' || hop?.proto === 'https') scheme = hop.proto
      host = validAuthority(hop?.host) ?? host
    } else {
      const proto = first(req.headers['x-forwarded-proto'])?.toLowerCase()
      if (proto === 'http' || proto === 'https') scheme = proto
      host = validAuthority(first(req.headers['x-forwarded-host'])) ?? host
    }
    return { address, scheme, host, peer, trusted: true, chain: chain.map((h) => h.node) }
  }

  function addUpstreamFields(out: Record<string, string | string[] | undefined>, v: ClientView, own: Own): void {
    // the chain handed on: the trusted part of what arrived, then the peer that connected to us
    const addresses = v.chain.map((node) => nodeAddress(node.replace(/^"|"$/g, '')) ?? 'unknown')
    addresses.push(v.peer)
    out['x-forwarded-for'] = addresses.join(', ')
    // the authority passed the one parser: it holds no quote or backslash to escape
    const hop = `for=${forwardedNode(v.peer)};proto=${own.scheme}${own.authority ? `;host="${own.authority}"` : ''}`
    const incoming = header === 'forwarded' && v.trusted ? joined(out.forwarded) : undefined
    out.forwarded = incoming ? `${incoming}, ${hop}` : v.chain.length ? `${v.chain.map((n) => `for=${n}`).join(', ')}, ${hop}` : hop
    out['x-forwarded-proto'] = v.scheme
    if (v.host) out['x-forwarded-host'] = v.host
    else delete out['x-forwarded-host']
  }

  return { header, trusting: opts.trustedProxies.length > 0, peer: (req) => unmapped(req.socket?.remoteAddress ?? ''), view, addUpstreamFields }
}

function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined) return undefined
  const comma = v.indexOf(',')
  return (comma === -1 ? v : v.slice(0, comma)).trim()
}

function joined(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/** A forwarded host, if it is a valid authority (the one parser's rules); else undefined. */
function validAuthority(value: string | undefined): string | undefined {
  if (!value) return undefined
  try {
    return parseAuthority(value).text
  } catch (err) {
    if (err instanceof TargetError) return undefined
    throw err
  }
}

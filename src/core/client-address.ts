import { BlockList, isIP } from 'node:net'
import type { Req } from './types.ts'

/**
 * The one client-address resolver (docs/configuration.md, `trustedProxies`):
 * the peer's address, unless the peer is a trusted proxy, in which case the
 * forwarding fields it added are followed from the right (the hop nearest
 * to us) past every trusted proxy to the first address that is not one.
 * Fields from anyone else are ignored, so a client cannot claim another
 * address. Rate limits, the access log and the realtime hub all ask it.
 */

export function trustList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const c of cidrs) {
    const [addr, bits] = c.split('/')
    const type = isIP(addr!) === 6 ? 'ipv6' : 'ipv4'
    if (isIP(addr!) === 0) throw new Error(`${c} is not an address or CIDR`)
    if (bits === undefined) list.addAddress(addr!, type)
    else list.addSubnet(addr!, Number(bits), type)
  }
  return list
}

export function isTrusted(list: BlockList, address: string): boolean {
  if (!address) return false
  const mapped = unmapped(address)
  const kind = isIP(mapped)
  if (kind === 0) return false
  return list.check(mapped, kind === 6 ? 'ipv6' : 'ipv4')
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** The addresses a chain of proxies recorded, oldest first: RFC 7239 `Forwarded: for=`, else `X-Forwarded-For`. */
function forwardedChain(headers: Req['headers']): string[] {
  const fwd = headers.forwarded
  if (fwd !== undefined) {
    const out: string[] = []
    for (const element of (Array.isArray(fwd) ? fwd.join(',') : fwd).split(',')) {
      const m = /(?:^|;)\s*for\s*=\s*("?)\[?([^";\]]+)\]?(?::\d+)?\1\s*(?:;|$)/i.exec(element)
      out.push(m ? m[2]!.trim() : '')
    }
    return out
  }
  const xff = headers['x-forwarded-for']
  if (xff === undefined) return []
  return (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((s) => s.trim())
}

export type ClientResolver = (req: Req) => string

export function clientResolver(trusted: readonly string[]): ClientResolver {
  if (trusted.length === 0) return (req) => req.socket?.remoteAddress ?? ''
  const list = trustList(trusted)
  return (req) => {
    const peer = req.socket?.remoteAddress ?? ''
    if (!isTrusted(list, peer)) return peer
    const chain = forwardedChain(req.headers)
    for (let i = chain.length - 1; i >= 0; i--) {
      const a = chain[i]!
      if (isIP(unmapped(a)) === 0) return peer // an obfuscated or malformed hop: stop at what we know
      if (!isTrusted(list, a)) return unmapped(a)
    }
    return chain.length ? unmapped(chain[0]!) : peer
  }
}

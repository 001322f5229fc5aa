import { isIP } from 'node:net'

/**
 * The forwarding fields a reverse proxy adds (RFC 7239 `Forwarded`, the
 * de-facto `X-Forwarded-For|Proto|Host`, RFC 9110 §7.6.3 `Via`). Incoming
 * values are kept and extended only when the peer is a trusted proxy;
 * from anyone else they are dropped, so a client cannot forge its address.
 */

export { isTrusted, trustList } from '../../core/client-address.ts'

/** RFC 7239 §6: IPv6 addresses are quoted and bracketed in `for=`. */
function node(address: string): string {
  return isIP(address) === 6 ? `"[${address}]"` : address
}

export interface ForwardInfo {
  /** The immediate peer's address. */
  client: string
  /** Whether that peer is a trusted proxy. */
  trusted: boolean
  /** `http` or `https`, as the client reached Edgebox. */
  proto: string
  /** The Host the client asked for. */
  host: string
  /** `1.1` or `2`: the protocol version the request arrived with (for Via). */
  version: string
}

type Headers = Record<string, string | string[] | undefined>

function joined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v
}

/** Sets the forwarding fields on the headers going upstream (mutates `out`). */
export function addForwarding(out: Headers, incoming: Headers, info: ForwardInfo): void {
  const prevXff = info.trusted ? joined(incoming['x-forwarded-for']) : undefined
  const prevFwd = info.trusted ? joined(incoming.forwarded) : undefined
  out['x-forwarded-for'] = prevXff ? `${prevXff}, ${info.client}` : info.client
  out['x-forwarded-proto'] = info.trusted && typeof incoming['x-forwarded-proto'] === 'string' ? incoming['x-forwarded-proto'] : info.proto
  out['x-forwarded-host'] = info.trusted && typeof incoming['x-forwarded-host'] === 'string' ? incoming['x-forwarded-host'] : info.host
  const hop = `for=${node(info.client)};proto=${info.proto}${info.host ? `;host="${info.host.replace(/["\\]/g, '')}"` : ''}`
  out.forwarded = prevFwd ? `${prevFwd}, ${hop}` : hop
  const via = joined(incoming.via)
  out.via = via ? `${via}, ${info.version} edgebox` : `${info.version} edgebox`
}

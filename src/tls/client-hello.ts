/**
 * The two things a TLS listener reads from a ClientHello before the TLS
 * stack sees it: the server name (SNI, RFC 6066 §3) and the offered
 * application protocols (ALPN, RFC 7301 §3.1). The TLS-ALPN-01 challenge
 * (RFC 8737 §3) is told apart from every other handshake by them, before a
 * certificate is chosen.
 */

export interface ClientHelloInfo {
  servername: string | undefined
  alpn: string[]
}

/** The TLS record header: type, version, length (RFC 8446 §5.1). */
const RECORD_HEADER = 5
const HANDSHAKE = 0x16
const CLIENT_HELLO = 0x01
const EXT_SERVER_NAME = 0
const EXT_ALPN = 16

/**
 * How many bytes the first TLS record takes (header included), once its
 * header has arrived; undefined before. A ClientHello normally fits in one
 * record (the largest is 16 KiB + 5).
 */
export function firstRecordLength(buf: Buffer): number | undefined {
  if (buf.length < RECORD_HEADER) return undefined
  return RECORD_HEADER + buf.readUInt16BE(3)
}

/** Parses the ClientHello in the first TLS record; null when it is not one or is malformed or cut short. */
export function parseClientHello(buf: Buffer): ClientHelloInfo | null {
  const end = firstRecordLength(buf)
  if (buf[0] !== HANDSHAKE || end === undefined || buf.length < end) return null
  let p = RECORD_HEADER
  if (buf[p] !== CLIENT_HELLO) return null
  const bodyEnd = Math.min(end, p + 4 + buf.readUIntBE(p + 1, 3))
  p += 4
  p += 2 + 32 // legacy_version, random
  const skip = (lenBytes: number): boolean => {
    if (p + lenBytes > bodyEnd) return false
    const n = buf.readUIntBE(p, lenBytes)
    p += lenBytes + n
    return p <= bodyEnd
  }
  // legacy_session_id, cipher_suites, legacy_compression_methods
  if (!skip(1) || !skip(2) || !skip(1)) return null
  const out: ClientHelloInfo = { servername: undefined, alpn: [] }
  if (p + 2 > bodyEnd) return out // no extensions
  const extEnd = Math.min(bodyEnd, p + 2 + buf.readUInt16BE(p))
  p += 2
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p)
    const len = buf.readUInt16BE(p + 2)
    const start = p + 4
    const stop = start + len
    if (stop > extEnd) return null
    if (type === EXT_SERVER_NAME && len >= 5) {
      // server_name_list: one host_name (type 0)
      let q = start + 2
      while (q + 3 <= stop) {
        const kind = buf[q]!
        const n = buf.readUInt16BE(q + 1)
        if (q + 3 + n > stop) return null
        if (kind === 0) out.servername = buf.toString('latin1', q + 3, q + 3 + n).toLowerCase()
        q += 3 + n
      }
    } else if (type === EXT_ALPN && len >= 2) {
      let q = start + 2
      while (q < stop) {
        const n = buf[q]!
        if (q + 1 + n > stop) return null
        out.alpn.push(buf.toString('latin1', q + 1, q + 1 + n))
        q += 1 + n
      }
    }
    p = stop
  }
  return out
}

/**
 * One DNS question, asked straight to a chosen server, and its answer in
 * plain words. `edgebox inspect` uses it to show what a resolver (or an
 * authoritative server) says about a host name, without the operating
 * system's resolver and its caches in between.
 *
 * The query goes over UDP with "recursion desired" and "authentic data"
 * set (RFC 1035 §4.1.1, RFC 6840 §5.7: asking for AD makes a validating
 * resolver say whether it checked DNSSEC). A truncated UDP answer (TC) is
 * asked again over TCP (RFC 7766 §5), where nothing is cut.
 */

import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket from 'dns-packet'
import type { Answer, DecodedPacket, Packet } from 'dns-packet'

export interface DnsServer {
  /** The address without brackets: `127.0.0.1`, `::1`. */
  host: string
  port: number
  family: 4 | 6
  /** How messages name it: `127.0.0.1:53`, `[::1]:53`. */
  label: string
}

export interface DnsRecord {
  /** Owner name, without the trailing dot. */
  name: string
  /** Record type: A, AAAA, CNAME, ... */
  type: string
  /** Seconds resolvers may cache this record. */
  ttl: number
  /** The address for A/AAAA, the target name for CNAME, a JSON rendering for other types. */
  data: string
}

export interface DnsFlags {
  /** AA: the server is responsible for the name (not a cache). */
  authoritative: boolean
  /** TC: the answer did not fit the UDP message (on the final answer, after any TCP retry). */
  truncated: boolean
  /** RD, echoed from the query. */
  recursionDesired: boolean
  /** RA: the server offers recursive lookups. */
  recursionAvailable: boolean
  /** AD: a validating resolver checked the answer with DNSSEC. */
  authenticData: boolean
}

export interface DnsAnswer {
  /** The server as asked, `addr:port` (`[v6]:port`). */
  server: string
  name: string
  type: 'A' | 'AAAA'
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... */
  rcode: string
  flags: DnsFlags
  /** The answer section in order, CNAMEs of the chain included. */
  answers: DnsRecord[]
  /** The transport of the final answer: `tcp` when the UDP answer was truncated. */
  transport: 'udp' | 'tcp'
  /** Milliseconds from sending the query to the final answer (a TCP retry included). */
  ms: number
}

/** A query that got no usable answer; `code` says why: ECONNREFUSED, ETIMEOUT, EBADRESP (not an answer to the question), EINVAL (not a DNS name). */
export class DnsQueryError extends Error {
  readonly code: string
  constructor(message: string, code: string) {
    super(message)
    this.code = code
  }
}

export interface DnsQueryOptions {
  /** Per transport (UDP, then TCP if needed). Default 2000. */
  timeoutMs?: number
  /** Used when `server` names no port. Default 53. */
  port?: number
}

/**
 * `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]`, `[::1]:5353`. Only addresses:
 * the point is to ask one particular server, not whatever a name resolves to.
 */
export function parseServer(s: string, defaultPort = 53): DnsServer {
  const text = s.trim()
  let host: string
  let port: string | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  if (bracketed) {
    host = bracketed[1]!
    port = bracketed[2]
  } else if (net.isIPv6(text)) {
    host = text
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(text)
    if (!m) throw new Error(`DNS server ${JSON.stringify(s)} is not an IP address (write IPv6 with a port as [addr]:port)`)
    host = m[1]!
    port = m[2]
  }
  const family = net.isIP(host)
  if (family !== 4 && family !== 6) throw new Error(`DNS server ${JSON.stringify(s)} is not an IP address`)
  if (bracketed && family !== 6) throw new Error(`DNS server ${JSON.stringify(s)}: brackets are for IPv6 addresses`)
  const portNumber = port === undefined ? defaultPort : Number(port)
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) throw new Error(`DNS server ${JSON.stringify(s)} has no valid port (1-65535)`)
  const label = family === 6 ? `[${host}]:${portNumber}` : `${host}:${portNumber}`
  return { host, port: portNumber, family, label }
}

/** Asks `server` for the A or AAAA records of `name`. Throws an Error naming the phase and the server. */
export async function queryDns(server: string, name: string, type: 'A' | 'AAAA', opts: DnsQueryOptions = {}): Promise<DnsAnswer> {
  const target = parseServer(server, opts.port ?? 53)
  const timeoutMs = opts.timeoutMs ?? 2000
  const qname = normalizeName(name)
  const id = randomInt(0, 0x10000)
  const query: Packet = {
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type, name: qname, class: 'IN' }],
  }
  const started = performance.now()
  let transport: 'udp' | 'tcp' = 'udp'
  let reply = check(await udpExchange(target, dnsPacket.encode(query), timeoutMs), 'UDP')
  if (reply.flag_tc) {
    transport = 'tcp'
    reply = check(await tcpExchange(target, dnsPacket.streamEncode(query), timeoutMs), 'TCP')
  }
  const ms = Math.round((performance.now() - started) * 10) / 10

  return {
    server: target.label,
    name: qname,
    type,
    rcode: (reply as DecodedPacket & { rcode?: string }).rcode ?? 'NOERROR',
    flags: {
      authoritative: reply.flag_aa,
      truncated: reply.flag_tc,
      recursionDesired: reply.flag_rd,
      recursionAvailable: reply.flag_ra,
      authenticData: reply.flag_ad,
    },
    answers: (reply.answers ?? []).filter((a) => a.type !== 'OPT').map(toRecord),
    transport,
    ms,
  }

  function check(buf: Buffer, via: 'UDP' | 'TCP'): DecodedPacket {
    let packet: DecodedPacket
    try {
      packet = dnsPacket.decode(buf)
    } catch (err) {
      throw new DnsQueryError(`DNS answer over ${via} from ${target.label} could not be parsed: ${(err as Error).message}`, 'EBADRESP')
    }
    if (!packet.flag_qr) throw new DnsQueryError(`DNS answer over ${via} from ${target.label} is not a response (QR flag unset)`, 'EBADRESP')
    if (packet.id !== id) throw new DnsQueryError(`DNS answer over ${via} from ${target.label} has ID ${packet.id}, not the query's ${id} (a stray or spoofed answer)`, 'EBADRESP')
    const q = packet.questions?.[0]
    if (q && (q.name.toLowerCase() !== qname.toLowerCase() || q.type !== type)) {
      throw new DnsQueryError(`DNS answer over ${via} from ${target.label} is for ${q.name} ${q.type}, not the question ${qname} ${type}`, 'EBADRESP')
    }
    return packet
  }
}

function normalizeName(name: string): string {
  const n = name.trim().replace(/\.$/, '')
  if (!n || n.length > 253 || n.split('.').some((label) => !label || label.length > 63)) {
    throw new DnsQueryError(`${JSON.stringify(name)} is not a DNS name (labels of 1-63 characters, at most 253 in all)`, 'EINVAL')
  }
  return n
}

function toRecord(a: Answer): DnsRecord {
  const ttl = 'ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0
  const data = 'data' in a ? a.data : undefined
  return { name: a.name, type: a.type, ttl, data: typeof data === 'string' ? data : renderData(data) }
}

function renderData(data: unknown): string {
  if (Buffer.isBuffer(data)) return data.toString('hex')
  return JSON.stringify(data, (_key, v: unknown) => (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v)) ?? ''
}

function udpExchange(target: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(target.family === 6 ? 'udp6' : 'udp4')
    let done = false
    const finish = (err: Error | null, buf?: Buffer) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.close()
      if (err) reject(err)
      else resolve(buf!)
    }
    const timer = setTimeout(() => finish(new DnsQueryError(`DNS query to ${target.label} timed out after ${timeoutMs} ms`, 'ETIMEOUT')), timeoutMs)
    // an ICMP "port unreachable" comes back as ECONNREFUSED on a connected socket
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new DnsQueryError(`DNS query to ${target.label} failed: ${err.code === 'ECONNREFUSED' ? 'connection refused (nothing listens on that port)' : err.message}`, err.code ?? 'EIO')))
    // A connected socket only receives datagrams from the server asked, and hears an ICMP "port unreachable" as ECONNREFUSED.
    socket.on('message', (buf) => finish(null, buf))
    socket.connect(target.port, target.host, () => {
      socket.send(message, (err) => {
        if (err) finish(new DnsQueryError(`DNS query to ${target.label} could not be sent: ${err.message}`, (err as NodeJS.ErrnoException).code ?? 'EIO'))
      })
    })
  })
}

function tcpExchange(target: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port })
    let received = Buffer.alloc(0)
    let done = false
    const finish = (err: Error | null, buf?: Buffer) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      if (err) reject(err)
      else resolve(buf!)
    }
    const timer = setTimeout(() => finish(new DnsQueryError(`DNS query over TCP to ${target.label} (after a truncated UDP answer) timed out after ${timeoutMs} ms`, 'ETIMEOUT')), timeoutMs)
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new DnsQueryError(`DNS query over TCP to ${target.label} (after a truncated UDP answer) failed: ${err.message}`, err.code ?? 'EIO')))
    socket.on('connect', () => socket.write(message))
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) finish(null, received.subarray(2, 2 + received.readUInt16BE(0)))
    })
    socket.on('end', () => finish(new DnsQueryError(`DNS query over TCP to ${target.label} (after a truncated UDP answer): the server closed the connection before a full answer`, 'EBADRESP')))
  })
}

const FAMILY: Record<'A' | 'AAAA', string> = { A: 'IPv4', AAAA: 'IPv6' }

export const RCODE_WORDS: Record<string, string> = {
  NXDOMAIN: 'NXDOMAIN: the name does not exist',
  SERVFAIL: 'SERVFAIL: the server could not get an answer (often an unreachable or broken authoritative server, or a DNSSEC validation failure)',
  REFUSED: 'REFUSED: the server will not answer this question for you (it is not an open resolver, or not responsible for this name)',
  FORMERR: 'FORMERR: the server could not understand the query',
  NOTIMP: 'NOTIMP: the server does not support this kind of query',
}

/** The answer in plain sentences, most important first. */
export function explainDns(answer: DnsAnswer): string[] {
  const lines: string[] = []
  const family = FAMILY[answer.type]
  if (answer.rcode !== 'NOERROR') {
    lines.push(RCODE_WORDS[answer.rcode] ?? `${answer.rcode}: the server answered with an error`)
  }

  // Follow the CNAME chain from the name asked.
  let current = answer.name
  const seen = new Set<string>()
  for (;;) {
    const key = current.toLowerCase()
    if (seen.has(key)) {
      lines.push(`the aliases loop back to ${current}: the name cannot resolve`)
      break
    }
    seen.add(key)
    const alias = answer.answers.find((r) => r.type === 'CNAME' && r.name.toLowerCase() === key)
    if (!alias) break
    lines.push(`${alias.name} is an alias (CNAME) for ${alias.data}, cached for up to ${alias.ttl} s`)
    current = alias.data
  }

  const addresses = answer.answers.filter((r) => r.type === answer.type && r.name.toLowerCase() === current.toLowerCase())
  if (addresses.length) {
    const ttl = Math.min(...addresses.map((r) => r.ttl))
    const count = addresses.length === 1 ? `1 ${family} address` : `${addresses.length} ${family} addresses`
    lines.push(`${current} has ${count}, cached for up to ${ttl} s by resolvers (TTL)`)
    if (ttl === 0) lines.push('a TTL of 0 means resolvers must not cache it: every lookup goes back to the server')
    if (addresses.length > 1) lines.push(`with several addresses, clients pick one (and may try the next when it fails)`)
  } else if (answer.rcode === 'NOERROR') {
    lines.push(`${current} exists but has no ${family} address (NOERROR with an empty answer, often called NODATA)`)
  }

  if (answer.flags.authoritative) lines.push('the answer is authoritative: it comes from a server responsible for the name')
  else if (answer.rcode === 'NOERROR' || answer.rcode === 'NXDOMAIN') lines.push("the answer is not authoritative: it comes from a recursive resolver, which looked it up or served it from its cache")
  if (answer.flags.recursionDesired && !answer.flags.recursionAvailable) {
    lines.push('the server does not offer recursion (RA unset): it only answers for names it is responsible for')
  }
  if (answer.flags.authenticData) lines.push('the resolver checked the answer with DNSSEC (AD flag); that means something only if the path to the resolver is trusted')
  if (answer.transport === 'tcp') lines.push('the UDP answer was truncated (TC flag), so the query was repeated over TCP to get all of it')
  if (answer.flags.truncated) lines.push('the answer is still truncated: some records may be missing')
  lines.push(`${answer.server} answered in ${answer.ms} ms`)
  return lines
}

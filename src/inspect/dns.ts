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

import net from 'node:net'
import { ask, askDoh, AskError, type Asked } from '../dns/client.ts'
import { FLAG, rcodeName, TYPE, typeName, type Message } from '../dns/message.ts'
import { parseName, toText } from '../dns/names.ts'
import { rdataText } from '../dns/present.ts'

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
  /** The transport of the final answer: `tcp` when the UDP answer was truncated; `https` over DNS over HTTPS. */
  transport: 'udp' | 'tcp' | 'https'
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

/**
 * Asks `server` for the A or AAAA records of `name`, with the one DNS client
 * Edgebox's resolver and `edgebox dig` use (src/dns/client.ts), in its
 * diagnostic mode: a reply that does not answer the query fails at once,
 * saying why, rather than being waited past. Throws a DnsQueryError naming the
 * server.
 */
export async function queryDns(server: string, name: string, type: 'A' | 'AAAA', opts: DnsQueryOptions = {}): Promise<DnsAnswer> {
  const target = parseServer(server, opts.port ?? 53)
  const timeoutMs = opts.timeoutMs ?? 2000
  const qname = normalizeName(name)
  let asked: Asked
  try {
    asked = await ask({ host: target.host, port: target.port }, parseName(qname + '.'), TYPE[type], { timeoutMs, rd: true, ad: true, mismatch: 'fail' })
  } catch (err) {
    if (!(err instanceof AskError)) throw err
    if (err.code === 'ETIMEOUT') throw new DnsQueryError(`DNS query to ${target.label} timed out after ${timeoutMs} ms`, 'ETIMEOUT')
    if (err.code === 'EBADRESP') throw new DnsQueryError(err.message.replace(/^the answer over (UDP|TCP) from /, 'DNS answer over $1 from '), 'EBADRESP')
    throw new DnsQueryError(`DNS query to ${target.label} failed: ${err.message.replace(`${target.label}: `, '')}`, err.code)
  }
  return answerOf(target.label, qname, type, asked.message, asked.transport, asked.ms)
}

/**
 * The same question over DNS over HTTPS (RFC 8484: a POST of the message to
 * `url`), for `edgebox inspect --doh`: what a browser with secure DNS sees.
 */
export async function queryDoh(url: string, name: string, type: 'A' | 'AAAA', opts: { timeoutMs?: number } = {}): Promise<DnsAnswer> {
  const qname = normalizeName(name)
  const timeoutMs = opts.timeoutMs ?? 5000
  try {
    const asked = await askDoh(url, parseName(qname + '.'), TYPE[type], { timeoutMs, rd: true, ad: true })
    return answerOf(url, qname, type, asked.message, 'https', asked.ms)
  } catch (err) {
    if (!(err instanceof AskError)) throw err
    if (err.code === 'ETIMEOUT') throw new DnsQueryError(`DNS over HTTPS to ${url} timed out after ${timeoutMs} ms`, 'ETIMEOUT')
    throw new DnsQueryError(`DNS over HTTPS to ${err.message}`, err.code)
  }
}

function answerOf(server: string, qname: string, type: 'A' | 'AAAA', m: Message, transport: DnsAnswer['transport'], ms: number): DnsAnswer {
  const bare = (n: string) => (n === '.' ? n : n.replace(/\.$/, ''))
  return {
    server,
    name: qname,
    type,
    rcode: rcodeName(m.rcode),
    flags: {
      authoritative: (m.flags & FLAG.AA) !== 0,
      truncated: (m.flags & FLAG.TC) !== 0,
      recursionDesired: (m.flags & FLAG.RD) !== 0,
      recursionAvailable: (m.flags & FLAG.RA) !== 0,
      authenticData: (m.flags & FLAG.AD) !== 0,
    },
    answers: m.answer.map((r) => ({ name: bare(toText(r.owner)), type: typeName(r.type), ttl: r.ttl, data: r.type === TYPE.CNAME ? bare(rdataText(r)) : rdataText(r) })),
    transport,
    ms: Math.round(ms * 10) / 10,
  }
}

function normalizeName(name: string): string {
  const n = name.trim().replace(/\.$/, '')
  if (!n || n.length > 253 || n.split('.').some((label) => !label || label.length > 63)) {
    throw new DnsQueryError(`${JSON.stringify(name)} is not a DNS name (labels of 1-63 characters, at most 253 in all)`, 'EINVAL')
  }
  return n
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

/**
 * `edgebox dig NAME [TYPE] [@SERVER] [+tcp] [+trace] [+norecurse] [--doh URL] [--explain] [--json]`
 *
 * Asks one DNS server one question and prints the answer as `dig` does.
 * `+trace` resolves the name iteratively from the root (the real root
 * servers, or SERVER taken as the root, every authority then asked on its
 * port) and prints each step: the server asked, what it was asked, the
 * referral or answer it gave, and the time. `--doh URL` asks over DNS over
 * HTTPS (RFC 8484, POST). `--explain` asks an Edgebox server how it chose its
 * answer (the zone, wildcard, CNAME and referral steps; for a balanced name,
 * the client's region and each edge's health); Edgebox tells this only to
 * clients on the same machine (loopback).
 */

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ask, askDoh, AskError, type Asked } from '../dns/client.ts'
import { EXPLAIN_OPTION, FLAG, TYPE, typeName, typeNumber, type Message } from '../dns/message.ts'
import { NameError, parseAbsolute, toText, type Labels } from '../dns/names.ts'
import { recordText } from '../dns/present.ts'
import { Resolver, ROOT_HINTS, type Step } from '../dns/resolver.ts'
import { systemClock } from '../core/clock.ts'
import { parseServer } from '../inspect/dns.ts'

const USAGE = 'usage: edgebox dig NAME [TYPE] [@SERVER[:PORT]] [+tcp] [+trace] [+norecurse] [+noedns] [+bufsize=N] [-p PORT] [--doh URL] [--explain] [--json] [--timeout MS]\n'

export interface DigResult {
  question: { name: string; type: string }
  server: string
  transport: 'udp' | 'tcp' | 'https'
  ms: number
  rcode: string
  flags: string[]
  answer: string[]
  authority: string[]
  additional: string[]
  size: number
  explain?: string[]
  trace?: Step[]
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE']

function rcodeText(r: number): string {
  return r === 16 ? 'BADVERS' : (RCODES[r] ?? `RCODE${r}`)
}

function flagsOf(m: Message): string[] {
  const out: string[] = ['qr']
  if (m.flags & FLAG.AA) out.push('aa')
  if (m.flags & FLAG.TC) out.push('tc')
  if (m.flags & FLAG.RD) out.push('rd')
  if (m.flags & FLAG.RA) out.push('ra')
  if (m.flags & FLAG.AD) out.push('ad')
  if (m.flags & FLAG.CD) out.push('cd')
  return out
}

/** The system's first name server (/etc/resolv.conf), else 127.0.0.1. */
function systemServer(): string {
  try {
    const m = /^\s*nameserver\s+(\S+)/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))
    if (m) return m[1]!
  } catch {
    // no resolv.conf: loopback
  }
  return '127.0.0.1'
}

export async function digCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  // dig's own syntax first: @server and +options are positionals here
  const plus = new Set<string>()
  let at: string | undefined
  const rest: string[] = []
  for (const a of argv) {
    if (a.startsWith('@')) at = a.slice(1)
    else if (a.startsWith('+')) plus.add(a.slice(1).toLowerCase())
    else rest.push(a)
  }
  let parsed
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: { port: { type: 'string', short: 'p' }, doh: { type: 'string' }, explain: { type: 'boolean' }, json: { type: 'boolean' }, timeout: { type: 'string' } } })
  } catch (e) {
    err.write(`edgebox dig: ${(e as Error).message.split('\n')[0]}\n${USAGE}`)
    return 2
  }
  for (const p of plus) {
    if (!['tcp', 'trace', 'norecurse', 'recurse', 'notcp', 'noedns', 'edns'].includes(p) && !/^bufsize=\d+$/.test(p)) {
      err.write(`edgebox dig: unknown option +${p} (+tcp, +trace, +norecurse, +noedns, +bufsize=N)\n${USAGE}`)
      return 2
    }
  }
  const bufsize = [...plus].find((p) => p.startsWith('bufsize='))
  const udpSize = plus.has('noedns') ? 0 : bufsize ? Number(bufsize.slice(8)) : 1232
  if (udpSize !== 0 && (udpSize < 512 || udpSize > 65535)) {
    err.write(`edgebox dig: +bufsize=${udpSize} is not a UDP size (512-65535)\n`)
    return 2
  }
  const [nameArg, typeArg, ...extra] = parsed.positionals
  if (nameArg === undefined || extra.length) {
    err.write(`edgebox dig: ${nameArg === undefined ? 'a name to ask about' : `unexpected ${extra.join(' ')}`}\n${USAGE}`)
    return 2
  }
  let labels: Labels
  try {
    labels = parseAbsolute(nameArg)
  } catch (e) {
    if (!(e instanceof NameError)) throw e
    err.write(`edgebox dig: ${nameArg} is not a domain name (${e.message})\n`)
    return 2
  }
  const type = typeArg === undefined ? TYPE.A : typeNumber(typeArg)
  if (type === undefined) {
    err.write(`edgebox dig: ${typeArg} is not a record type (A, AAAA, MX, TXT, NS, SOA, CNAME, SRV, CAA, HTTPS, ... or a number)\n`)
    return 2
  }
  const timeoutMs = parsed.values.timeout === undefined ? 3000 : Number(parsed.values.timeout)
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    err.write(`edgebox dig: --timeout ${parsed.values.timeout} is not a number of milliseconds\n`)
    return 2
  }
  const defaultPort = parsed.values.port === undefined ? 53 : Number(parsed.values.port)
  if (!Number.isInteger(defaultPort) || defaultPort < 1 || defaultPort > 65535) {
    err.write(`edgebox dig: -p ${parsed.values.port} is not a port (1-65535)\n`)
    return 2
  }
  try {
    const result = plus.has('trace')
      ? await trace(labels, type, at, defaultPort, timeoutMs)
      : parsed.values.doh
        ? await viaDoh(parsed.values.doh, labels, type, !plus.has('norecurse'), timeoutMs)
        : await direct(labels, type, at ?? systemServer(), defaultPort, { tcp: plus.has('tcp'), rd: !plus.has('norecurse'), explain: parsed.values.explain === true, timeoutMs, udpSize })
    out.write(parsed.values.json ? JSON.stringify(result, null, 2) + '\n' : render(result))
    return 0
  } catch (e) {
    if (e instanceof AskError || e instanceof DigError) {
      err.write(`edgebox dig: ${e.message}\n`)
      return 1
    }
    throw e
  }
}

class DigError extends Error {}

function resultOf(labels: Labels, type: number, server: string, m: Message, raw: Buffer, transport: DigResult['transport'], ms: number): DigResult {
  const explain = m.edns?.options.find((o) => o.code === EXPLAIN_OPTION)
  return {
    question: { name: toText(labels), type: typeName(type) },
    server,
    transport,
    ms: Math.round(ms * 10) / 10,
    rcode: rcodeText(m.rcode),
    flags: flagsOf(m),
    answer: m.answer.map(recordText),
    authority: m.authority.map(recordText),
    additional: m.additional.map(recordText),
    size: raw.length,
    ...(explain ? { explain: explain.data.toString('utf8').split('\n') } : {}),
  }
}

async function direct(labels: Labels, type: number, serverText: string, defaultPort: number, o: { tcp: boolean; rd: boolean; explain: boolean; timeoutMs: number; udpSize: number }): Promise<DigResult> {
  let server
  try {
    server = parseServer(serverText, defaultPort)
  } catch (e) {
    throw new DigError((e as Error).message)
  }
  // --explain goes over TCP: an explanation does not fit a small UDP answer
  const asked: Asked = await ask({ host: server.host, port: server.port }, labels, type, {
    timeoutMs: o.timeoutMs,
    rd: o.rd,
    tcp: o.tcp || o.explain,
    // an explanation travels in an EDNS option
    udpSize: o.explain && o.udpSize === 0 ? 1232 : o.udpSize,
    options: o.explain ? [{ code: EXPLAIN_OPTION, data: Buffer.alloc(0) }] : [],
  })
  const r = resultOf(labels, type, server.label, asked.message, asked.raw, asked.transport, asked.ms)
  if (o.explain && !r.explain) r.explain = ['the server gave no explanation (only Edgebox explains its answers, and only to clients on its own machine)']
  return r
}

async function viaDoh(url: string, labels: Labels, type: number, rd: boolean, timeoutMs: number): Promise<DigResult> {
  let target: URL
  try {
    target = new URL(url)
  } catch {
    throw new DigError(`--doh ${url} is not a URL (https://host/dns-query)`)
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new DigError(`--doh ${url}: DNS over HTTPS needs an https:// (or http://) URL`)
  try {
    const asked = await askDoh(target.href, labels, type, { timeoutMs, rd })
    return resultOf(labels, type, target.href, asked.message, asked.raw, 'https', asked.ms)
  } catch (e) {
    if (e instanceof AskError) throw new DigError(`--doh ${e.message}`)
    throw e
  }
}

async function trace(labels: Labels, type: number, root: string | undefined, defaultPort: number, timeoutMs: number): Promise<DigResult> {
  let hints = ROOT_HINTS
  let port = defaultPort
  if (root !== undefined) {
    let s
    try {
      s = parseServer(root, defaultPort)
    } catch (e) {
      throw new DigError((e as Error).message)
    }
    hints = [{ name: 'root.', address: s.host }]
    port = s.port
  }
  // a resolver of its own with an empty cache and no minimisation: every step from the root, each asked the whole name
  const resolver = new Resolver({ rootHints: hints, authorityPort: port, cacheSize: 4 * 1024 * 1024, timeout: timeoutMs, qnameMinimisation: false, prefetch: false, serveStale: { enabled: false, maxStale: 0 }, forward: [] }, systemClock)
  const started = performance.now()
  const r = await resolver.resolve(labels, type)
  const answer = r.answer.flat()
  return {
    question: { name: toText(labels), type: typeName(type) },
    server: root === undefined ? 'the root servers' : `${hints[0]!.address}:${port} (as the root)`,
    transport: 'udp',
    ms: Math.round((performance.now() - started) * 10) / 10,
    rcode: rcodeText(r.rcode),
    flags: ['qr'],
    answer: answer.map(recordText),
    authority: r.authority.flat().map(recordText),
    additional: [],
    size: 0,
    trace: r.steps,
    ...(r.why ? { explain: [r.why] } : {}),
  }
}

function render(r: DigResult): string {
  const lines: string[] = []
  lines.push(`; <<>> edgebox dig <<>> ${r.question.name} ${r.question.type}`)
  if (r.trace) {
    lines.push(';; iterative resolution from ' + r.server)
    for (const s of r.trace) lines.push(`;; ${s.server.padEnd(22)} zone ${s.zone.padEnd(20)} asked ${s.question.padEnd(28)} -> ${s.outcome} (${s.ms} ms)`)
    lines.push('')
  }
  lines.push(`;; ->>HEADER<<- opcode: QUERY, status: ${r.rcode}`)
  lines.push(`;; flags: ${r.flags.join(' ')}; ANSWER: ${r.answer.length}, AUTHORITY: ${r.authority.length}, ADDITIONAL: ${r.additional.length}`)
  lines.push('', ';; QUESTION SECTION:', `;${r.question.name}\t\tIN\t${r.question.type}`)
  for (const [title, list] of [['ANSWER', r.answer], ['AUTHORITY', r.authority], ['ADDITIONAL', r.additional]] as const) {
    if (list.length) lines.push('', `;; ${title} SECTION:`, ...list)
  }
  if (r.explain) lines.push('', ';; EXPLANATION:', ...r.explain.map((l) => `;  ${l}`))
  lines.push('', `;; Query time: ${r.ms} msec`, `;; SERVER: ${r.server} (${r.transport})`)
  if (r.size) lines.push(`;; MSG SIZE  rcvd: ${r.size}`)
  return lines.join('\n') + '\n'
}


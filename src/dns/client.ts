/**
 * Asking one DNS server one question: what the resolver does at each step
 * of a resolution, and what `edgebox dig` and `edgebox inspect` do.
 *
 * Over UDP each query goes from a new socket (a port the system picks at
 * random) with a random ID (RFC 5452 §9.2); an answer counts only if it
 * comes from the server asked, carries the ID, has QR set and repeats the
 * question byte for byte, letter case included (so a query whose name's
 * case was randomised, draft-vixie-dnsext-dns0x20, tells a forged answer by
 * its case); anything else is ignored and the wait goes on until the
 * timeout. A truncated answer (TC) is asked again over TCP (RFC 7766 §5).
 */

import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import net from 'node:net'
import { FLAG, readMessage, writeQuery, type EdnsOption, type Message } from './message.ts'
import type { Labels } from './names.ts'

export interface Server {
  host: string
  port: number
}

export interface AskOptions {
  /** Per transport. */
  timeoutMs: number
  /** RD; default false (an iterative query). */
  rd?: boolean
  /** The UDP size advertised in an OPT record; 0: no EDNS. Default 1232. */
  udpSize?: number
  options?: readonly EdnsOption[]
  /** Go straight to TCP. */
  tcp?: boolean
  /** AD in the query: asks a validating resolver to say whether it checked DNSSEC (RFC 6840 §5.7). */
  ad?: boolean
  /**
   * A datagram from the server that does not answer the query: `ignore` it
   * and wait on (a resolver: it may be forged), or `fail` at once saying why
   * (a diagnostic tool: the server itself is broken).
   */
  mismatch?: 'ignore' | 'fail'
}

export interface Asked {
  message: Message
  raw: Buffer
  transport: 'udp' | 'tcp' | 'https'
  /** Milliseconds from the first send to the final answer. */
  ms: number
}

export class AskError extends Error {
  /** ETIMEOUT, ECONNREFUSED, EBADRESP (an answer that is not DNS), ... */
  readonly code: string
  constructor(message: string, code: string) {
    super(message)
    this.code = code
  }
}

/** Asks `server` for `type` of `labels` (sent with the letter case given); rejects with AskError. */
export async function ask(server: Server, labels: Labels, type: number, opts: AskOptions): Promise<Asked> {
  const started = performance.now()
  const id = randomInt(0, 65536)
  const query = writeQuery(id, labels, type, { rd: opts.rd ?? false, ad: opts.ad, udpSize: opts.udpSize ?? 1232, options: opts.options })
  const question = query.subarray(12, query.length - (opts.udpSize === 0 ? 0 : 11 + optionsLength(opts.options)))
  if (!opts.tcp) {
    const raw = await udpExchange(server, query, id, question, opts.timeoutMs, opts.mismatch ?? 'ignore')
    const message = readMessage(raw)!
    if (!(message.flags & FLAG.TC)) return { message, raw, transport: 'udp', ms: performance.now() - started }
  }
  const raw = await tcpExchange(server, query, id, question, opts.timeoutMs)
  return { message: readMessage(raw)!, raw, transport: 'tcp', ms: performance.now() - started }
}

function optionsLength(options: readonly EdnsOption[] = []): number {
  let n = 0
  for (const o of options) n += 4 + o.data.length
  return n
}

/** Why `raw` does not answer the query (the ID, QR, the question's bytes as sent, a message that reads), or null when it does. */
function mismatch(raw: Buffer, id: number, question: Buffer): string | null {
  if (raw.length < 12) return 'could not be parsed (shorter than a DNS header)'
  if (raw.readUInt16BE(0) !== id) return `has ID ${raw.readUInt16BE(0)}, not the query's ${id} (a stray or forged answer)`
  if (!(raw.readUInt16BE(2) & FLAG.QR)) return 'is not a response (QR flag unset)'
  if (readMessage(raw) === null) return 'could not be parsed (a malformed message)'
  if (raw.readUInt16BE(4) !== 1 || !raw.subarray(12, 12 + question.length).equals(question)) return 'is not for the question asked (another name, type or letter case)'
  return null
}

function label(server: Server): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`
}

function udpExchange(server: Server, query: Buffer, id: number, question: Buffer, timeoutMs: number, onMismatch: 'ignore' | 'fail'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4')
    let ignored = 0
    const timer = setTimeout(() => finish(new AskError(`no answer from ${label(server)} within ${timeoutMs} ms${ignored ? ` (${ignored} datagrams that did not answer the query were ignored)` : ''}`, 'ETIMEOUT')), timeoutMs)
    const finish = (result: Buffer | Error) => {
      clearTimeout(timer)
      socket.close()
      if (result instanceof Error) reject(result)
      else resolve(result)
    }
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new AskError(`${label(server)}: ${err.code === 'ECONNREFUSED' ? 'connection refused (nothing listens on that port)' : err.message}`, err.code ?? 'EIO')))
    socket.on('message', (msg, rinfo) => {
      // an answer from another address or port, or one that does not match, is not ours (RFC 5452 §9.1)
      const why = rinfo.address !== server.host.replace(/^::ffff:/, '') || rinfo.port !== server.port ? 'came from another address' : mismatch(msg, id, question)
      if (why === null) return finish(msg)
      if (onMismatch === 'fail') return finish(new AskError(`the answer over UDP from ${label(server)} ${why}`, 'EBADRESP'))
      ignored++
    })
    // connect() makes the kernel report ICMP port-unreachable as ECONNREFUSED
    socket.connect(server.port, server.host, () => socket.send(query))
  })
}

function tcpExchange(server: Server, query: Buffer, id: number, question: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port })
    let pending = Buffer.alloc(0)
    const timer = setTimeout(() => finish(new AskError(`no answer from ${label(server)} over TCP within ${timeoutMs} ms`, 'ETIMEOUT')), timeoutMs)
    const finish = (result: Buffer | Error) => {
      clearTimeout(timer)
      socket.destroy()
      if (result instanceof Error) reject(result)
      else resolve(result)
    }
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new AskError(`${label(server)} over TCP: ${err.code === 'ECONNREFUSED' ? 'connection refused' : err.message}`, err.code ?? 'EIO')))
    socket.on('connect', () => {
      const len = Buffer.alloc(2)
      len.writeUInt16BE(query.length)
      socket.write(Buffer.concat([len, query]))
    })
    socket.on('data', (c: Buffer) => {
      pending = Buffer.concat([pending, c])
      if (pending.length < 2) return
      const len = pending.readUInt16BE(0)
      if (pending.length < 2 + len) return
      const msg = pending.subarray(2, 2 + len)
      const why = mismatch(msg, id, question)
      finish(why === null ? Buffer.from(msg) : new AskError(`the answer over TCP from ${label(server)} ${why}`, 'EBADRESP'))
    })
    socket.on('end', () => finish(new AskError(`${label(server)} closed the TCP connection without an answer`, 'ECONNRESET')))
  })
}

/**
 * The same question over DNS over HTTPS (RFC 8484): a POST of the message
 * (ID 0, §4.1) to `url`; the answer must be `200 application/dns-message`
 * and repeat the question. Rejects with AskError.
 */
export async function askDoh(url: string, labels: Labels, type: number, opts: { timeoutMs: number; rd?: boolean; ad?: boolean }): Promise<Asked & { transport: 'https' }> {
  const started = performance.now()
  const query = writeQuery(0, labels, type, { rd: opts.rd ?? true, ad: opts.ad, udpSize: 0 })
  let res: Response
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' }, body: new Uint8Array(query), signal: AbortSignal.timeout(opts.timeoutMs) })
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } }
    if (e.name === 'TimeoutError') throw new AskError(`no answer from ${url} within ${opts.timeoutMs} ms`, 'ETIMEOUT')
    throw new AskError(`${url}: ${e.cause?.code ?? e.cause?.message ?? e.message}`, e.cause?.code ?? 'EIO')
  }
  const raw = Buffer.from(await res.arrayBuffer())
  if (res.status !== 200) throw new AskError(`${url} answered HTTP ${res.status}: ${raw.toString('utf8').trim().slice(0, 200)}`, 'EBADRESP')
  const why = mismatch(raw, 0, query.subarray(12))
  if (why) throw new AskError(`the answer over HTTPS from ${url} ${why} (${res.headers.get('content-type') ?? 'no Content-Type'})`, 'EBADRESP')
  return { message: readMessage(raw)!, raw, transport: 'https', ms: performance.now() - started }
}

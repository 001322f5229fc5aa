import net from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import { answerAndClose, closeSoon } from '../../core/raw-socket.ts'
import { rawAnswer } from '../../http/raw-answer.ts'
import { headerValue } from '../../http/header-map.ts'
import { HEAD_END, parseResponseHead, type ResponseHead } from '../../http/response-head.ts'
import { isSafeFieldValue, isToken } from '../../http/token.ts'

/**
 * Upgrade requests (WebSocket and any other `Upgrade` protocol) proxied as
 * raw tunnels (RFC 9110 §7.8, §15.2.2).
 *
 * The request head is written to a fresh upstream connection (never a pooled
 * one: after a 101 the connection belongs to the new protocol), and the
 * upstream's response head is read, bounded in size and time:
 *
 *   101          the head goes to the client as received, then bytes are
 *                piped both ways untouched until either side closes
 *   other status the response is relayed with `Connection: close` and the
 *                connection closed: the client learns the upgrade was refused
 *   failure      a short 502 / 504 naming the step that failed
 *
 * Both sockets are always released: every path ends in a close of both, and
 * `onDone` is called exactly once, after both have closed.
 */

export type TunnelOutcome = 'ok' | 'error' | 'timeout'

/** What the upstream's part came to, for passive health checks (the proxy's `Outcome`). */
export type UpstreamAnswer = 'ok' | '5xx' | 'error' | 'timeout'

export interface TunnelOptions {
  target: { url: URL; id: string }
  method: string
  /** The request target sent upstream (path and query). */
  path: string
  /**
   * Fields sent upstream (end-to-end fields and forwarding fields). Must hold
   * `upgrade` (the protocols the client asked for); `connection` is always
   * sent as `Upgrade`, whatever is given here.
   */
  headers: Record<string, string | string[]>
  /** The client's socket, as handed to an `upgrade` entry point. */
  clientSocket: Duplex
  /** Bytes the client sent after its request head: written upstream after the request head. */
  head: Buffer
  connectTimeout: number
  responseTimeout: number
  /** A tunnel (or a relayed refusal) with no bytes either way for this long is closed. */
  idleTimeout: number
  /**
   * Called once, when both sockets are closed. `ok`: the upstream answered
   * (101, or a status that was relayed); `timeout`: it did not connect or
   * answer in time; `error`: it refused, failed, answered malformed bytes, or
   * the client went away before it answered. `detail` says what happened,
   * for the log.
   */
  onDone(outcome: TunnelOutcome, detail?: string): void
  /**
   * Called once, as soon as the upstream's part is decided: it answered
   * (`ok`, or `5xx` for a 5xx refusal), failed or timed out. Not called when
   * the client went away first, which says nothing about the upstream.
   */
  onAnswer?(answer: UpstreamAnswer): void
  /** Called with the status the client is sent (101, a relayed refusal, or a gateway error), for the access log. */
  onStatus?(status: number): void
}

/** Upper bound of an upstream's response head. */
export const MAX_RESPONSE_HEAD = 16 * 1024

export function openTunnel(opts: TunnelOptions): void {
  const { target, clientSocket: client } = opts
  const who = `upstream ${target.id}`

  const upgrade = headerValue(opts.headers, 'upgrade')
  if (!upgrade) {
    // Nothing to switch to: a caller bug rather than a client one, but answer like a server would.
    answerAndClose(client, rawAnswer(400, {}, 'the request has no Upgrade field\n'))
    watchClose(client, () => opts.onDone('error', 'no Upgrade field'))
    return
  }

  let outcome: TunnelOutcome = 'error'
  let detail = ''
  let clientClosed = false
  let upstreamClosed = false
  let reported = false
  let phase: 'connect' | 'response' | 'tunnel' | 'relay' | 'over' = 'connect'
  let timer: NodeJS.Timeout | undefined

  const report = () => {
    if (reported || !clientClosed || !upstreamClosed) return
    reported = true
    clearTimeout(timer)
    opts.onDone(outcome, detail)
  }

  // Until the upstream is connected, the client's bytes wait in its socket;
  // then they follow the request head (a request body, or early frames).
  client.pause()
  client.on('error', () => {}) // a reset client is handled by 'close'
  const clientGone = () => {
    if (phase !== 'connect' && phase !== 'response') return
    // A client that closes (or half-closes) before the answer can never use the tunnel.
    phase = 'over'
    detail = 'the client went away before the upstream answered'
    clearTimeout(timer)
    upstream?.destroy()
    client.destroy()
  }
  client.once('end', clientGone)
  watchClose(client, () => {
    clientClosed = true
    if (phase === 'connect' || phase === 'response') clientGone()
    else if (phase === 'tunnel' || phase === 'relay') closeSoon(upstream, client.errored !== null)
    report()
  })

  let upstream: net.Socket
  try {
    upstream = connect(target.url)
  } catch (err) {
    // An unusable address (the configuration is validated, so hardly ever).
    upstreamClosed = true
    fail(502, `${who} cannot be reached: ${(err as Error).message}`, 'error')
    return
  }
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (phase === 'connect' || phase === 'response') {
      const why = err.code === 'ECONNREFUSED' ? 'refused the connection' : phase === 'connect' ? `could not be reached: ${err.code ?? err.message}` : `failed before answering: ${err.code ?? err.message}`
      fail(502, `${who} ${why}`, 'error')
    }
  })
  watchClose(upstream, () => {
    upstreamClosed = true
    if (phase === 'connect' || phase === 'response') fail(502, `${who} closed the connection before answering`, 'error')
    else if (phase === 'tunnel' || phase === 'relay') closeSoon(client, upstream.errored !== null)
    report()
  })

  timer = setTimeout(() => fail(504, `${who} did not accept the connection within ${opts.connectTimeout} ms`, 'timeout'), opts.connectTimeout)

  upstream.once(upstream instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
    if (phase !== 'connect') return
    phase = 'response'
    clearTimeout(timer)
    upstream.setNoDelay(true)
    upstream.write(requestHead(opts.method, opts.path, opts.headers, upgrade))
    if (opts.head.length) upstream.write(opts.head)
    client.pipe(upstream)
    timer = setTimeout(() => fail(504, `${who} did not answer within ${opts.responseTimeout} ms`, 'timeout'), opts.responseTimeout)
    upstream.on('data', onHeadData)
  })

  let seen: Buffer = Buffer.alloc(0)
  function onHeadData(chunk: Buffer): void {
    if (phase !== 'response') return
    seen = seen.length ? Buffer.concat([seen, chunk]) : chunk
    for (;;) {
      const end = seen.indexOf(HEAD_END, 0)
      if (end === -1) {
        if (seen.length > MAX_RESPONSE_HEAD) fail(502, `${who} sent a response head larger than ${MAX_RESPONSE_HEAD} bytes`, 'error')
        return
      }
      if (end + 4 > MAX_RESPONSE_HEAD) return fail(502, `${who} sent a response head larger than ${MAX_RESPONSE_HEAD} bytes`, 'error')
      const headBytes = seen.subarray(0, end + 4)
      const rest = seen.subarray(end + 4)
      const parsed = parseResponseHead(headBytes.toString('latin1', 0, end))
      if (!parsed) return fail(502, `${who} sent a malformed response`, 'error')
      if (parsed.status === 101) return switchProtocols(headBytes, rest)
      if (parsed.status < 200) {
        seen = rest // an interim response (100, 103): wait for the final one
        continue
      }
      return relayRefusal(parsed, rest)
    }
  }

  /** 101: the head as received, then raw bytes both ways. */
  function switchProtocols(headBytes: Buffer, rest: Buffer): void {
    phase = 'tunnel'
    outcome = 'ok'
    detail = 'tunnel'
    opts.onAnswer?.('ok')
    opts.onStatus?.(101)
    upstream.off('data', onHeadData)
    client.write(headBytes)
    if (rest.length) client.write(rest)
    if (client instanceof net.Socket) client.setNoDelay(true)
    idleWatch()
    upstream.pipe(client) // the client is piped upstream since the connection was made
  }

  /** Any other final status: relayed (with `Connection: close`) and the connection closed. */
  function relayRefusal(parsed: ResponseHead, rest: Buffer): void {
    const framing = bodyFraming(parsed, opts.method)
    if (framing === null) return fail(502, `${who} sent a malformed response`, 'error')
    phase = 'relay'
    outcome = 'ok'
    detail = `upgrade refused with ${parsed.status}`
    opts.onAnswer?.(parsed.status >= 500 ? '5xx' : 'ok')
    opts.onStatus?.(parsed.status)
    upstream.off('data', onHeadData)
    const lines = [parsed.statusLine]
    for (const [name, value] of parsed.fields) {
      const lower = name.toLowerCase()
      if (lower !== 'connection' && lower !== 'keep-alive' && lower !== 'proxy-connection') lines.push(`${name}: ${value}`)
    }
    lines.push('Connection: close', '', '')
    client.unpipe(upstream)
    client.write(lines.join('\r\n'), 'latin1')
    idleWatch()
    client.resume() // whatever the client sends now is not needed
    const finish = () => {
      upstream.off('data', onBody)
      upstream.destroy()
      endClient()
    }
    const body = new BodyEnd(framing)
    const onBody = (chunk: Buffer) => {
      const n = body.consume(chunk)
      if (n === -1) return finish() // bad chunked framing: what went out is all the client gets
      if (n > 0 && !client.write(n === chunk.length ? chunk : chunk.subarray(0, n)) && !body.done) {
        upstream.pause() // a large refusal body to a slow client
        client.once('drain', () => upstream.resume())
      }
      if (body.done) finish()
    }
    upstream.on('data', onBody)
    upstream.once('end', () => endClient())
    if (body.done) finish()
    else if (rest.length) onBody(rest)
  }

  /** Closes both sides when no bytes pass either way for idleTimeout. */
  function idleWatch(): void {
    clearTimeout(timer)
    timer = setTimeout(() => {
      detail = phase === 'tunnel' ? `tunnel idle for ${opts.idleTimeout} ms` : `${who} stalled for ${opts.idleTimeout} ms`
      phase = 'over'
      upstream.destroy()
      client.destroy()
    }, opts.idleTimeout)
    const touch = () => timer?.refresh()
    upstream.on('data', touch)
    client.on('data', touch)
  }

  /** A gateway answer to the client and both sockets released. */
  function fail(status: 502 | 504, message: string, why: TunnelOutcome): void {
    if (phase === 'over' || phase === 'tunnel' || phase === 'relay') return
    phase = 'over'
    outcome = why
    detail = message
    opts.onAnswer?.(why)
    clearTimeout(timer)
    client.unpipe()
    upstream?.destroy()
    if (clientClosed) return
    opts.onStatus?.(status)
    answerAndClose(client, rawAnswer(status, {}, message + '\n'))
  }

  function endClient(): void {
    if (!clientClosed && !client.writableEnded) closeSoon(client, false)
  }
}

function connect(url: URL): net.Socket {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  if (url.protocol === 'https:') {
    const port = Number(url.port || 443)
    return tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'] })
  }
  return net.connect({ host, port: Number(url.port || 80) })
}

/** The request line and fields; `Connection: Upgrade` and `Upgrade` are set here, once. */
function requestHead(method: string, path: string, headers: Record<string, string | string[]>, upgrade: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    if (lower === 'connection' || lower === 'upgrade' || !isToken(name)) continue
    for (const v of Array.isArray(value) ? value : [value]) {
      if (isSafeFieldValue(v)) head += `${name}: ${v}\r\n`
    }
  }
  if (isSafeFieldValue(upgrade)) head += `Connection: Upgrade\r\nUpgrade: ${upgrade}\r\n`
  return head + '\r\n'
}

type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' }

/** How the relayed response's body ends (RFC 9112 §6.3); null when the fields contradict each other. */
function bodyFraming(head: ResponseHead, method: string): Framing | null {
  if (method === 'HEAD' || head.status === 204 || head.status === 304) return { kind: 'none' }
  let te: string | undefined
  let length: string | undefined
  for (const [name, value] of head.fields) {
    const lower = name.toLowerCase()
    if (lower === 'transfer-encoding') te = te ? `${te}, ${value}` : value
    else if (lower === 'content-length') {
      if (length !== undefined && length !== value) return null
      length = value
    }
  }
  if (te !== undefined) {
    const codings = te.split(',').map((c) => c.trim().toLowerCase())
    return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' }
  }
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) return null
    const n = Number(length)
    return n === 0 ? { kind: 'none' } : { kind: 'length', length: n }
  }
  return { kind: 'close' }
}

/**
 * Finds where a relayed body ends, without decoding it: a byte count, or a
 * small chunked-framing scanner (RFC 9112 §7.1) that follows chunk sizes,
 * data and the trailer section.
 */
class BodyEnd {
  done = false
  private left = 0
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size'
  private line = ''
  private readonly framing: Framing

  constructor(framing: Framing) {
    this.framing = framing
    if (framing.kind === 'none') this.done = true
    else if (framing.kind === 'length') this.left = framing.length
  }

  /** How many bytes of `chunk` belong to the body (the rest is dropped); -1 on bad framing. */
  consume(chunk: Buffer): number {
    if (this.done) return 0
    if (this.framing.kind === 'close') return chunk.length
    if (this.framing.kind === 'length') {
      const n = Math.min(this.left, chunk.length)
      this.left -= n
      if (this.left === 0) this.done = true
      return n
    }
    let i = 0
    while (i < chunk.length && !this.done) {
      if (this.state === 'data') {
        const n = Math.min(this.left, chunk.length - i)
        i += n
        this.left -= n
        if (this.left === 0) this.state = 'data-crlf'
        continue
      }
      // line-oriented states: a chunk-size line, the CRLF after data, trailer lines
      const c = chunk[i++]!
      if (c !== 10) {
        if (this.line.length > 4096) return -1
        this.line += String.fromCharCode(c)
        continue
      }
      const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line
      this.line = ''
      if (this.state === 'data-crlf') {
        if (line !== '') return -1
        this.state = 'size'
      } else if (this.state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(line)
        if (!m) return -1
        this.left = parseInt(m[1]!, 16)
        this.state = this.left === 0 ? 'trailer' : 'data'
      } else if (line === '') {
        this.done = true // the empty line after the trailer section
      }
    }
    return i
  }
}

/** Runs `fn` once when the socket closes (at once if it already has). */
function watchClose(socket: Duplex, fn: () => void): void {
  if (socket.destroyed && socket.closed) return void queueMicrotask(fn)
  socket.once('close', fn)
}

/** For an `upgrade` entry point that cannot open a tunnel at all (no upstream available). */
export function refuseUpgrade(socket: Duplex, status: 502 | 503 | 504, message: string): void {
  answerAndClose(socket, rawAnswer(status, {}, message + '\n'))
}

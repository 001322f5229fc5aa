import http from 'node:http'
import http2 from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { EdgeboxConfig } from '../config/schema.ts'
import type { Logger } from '../core/log.ts'
import type { Arrival, Pipeline } from '../core/pipeline.ts'
import { clientErrorResponse } from './client-error.ts'

/**
 * A cleartext listener: one TCP port that speaks HTTP/1.x and, when enabled,
 * HTTP/2 with prior knowledge (h2c). The first bytes of each connection say
 * which: the HTTP/2 connection preface (RFC 9113 §3.4) goes to the HTTP/2
 * server, anything else to Node's HTTP/1 server (llhttp, strict mode).
 *
 * Connection management lives here and only here: keep-alive, limits,
 * timeouts, Expect, Upgrade, CONNECT and malformed requests.
 */

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

export interface Listener {
  readonly server: http.Server
  /** The URL the listener answers on, with the port actually bound. */
  url(): string
  listen(): Promise<void>
  /** Stops accepting; in-flight requests finish; idle connections close; cut at the deadline. */
  close(deadlineMs: number): Promise<void>
}

type ListenConfig = EdgeboxConfig['listen'][number]
type Limits = EdgeboxConfig['limits']

export function createListener(listen: ListenConfig, limits: Limits, pipeline: Pipeline, log: Logger, isShuttingDown: () => boolean): Listener {
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headersTimeout,
    // The whole-request timeout would cut a large upload that keeps flowing;
    // stalled bodies are cut by the body reader's idle timer instead.
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeout,
    // Node sweeps for expired headers every 30 s by default: a slowloris
    // client could hold a connection that long. Sweep every second.
    connectionsCheckingInterval: 1000,
    requireHostHeader: false, // the pipeline answers it, with duplicates too (RFC 9112 §3.2)
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
    shouldUpgradeCallback: (req) => pipeline.acceptsUpgrade(req),
  })
  server.maxConnections = limits.maxConnections
  // No per-socket idle timer on the hot path: keepAliveTimeout covers idle
  // connections, headersTimeout slow heads, the body reader stalled bodies,
  // and Context.stream a client that stops reading a streamed response.

  const httpsRedirect = listen.httpsRedirect
  const arrivals = new Map<string, Arrival>()
  const arrival = (protocol: string, expectContinue = false, badExpectation = false): Arrival => {
    const key = `${protocol}|${expectContinue}|${badExpectation}`
    let a = arrivals.get(key)
    if (!a) arrivals.set(key, (a = { protocol, expectContinue, badExpectation, httpsRedirect }))
    return a
  }
  const h11 = arrival('http/1.1')
  server.on('request', (req, res) => pipeline.handle(req, res, req.httpVersion === '1.1' ? h11 : arrival(`http/${req.httpVersion}`)))
  server.on('checkContinue', (req, res) => pipeline.handle(req, res, arrival(`http/${req.httpVersion}`, true)))
  server.on('checkExpectation', (req, res) => pipeline.handle(req, res, arrival(`http/${req.httpVersion}`, false, true)))
  // Upgraded and CONNECT sockets (tunnels) are no longer the HTTP server's:
  // closeAllConnections() does not reach them, so shutdown tracks them here.
  const detached = new Set<Duplex>()
  const detach = (socket: Duplex) => {
    detached.add(socket)
    socket.once('close', () => detached.delete(socket))
  }
  server.on('upgrade', (req, socket, head) => {
    detach(socket)
    pipeline.upgrade(req, socket, head)
  })
  server.on('connect', (req, socket, head) => {
    detach(socket)
    pipeline.connect(req, socket, head)
  })
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
    const response = clientErrorResponse(err)
    log.debug({ code: err.code, status: response?.status }, 'client error')
    const s = socket as Socket & { _httpMessage?: { headersSent?: boolean } }
    if (response && s.writable && !s._httpMessage?.headersSent) s.end(response.bytes)
    else s.destroy()
  })

  let h2: http2.Http2Server | undefined
  const sessions = new Set<http2.ServerHttp2Session>()
  if (listen.protocols.includes('h2c')) {
    h2 = http2.createServer({
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderSize },
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
    })
    const h2c = arrival('h2c')
    h2.on('request', (req, res) => pipeline.handle(req, res, h2c))
    h2.on('checkContinue', (req, res) => pipeline.handle(req, res, arrival('h2c', true)))
    h2.on('session', (session) => {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
      if (isShuttingDown()) session.close()
    })
    h2.setTimeout(limits.idleTimeout)
    sniffProtocol(server, h2, limits.headersTimeout, listen.protocols.includes('http/1.1'))
  }

  return {
    server,
    url() {
      const addr = server.address()
      if (!addr || typeof addr === 'string') return ''
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      return `http://${host}:${addr.port}/`
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(listen.port, listen.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
    },
    async close(deadlineMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      for (const s of sessions) s.close()
      const timer = setTimeout(() => {
        server.closeAllConnections()
        for (const s of detached) s.destroy()
        for (const s of sessions) s.destroy()
      }, deadlineMs)
      timer.unref()
      await closed
      clearTimeout(timer)
    },
  }
}

/**
 * Replaces the HTTP/1 server's connection handler with one that reads the
 * first bytes and hands the socket to the HTTP/2 server when they are the
 * HTTP/2 preface. The bytes read are put back before either server sees them.
 */
function sniffProtocol(server: http.Server, h2: http2.Http2Server, firstByteTimeout: number, allowH1: boolean): void {
  const h1Connection = server.listeners('connection')[0] as (socket: Socket) => void
  server.removeAllListeners('connection')
  server.on('connection', function sniff(socket: Socket) {
    let seen: Buffer = Buffer.alloc(0)
    const drop = () => socket.destroy()
    socket.setTimeout(firstByteTimeout, drop)
    // A client that closes before sending a byte: nothing will come (the server allows half-open sockets).
    socket.once('end', drop)
    const onData = (chunk: Buffer) => {
      seen = seen.length ? Buffer.concat([seen, chunk]) : chunk
      const n = Math.min(seen.length, H2_PREFACE.length)
      const isPrefix = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))
      if (isPrefix && n < H2_PREFACE.length) return // wait for more bytes
      socket.off('data', onData)
      socket.off('end', drop)
      socket.pause()
      socket.setTimeout(0)
      socket.off('timeout', drop) // nothing of the sniffer stays attached to a long-lived connection
      socket.unshift(seen)
      // The HTTP/2 session reads what is buffered on its next tick (the
      // socket must stay paused until then); the HTTP/1 parser needs the
      // socket flowing to see the bytes put back.
      if (isPrefix) h2.emit('connection', socket)
      else if (allowH1) {
        h1Connection.call(server, socket)
        socket.resume()
      } else socket.destroy()
    }
    socket.on('data', onData)
  })
}

import dc from 'node:diagnostics_channel'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type tls from 'node:tls'
import type { EdgeboxConfig } from '../config/schema.ts'
import type { CertificateSet } from '../tls/certificates.ts'
import type { SessionResumption } from '../tls/sessions.ts'
import type { Logger } from '../core/log.ts'
import type { Arrival, Pipeline } from '../core/pipeline.ts'
import { clientErrorResponse, refuseAfterPending, type ParseError } from './client-error.ts'
import { http1Counter, refusePlainHttp, routeByAlpn, tlsOptions } from './tls-accept.ts'
import type { ConnectionStats } from '../admin/metrics.ts'
import { StreamSocket, websocketRequest } from './extended-connect.ts'
import { enforceSessionTimeouts } from './h2-timeouts.ts'
import { trackResets, type SessionStreams } from './h2-resets.ts'
import { H2Request, H2Response } from './h2-exchange.ts'

/**
 * A listener: one TCP port.
 *
 * - Cleartext: HTTP/1.x and, when enabled, HTTP/2 with prior knowledge (h2c).
 *   The first bytes of each connection say which: the HTTP/2 connection
 *   preface (RFC 9113 §3.4) goes to the HTTP/2 server, anything else to
 *   Node's HTTP/1 server (llhttp, strict mode).
 * - TLS: the handshake's ALPN result (RFC 7301) says which: `h2` goes to the
 *   same HTTP/2 server, `http/1.1` (or no ALPN) to the same HTTP/1 server.
 *   The certificate is chosen by SNI (src/tls/certificates.ts). A connection
 *   whose first byte is not a TLS handshake record gets a plain-text 400
 *   saying to use https://, instead of a failed handshake.
 *
 * Connection management lives here and only here: keep-alive, limits,
 * timeouts, Expect, Upgrade, CONNECT and malformed requests.
 */

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
/** The accept queue asked for on an inherited socket: the largest listen(2) takes; the kernel caps it. */
const INHERITED_BACKLOG = 2 ** 31 - 1
/**
 * How long a stop of accepting waits for connections already accepted to
 * bring their first request: Go's net/http waits the same 5 s for a new
 * connection before it counts as idle in a shutdown (golang/go#22682).
 */
const FIRST_REQUEST_GRACE = 5_000

export interface Listener {
  readonly server: http.Server | https.Server
  /** The URL the listener answers on, with the port actually bound. */
  url(): string
  /** Binds the configured host and port; `inherited`: listens on that socket instead (systemd's, ./socket-activation.ts), binding nothing. */
  listen(inherited?: Socket): Promise<void>
  /** After a reload: new handshakes of a TLS listener use the current certificates (SNI picks them per handshake; this sets the default). */
  updateTls(): void
  /**
   * The first step of a shutdown: stops accepting (new connections wait in
   * the socket's queue, for the next process when the socket is systemd's)
   * and resolves once every connection accepted so far has brought its first
   * request or closed, at most FIRST_REQUEST_GRACE later. A client whose
   * connection was accepted an instant before has had no way to know of the
   * shutdown: its request is served, not refused.
   */
  stopAccepting(): Promise<void>
  /** Stops accepting; in-flight requests finish; idle connections close; cut at the deadline. */
  close(deadlineMs: number): Promise<void>
}

export type ListenConfig = EdgeboxConfig['listen'][number]
export type Limits = EdgeboxConfig['limits']

/** What a TLS listener needs: the current certificates (they change on reload), session resumption, the settings. */
export interface TlsRuntime {
  certificates(): CertificateSet
  readonly resumption: SessionResumption
  readonly config: EdgeboxConfig['tls']
  /** With ACME: the TLS-ALPN-01 challenge certificate for a name with a pending challenge (RFC 8737). */
  readonly alpnChallenge?: ((servername: string) => tls.SecureContext | undefined) | undefined
}

/**
 * `stats`: where the listener counts its connections (the metrics, docs/admin.md):
 * an HTTP/1.1 connection once it is known to be one (after the h2c sniff, or
 * TLS's ALPN), an HTTP/2 session (h2c or h2), each TLS handshake.
 */
export function createListener(listen: ListenConfig, limits: Limits, pipeline: Pipeline, log: Logger, isShuttingDown: () => boolean, tlsRt?: TlsRuntime, stats?: ConnectionStats): Listener {
  if (listen.tls && !tlsRt) throw new Error('a TLS listener needs its certificates')
  const httpOptions: http.ServerOptions = {
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
  }
  const server = listen.tls ? https.createServer({ ...httpOptions, ...tlsOptions(listen, limits, tlsRt!) }) : http.createServer(httpOptions)
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
  // The connections accepted that have not yet brought a request (what stopAccepting waits for), by their peer's
  // address and port: the one key the TCP socket and the TLS socket over it share. A request looks its connection up
  // only while some connection is fresh (never on a busy keep-alive connection's later requests once all have begun).
  const fresh = new Map<string, Duplex>()
  let settled: (() => void) | null = null
  const begun = (socket: Socket) => {
    if (fresh.size === 0) return
    fresh.delete(peerKey(socket))
    if (fresh.size === 0) settled?.()
  }
  const h11 = arrival('http/1.1')
  server.on('request', (req, res) => {
    begun(req.socket)
    pipeline.handle(req, res, req.httpVersion === '1.1' ? h11 : arrival(`http/${req.httpVersion}`))
  })
  server.on('checkContinue', (req, res) => {
    begun(req.socket)
    pipeline.handle(req, res, arrival(`http/${req.httpVersion}`, true))
  })
  server.on('checkExpectation', (req, res) => {
    begun(req.socket)
    pipeline.handle(req, res, arrival(`http/${req.httpVersion}`, false, true))
  })
  // Upgraded and CONNECT sockets (tunnels) are no longer the HTTP server's:
  // closeAllConnections() does not reach them, so shutdown tracks them here
  // (with every socket a TLS listener accepts: a handshake in progress is not
  // the HTTP server's either).
  const detached = new Set<Duplex>()
  const detach = (socket: Duplex) => {
    detached.add(socket)
    socket.once('close', () => detached.delete(socket))
  }
  server.on('upgrade', (req, socket, head) => {
    begun(req.socket)
    detach(socket)
    pipeline.upgrade(req, socket, head)
  })
  server.on('connect', (req, socket, head) => {
    begun(req.socket)
    detach(socket)
    pipeline.connect(req, socket, head)
  })
  server.on('clientError', (err: ParseError, socket: Duplex) => {
    const response = clientErrorResponse(err)
    // The client's doing, not the server's: no stack. A connection reset or
    // closed mid-request is routine (debug); a refused request is worth a line.
    const client = (socket as Socket).remoteAddress
    if (response && err.code !== 'HPE_INVALID_EOF_STATE') log.info({ client, code: err.code, status: response.status, reason: response.reason }, 'request refused by the parser')
    else log.debug({ client, code: err.code }, 'connection ended by the client')
    refuseAfterPending(socket as Parameters<typeof refuseAfterPending>[0], response)
  })

  let h2: http2.Http2Server | undefined
  const sessions = new Set<http2.ServerHttp2Session>()
  const h2Protocol = listen.protocols.includes('h2c') ? 'h2c' : listen.protocols.includes('h2') ? 'h2' : null
  if (h2Protocol) {
    h2 = http2.createServer({
      // enableConnectProtocol: WebSocket over HTTP/2 (RFC 8441, ./extended-connect.ts)
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderSize, enableConnectProtocol: true },
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
    })
    const h2a = arrival(h2Protocol)
    const h2Continue = arrival(h2Protocol, true)
    const h2BadExpectation = arrival(h2Protocol, false, true)
    // The connection's own socket, for its streams' requests (session.socket is a proxy that
    // throws once the session is gone): Node makes the session from it within this same event.
    let arriving: Socket | undefined
    h2.prependListener('connection', (socket: Socket) => {
      arriving = socket
    })
    // Each stream on Node's stream API (no compatibility layer): Edgebox's own request and
    // response objects (./h2-exchange.ts); CONNECT apart, as extended CONNECT carries WebSockets.
    // The session's own 'stream' event: a stream reset before it is emitted has lost its session
    // (stream.session), and its request is still answered (logged as 499) with its connection's socket.
    function onStream(this: http2.ServerHttp2Session & TaggedSession, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]): void {
      // a stream's errors (a reset with an error code) end it; the request's outcome is logged from its 'close'
      stream.on('error', ignoreError)
      const streams = this[SESSION_STREAMS]!
      if (headers[':method'] === 'CONNECT') extendedConnect(stream, headers, pipeline)
      else {
        const req = new H2Request(stream, headers, rawHeaders, this[SESSION_SOCKET]!, streams.conn)
        const res = new H2Response(stream)
        const expect = headers.expect
        // RFC 9110 §10.1.1, read as Node's HTTP/1 server reads it: 100-continue waits for ctx.continue(); others get 417
        pipeline.handle(req, res, expect === undefined ? h2a : CONTINUE_EXPECTATION.test(expect) ? h2Continue : h2BadExpectation)
      }
      // the session's bookkeeping (reset count, timeouts) after the handler, whose listeners come first
      streams.opened(stream)
    }
    // A session's error is the client's (a protocol error, a reset connection): Node has already
    // sent GOAWAY or closed; a line without a stack says so.
    h2.on('sessionError', (err: NodeJS.ErrnoException, session: http2.ServerHttp2Session) => {
      const fields = { client: session.socket?.remoteAddress, code: err.code, reason: err.message }
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') log.debug(fields, 'HTTP/2 connection reset by the client')
      else log.info(fields, 'HTTP/2 session closed on a client error')
    })
    h2.on('session', (session: http2.ServerHttp2Session & TaggedSession) => {
      session[SESSION_SOCKET] = arriving ?? (session.socket as Socket)
      arriving = undefined
      // an HTTP/2 client is told of a shutdown (GOAWAY) and opens its next stream elsewhere (RFC 9113 §6.8)
      begun(session[SESSION_SOCKET])
      const shuttingDown = isShuttingDown()
      session[SESSION_STREAMS] = trackResets(session, h2Protocol, shuttingDown ? undefined : enforceSessionTimeouts(session, limits, session[SESSION_SOCKET]))
      // the session's one 'stream' listener (a second one would make Node copy the listener list per stream)
      session.on('stream', onStream)
      sessions.add(session)
      stats?.opened('h2')
      session.once('close', () => {
        sessions.delete(session)
        stats?.closed('h2')
      })
      if (shuttingDown) session.close()
    })
    // With a stream open, a session with no traffic at all for idleTimeout is cut (a client that
    // stopped reading a response); without one, keepAliveTimeout and headersTimeout apply (above).
    h2.setTimeout(limits.idleTimeout)
  }
  if (listen.tls) {
    const s = server as https.Server
    tlsRt!.resumption.attach(s)
    routeByAlpn(s, h2, listen.protocols.includes('http/1.1'), stats)
    refusePlainHttp(s, limits.headersTimeout, listen, detached, tlsRt!)
  } else if (h2) sniffProtocol(server as http.Server, h2, limits.headersTimeout, listen.protocols.includes('http/1.1'), stats && http1Counter(stats))
  else if (stats) server.prependListener('connection', http1Counter(stats))
  // after the handlers above took the first 'connection' listener as theirs, before them: every TCP connection accepted
  server.prependListener('connection', (socket: Socket) => {
    const key = peerKey(socket)
    fresh.set(key, socket)
    socket.once('close', () => {
      if (fresh.get(key) !== socket) return
      fresh.delete(key)
      if (fresh.size === 0) settled?.()
    })
  })

  return {
    server,
    url() {
      const addr = server.address()
      if (!addr || typeof addr === 'string') return ''
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
      return `${listen.tls ? 'https' : 'http'}://${host}:${addr.port}/`
    },
    updateTls() {
      if (listen.tls) (server as https.Server).setSecureContext(tlsOptions(listen, limits, tlsRt!))
    },
    listen(inherited) {
      return new Promise((resolve, reject) => {
        server.once('error', reject)
        const listening = () => {
          server.off('error', reject)
          resolve()
        }
        // listen(2) again on a socket systemd made listening sets its queue: the longest the kernel allows (capped
        // by net.core.somaxconn), as systemd's Backlog= does by default, since it holds connections through restarts
        if (inherited) server.listen(inherited, INHERITED_BACKLOG, listening)
        else server.listen(listen.port, listen.host, listening)
      })
    },
    stopAccepting() {
      // net.Server's own close: http's would also end at once the idle connections, the fresh ones among them
      if (server.listening) net.Server.prototype.close.call(server)
      if (fresh.size === 0) return Promise.resolve()
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, FIRST_REQUEST_GRACE)
        function done() {
          clearTimeout(timer)
          settled = null
          resolve()
        }
        settled = done
      })
    },
    async close(deadlineMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const stopClosingFinished = closeWhenFinished(server)
      for (const s of sessions) s.close()
      const timer = setTimeout(() => {
        server.closeAllConnections()
        for (const s of detached) s.destroy()
        for (const s of sessions) s.destroy()
      }, deadlineMs)
      timer.unref()
      await closed
      clearTimeout(timer)
      stopClosingFinished()
    },
  }
}

/**
 * During shutdown: closes each HTTP/1 connection as soon as its response in
 * flight finishes. A response whose head went out before shutdown (an event
 * stream, a long download) announced keep-alive, and Node would then hold
 * the idle connection for keepAliveTimeout. Node announces every finished
 * response on a diagnostics channel; only this server's are taken, and only
 * while it closes (nothing on the hot path). Returns the unsubscribe.
 */
function closeWhenFinished(server: http.Server | https.Server): () => void {
  let scheduled = false
  const onFinish = (msg: unknown) => {
    if ((msg as { server?: unknown }).server !== server || scheduled) return
    scheduled = true
    // after Node's own handling of the finished response has detached it from its socket
    setImmediate(() => {
      scheduled = false
      server.closeIdleConnections()
    })
  }
  dc.subscribe('http.server.response.finish', onFinish)
  return () => dc.unsubscribe('http.server.response.finish', onFinish)
}

/** A connection's peer (address and port), the same on its TCP socket and on the TLS socket over it. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`
}

/** The socket of an HTTP/2 session, kept on it by the listener. */
const SESSION_SOCKET = Symbol('edgebox.h2Socket')
/** The session's bookkeeping (./h2-resets.ts), kept on it by the listener. */
const SESSION_STREAMS = Symbol('edgebox.h2Streams')
interface TaggedSession {
  [SESSION_SOCKET]?: Socket
  [SESSION_STREAMS]?: SessionStreams
}

/** Node's HTTP/1 server's test of an Expect value (RFC 9110 §10.1.1). */
const CONTINUE_EXPECTATION = /(?:^|\W)100-continue(?:$|\W)/i

function ignoreError(): void {}

const NOT_ALLOWED = '405 Method Not Allowed: CONNECT is not served over HTTP/2\n'

/**
 * An extended CONNECT (RFC 8441): a WebSocket goes to the route's upgrade
 * handler with the stream as its socket; other protocols are not served.
 */
function extendedConnect(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, pipeline: Pipeline): void {
  const protocol = headers[':protocol']
  if (protocol === undefined) {
    // a classic CONNECT (a tunnel to host:port) is not served over HTTP/2
    return answerAndClose(stream, 405, NOT_ALLOWED)
  }
  if (protocol !== 'websocket') {
    return answerAndClose(stream, 501, `501 Not Implemented: extended CONNECT for ${JSON.stringify(protocol).slice(0, 80)}; only websocket (RFC 8441)\n`)
  }
  const socket = new StreamSocket(stream)
  pipeline.upgrade(websocketRequest(headers, socket), socket, Buffer.alloc(0))
}

/** A refusal, then the end of the stream: the client's half is not waited for (RST_STREAM NO_ERROR, RFC 9113 §8.1). */
function answerAndClose(stream: http2.ServerHttp2Stream, status: number, body: string): void {
  if (stream.destroyed || stream.closed) return
  stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  stream.end(body, () => {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR)
  })
}

/**
 * Replaces the HTTP/1 server's connection handler with one that reads the
 * first bytes and hands the socket to the HTTP/2 server when they are the
 * HTTP/2 preface. The bytes read are put back before either server sees them.
 * `countH1`: told of each connection that goes to the HTTP/1 server.
 */
function sniffProtocol(server: http.Server, h2: http2.Http2Server, firstByteTimeout: number, allowH1: boolean, countH1?: (socket: Socket) => void): void {
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
      if (isPrefix) {
        // The HTTP/1 server accepts half-open sockets; an HTTP/2 client that
        // closed its side can send no more WINDOW_UPDATE, and streams waiting
        // for one would hold their buffers and files until the idle timeout.
        socket.allowHalfOpen = false
        h2.emit('connection', socket)
      } else if (allowH1) {
        countH1?.(socket)
        h1Connection.call(server, socket)
        socket.resume()
      } else socket.destroy()
    }
    socket.on('data', onData)
  })
}

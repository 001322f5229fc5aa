import { constants as cryptoConstants } from 'node:crypto'
import type http2 from 'node:http2'
import type https from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { firstRecordLength, parseClientHello, type ClientHelloInfo } from '../tls/client-hello.ts'
import { rawAnswer } from '../http/raw-answer.ts'
import type { Limits, ListenConfig, TlsRuntime } from './listener.ts'
import type { ConnectionStats } from '../admin/metrics.ts'

/**
 * How a TLS listener accepts a connection: the first byte read to tell a TLS
 * client from plain HTTP sent to the HTTPS port, the ClientHello read for an
 * ACME TLS-ALPN-01 challenge, the handshake's options (certificate by SNI,
 * ALPN, resumption), and the connection handed by ALPN to HTTP/2 or HTTP/1.1.
 */

/** The TLS handshake record's content type (RFC 8446 §5.1): the first byte a TLS client sends. */
const TLS_HANDSHAKE = 0x16

/**
 * Hands each TLS connection, once its handshake is done, to the HTTP/2
 * server when ALPN chose `h2`, else to the HTTPS server's own HTTP/1 handler.
 * With `stats`: counts the handshake (resumed or not) and the HTTP/1.1
 * connection; the HTTP/2 server counts its sessions itself.
 */
export function routeByAlpn(server: https.Server, h2: http2.Http2Server | undefined, allowH1: boolean, stats?: ConnectionStats): void {
  const h1Connection = server.listeners('secureConnection')[0] as (socket: tls.TLSSocket) => void
  const countH1 = stats ? http1Counter(stats) : undefined
  server.removeAllListeners('secureConnection')
  server.on('secureConnection', function alpn(socket: tls.TLSSocket) {
    // a session ticket or a cached session (RFC 8446 §2.2, RFC 5077)
    stats?.tlsHandshake(socket.isSessionReused())
    if (socket.alpnProtocol === 'h2' && h2) h2.emit('connection', socket)
    else if (allowH1) {
      countH1?.(socket)
      h1Connection.call(server, socket)
    } else socket.destroy()
  })
}

/**
 * Counts an HTTP/1.1 connection as open from now until its socket closes
 * (whatever it becomes after: an upgraded WebSocket, a tunnel). One close
 * listener is made per listener, none per connection.
 */
export function http1Counter(stats: ConnectionStats): (socket: Duplex) => void {
  const closed = () => stats.closed('http/1.1')
  return (socket) => {
    stats.opened('http/1.1')
    socket.on('close', closed)
  }
}

/**
 * Reads the first byte of each connection before the TLS server does: a TLS
 * client starts with a handshake record; anything else is most likely plain
 * HTTP sent to the HTTPS port, and gets a plain-text 400 naming the https://
 * URL (as nginx and Caddy do) instead of an unreadable alert.
 *
 * Every handler is made once per server and takes the socket as `this`:
 * a connection costs its listeners and its timer, and no closures.
 */
export function refusePlainHttp(server: https.Server, firstByteTimeout: number, listen: ListenConfig, accepted: Set<Duplex>, rt: TlsRuntime): void {
  const tlsConnection = server.listeners('connection')[0] as (socket: Socket) => void
  server.removeAllListeners('connection')
  const toTls = (socket: Socket) => tlsConnection.call(server, socket)
  function forget(this: Socket) {
    accepted.delete(this)
  }
  function drop(this: Socket) {
    this.destroy()
  }
  function first(this: Socket, chunk: Buffer) {
    const socket = this
    socket.pause()
    socket.removeListener('data', first)
    socket.removeListener('end', drop)
    socket.removeListener('timeout', drop)
    socket.setTimeout(0)
    if (chunk[0] === TLS_HANDSHAKE) {
      if (rt.alpnChallenge) return readClientHello(socket, chunk, firstByteTimeout, (hello) => (hello && answerAlpnChallenge(socket, hello, rt.alpnChallenge!)) || toTls(socket))
      socket.unshift(chunk)
      return toTls(socket)
    }
    const host = /\r\nhost:[ \t]*([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d+)?[ \t]*\r\n/i.exec(chunk.toString('latin1'))?.[1] ?? (listen.host.includes(':') ? `[${listen.host}]` : listen.host)
    const port = (server.address() as { port: number } | null)?.port ?? listen.port
    const body = `This port speaks HTTPS, and the request was plain HTTP: use https://${host}:${port}/\n`
    // the rest of the request is never read: close once the answer is out
    socket.end(rawAnswer(400, {}, body), () => socket.destroy())
  }
  server.on('connection', function peek(socket: Socket) {
    // every accepted socket, whatever becomes of it (a handshake that never ends, an HTTP/2 session): shutdown's last resort
    accepted.add(socket)
    socket.on('close', forget)
    // a client that sends nothing, or closes before its first byte (the server allows half-open sockets)
    socket.setTimeout(firstByteTimeout)
    socket.on('timeout', drop)
    socket.on('end', drop)
    socket.on('data', first)
  })
}

/**
 * With ACME: reads the whole first TLS record (a ClientHello can span TCP
 * segments), puts it back, and gives what it says (null: not a readable
 * ClientHello) to `next`, with the socket paused and nothing consumed.
 */
function readClientHello(socket: Socket, first: Buffer, timeout: number, next: (hello: ClientHelloInfo | null) => void): void {
  let seen = first
  const done = () => {
    socket.off('data', more)
    socket.off('end', ended)
    socket.setTimeout(0)
    socket.pause()
    socket.unshift(seen)
    next(parseClientHello(seen))
  }
  const more = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk])
    const need = firstRecordLength(seen)
    if (need === undefined || seen.length < need) return
    done()
  }
  const ended = () => socket.destroy()
  const need = firstRecordLength(seen)
  if (need !== undefined && seen.length >= need) return done()
  socket.setTimeout(timeout, ended)
  socket.once('end', ended)
  socket.on('data', more)
  socket.resume()
}

/**
 * TLS-ALPN-01 (RFC 8737 §3): a ClientHello that offers only `acme-tls/1`,
 * for a name with a pending challenge, gets the challenge certificate; the
 * authority closes once the handshake is done. Returns false for any other
 * handshake, which goes on as usual.
 */
function answerAlpnChallenge(socket: Socket, hello: ClientHelloInfo, challenge: (servername: string) => tls.SecureContext | undefined): boolean {
  if (hello.alpn.length !== 1 || hello.alpn[0] !== 'acme-tls/1' || !hello.servername) return false
  const secureContext = challenge(hello.servername)
  if (!secureContext) return false
  const t = new tls.TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['acme-tls/1'] })
  t.setTimeout(10_000, () => t.destroy())
  t.on('error', () => t.destroy())
  t.on('secure', () => t.end())
  t.on('end', () => t.destroy())
  return true
}

/** The TLS server's options: the default certificate, SNI, ALPN, versions and ciphers, the handshake deadline, resumption. */
export function tlsOptions(listen: ListenConfig, limits: Limits, rt: TlsRuntime): tls.TlsOptions {
  const cfg = rt.config
  return {
    ...rt.certificates().defaultOptions,
    // the client's order decides among these; h2 first is what browsers offer too
    ALPNProtocols: listen.protocols.includes('h2') ? ['h2', ...listen.protocols.filter((p) => p !== 'h2')] : [...listen.protocols],
    SNICallback(servername, done) {
      const ctx = rt.certificates().contextFor(servername)
      if (ctx) done(null, ctx)
      else done(new Error(`no certificate for the server name ${JSON.stringify(servername)} (tls.unknownServerName is 'refuse')`))
    },
    handshakeTimeout: limits.headersTimeout,
    sessionTimeout: Math.max(1, Math.floor(cfg.sessionTimeout / 1000)),
    // without tickets, no ticket at all (TLS 1.2 clients fall back to the session cache); with them, the current
    // keys: a reload's new secure context would otherwise encrypt tickets under random keys of its own
    ...(cfg.sessionTickets ? { ticketKeys: rt.resumption.ticketKeys() } : { secureOptions: cryptoConstants.SSL_OP_NO_TICKET }),
  }
}

import net from 'node:net'
import type { Duplex } from 'node:stream'
import { answerAndClose, closeSoon } from '../../core/raw-socket.ts'
import { rawAnswer } from '../../http/raw-answer.ts'

/**
 * CONNECT tunnels (RFC 9110 §9.3.6): a TCP connection to `host:port`, then
 * bytes both ways, untouched, until either side closes.
 *
 *   connected       `HTTP/1.1 200 Connection Established`, then the bytes the
 *                   client sent after its request head, then a raw pipe
 *   refused/failed  502, connection closed
 *   no connection   504 after the connect timeout
 *   idle            no byte either way for the idle timeout: both closed
 *
 * Both sockets are always released, and `onDone` is called once, after both closed.
 */

export interface ConnectTunnelOptions {
  client: Duplex
  head: Buffer
  host: string
  port: number
  connectTimeout: number
  idleTimeout: number
  /** The status the client is answered (200, 502, 504), as soon as it is decided (before the client socket closes). */
  onAnswer(status: number): void
  /** The status the client got (0 when it left first) and what happened, once both sockets closed. */
  onDone(status: number, detail: string): void
}

export function connectTunnel(opts: ConnectTunnelOptions): net.Socket {
  const { client, host, port } = opts
  const who = `${host.includes(':') ? `[${host}]` : host}:${port}`
  let phase: 'connect' | 'open' | 'over' = 'connect'
  let status = 0
  let detail = ''
  let clientClosed = client.destroyed && client.closed
  let upstreamClosed = false
  let reported = false

  const report = () => {
    if (reported || !clientClosed || !upstreamClosed) return
    reported = true
    clearTimeout(timer)
    opts.onDone(status, detail)
  }

  client.pause()
  client.on('error', () => {}) // a reset is handled by 'close'
  const upstream = net.connect({ host, port })
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (phase !== 'connect') return
    const why = err.code === 'ECONNREFUSED' ? 'refused the connection' : `could not be reached: ${err.code ?? err.message}`
    fail(502, `${who} ${why}`)
  })
  const timer = setTimeout(() => fail(504, `${who} did not accept the connection within ${opts.connectTimeout} ms`), opts.connectTimeout)

  client.once('close', () => {
    clientClosed = true
    if (phase === 'connect') {
      phase = 'over'
      detail = 'the client went away before the tunnel was open'
      upstream.destroy()
    } else if (phase === 'open') closeSoon(upstream, client.errored !== null)
    report()
  })
  upstream.once('close', () => {
    upstreamClosed = true
    if (phase === 'open') closeSoon(client, upstream.errored !== null)
    report()
  })

  upstream.once('connect', () => {
    if (phase !== 'connect') return
    phase = 'open'
    status = 200
    detail = 'tunnel'
    opts.onAnswer(200)
    clearTimeout(timer)
    upstream.setNoDelay(true)
    if (client instanceof net.Socket) client.setNoDelay(true)
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (opts.head.length) upstream.write(opts.head)
    // The upstream socket's timer is refreshed by reads and writes: traffic either way.
    upstream.setTimeout(opts.idleTimeout, () => {
      detail = `tunnel idle for ${opts.idleTimeout} ms`
      upstream.destroy()
      client.destroy()
    })
    upstream.pipe(client)
    client.pipe(upstream)
  })

  function fail(code: 502 | 504, message: string): void {
    if (phase !== 'connect') return
    phase = 'over'
    status = code
    detail = message
    opts.onAnswer(code)
    clearTimeout(timer)
    upstream.destroy()
    if (!clientClosed) answerAndClose(client, rawAnswer(code, {}, message + '\n'))
  }

  return upstream
}

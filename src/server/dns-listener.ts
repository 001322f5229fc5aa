/**
 * The DNS listeners: UDP and TCP on one address and port, always together
 * (RFC 7766 §5). Each UDP datagram is one query. A TCP connection carries
 * queries framed by a two-byte length (RFC 1035 §4.2.2); each is answered as
 * soon as its answer is ready, so several can be in flight on one
 * connection (RFC 7766 §6.2.1.1), and a connection with no query for
 * `tcpIdleTimeout` is closed (RFC 7766 §6.2.3). A client that does not read
 * its answers stops being read (backpressure), so memory stays bounded.
 *
 * The responder is asked for on every message, so a reload changes the
 * zones for the next query without closing anything.
 */

import dgram from 'node:dgram'
import net from 'node:net'
import { isIP } from 'node:net'
import type { Logger } from '../core/log.ts'
import type { Outcome, Responder, Transport } from '../dns/responder.ts'
import type { DnsConfig } from '../dns/schema.ts'
import type { ResponseRateLimit } from '../dns/rate-limit.ts'
import { rcodeName, typeName } from '../dns/message.ts'

export interface DnsListener {
  /** The port bound (UDP and TCP alike). */
  readonly port: number
  /** `udp+tcp://127.0.0.1:8053`, for the banner. */
  url(): string
  close(): Promise<void>
  /**
   * The answers sent so far over UDP and TCP, by the question's type and the
   * response code (`A`, `NOERROR`): one row per pair seen, most first.
   * Queries dropped (not a query, or rate limited) are not counted.
   */
  queries(): { type: string; rcode: string; count: number }[]
}

/**
 * Answers counted by (type, rcode), one number per pair: the key is
 * `type * 4096 + rcode` (types are 16 bits, extended rcodes 12), so
 * counting allocates nothing; the names are made only when asked.
 */
export class QueryCounts {
  private readonly counts = new Map<number, number>()

  /** One answer sent for a question of `qtype` with response code `rcode`. */
  add(qtype: number, rcode: number): void {
    const k = qtype * 4096 + rcode
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1)
  }

  /** The counts by type and rcode name (type 0, a message without a readable question, is `none`), most first. */
  rows(): { type: string; rcode: string; count: number }[] {
    const out: { type: string; rcode: string; count: number }[] = []
    for (const [k, count] of this.counts) {
      const t = Math.floor(k / 4096)
      out.push({ type: t === 0 ? 'none' : typeName(t), rcode: rcodeName(k % 4096), count })
    }
    return out.sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : a.type > b.type ? 1 : a.rcode < b.rcode ? -1 : a.rcode > b.rcode ? 1 : 0))
  }
}

/**
 * Binds UDP and TCP on `cfg.listen`: TCP first (so port 0 picks one free
 * port), then UDP on the same port; if either fails, neither stays bound.
 */
export async function startDnsListener(cfg: DnsConfig, listen: DnsConfig['listen'][number], responder: () => Responder, log: Logger, rrl?: ResponseRateLimit): Promise<DnsListener> {
  const host = listen.host
  const family = isIP(host) === 6 ? 6 : 4
  const sockets = new Set<net.Socket>()
  const counts = new QueryCounts()
  const logOutcome = (o: Outcome, transport: Transport, client: string) => {
    if (o.reply !== null && o.code !== undefined) counts.add(o.qtype ?? 0, o.code)
    if (cfg.queryLog) log.info({ dns: { transport, client, question: o.question, rcode: o.rcode, truncated: o.truncated || undefined, why: o.why } }, 'dns')
  }

  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.setTimeout(cfg.tcpIdleTimeout, () => socket.destroy())
    const client = socket.remoteAddress ?? ''
    let pending: Buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0)
        if (pending.length < 2 + len) break
        const msg = pending.subarray(2, 2 + len)
        pending = pending.subarray(2 + len)
        if (len === 0) continue // nothing to answer; the next frame may be a query
        const send = (o: Outcome) => {
          logOutcome(o, 'tcp', client)
          if (!o.reply || socket.destroyed) return
          // a zone transfer is several messages, in order
          let full = false
          for (const m of o.more ? [o.reply, ...o.more] : [o.reply]) {
            const frame = Buffer.allocUnsafe(2 + m.length)
            frame.writeUInt16BE(m.length, 0)
            m.copy(frame, 2)
            if (!socket.write(frame)) full = true
          }
          if (full && !socket.isPaused()) {
            socket.pause()
            socket.once('drain', () => socket.resume())
          }
        }
        // answers go out as each is ready: one that waits for the resolver does not hold up the next (RFC 7766 §6.2.1.1)
        const o = safeAnswer(responder, Buffer.from(msg), 'tcp', client, log, cfg.queryLog)
        if (o instanceof Promise) void o.then(send)
        else send(o)
      }
      // a copy, so one small leftover does not keep a large chunk alive
      if (pending.length && pending.buffer.byteLength > 4 * pending.length + 1024) pending = Buffer.from(pending)
    })
  })
  tcp.maxConnections = cfg.tcpMaxConnections
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen({ host, port: listen.port, exclusive: true }, () => {
      tcp.off('error', reject)
      resolve()
    })
  })
  const port = (tcp.address() as net.AddressInfo).port
  const udp = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 })
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind({ address: host, port, exclusive: true }, () => {
        udp.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await new Promise((r) => tcp.close(r))
    throw err
  }
  udp.on('error', (err) => log.warn({ err }, 'dns: UDP socket error'))
  udp.on('message', (msg, rinfo) => {
    // response rate limiting (UDP only: TCP cannot be spoofed, and is where limited clients are sent)
    const verdict = rrl ? rrl.check(rinfo.address) : 'answer'
    if (verdict !== 'answer') {
      const tc = verdict === 'slip' ? responder().truncated(msg) : null
      if (tc) udp.send(tc, rinfo.port, rinfo.address)
      return
    }
    const send = (o: Outcome) => {
      logOutcome(o, 'udp', rinfo.address)
      if (o.reply) udp.send(o.reply, rinfo.port, rinfo.address)
    }
    const o = safeAnswer(responder, msg, 'udp', rinfo.address, log, cfg.queryLog)
    if (o instanceof Promise) void o.then(send)
    else send(o)
  })
  tcp.on('error', (err) => log.warn({ err }, 'dns: TCP listener error'))
  const shown = family === 6 ? `[${host}]` : host
  return {
    port,
    url: () => `udp+tcp://${shown}:${port}`,
    queries: () => counts.rows(),
    close: async () => {
      udp.close()
      const closed = new Promise((r) => tcp.close(r))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

/** The responder's answer; an unexpected error (a defect) is logged and answered with nothing rather than ending the process. */
function safeAnswer(responder: () => Responder, msg: Buffer, transport: Transport, client: string, log: Logger, trace: boolean): Outcome | Promise<Outcome> {
  const failed = (err: unknown): Outcome => {
    log.error({ err, transport }, 'dns: answering a message failed')
    return { reply: null, why: 'internal error' }
  }
  try {
    const o = responder().answer(msg, transport, client, trace)
    return o instanceof Promise ? o.catch(failed) : o
  } catch (err) {
    return failed(err)
  }
}

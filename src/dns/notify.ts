/**
 * NOTIFY (RFC 1996): telling a zone's secondaries that it changed, so they
 * transfer it now rather than at their next refresh. Sent over UDP to each
 * `transfer.notify` address when Edgebox starts and whenever a reload gives
 * a zone a new serial; repeated (after 1, 2 and 4 seconds) until the
 * secondary acknowledges it, then given up with a warning.
 */

import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import net from 'node:net'
import { FLAG, MessageWriter, OPCODE, readMessage, TYPE, CLASS } from './message.ts'
import { toText } from './names.ts'
import { sign, type TsigKey } from './tsig.ts'
import type { Zone } from './zone.ts'
import type { Server } from './client.ts'

export interface NotifyResult {
  server: string
  acknowledged: boolean
  tries: number
  why?: string
}

/** The NOTIFY message for a zone: opcode NOTIFY, AA, the question (zone, SOA), the SOA in the answer section (RFC 1996 §3.7). */
export function notifyMessage(zone: Zone, id: number, key?: TsigKey, now = Math.floor(Date.now() / 1000)): Buffer {
  const w = new MessageWriter(4096)
  const name: Buffer[] = []
  for (const l of zone.origin) name.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'))
  name.push(Buffer.from([0, 0, TYPE.SOA, 0, CLASS.IN]))
  w.question({ labels: zone.origin, type: TYPE.SOA, class: CLASS.IN, raw: Buffer.concat(name) })
  w.add('answer', [zone.soa])
  const msg = w.finish(id, (OPCODE.NOTIFY << 11) | FLAG.AA)
  return key ? sign(msg, key, now).message : msg
}

/** Sends NOTIFY for `zone` to one secondary until it answers (at most 4 tries). */
export function notifyOne(zone: Zone, server: Server, key?: TsigKey, waits: readonly number[] = [1000, 2000, 4000, 4000]): Promise<NotifyResult> {
  const label = net.isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`
  return new Promise((resolve) => {
    const id = randomInt(0, 65536)
    const msg = notifyMessage(zone, id, key)
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4')
    let tries = 0
    let timer: NodeJS.Timeout | undefined
    const finish = (r: NotifyResult) => {
      clearTimeout(timer)
      socket.close()
      resolve(r)
    }
    const send = () => {
      if (tries === waits.length) return finish({ server: label, acknowledged: false, tries, why: 'no answer' })
      const wait = waits[tries++]!
      socket.send(msg, server.port, server.host)
      timer = setTimeout(send, wait)
    }
    socket.on('error', (err) => finish({ server: label, acknowledged: false, tries, why: err.message }))
    socket.on('message', (reply, rinfo) => {
      if (rinfo.port !== server.port) return
      const m = readMessage(reply)
      // the answer to our NOTIFY: same ID, QR, opcode NOTIFY (RFC 1996 §4.7)
      if (!m || m.id !== id || !(m.flags & FLAG.QR) || ((m.flags >> 11) & 0xf) !== OPCODE.NOTIFY) return
      finish({ server: label, acknowledged: m.rcode === 0, tries, ...(m.rcode !== 0 ? { why: `rcode ${m.rcode}` } : {}) })
    })
    socket.bind(0, () => send())
  })
}

/** Notifies every target of a zone; logs each outcome. */
export async function notifyAll(zone: Zone, targets: readonly Server[], key: TsigKey | undefined, log: { info(o: object, m: string): void; warn(o: object, m: string): void }): Promise<NotifyResult[]> {
  const results = await Promise.all(targets.map((t) => notifyOne(zone, t, key)))
  for (const r of results) {
    const o = { zone: toText(zone.origin), serial: zone.serial, secondary: r.server, tries: r.tries }
    if (r.acknowledged) log.info(o, 'dns: NOTIFY acknowledged')
    else log.warn({ ...o, why: r.why }, 'dns: NOTIFY not acknowledged; the secondary will see the change at its next refresh')
  }
  return results
}

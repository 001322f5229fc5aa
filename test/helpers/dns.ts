import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket from 'dns-packet'
import type { Packet } from 'dns-packet'

/** A record as dns-packet decodes it (its data's shape depends on the type). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Rec = { name: string; type: string; ttl: number; class?: string; data: any; [k: string]: any }

/** A decoded message, typed loosely enough for tests to read any field dns-packet gives. */
export interface Reply {
  id: number
  type: 'query' | 'response'
  opcode: string
  rcode: string
  flag_qr: boolean
  flag_aa: boolean
  flag_tc: boolean
  flag_rd: boolean
  flag_ra: boolean
  questions: { name: string; type: string; class: string }[]
  answers: Rec[]
  authorities: Rec[]
  additionals: Rec[]
  raw: Buffer
}

export function decode(raw: Buffer): Reply {
  return Object.assign(dnsPacket.decode(raw) as unknown as Reply, { raw })
}

/** A query's bytes: `dns-packet`'s encoding of a question with RD, an optional OPT record (`udpSize`) and an id. */
export function query(name: string, type: string, opts: { id?: number; udpSize?: number; ednsVersion?: number; rd?: boolean; klass?: string } = {}): Buffer {
  const packet: Packet = {
    type: 'query',
    id: opts.id ?? 4242,
    flags: opts.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: (opts.klass ?? 'IN') as 'IN' }],
    additionals: opts.udpSize !== undefined ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.udpSize, ednsVersion: opts.ednsVersion ?? 0, flags: 0 } as never] : [],
  }
  return dnsPacket.encode(packet)
}

/** Sends one datagram to 127.0.0.1:port; resolves with the answer's bytes, or null if none came within `timeoutMs`. */
export function udpRaw(port: number, msg: Buffer, timeoutMs = 1000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    const timer = setTimeout(() => {
      s.close()
      resolve(null)
    }, timeoutMs)
    s.on('message', (m) => {
      clearTimeout(timer)
      s.close()
      resolve(m)
    })
    s.send(msg, port, '127.0.0.1')
  })
}

export async function udp(port: number, msg: Buffer): Promise<Reply> {
  const raw = await udpRaw(port, msg)
  if (!raw) throw new Error('no answer over UDP')
  return decode(raw)
}

/**
 * Opens one TCP connection, writes `bytes` (frames already made, in as many
 * writes as given), and collects `expect` framed answers; resolves with them
 * when all came, or with what came when the connection closed or
 * `timeoutMs` passed.
 */
export function tcpRaw(port: number, writes: Buffer[], expect: number, timeoutMs = 2000): Promise<{ answers: Buffer[]; closed: boolean }> {
  return new Promise((resolve) => {
    const answers: Buffer[] = []
    let pending = Buffer.alloc(0)
    let closed = false
    const s = net.connect(port, '127.0.0.1')
    const finish = () => {
      clearTimeout(timer)
      s.destroy()
      resolve({ answers, closed })
    }
    const timer = setTimeout(finish, timeoutMs)
    s.on('connect', () => {
      for (const w of writes) s.write(w)
    })
    s.on('data', (c: Buffer) => {
      pending = Buffer.concat([pending, c])
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const len = pending.readUInt16BE(0)
        answers.push(pending.subarray(2, 2 + len))
        pending = pending.subarray(2 + len)
      }
      if (answers.length >= expect) finish()
    })
    s.on('close', () => {
      closed = true
      finish()
    })
    s.on('error', () => {})
  })
}

export function frame(msg: Buffer): Buffer {
  const b = Buffer.alloc(2 + msg.length)
  b.writeUInt16BE(msg.length, 0)
  msg.copy(b, 2)
  return b
}

export async function tcp(port: number, msg: Buffer): Promise<Reply> {
  const { answers } = await tcpRaw(port, [frame(msg)], 1)
  if (!answers[0]) throw new Error('no answer over TCP')
  return decode(answers[0])
}

/** The answer section as `name type data` lines (data as dns-packet decodes it, JSON for objects). */
export function lines(p: Reply, section: 'answers' | 'authorities' | 'additionals' = 'answers'): string[] {
  return (p[section] ?? []).filter((a) => a.type !== 'OPT').map((a) => `${a.name} ${a.ttl} ${a.type} ${typeof a.data === 'string' ? a.data : JSON.stringify(a.data, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString() : v))}`)
}

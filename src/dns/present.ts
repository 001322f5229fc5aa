/**
 * Records in presentation form (RFC 1035 §5.1; each type's RFC for its
 * data), as `dig` prints them and DNS-over-HTTPS's JSON form carries them.
 */

import { TYPE, typeName, type WireRecord } from './message.ts'
import { toText, type Labels } from './names.ts'
import { addressText } from './resolver.ts'

function nameOf(p: unknown): string {
  return toText((p as { name: Labels }).name)
}

function characterStrings(b: Buffer): string[] {
  const out: string[] = []
  for (let i = 0; i < b.length; ) {
    const len = b[i]!
    const s = b.subarray(i + 1, i + 1 + len)
    let t = ''
    for (const c of s) t += c === 0x22 || c === 0x5c ? '\\' + String.fromCharCode(c) : c < 0x20 || c > 0x7e ? '\\' + String(c).padStart(3, '0') : String.fromCharCode(c)
    out.push(`"${t}"`)
    i += 1 + len
  }
  return out
}

const SVC_NAMES = ['mandatory', 'alpn', 'no-default-alpn', 'port', 'ipv4hint', 'ech', 'ipv6hint']

function svcParams(b: Buffer): string {
  const out: string[] = []
  for (let i = 0; i + 4 <= b.length; ) {
    const k = b.readUInt16BE(i)
    const len = b.readUInt16BE(i + 2)
    const v = b.subarray(i + 4, i + 4 + len)
    const name = SVC_NAMES[k] ?? `key${k}`
    let text: string
    if (k === 0) text = Array.from({ length: v.length / 2 }, (_, j) => SVC_NAMES[v.readUInt16BE(j * 2)] ?? `key${v.readUInt16BE(j * 2)}`).join(',')
    else if (k === 1) {
      const ids: string[] = []
      for (let j = 0; j < v.length; ) {
        ids.push(v.toString('latin1', j + 1, j + 1 + v[j]!))
        j += 1 + v[j]!
      }
      text = ids.join(',')
    } else if (k === 3) text = String(v.readUInt16BE(0))
    else if (k === 4) text = Array.from({ length: v.length / 4 }, (_, j) => Array.from(v.subarray(j * 4, j * 4 + 4)).join('.')).join(',')
    else if (k === 6) text = Array.from({ length: v.length / 16 }, (_, j) => addressText({ rdata: [v.subarray(j * 16, j * 16 + 16)] } as unknown as WireRecord)).join(',')
    else if (k === 5) text = v.toString('base64')
    else text = v.toString('latin1')
    out.push(k === 2 ? name : `${name}=${text}`)
    i += 4 + len
  }
  return out.join(' ')
}

/** The record's data in presentation form: `192.0.2.1`, `10 mail.example.test.`, `"v=spf1 -all"`. */
export function rdataText(r: WireRecord): string {
  const p = r.rdata
  switch (r.type) {
    case TYPE.A:
    case TYPE.AAAA:
      return addressText(r)
    case TYPE.NS:
    case TYPE.CNAME:
    case TYPE.PTR:
    case TYPE.DNAME:
      return nameOf(p[0])
    case TYPE.MX:
      return `${(p[0] as Buffer).readUInt16BE(0)} ${nameOf(p[1])}`
    case TYPE.SOA: {
      const n = p[2] as Buffer
      return `${nameOf(p[0])} ${nameOf(p[1])} ${[0, 4, 8, 12, 16].map((o) => n.readUInt32BE(o)).join(' ')}`
    }
    case TYPE.SRV: {
      const n = p[0] as Buffer
      return `${n.readUInt16BE(0)} ${n.readUInt16BE(2)} ${n.readUInt16BE(4)} ${nameOf(p[1])}`
    }
  }
  const b = Buffer.concat(p.filter((x): x is Buffer => Buffer.isBuffer(x)))
  switch (r.type) {
    case TYPE.TXT:
      return characterStrings(b).join(' ')
    case TYPE.CAA: {
      const tagLen = b[1]!
      return `${b[0]} ${b.toString('latin1', 2, 2 + tagLen)} ${characterStrings(Buffer.concat([Buffer.from([b.length - 2 - tagLen]), b.subarray(2 + tagLen)]))[0]}`
    }
    case TYPE.SVCB:
    case TYPE.HTTPS: {
      // as read from the wire the whole data is one buffer: priority, an uncompressed target, then the parameters
      let at = 2
      const labels: string[] = []
      while (b[at]) {
        labels.push(b.toString('latin1', at + 1, at + 1 + b[at]!))
        at += 1 + b[at]!
      }
      at += 1
      const params = svcParams(b.subarray(at))
      return `${b.readUInt16BE(0)} ${toText(labels)}${params ? ' ' + params : ''}`
    }
  }
  // RFC 3597 §5
  return `\\# ${b.length}${b.length ? ' ' + b.toString('hex') : ''}`
}

/** One record as `dig` prints it: `www.example.test. 300 IN A 192.0.2.1`. */
export function recordText(r: WireRecord): string {
  return `${toText(r.owner)}\t${r.ttl}\t${r.class === 1 ? 'IN' : `CLASS${r.class}`}\t${typeName(r.type)}\t${rdataText(r)}`
}

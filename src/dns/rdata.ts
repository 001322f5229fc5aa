/**
 * Record data from its presentation form (RFC 1035 §5.1 and each type's own
 * RFC) to wire form, for the record types Edgebox serves. Zone files and the
 * records written in the configuration both come through here, so one record
 * means the same thing in either.
 *
 * Names in the data of NS, CNAME, PTR, MX and SOA may be compressed (RFC 3597
 * §4 lists the types whose names a server may compress); names in SRV,
 * SVCB/HTTPS and every newer type are written whole (RFC 2782, RFC 9460 §2.2).
 */

import { isIP } from 'node:net'
import { type Labels, NameError, parseName } from './names.ts'
import { type RdataPart, TYPE, typeName } from './message.ts'

/** One token of presentation-format data: its text (escapes still in place unless quoted), and whether it was quoted. */
export interface Token {
  text: string
  quoted: boolean
}

export class RdataError extends Error {}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(n)
  return b
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

function intToken(t: Token | undefined, what: string, max: number): number {
  if (!t || t.quoted || !/^[0-9]+$/.test(t.text) || Number(t.text) > max) throw new RdataError(`${what} is a whole number from 0 to ${max}${t ? `, not "${t.text}"` : ''}`)
  return Number(t.text)
}

function nameToken(t: Token | undefined, what: string, origin: Labels): Labels {
  if (!t) throw new RdataError(`${what} is missing`)
  try {
    return parseName(t.text, origin)
  } catch (err) {
    if (err instanceof NameError) throw new RdataError(`${what}: ${err.message}`)
    throw err
  }
}

/** A character-string (RFC 1035 §3.3): the token's bytes with `\X` and `\DDD` resolved, at most 255. */
export function characterString(t: Token, what: string): Buffer {
  const bytes: number[] = []
  const s = t.text
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!
    if (ch === '\\') {
      const next = s.slice(i + 1, i + 4)
      if (/^[0-9]{3}/.test(next)) {
        const v = Number(next)
        if (v > 255) throw new RdataError(`${what}: \\${next} is more than 255`)
        bytes.push(v)
        i += 3
      } else if (i + 1 < s.length) {
        bytes.push(...Buffer.from(s[i + 1]!, 'utf8'))
        i += 1
      } else throw new RdataError(`${what}: a backslash at the end`)
    } else bytes.push(...Buffer.from(ch, 'utf8'))
  }
  if (bytes.length > 255) throw new RdataError(`${what}: a character-string is at most 255 bytes (split a longer text into several quoted strings)`)
  return Buffer.from([bytes.length, ...bytes])
}

function expectCount(tokens: readonly Token[], n: number, type: string, shape: string): void {
  if (tokens.length !== n) throw new RdataError(`${type} data is "${shape}" (${n} value${n === 1 ? '' : 's'}), found ${tokens.length}`)
}

/**
 * Parses the data of a record of `type`. Relative names complete with
 * `origin`. Throws RdataError with a message that names the problem.
 */
export function parseRdata(type: number, tokens: readonly Token[], origin: Labels): RdataPart[] {
  const tn = typeName(type)
  // RFC 3597 §5: the generic form for any type
  if (tokens[0] && !tokens[0].quoted && tokens[0].text === '\\#') return generic(tokens, tn)
  switch (type) {
    case TYPE.A: {
      expectCount(tokens, 1, tn, 'IPv4 address')
      if (isIP(tokens[0]!.text) !== 4) throw new RdataError(`A data is an IPv4 address, not "${tokens[0]!.text}"`)
      return [Buffer.from(tokens[0]!.text.split('.').map(Number))]
    }
    case TYPE.AAAA: {
      expectCount(tokens, 1, tn, 'IPv6 address')
      const t = tokens[0]!.text
      if (isIP(t) !== 6) throw new RdataError(`AAAA data is an IPv6 address, not "${t}"`)
      return [ipv6Bytes(t)]
    }
    case TYPE.NS:
    case TYPE.CNAME:
    case TYPE.PTR: {
      expectCount(tokens, 1, tn, 'name')
      return [{ name: nameToken(tokens[0], `${tn} target`, origin), compress: true }]
    }
    case TYPE.MX: {
      expectCount(tokens, 2, tn, 'preference exchange')
      return [u16(intToken(tokens[0], 'MX preference', 65535)), { name: nameToken(tokens[1], 'MX exchange', origin), compress: true }]
    }
    case TYPE.SOA: {
      expectCount(tokens, 7, tn, 'mname rname serial refresh retry expire minimum')
      const nums = tokens.slice(2).map((t, i) => u32(timeOrInt(t, ['serial', 'refresh', 'retry', 'expire', 'minimum'][i]!)))
      return [{ name: nameToken(tokens[0], 'SOA mname', origin), compress: true }, { name: nameToken(tokens[1], 'SOA rname', origin), compress: true }, Buffer.concat(nums)]
    }
    case TYPE.TXT: {
      if (tokens.length === 0) throw new RdataError('TXT data is one or more strings')
      return [Buffer.concat(tokens.map((t, i) => characterString(t, `TXT string ${i + 1}`)))]
    }
    case TYPE.SRV: {
      expectCount(tokens, 4, tn, 'priority weight port target')
      return [
        Buffer.concat([u16(intToken(tokens[0], 'SRV priority', 65535)), u16(intToken(tokens[1], 'SRV weight', 65535)), u16(intToken(tokens[2], 'SRV port', 65535))]),
        { name: nameToken(tokens[3], 'SRV target', origin), compress: false },
      ]
    }
    case TYPE.CAA: {
      expectCount(tokens, 3, tn, 'flags tag "value"')
      const flags = intToken(tokens[0], 'CAA flags', 255)
      const tag = tokens[1]!.text
      if (!/^[A-Za-z0-9]{1,15}$/.test(tag)) throw new RdataError(`CAA tag is 1-15 letters and digits (issue, issuewild, iodef), not "${tag}"`)
      const value = characterString(tokens[2]!, 'CAA value').subarray(1) // RFC 8659 §4.1: the value is the rest of the data, no length octet
      return [Buffer.concat([Buffer.from([flags, tag.length]), Buffer.from(tag, 'latin1'), value])]
    }
    case TYPE.SVCB:
    case TYPE.HTTPS:
      return svcb(tokens, origin, tn)
    default:
      throw new RdataError(`${tn} records are not served; write them in the generic form "\\# length hex" (RFC 3597 §5)`)
  }
}

/** SOA numbers may be written with BIND's units (1h, 2d, 1w). */
function timeOrInt(t: Token, what: string): number {
  const s = t.text.toLowerCase()
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s)
    if (n > 0xffffffff) throw new RdataError(`SOA ${what} is at most 4294967295`)
    return n
  }
  const secs = ttlValue(s)
  if (secs === undefined) throw new RdataError(`SOA ${what} is a number of seconds (or 1h, 2d, 1w), not "${t.text}"`)
  return secs
}

/** A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`); undefined if it is neither. At most 2^31 - 1 (RFC 2181 §8). */
export function ttlValue(text: string): number | undefined {
  const s = text.toLowerCase()
  if (/^[0-9]+$/.test(s)) return Number(s) <= 0x7fffffff ? Number(s) : undefined
  if (!/^([0-9]+[smhdw])+$/.test(s)) return undefined
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }
  let total = 0
  for (const [, n, u] of s.matchAll(/([0-9]+)([smhdw])/g)) total += Number(n) * unit[u!]!
  return total <= 0x7fffffff ? total : undefined
}

export function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16)
  let s = text
  // an embedded IPv4 tail (::ffff:192.0.2.1)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s)
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number)
    s = s.slice(0, -v4[1]!.length) + ((a! << 8) | b!).toString(16) + ':' + ((c! << 8) | d!).toString(16)
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined]
  const h = head ? head.split(':') : []
  const t = tail !== undefined && tail !== '' ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t]
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

function generic(tokens: readonly Token[], tn: string): RdataPart[] {
  const len = intToken(tokens[1], `${tn} generic data length`, 65535)
  const hex = tokens.slice(2).map((t) => t.text).join('')
  if (!/^([0-9a-fA-F]{2})*$/.test(hex) || hex.length / 2 !== len) throw new RdataError(`${tn} generic data: "\\# ${len}" needs exactly ${len} bytes in hex after it`)
  return [Buffer.from(hex, 'hex')]
}

/** SvcParamKeys (RFC 9460 §14.3.2). */
const SVC_KEYS: Record<string, number> = { mandatory: 0, alpn: 1, 'no-default-alpn': 2, port: 3, ipv4hint: 4, ech: 5, ipv6hint: 6 }

/** SVCB and HTTPS (RFC 9460 §2.1): `priority target key=value ...`. */
function svcb(tokens: readonly Token[], origin: Labels, tn: string): RdataPart[] {
  if (tokens.length < 2) throw new RdataError(`${tn} data is "priority target [key=value ...]"`)
  const priority = intToken(tokens[0], `${tn} priority`, 65535)
  const target = nameToken(tokens[1], `${tn} target`, origin)
  if (priority === 0 && tokens.length > 2) throw new RdataError(`${tn} in alias mode (priority 0) has no parameters (RFC 9460 §2.4.2)`)
  const params = new Map<number, Buffer>()
  for (const t of tokens.slice(2)) {
    const eq = t.text.indexOf('=')
    const k = eq === -1 ? t.text : t.text.slice(0, eq)
    let v = eq === -1 ? '' : t.text.slice(eq + 1)
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1)
    const m = /^key([0-9]{1,5})$/.exec(k)
    const code = SVC_KEYS[k] ?? (m && Number(m[1]) <= 65535 ? Number(m[1]) : undefined)
    if (code === undefined) throw new RdataError(`${tn}: unknown parameter "${k}" (mandatory, alpn, no-default-alpn, port, ipv4hint, ech, ipv6hint, keyNNNNN)`)
    if (params.has(code)) throw new RdataError(`${tn}: parameter "${k}" given twice (RFC 9460 §2.2)`)
    params.set(code, svcValue(code, k, v, eq !== -1, tn))
  }
  const keys = [...params.keys()].sort((a, b) => a - b)
  const body: Buffer[] = []
  const parts: RdataPart[] = [u16(priority), { name: target, compress: false }]
  for (const k of keys) body.push(u16(k), u16(params.get(k)!.length), params.get(k)!)
  if (body.length) parts.push(Buffer.concat(body))
  return parts
}

function svcValue(code: number, k: string, v: string, hasValue: boolean, tn: string): Buffer {
  switch (code) {
    case 0: {
      const list = v.split(',').map((x) => SVC_KEYS[x] ?? (/^key[0-9]+$/.test(x) ? Number(x.slice(3)) : -1))
      if (!v || list.some((x) => x < 0 || x === 0)) throw new RdataError(`${tn}: mandatory lists other parameter names, not "${v}"`)
      return Buffer.concat(list.sort((a, b) => a - b).map(u16))
    }
    case 1: {
      if (!v) throw new RdataError(`${tn}: alpn needs protocol ids (alpn=h2,http/1.1)`)
      return Buffer.concat(v.split(',').map((id) => {
        if (!id || id.length > 255) throw new RdataError(`${tn}: an alpn id is 1-255 bytes`)
        return Buffer.concat([Buffer.from([id.length]), Buffer.from(id, 'latin1')])
      }))
    }
    case 2:
      if (hasValue) throw new RdataError(`${tn}: no-default-alpn takes no value`)
      return Buffer.alloc(0)
    case 3:
      return u16(intToken({ text: v, quoted: false }, `${tn} port`, 65535))
    case 4:
      return Buffer.concat(v.split(',').map((a) => {
        if (isIP(a) !== 4) throw new RdataError(`${tn}: ipv4hint lists IPv4 addresses, not "${a}"`)
        return Buffer.from(a.split('.').map(Number))
      }))
    case 5:
      if (!/^[A-Za-z0-9+/]+=*$/.test(v)) throw new RdataError(`${tn}: ech is an ECHConfigList in base64`)
      return Buffer.from(v, 'base64')
    case 6:
      return Buffer.concat(v.split(',').map((a) => {
        if (isIP(a) !== 6) throw new RdataError(`${tn}: ipv6hint lists IPv6 addresses, not "${a}"`)
        return ipv6Bytes(a)
      }))
    default:
      if (!hasValue) return Buffer.alloc(0)
      return characterString({ text: v, quoted: true }, `${tn} ${k}`).subarray(1)
  }
}

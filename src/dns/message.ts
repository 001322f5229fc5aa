/**
 * DNS messages on the wire (RFC 1035 §4.1): the one guarded reader of
 * incoming queries, and the writer of answers.
 *
 * The reader never throws: a datagram or frame that is not a query Edgebox
 * should answer is `drop` (shorter than a header, or a response, which a
 * server answering it could loop with), and a query whose header is readable
 * but whose body is not is `formerr` (RFC 1035 §4.1.1), with what could be
 * read of it for the answer.
 *
 * The writer compresses names (RFC 1035 §4.1.4), copies the question from
 * the query byte for byte (so the letter case of the name comes back as it
 * was sent, RFC 4343 §4), and keeps to a size limit while it writes: a record
 * set that does not fit is left out whole and TC is set (RFC 2181 §9), except
 * in the additional section, whose records are a courtesy and are left out
 * without TC unless marked required (glue, RFC 9471 §3).
 */

import { lowerAscii, NameError, parseAbsolute, type Labels, MAX_LABEL, MAX_NAME } from './names.ts'
import { TSIG_TYPE, type TsigRecord } from './tsig.ts'

export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DNAME: 39, OPT: 41, DS: 43,
  RRSIG: 46, NSEC: 47, DNSKEY: 48, SVCB: 64, HTTPS: 65, IXFR: 251, AXFR: 252, ANY: 255, CAA: 257,
} as const

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]))

/** A type's mnemonic, or `TYPE<n>` (RFC 3597 §5). */
export function typeName(t: number): string {
  return TYPE_NAMES.get(t) ?? `TYPE${t}`
}

/** A mnemonic (`AAAA`), `TYPE<n>` (RFC 3597 §5) or a bare number to the type's number; undefined if none of these. */
export function typeNumber(name: string): number | undefined {
  if (/^[0-9]{1,5}$/.test(name)) return Number(name) <= 65535 ? Number(name) : undefined
  const up = name.toUpperCase()
  const t = (TYPE as Record<string, number>)[up]
  if (t !== undefined) return t
  const m = /^TYPE([0-9]{1,5})$/.exec(up)
  if (m && Number(m[1]) <= 65535) return Number(m[1])
  return undefined
}

export const CLASS = { IN: 1, CH: 3, NONE: 254, ANY: 255 } as const

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, NOTAUTH: 9, NOTZONE: 10, BADVERS: 16 } as const
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]))
export function rcodeName(r: number): string {
  return RCODE_NAMES.get(r) ?? `RCODE${r}`
}

export const OPCODE = { QUERY: 0, NOTIFY: 4, UPDATE: 5 } as const

/** Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD). */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const

/**
 * An EDNS option of Edgebox's own (RFC 6891 §9 leaves 65001-65534 for local
 * use): in a query, "explain this answer"; in the answer, the explanation as
 * UTF-8 lines. Answered only to clients on the server's own machine.
 */
export const EXPLAIN_OPTION = 65001

/** The DO bit of an OPT record's flags (RFC 3225). */
export const EDNS_DO = 0x8000

/** Without EDNS(0), a UDP message is at most 512 bytes (RFC 1035 §4.2.1). */
export const CLASSIC_UDP = 512

export interface EdnsOption {
  code: number
  data: Buffer
}

export interface Edns {
  /** The client's UDP payload size, as sent (values under 512 are read as 512 when sizing answers, RFC 6891 §6.2.5). */
  udpSize: number
  version: number
  dnssecOk: boolean
  options: EdnsOption[]
}

export interface Question {
  /** The labels as sent (letter case kept). */
  labels: Labels
  type: number
  class: number
  /** The question's bytes in the query (name, type, class), copied into the answer. */
  raw: Buffer
}

export interface Query {
  id: number
  opcode: number
  /** The header's flags word as sent. */
  flags: number
  question: Question
  /** The OPT record, or null for a query without EDNS. */
  edns: Edns | null
  /** The TSIG record (RFC 8945), when the query is signed. */
  tsig: TsigRecord | null
  /** For an IXFR: the serial of the SOA the client sent in the authority section (RFC 1995 §3). */
  ixfrSerial?: number
}

export type ReadResult =
  | { kind: 'query'; query: Query }
  /** Readable header, unreadable body: answer FORMERR (with the question when it could be read). */
  | { kind: 'formerr'; id: number; opcode: number; flags: number; question: Question | null; why: string }
  /** A header that is an answer to something else (NOTIMP for an opcode it does not serve, handled by the caller), or not DNS at all. */
  | { kind: 'drop'; why: string }

class Malformed extends Error {}

/** Reads a name without compression (a question's name), from `at`; returns the labels and the offset after it. */
function readPlainName(buf: Buffer, at: number): { labels: string[]; end: number } {
  const labels: string[] = []
  let total = 1
  for (;;) {
    if (at >= buf.length) throw new Malformed('the question name runs past the end of the message')
    const len = buf[at]!
    if (len === 0) return { labels, end: at + 1 }
    if ((len & 0xc0) === 0xc0) throw new Malformed('a compression pointer in the question name')
    if (len > MAX_LABEL) throw new Malformed('a label type that does not exist (RFC 6891 §5)')
    total += len + 1
    if (total > MAX_NAME) throw new Malformed(`a name longer than ${MAX_NAME} bytes`)
    if (at + 1 + len > buf.length) throw new Malformed('the question name runs past the end of the message')
    labels.push(buf.toString('latin1', at + 1, at + 1 + len))
    at += 1 + len
  }
}

/** Skips a possibly compressed name; returns the offset after it in the record (pointers are followed only to check them). */
function skipName(buf: Buffer, at: number): number {
  return readName(buf, at, false).end
}

/** The options of an OPT record's data (RFC 6891 §6.1.2), each checked to lie inside it. */
function readOptions(buf: Buffer, start: number, len: number): EdnsOption[] {
  const options: EdnsOption[] = []
  for (let o = start; o < start + len; ) {
    if (o + 4 > start + len) throw new Malformed('an EDNS option runs past its record')
    const olen = buf.readUInt16BE(o + 2)
    if (o + 4 + olen > start + len) throw new Malformed('an EDNS option runs past its record')
    options.push({ code: buf.readUInt16BE(o), data: buf.subarray(o + 4, o + 4 + olen) })
    o += 4 + olen
  }
  return options
}

/**
 * Reads one incoming message as a query. Never throws (see the file's
 * comment for what is dropped and what gets FORMERR).
 */
export function readQuery(buf: Buffer): ReadResult {
  if (buf.length < 12) return { kind: 'drop', why: 'shorter than a DNS header' }
  const id = buf.readUInt16BE(0)
  const flags = buf.readUInt16BE(2)
  if (flags & FLAG.QR) return { kind: 'drop', why: 'a response, not a query' }
  const opcode = (flags >> 11) & 0xf
  const qd = buf.readUInt16BE(4)
  const an = buf.readUInt16BE(6)
  const ns = buf.readUInt16BE(8)
  const ar = buf.readUInt16BE(10)
  let question: Question | null = null
  try {
    if (qd !== 1) throw new Malformed(qd === 0 ? 'no question' : `${qd} questions (a query has one, RFC 9619)`)
    const { labels, end } = readPlainName(buf, 12)
    if (end + 4 > buf.length) throw new Malformed('the question runs past the end of the message')
    question = { labels, type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2), raw: buf.subarray(12, end + 4) }
    let at = end + 4
    let edns: Edns | null = null
    let tsig: TsigRecord | null = null
    let ixfrSerial: number | undefined
    for (let i = 0; i < an + ns + ar; i++) {
      const nameAt = at
      at = skipName(buf, at)
      if (at + 10 > buf.length) throw new Malformed('a record runs past the end of the message')
      const type = buf.readUInt16BE(at)
      const rdlen = buf.readUInt16BE(at + 8)
      const rdata = at + 10
      if (rdata + rdlen > buf.length) throw new Malformed("a record's data runs past the end of the message")
      if (type === TSIG_TYPE) {
        // RFC 8945 §5.1: the last record of the additional section, class ANY
        if (i !== an + ns + ar - 1 || i < an + ns) throw new Malformed('a TSIG record that is not the last of the additional section')
        const algo = readName(buf, rdata)
        let o = algo.end
        if (o + 10 > rdata + rdlen) throw new Malformed('a TSIG record shorter than its fields')
        const timeSigned = buf.readUIntBE(o, 6)
        const fudge = buf.readUInt16BE(o + 6)
        const macLen = buf.readUInt16BE(o + 8)
        o += 10
        if (o + macLen + 6 > rdata + rdlen) throw new Malformed('a TSIG record shorter than its MAC')
        const mac = buf.subarray(o, o + macLen)
        o += macLen
        const originalId = buf.readUInt16BE(o)
        const error = buf.readUInt16BE(o + 2)
        const otherLen = buf.readUInt16BE(o + 4)
        if (o + 6 + otherLen !== rdata + rdlen) throw new Malformed("a TSIG record's other data does not fill it")
        tsig = { start: nameAt, name: readName(buf, nameAt).labels, algorithm: algo.labels, timeSigned, fudge, mac, originalId, error, other: buf.subarray(o + 6, o + 6 + otherLen) }
      }
      if (type === TYPE.SOA && i >= an && i < an + ns && question.type === TYPE.IXFR) {
        // the SOA's serial: after two names
        const mname = skipName(buf, rdata)
        const rname = skipName(buf, mname)
        if (rname + 4 > rdata + rdlen) throw new Malformed('an SOA record shorter than its fields')
        ixfrSerial = buf.readUInt32BE(rname)
      }
      if (type === TYPE.OPT) {
        if (i < an + ns) throw new Malformed('an OPT record outside the additional section')
        if (edns) throw new Malformed('more than one OPT record (RFC 6891 §6.1.1)')
        if (buf[nameAt] !== 0) throw new Malformed("an OPT record whose owner is not the root")
        const ttl = buf.readUInt32BE(at + 4)
        edns = { udpSize: buf.readUInt16BE(at + 2), version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & EDNS_DO) !== 0, options: readOptions(buf, rdata, rdlen) }
      }
      at = rdata + rdlen
    }
    return { kind: 'query', query: { id, opcode, flags, question, edns, tsig, ...(ixfrSerial !== undefined ? { ixfrSerial } : {}) } }
  } catch (err) {
    if (!(err instanceof Malformed)) throw err
    return { kind: 'formerr', id, opcode, flags, question, why: err.message }
  }
}

/** One piece of a record's data: bytes as they are, or a domain name (compressible only in the types RFC 3597 §4 allows). */
export type RdataPart = Buffer | { name: Labels; compress: boolean }

/** A resource record ready to write. */
export interface WireRecord {
  owner: Labels
  type: number
  class: number
  ttl: number
  rdata: readonly RdataPart[]
}

export type Section = 'answer' | 'authority' | 'additional'

/**
 * Writes one message. `limit` is the largest message allowed (the UDP size,
 * or 65,535 over TCP); `reserve` bytes are kept free for the OPT record
 * written last.
 */
export class MessageWriter {
  private readonly buf: Buffer
  private off = 12
  private readonly limit: number
  private reserve = 0
  /** Name suffix keys already written, to their offsets (RFC 1035 §4.1.4: only offsets below 0x4000 can be pointed to). */
  private readonly names = new Map<string, number>()
  /** The keys added to `names`, in order, so that a record set left out takes its own back. */
  private readonly added: string[] = []
  private readonly counts = [0, 0, 0, 0]
  private truncated = false

  constructor(limit: number) {
    this.limit = limit
    this.buf = Buffer.allocUnsafe(limit)
  }

  /** Keeps room for `n` bytes at the end (the OPT record). */
  reserveBytes(n: number): void {
    this.reserve = n
  }

  /** Sets TC without leaving anything out (an answer that must be asked for over TCP). */
  markTruncated(): void {
    this.truncated = true
  }

  /** Bytes written so far. */
  get size(): number {
    return this.off
  }

  /** Whether a record set was left out for want of room (TC). */
  get wasTruncated(): boolean {
    return this.truncated
  }

  /** The question, copied from the query; its name becomes a compression target. */
  question(q: Question): void {
    q.raw.copy(this.buf, this.off)
    // the question's labels are new with every query: their keys are made, not kept
    this.rememberPartial(q.labels, makeSuffixKeys(q.labels), q.labels.length, this.off)
    this.off += q.raw.length
    this.counts[0] = 1
  }

  /** Writes a name at the current offset; false if it would pass `end`. */
  private name(labels: Labels, compress: boolean, end: number): boolean {
    const start = this.off
    const keys = compress ? suffixKeysOf(labels) : null
    for (let i = 0; i < labels.length; i++) {
      if (keys) {
        const ptr = this.names.get(keys[i]!)
        if (ptr !== undefined) {
          if (this.off + 2 > end) return false
          this.buf.writeUInt16BE(0xc000 | ptr, this.off)
          this.off += 2
          this.rememberPartial(labels, keys, i, start)
          return true
        }
      }
      const l = labels[i]!
      if (this.off + 1 + l.length > end) return false
      this.buf[this.off] = l.length
      this.buf.write(l, this.off + 1, 'latin1')
      this.off += 1 + l.length
    }
    if (this.off + 1 > end) return false
    this.buf[this.off++] = 0
    if (keys) this.rememberPartial(labels, keys, labels.length, start)
    return true
  }

  /** Remembers the written labels before index `upto` (their suffixes are new here). */
  private rememberPartial(labels: Labels, keys: readonly string[], upto: number, start: number): void {
    let pos = start
    for (let i = 0; i < upto && pos < 0x4000; i++) {
      const k = keys[i]!
      if (!this.names.has(k)) {
        this.names.set(k, pos)
        this.added.push(k)
      }
      pos += labels[i]!.length + 1
    }
  }

  /**
   * Adds a record set (records of one owner and type, or any list kept
   * together) to a section. If it does not fit, nothing of it stays and:
   * answer or authority, or `required`: TC is set and every later add is
   * refused; additional: it is just left out. Returns whether it was written.
   */
  add(section: Section, records: readonly WireRecord[], required = false): boolean {
    if (this.truncated) return false
    const end = this.limit - this.reserve
    const mark = this.off
    const known = this.added.length
    for (const rr of records) {
      if (!this.record(rr, end)) {
        this.off = mark
        for (let i = this.added.length - 1; i >= known; i--) this.names.delete(this.added[i]!)
        this.added.length = known
        if (section !== 'additional' || required) this.truncated = true
        return false
      }
    }
    this.counts[section === 'answer' ? 1 : section === 'authority' ? 2 : 3]! += records.length
    return true
  }

  private record(rr: WireRecord, end: number): boolean {
    if (!this.name(rr.owner, true, end)) return false
    if (this.off + 10 > end) return false
    this.buf.writeUInt16BE(rr.type, this.off)
    this.buf.writeUInt16BE(rr.class, this.off + 2)
    this.buf.writeUInt32BE(rr.ttl >>> 0, this.off + 4)
    const lenAt = this.off + 8
    this.off += 10
    const start = this.off
    for (const part of rr.rdata) {
      if (Buffer.isBuffer(part)) {
        if (this.off + part.length > end) return false
        part.copy(this.buf, this.off)
        this.off += part.length
      } else if (!this.name(part.name, part.compress, end)) return false
    }
    this.buf.writeUInt16BE(this.off - start, lenAt)
    return true
  }

  /** Writes the OPT record (RFC 6891 §6.1.2) into the reserved room. */
  opt(udpSize: number, extendedRcode: number, options: readonly EdnsOption[] = []): void {
    this.buf[this.off] = 0
    this.buf.writeUInt16BE(TYPE.OPT, this.off + 1)
    this.buf.writeUInt16BE(udpSize, this.off + 3)
    this.buf[this.off + 5] = extendedRcode
    this.buf[this.off + 6] = 0 // version 0
    this.buf.writeUInt16BE(0, this.off + 7) // flags: DO is not set, Edgebox does not sign (RFC 3225 §3)
    let len = 0
    for (const o of options) len += 4 + o.data.length
    this.buf.writeUInt16BE(len, this.off + 9)
    this.off += 11
    for (const o of options) {
      this.buf.writeUInt16BE(o.code, this.off)
      this.buf.writeUInt16BE(o.data.length, this.off + 2)
      o.data.copy(this.buf, this.off + 4)
      this.off += 4 + o.data.length
    }
    this.counts[3]! += 1
    this.reserve = 0
  }

  /** The finished message: the header with `flags` (TC added when something was left out) and the section counts. */
  finish(id: number, flags: number): Buffer {
    this.buf.writeUInt16BE(id, 0)
    this.buf.writeUInt16BE((flags | (this.truncated ? FLAG.TC : 0)) & 0xffff, 2)
    this.buf.writeUInt16BE(this.counts[0]!, 4)
    this.buf.writeUInt16BE(this.counts[1]!, 6)
    this.buf.writeUInt16BE(this.counts[2]!, 8)
    this.buf.writeUInt16BE(this.counts[3]!, 10)
    return this.buf.subarray(0, this.off)
  }
}

/**
 * The compression keys of every suffix of a name: lower case, each label
 * followed by a character no label holds (labels are bytes). Kept per label
 * array: a zone's names are written again and again, and their keys are
 * made once.
 */
const suffixKeyCache = new WeakMap<Labels, string[]>()
function suffixKeysOf(labels: Labels): string[] {
  let keys = suffixKeyCache.get(labels)
  if (!keys) suffixKeyCache.set(labels, (keys = makeSuffixKeys(labels)))
  return keys
}

function makeSuffixKeys(labels: Labels): string[] {
  const keys = new Array<string>(labels.length)
  let k = ''
  for (let i = labels.length - 1; i >= 0; i--) {
    k = lowerAscii(labels[i]!) + '\u0100' + k
    keys[i] = k
  }
  return keys
}

/** The size of an OPT record with these options. */
export function optLength(options: readonly EdnsOption[] = []): number {
  let n = 11
  for (const o of options) n += 4 + o.data.length
  return n
}

/** Reads a possibly compressed name at `at`; returns its labels (when `collect`) and the offset after it in place. Throws Malformed. */
function readName(buf: Buffer, at: number, collect = true): { labels: string[]; end: number } {
  const labels: string[] = []
  let end = -1
  let hops = 0
  let total = 1
  for (;;) {
    if (at >= buf.length) throw new Malformed('a name runs past the end of the message')
    const len = buf[at]!
    if (len === 0) return { labels, end: end === -1 ? at + 1 : end }
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= buf.length) throw new Malformed('a compression pointer runs past the end of the message')
      const target = ((len & 0x3f) << 8) | buf[at + 1]!
      if (end === -1) end = at + 2
      // only backwards, and a bounded number of times: a pointer loop is malformed, not a hang
      if (target >= at || ++hops > 64) throw new Malformed('a compression pointer loop')
      at = target
      continue
    }
    if (len > MAX_LABEL) throw new Malformed('a label type that does not exist')
    total += len + 1
    if (total > MAX_NAME) throw new Malformed(`a name longer than ${MAX_NAME} bytes`)
    if (at + 1 + len > buf.length) throw new Malformed('a name runs past the end of the message')
    if (collect) labels.push(buf.toString('latin1', at + 1, at + 1 + len))
    at += 1 + len
  }
}

/** Record types whose data holds names, and where: the bytes before each name (RFC 1035 §3.3, RFC 2782, RFC 6672). */
const NAMED_DATA: Record<number, 'name' | 'pref-name' | 'soa' | 'srv'> = {
  [TYPE.NS]: 'name', [TYPE.CNAME]: 'name', [TYPE.PTR]: 'name', [TYPE.DNAME]: 'name', [TYPE.MX]: 'pref-name', [TYPE.SOA]: 'soa', [TYPE.SRV]: 'srv',
}

function readRdata(buf: Buffer, type: number, start: number, len: number): RdataPart[] {
  const end = start + len
  const shape = NAMED_DATA[type]
  if (!shape) return [Buffer.from(buf.subarray(start, end))]
  const parts: RdataPart[] = []
  let at = start
  const fixed = (n: number) => {
    if (at + n > end) throw new Malformed("a record's data is shorter than its type needs")
    parts.push(Buffer.from(buf.subarray(at, at + n)))
    at += n
  }
  const name = (compress: boolean) => {
    const r = readName(buf, at)
    if (r.end > end) throw new Malformed("a name runs past its record's data")
    parts.push({ name: r.labels, compress })
    at = r.end
  }
  if (shape === 'name') name(type !== TYPE.DNAME)
  else if (shape === 'pref-name') {
    fixed(2)
    name(true)
  } else if (shape === 'srv') {
    fixed(6)
    name(false)
  } else {
    name(true)
    name(true)
    fixed(20)
  }
  if (at !== end) throw new Malformed("a record's data is longer than its type holds")
  return parts
}

/** A whole message as a resolver reads an answer: header, question and the three sections as records. */
export interface Message {
  id: number
  flags: number
  rcode: number
  question: Question | null
  answer: WireRecord[]
  authority: WireRecord[]
  additional: WireRecord[]
  edns: Edns | null
}

/** Reads any message (an answer from an authority); null when it is malformed, with nothing thrown. */
export function readMessage(buf: Buffer): Message | null {
  if (buf.length < 12) return null
  try {
    const flags = buf.readUInt16BE(2)
    const qd = buf.readUInt16BE(4)
    const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)]
    let at = 12
    let question: Question | null = null
    if (qd > 1) throw new Malformed('more than one question')
    if (qd === 1) {
      const n = readName(buf, 12)
      if (n.end + 4 > buf.length) throw new Malformed('the question runs past the end')
      question = { labels: n.labels, type: buf.readUInt16BE(n.end), class: buf.readUInt16BE(n.end + 2), raw: buf.subarray(12, n.end + 4) }
      at = n.end + 4
    }
    const sections: WireRecord[][] = [[], [], []]
    let edns: Edns | null = null
    let rcode = flags & 0xf
    for (let s = 0; s < 3; s++) {
      for (let i = 0; i < counts[s]!; i++) {
        const n = readName(buf, at)
        at = n.end
        if (at + 10 > buf.length) throw new Malformed('a record runs past the end of the message')
        const type = buf.readUInt16BE(at)
        const klass = buf.readUInt16BE(at + 2)
        const ttl = buf.readUInt32BE(at + 4)
        const rdlen = buf.readUInt16BE(at + 8)
        at += 10
        if (at + rdlen > buf.length) throw new Malformed("a record's data runs past the end of the message")
        if (type === TYPE.OPT) {
          if (s !== 2 || edns) throw new Malformed('a misplaced or second OPT record')
          // copied: an answer's options outlive its buffer (the resolver keeps what it reads)
          const options = readOptions(buf, at, rdlen).map((o) => ({ code: o.code, data: Buffer.from(o.data) }))
          edns = { udpSize: klass, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & EDNS_DO) !== 0, options }
          rcode |= ((ttl >>> 24) & 0xff) << 4
        } else {
          sections[s]!.push({ owner: n.labels, type, class: klass, ttl: ttl > 0x7fffffff ? 0 : ttl, rdata: readRdata(buf, type, at, rdlen) })
        }
        at += rdlen
      }
    }
    return { id: buf.readUInt16BE(0), flags, rcode, question, answer: sections[0]!, authority: sections[1]!, additional: sections[2]!, edns }
  } catch (err) {
    if (err instanceof Malformed) return null
    throw err
  }
}

/** A query message: one question, RD as asked, an OPT record advertising `udpSize` (none when 0). */
export function writeQuery(id: number, labels: Labels, type: number, opts: { rd?: boolean; ad?: boolean; udpSize?: number; options?: readonly EdnsOption[] } = {}): Buffer {
  const w = new MessageWriter(512 + optLength(opts.options ?? []))
  const name: Buffer[] = []
  for (const l of labels) name.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'))
  name.push(Buffer.from([0, type >> 8, type & 0xff, 0, CLASS.IN]))
  const raw = Buffer.concat(name)
  w.question({ labels, type, class: CLASS.IN, raw })
  if (opts.udpSize) w.opt(opts.udpSize, 0, opts.options ?? [])
  return w.finish(id, (opts.rd === false ? 0 : FLAG.RD) | (opts.ad ? FLAG.AD : 0))
}

/**
 * A question given as text, as DNS over HTTPS's JSON form and the lab take
 * it (`?name=www.example.com&type=AAAA`): the name (absolute, with or
 * without its final dot) and the type (a mnemonic or a number, default A),
 * or the problem with them in words.
 */
export function questionOf(nameText: string, typeText = 'A'): { labels: Labels; type: number } | { problem: string } {
  let labels: Labels
  try {
    labels = parseAbsolute(nameText)
  } catch (err) {
    if (err instanceof NameError) return { problem: `?name= is not a domain name: ${err.message}` }
    throw err
  }
  const type = typeNumber(typeText)
  if (type === undefined) return { problem: `?type= is a record type (A, AAAA, MX, TXT, ... or a number), not ${JSON.stringify(typeText)}` }
  return { labels, type }
}

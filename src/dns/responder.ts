/**
 * From one incoming DNS message to the bytes of its answer: the reading, the
 * checks of RFC 1035 §4.1.1 and RFC 6891, the choice of zone, the lookup and
 * the writing within the transport's size limit. No I/O: the listeners
 * (src/server/dns-listener.ts) hand it datagrams and TCP frames.
 */

import { type WireRecord, CLASS, CLASSIC_UDP, EXPLAIN_OPTION, FLAG, MessageWriter, OPCODE, optLength, RCODE, readQuery, TYPE, typeName, rcodeName, type Query, type Question } from './message.ts'
import { key, suffixKeys, toText } from './names.ts'
import { isLoopback } from '../http/address.ts'
import { appendError, sign, TSIG_ERROR, verifyRequest, type TsigKey } from './tsig.ts'
import type { AcmeChallenges } from './challenges.ts'
import type { EdnsOption } from './message.ts'

/** The EDNS Client Subnet option code (RFC 7871 §6). */
export const ECS_OPTION = 8

interface Ecs {
  family: 4 | 6
  sourcePrefix: number
  /** The address, padded with zeros to 4 or 16 bytes. */
  address: Buffer
  /** The address bytes as sent (ceil(sourcePrefix / 8) of them). */
  sent: Buffer
}

/** The ECS option of a query, checked as RFC 7871 §6 and §7.1.1 require (a bad one is FORMERR); null when absent. */
export function readEcs(options: readonly EdnsOption[]): Ecs | { error: string } | null {
  const o = options.find((x) => x.code === ECS_OPTION)
  if (!o) return null
  const d = o.data
  if (d.length < 4) return { error: 'an EDNS Client Subnet option shorter than 4 bytes' }
  const family = d.readUInt16BE(0)
  const source = d[2]!
  const scope = d[3]!
  const sent = d.subarray(4)
  if (family !== 1 && family !== 2) return { error: `EDNS Client Subnet family ${family} (1: IPv4, 2: IPv6)` }
  const max = family === 1 ? 32 : 128
  if (source > max) return { error: `EDNS Client Subnet source prefix ${source} is longer than an address` }
  if (scope !== 0) return { error: 'EDNS Client Subnet scope prefix is not 0 in a query' }
  if (sent.length !== Math.ceil(source / 8)) return { error: `EDNS Client Subnet address of ${sent.length} bytes for a /${source} prefix` }
  if (source % 8 !== 0 && sent.length > 0 && (sent[sent.length - 1]! & (0xff >> source % 8)) !== 0) return { error: 'EDNS Client Subnet address has bits set beyond its source prefix' }
  const address = Buffer.alloc(max / 8)
  sent.copy(address)
  return { family: family === 1 ? 4 : 6, sourcePrefix: source, address, sent }
}

function ecsOption(ecs: Ecs, scope: number): EdnsOption {
  const data = Buffer.alloc(4 + ecs.sent.length)
  data.writeUInt16BE(ecs.family === 4 ? 1 : 2, 0)
  data[2] = ecs.sourcePrefix
  data[3] = scope
  ecs.sent.copy(data, 4)
  return { code: ECS_OPTION, data }
}
import type { Lookup, Zone } from './zone.ts'
import type { Resolution, Resolver } from './resolver.ts'

export type Transport = 'udp' | 'tcp'

/** What happened to one message, for the query log and for tests. */
export interface Outcome {
  /** null: nothing is sent (the message was dropped). */
  reply: Buffer | null
  /** Further messages of the same answer (a zone transfer over TCP), sent after `reply` in order. */
  more?: Buffer[]
  /** The question as text (`www.example.test. A`), when one was read. */
  question?: string
  rcode?: string
  /** The question's type and the answer's response code as numbers (the listeners count answers by them), when a reply is sent. */
  qtype?: number
  code?: number
  /** Why the message was dropped or answered FORMERR. */
  why?: string
  truncated?: boolean
  /** How the answer was found (Zone.lookup's path). */
  path?: string[]
}

export interface ResponderOptions {
  /** Largest UDP answer, whatever the client advertises (DNS Flag Day 2020: 1232). */
  maxUdpSize: number
  /** Recursion, for the clients `allowed` says may use it (everyone else is REFUSED: never an open resolver). */
  recursion?: { resolver: Resolver; allowed: (address: string) => boolean }
  /** TSIG keys by name key (src/dns/tsig.ts). */
  keys?: ReadonlyMap<string, TsigKey>
  /** Zone transfer policy by zone origin key: who may transfer, and the keys one of which must sign the request (none: any or no signature). */
  transfers?: ReadonlyMap<string, { allowed: (address: string) => boolean; keys: ReadonlySet<string> }>
  /** Seconds since the epoch, for TSIG times. */
  now?: () => number
  /** Pending ACME DNS-01 challenges, answered as TXT records in the zones served (src/dns/challenges.ts). */
  challenges?: AcmeChallenges
}

/** The largest DNS message, over TCP (RFC 1035 §4.2.2: a two-byte length). */
const TCP_LIMIT = 65535

export class Responder {
  private readonly zones: Map<string, Zone>
  private readonly maxUdpSize: number
  readonly recursion: ResponderOptions['recursion']
  private readonly keys: ReadonlyMap<string, TsigKey>
  private readonly transfers: NonNullable<ResponderOptions['transfers']>
  private readonly now: () => number
  private readonly challenges: AcmeChallenges | undefined

  constructor(zones: readonly Zone[], opts: ResponderOptions) {
    this.zones = new Map(zones.map((z) => [z.originKey, z]))
    this.maxUdpSize = opts.maxUdpSize
    this.recursion = opts.recursion
    this.keys = opts.keys ?? new Map()
    this.transfers = opts.transfers ?? new Map()
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000))
    this.challenges = opts.challenges
  }

  /** Whether recursion is offered to an address: the allow list's answer, kept per address (a resolver's clients are few and ask often). */
  private readonly allowedCache = new Map<string, boolean>()
  private allowed(address: string): boolean {
    let v = this.allowedCache.get(address)
    if (v === undefined) {
      if (this.allowedCache.size >= 10_000) this.allowedCache.clear()
      v = this.recursion!.allowed(address)
      this.allowedCache.set(address, v)
    }
    return v
  }

  /** Every zone this responder answers. */
  zoneList(): Zone[] {
    return [...this.zones.values()]
  }

  /** The answer to one message from `from` (the client's address): at once from the zones, or a promise when the resolver has to work. */
  answer(msg: Buffer, transport: Transport, from = '', trace = false): Outcome | Promise<Outcome> {
    const read = readQuery(msg)
    if (read.kind === 'drop') return { reply: null, why: read.why }
    if (read.kind === 'formerr') {
      const w = new MessageWriter(CLASSIC_UDP)
      if (read.question && read.question.raw.length <= CLASSIC_UDP - 12) w.question(read.question)
      return { reply: w.finish(read.id, replyFlags(read.flags, read.opcode, RCODE.FORMERR)), question: read.question ? questionText(read.question) : undefined, rcode: 'FORMERR', qtype: read.question?.type ?? 0, code: RCODE.FORMERR, why: read.why }
    }
    const q = read.query
    // RFC 8945 §5.2: a signed request is checked first; a bad signature is NOTAUTH with the TSIG error, and nothing else
    let signer: TsigKey | null = null
    if (q.tsig) {
      const v = verifyRequest(msg, q.tsig, this.keys, this.now())
      if (!v.ok) return this.tsigFailure(q, v.error, v.why, v.error === TSIG_ERROR.BADTIME ? v.key : undefined)
      signer = v.key
    }
    const limit = transport === 'tcp' ? TCP_LIMIT : q.edns ? Math.min(Math.max(q.edns.udpSize, CLASSIC_UDP), this.maxUdpSize) : CLASSIC_UDP
    const w = new MessageWriter(limit)
    const ecs = q.edns ? readEcs(q.edns.options) : null
    // an explanation of the answer (edgebox dig --explain), for clients on this machine only: it tells how edges are doing
    const explain = q.edns !== null && q.edns.options.some((o) => o.code === EXPLAIN_OPTION) && isLoopback(from)
    if (q.edns || signer) w.reserveBytes((q.edns ? optLength(ecs && !('error' in ecs) ? [ecsOption(ecs, 0)] : []) : 0) + (explain ? 4 + EXPLAIN_MAX : 0) + (signer ? TSIG_ROOM : 0))
    w.question(q.question)
    // the words (the question as text, how the answer was found) only for the query log and explanations
    const words = trace || explain
    const text = words ? questionText(q.question) : undefined
    let ecsReply: EdnsOption[] = []
    // RA: recursion is offered to this client (RFC 1035 §4.1.1)
    const ra = this.recursion && this.allowed(from) ? FLAG.RA : 0
    const done = (rcode: number, aa: boolean, extra: Partial<Outcome> = {}): Outcome => {
      if (q.edns) w.opt(this.maxUdpSize, rcode >> 4, explain ? [...ecsReply, { code: EXPLAIN_OPTION, data: utf8Prefix([...(extra.path ?? []), ...(extra.why ? [extra.why] : []), `${rcodeName(rcode)}${aa ? ', authoritative' : ''}`].join('\n'), EXPLAIN_MAX) }] : ecsReply)
      let reply = w.finish(q.id, replyFlags(q.flags, q.opcode, rcode & 0xf) | (aa ? FLAG.AA : 0) | ra)
      // RFC 8945 §5.3: the answer to a signed request is signed with the same key
      if (signer) reply = sign(reply, signer, this.now(), { prior: q.tsig!.mac }).message
      return { reply, question: text, rcode: rcodeName(rcode), qtype: q.question.type, code: rcode, truncated: w.wasTruncated, ...extra }
    }
    // RFC 6891 §6.1.3: an EDNS version this server does not implement
    if (q.edns && q.edns.version !== 0) return done(RCODE.BADVERS, false, { why: `EDNS version ${q.edns.version}` })
    // NOTIFY is for secondaries, and Edgebox is a primary only (RFC 1996 §3.10: refuse what one does not act on)
    if (q.opcode === OPCODE.NOTIFY) return done(RCODE.REFUSED, false, { why: 'NOTIFY: Edgebox is not a secondary for any zone' })
    if (q.opcode !== OPCODE.QUERY) return done(RCODE.NOTIMP, false, { why: `opcode ${q.opcode}` })
    if (ecs && 'error' in ecs) return done(RCODE.FORMERR, false, { why: ecs.error })
    const { type, class: klass } = q.question
    if (klass !== CLASS.IN) return done(RCODE.REFUSED, false, { why: `class ${klass}: only IN is served` })
    if (type === TYPE.AXFR || type === TYPE.IXFR) {
      const refused = this.transferRefusal(q, from, signer)
      if (refused) return done(RCODE.REFUSED, false, { why: refused })
      // RFC 5936 §4.2: a transfer goes over TCP; over UDP the client is told to come back over TCP
      if (transport === 'udp') {
        w.markTruncated()
        return done(RCODE.NOERROR, true, { why: `${typeName(type)} over UDP: asked to use TCP` })
      }
      return this.transfer(q, signer, text ?? questionText(q.question))
    }
    if (type === TYPE.OPT || (type >= 128 && type <= 254)) return done(RCODE.FORMERR, false, { why: `${typeName(type)} is not a type a query asks for` })
    const keys = suffixKeys(q.question.labels)
    let zone: Zone | undefined
    let at = 0
    for (; at < keys.length; at++) {
      zone = this.zones.get(keys[at]!)
      if (zone) break
    }
    if (!zone) {
      if (!ra) return done(RCODE.REFUSED, false, { why: this.recursion ? `no zone served here holds the name, and recursion is not offered to ${from}` : 'no zone served here holds the name' })
      if (!(q.flags & FLAG.RD)) return done(RCODE.REFUSED, false, { why: 'no zone served here holds the name, and the query did not ask for recursion (RD)' })
      if (ecs) ecsReply = [ecsOption(ecs, 0)]
      const answerWith = (r: Resolution) => {
        for (const set of r.answer) if (!w.add('answer', set)) break
        for (const set of r.authority) if (!w.add('authority', set)) break
        return done(r.rcode, false, words ? { path: [`recursion (${r.source})`, ...r.steps.map((s) => `${s.server} ${s.zone} ${s.question}: ${s.outcome}`)], why: r.why } : { why: r.why })
      }
      // a cache hit is answered at once; anything else waits for the resolver
      const cached = this.recursion!.resolver.cachedAnswer(q.question.labels, type)
      if (cached) return answerWith(cached)
      return this.recursion!.resolver.resolve(q.question.labels, type).then(answerWith)
    }
    // a pending ACME DNS-01 challenge: its TXT value, fresh every time (TTL 0), from the zone's authority
    const challenge = (type === TYPE.TXT || type === TYPE.ANY) && this.challenges ? this.challenges.at(keys[0]!) : undefined
    if (challenge) {
      w.add('answer', challenge.map((v) => ({ owner: q.question.labels, type: TYPE.TXT, class: CLASS.IN, ttl: 0, rdata: [txtData(v)] })))
      return done(RCODE.NOERROR, true, { path: ['a pending ACME DNS-01 challenge'] })
    }
    const found = zone.lookup(q.question.labels, keys, at, type, ecs ? { address: from, ecs } : { address: from }, words)
    if (words) found.path.unshift(`zone ${toText(zone.origin)} (serial ${zone.serial})`)
    // RFC 7871 §7.2.1: the option comes back with the scope the answer holds for (0: the same for every client)
    if (ecs) ecsReply = [ecsOption(ecs, found.scope ?? 0)]
    write(w, found)
    return done(found.rcode, found.authoritative, { path: found.path })
  }

  /** Why a transfer of the zone named by the question is refused to this client, or null when it is allowed. */
  private transferRefusal(q: Query, from: string, signer: TsigKey | null): string | null {
    const k = key(q.question.labels)
    const zone = this.zones.get(k)
    if (!zone) return `no zone ${toText(q.question.labels)} is served here`
    const policy = this.transfers.get(k)
    if (!policy) return `transfers of ${toText(zone.origin)} are not allowed (no transfer settings)`
    if (!policy.allowed(from)) return `${from} may not transfer ${toText(zone.origin)}`
    if (policy.keys.size && (!signer || !policy.keys.has(key(signer.name)))) return `a transfer of ${toText(zone.origin)} must be signed with ${[...policy.keys].join(' or ')} (TSIG)`
    return null
  }

  /**
   * The whole zone (RFC 5936): its SOA, every other record, its SOA again,
   * in messages of about 16 KB, each signed when the request was. IXFR gets
   * the same (RFC 1995 §4: a server without the history sends the whole
   * zone), or only the SOA when the client already has this serial.
   */
  private transfer(q: Query, signer: TsigKey | null, text: string): Outcome {
    const zone = this.zones.get(key(q.question.labels))!
    const flags = replyFlags(q.flags, q.opcode, RCODE.NOERROR) | FLAG.AA
    const records: WireRecord[] = [zone.soa]
    let upToDate = false
    if (q.question.type === TYPE.IXFR) {
      const theirs = ixfrSerial(q)
      upToDate = theirs !== null && serialAtLeast(theirs, zone.serial)
    }
    if (!upToDate) {
      for (const set of zone.records()) for (const r of set) if (r.type !== TYPE.SOA) records.push(r)
      records.push(zone.soa)
    }
    const messages: Buffer[] = []
    let w: MessageWriter | null = null
    const flush = () => {
      if (!w) return
      messages.push(w.finish(q.id, flags))
      w = null
    }
    for (const r of records) {
      if (!w) {
        w = new MessageWriter(TCP_LIMIT)
        w.reserveBytes(TSIG_ROOM)
        w.question(q.question)
      }
      if (!w.add('answer', [r])) {
        flush()
        w = new MessageWriter(TCP_LIMIT)
        w.reserveBytes(TSIG_ROOM)
        w.question(q.question)
        w.add('answer', [r])
      }
      if (w.size > TRANSFER_CHUNK) flush()
    }
    flush()
    if (signer) {
      let prior = q.tsig!.mac
      for (let i = 0; i < messages.length; i++) {
        const s = sign(messages[i]!, signer, this.now(), { prior, timersOnly: i > 0 })
        messages[i] = s.message
        prior = s.mac
      }
    }
    return { reply: messages[0]!, more: messages.slice(1), question: text, rcode: 'NOERROR', qtype: q.question.type, code: RCODE.NOERROR, path: [upToDate ? `${typeName(q.question.type)}: the client has serial ${zone.serial} already` : `${typeName(q.question.type)}: ${records.length} records in ${messages.length} message(s)`] }
  }

  /** NOTAUTH with the TSIG error (RFC 8945 §5.3.2): unsigned for BADKEY and BADSIG, signed for BADTIME. */
  private tsigFailure(q: Query, error: number, why: string, badTimeKey?: TsigKey): Outcome {
    const w = new MessageWriter(CLASSIC_UDP + 200)
    w.question(q.question)
    const msg = w.finish(q.id, replyFlags(q.flags, q.opcode, RCODE.NOTAUTH))
    const now = this.now()
    const reply = badTimeKey
      ? sign(msg, badTimeKey, now, { prior: q.tsig!.mac, error, other: serverTime(now) }).message
      : appendError(msg, q.tsig!.name, q.tsig!.algorithm, now, error)
    return { reply, question: questionText(q.question), rcode: 'NOTAUTH', qtype: q.question.type, code: RCODE.NOTAUTH, why: `TSIG: ${why}` }
  }

  /**
   * The answer a rate-limited query gets when it slips through: no records,
   * TC set, the question echoed, so the client asks again over TCP (null: not
   * a query to answer at all).
   */
  truncated(msg: Buffer): Buffer | null {
    const read = readQuery(msg)
    if (read.kind !== 'query') return null
    const w = new MessageWriter(CLASSIC_UDP)
    w.question(read.query.question)
    return w.finish(read.query.id, replyFlags(read.query.flags, read.query.opcode, RCODE.NOERROR) | FLAG.TC)
  }

  /** The zone that holds a name, if any (for explanations). */
  zoneFor(name: string): Zone | undefined {
    const keys = suffixKeys(name === '.' ? [] : name.replace(/\.$/, '').split('.'))
    for (const k of keys) {
      const z = this.zones.get(k)
      if (z) return z
    }
    return undefined
  }
}

/** A TXT record's data: one character-string (an ACME value is 43 characters). */
function txtData(v: string): Buffer {
  const b = Buffer.from(v, 'latin1')
  return Buffer.concat([Buffer.from([b.length]), b])
}

/** Room kept in a message for its TSIG record (key and algorithm names, a 64-byte MAC, the fields). */
const TSIG_ROOM = 400
/** A zone transfer's messages are cut at about this size. */
const TRANSFER_CHUNK = 16 * 1024

/** The serial of the SOA a client sent in an IXFR's authority section (RFC 1995 §3), or null. */
function ixfrSerial(q: Query): number | null {
  return q.ixfrSerial ?? null
}

/** BADTIME's other data: the server's time, 48 bits (RFC 8945 §5.2.3). */
function serverTime(now: number): Buffer {
  const b = Buffer.alloc(6)
  b.writeUIntBE(now, 0, 6)
  return b
}

/** RFC 1982 serial number arithmetic: whether `a` is `b` or later. */
function serialAtLeast(a: number, b: number): boolean {
  return a === b || ((a - b) >>> 0) < 0x80000000
}

/** The most explanation one answer carries. */
const EXPLAIN_MAX = 2048

/** The UTF-8 bytes of `text`, cut to at most `max` on a character boundary. */
function utf8Prefix(text: string, max: number): Buffer {
  const b = Buffer.from(text, 'utf8')
  if (b.length <= max) return b
  let end = max
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--
  return b.subarray(0, end)
}

function write(w: MessageWriter, found: Lookup): void {
  for (const set of found.answer) if (!w.add('answer', set)) return
  for (const set of found.authority) if (!w.add('authority', set)) return
  for (const { set, required } of found.additional) w.add('additional', set, required)
}

/** QR, the opcode, RD and CD echoed (RFC 1035 §4.1.1, RFC 6840 §5.9), and the low four bits of the rcode. RA is never set: these answers come from zones, not recursion. */
function replyFlags(queryFlags: number, opcode: number, rcode: number): number {
  return FLAG.QR | (opcode << 11) | (queryFlags & (FLAG.RD | FLAG.CD)) | (rcode & 0xf)
}

function questionText(q: Question): string {
  return `${toText(q.labels)} ${typeName(q.type)}`
}


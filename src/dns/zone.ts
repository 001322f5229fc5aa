/**
 * An authoritative zone in memory, and the lookup of RFC 1034 §4.3.2 over
 * it: delegations (referrals), exact names, CNAME chains inside the zone,
 * wildcards (RFC 4592) and negative answers (RFC 2308).
 *
 * A zone is built once from its entries (a zone file or the configuration's
 * records), checked as `named-checkzone` checks one, and never changed: a
 * reload builds a new one. Every record's data is in wire form already, so a
 * lookup only picks record sets.
 */

import { createHash } from 'node:crypto'
import { isWithin, key, type Labels, suffixKeys, toText } from './names.ts'
import { CLASS, RCODE, TYPE, typeName, type WireRecord } from './message.ts'
import type { ZoneEntry } from './zone-file.ts'
import type { BalancedName, Client } from './gslb.ts'

/** The records of one owner and type. */
export type RRset = readonly WireRecord[]

interface ZoneNode {
  labels: Labels
  rrsets: Map<number, RRset>
  /** A/AAAA record sets of the in-zone names an MX, SRV or NS set here points to (additional section processing, RFC 1034 §4.3.2 step 6). */
  extra: Map<number, RRset[]>
  /** A balanced name's A and AAAA answers (src/dns/gslb.ts). */
  balanced?: BalancedName
}

/** What a lookup found: the sections of the answer, before they are written. */
export interface Lookup {
  rcode: number
  /** AA: set for answers from the zone's own data, off for referrals (RFC 1034 §4.3.2). */
  authoritative: boolean
  answer: RRset[]
  authority: RRset[]
  additional: { set: RRset; required: boolean }[]
  /** How the answer was found, for explanations: `exact`, `wildcard *.example.test.`, `cname`, `referral to sub.example.test.`, `nxdomain`, `nodata`. */
  path: string[]
  /** The EDNS Client Subnet scope of the answer: the prefix length it holds for, or null when the client's address played no part. */
  scope: number | null
}

export class ZoneError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(problems.join('; '))
    this.problems = problems
  }
}

/** Longest CNAME chain followed inside a zone. */
const MAX_CHAIN = 16

export class Zone {
  readonly origin: Labels
  readonly originKey: string
  readonly soa: WireRecord
  /** The SOA as a negative answer's authority record: its TTL is min(TTL, MINIMUM) (RFC 2308 §5). */
  readonly negativeSoa: RRset
  readonly serial: number
  private readonly nodes = new Map<string, ZoneNode>()
  /** Every name that exists: the owners and the empty non-terminals between them and the apex (RFC 8020: those are not NXDOMAIN). */
  private readonly exists = new Set<string>()
  /** Delegation points: names below the apex with NS records. */
  private readonly cuts = new Set<string>()
  readonly recordCount: number
  /** See fingerprint(). */
  readonly fingerprint: string

  /**
   * Builds and checks a zone. `defaultTtl` is for entries without one.
   * Throws ZoneError listing every problem, each with its line when it came
   * from a file.
   */
  constructor(origin: Labels, entries: readonly ZoneEntry[], defaultTtl: number, balanced: readonly BalancedName[] = []) {
    this.origin = origin
    this.originKey = key(origin)
    const problems: string[] = []
    const where = (e: ZoneEntry) => (e.line > 0 ? `line ${e.line}: ` : '')
    const ttls = new Map<string, number>()
    for (const e of entries) {
      const k = key(e.owner)
      if (!isWithin(k, this.originKey)) {
        problems.push(`${where(e)}${toText(e.owner)} is outside the zone ${toText(origin)}`)
        continue
      }
      let node = this.nodes.get(k)
      if (!node) {
        node = { labels: e.owner, rrsets: new Map(), extra: new Map() }
        this.nodes.set(k, node)
      }
      const setKey = `${k} ${e.type}`
      // RFC 2181 §5.2: one TTL per record set; the first one given holds, as BIND does
      const ttl = ttls.get(setKey) ?? e.ttl ?? defaultTtl
      ttls.set(setKey, ttl)
      const rr: WireRecord = { owner: e.owner, type: e.type, class: CLASS.IN, ttl, rdata: e.rdata }
      const set = node.rrsets.get(e.type)
      if (set && set.some((r) => sameData(r, rr))) continue // RFC 2181 §5: a set holds no duplicates
      node.rrsets.set(e.type, set ? [...set, rr] : [rr])
    }
    for (const b of balanced) {
      const k = key(b.owner)
      if (!isWithin(k, this.originKey)) {
        problems.push(`the balanced name ${toText(b.owner)} is outside the zone ${toText(origin)}`)
        continue
      }
      let node = this.nodes.get(k)
      if (!node) {
        node = { labels: b.owner, rrsets: new Map(), extra: new Map() }
        this.nodes.set(k, node)
      }
      const clash = [TYPE.A, TYPE.AAAA, TYPE.CNAME].filter((t) => node.rrsets.has(t))
      if (clash.length) problems.push(`${toText(b.owner)} is a balanced name and has ${clash.map(typeName).join(', ')} records; its addresses come from its edges`)
      node.balanced = b
    }
    const apex = this.nodes.get(this.originKey)
    const soaSet = apex?.rrsets.get(TYPE.SOA)
    if (!soaSet) problems.push(`the zone ${toText(origin)} has no SOA record at its apex`)
    else if (soaSet.length > 1) problems.push(`the zone ${toText(origin)} has ${soaSet.length} SOA records; it has exactly one`)
    for (const [k, node] of this.nodes) {
      for (let n = k; n !== this.originKey; ) {
        this.exists.add(n)
        n = parentKey(n)
      }
      if (k !== this.originKey && node.rrsets.has(TYPE.NS)) this.cuts.add(k)
      if (k !== this.originKey && node.rrsets.has(TYPE.SOA)) problems.push(`${toText(node.labels)} has an SOA record; only the apex ${toText(origin)} has one`)
      if (node.rrsets.has(TYPE.CNAME)) {
        const cname = node.rrsets.get(TYPE.CNAME)!
        if (cname.length > 1) problems.push(`${toText(node.labels)} has ${cname.length} CNAME records; a name has at most one (RFC 2181 §10.1)`)
        const others = [...node.rrsets.keys()].filter((t) => t !== TYPE.CNAME)
        if (others.length) problems.push(`${toText(node.labels)} has a CNAME and ${others.map(typeName).join(', ')} records; a CNAME is the only data at its name (RFC 1034 §3.6.2)`)
        if (k === this.originKey) problems.push(`the apex ${toText(origin)} cannot be a CNAME: it holds the SOA and NS records`)
      }
    }
    this.exists.add(this.originKey)
    // data below a delegation is only glue: addresses of the child's name servers
    for (const [k, node] of this.nodes) {
      const cut = this.cutAbove(k)
      if (cut === undefined) continue
      const bad = [...node.rrsets.keys()].filter((t) => t !== TYPE.A && t !== TYPE.AAAA)
      if (bad.length) problems.push(`${toText(node.labels)} is below the delegation ${cut} and has ${bad.map(typeName).join(', ')} records; only addresses (glue) belong there`)
    }
    if (apex && !apex.rrsets.has(TYPE.NS)) problems.push(`the zone ${toText(origin)} has no NS records at its apex`)
    if (problems.length) throw new ZoneError(problems)
    this.soa = soaSet![0]!
    const soaData = this.soa.rdata[2] as Buffer
    this.serial = soaData.readUInt32BE(0)
    const minimum = soaData.readUInt32BE(16)
    this.negativeSoa = [{ ...this.soa, ttl: Math.min(this.soa.ttl, minimum) }]
    this.recordCount = entries.length
    this.fingerprint = fingerprint(entries)
    for (const node of this.nodes.values()) {
      for (const t of [TYPE.MX, TYPE.SRV, TYPE.NS]) {
        const set = node.rrsets.get(t)
        if (set) node.extra.set(t, this.addressesOf(set))
      }
    }
  }

  /** The delegation point strictly above `k` and strictly below the apex, if any. */
  private cutAbove(k: string): string | undefined {
    if (k === this.originKey) return undefined
    for (let n = parentKey(k); n !== this.originKey && n !== ''; n = parentKey(n)) if (this.cuts.has(n)) return n
    return undefined
  }

  /** The in-zone A/AAAA sets of the names the records point to. */
  private addressesOf(set: RRset): RRset[] {
    const out: RRset[] = []
    for (const rr of set) {
      const target = rr.rdata.find((p): p is { name: Labels; compress: boolean } => !Buffer.isBuffer(p))
      if (!target) continue
      const n = this.nodes.get(key(target.name))
      if (!n) continue
      for (const t of [TYPE.A, TYPE.AAAA]) {
        const s = n.rrsets.get(t)
        if (s) out.push(s)
      }
    }
    return out
  }

  /** Every record set of the zone, apex first (for transfers and listings). */
  *records(): Generator<RRset> {
    const apex = this.nodes.get(this.originKey)!
    for (const s of apex.rrsets.values()) yield s
    for (const [k, n] of this.nodes) if (k !== this.originKey) for (const s of n.rrsets.values()) yield s
  }

  /**
   * Answers `qtype` for the name whose suffix keys are `keys` (from
   * `suffixKeys`, the name itself first) and whose labels are `labels`;
   * `zoneAt` is the index in `keys` of this zone's origin. `trace`: say
   * how the answer was found in `path` (explanations and the query log only:
   * the words cost more than the lookup).
   */
  lookup(labels: Labels, keys: readonly string[], zoneAt: number, qtype: number, client: Client = { address: '' }, trace = false): Lookup {
    const out: Lookup = { rcode: RCODE.NOERROR, authoritative: true, answer: [], authority: [], additional: [], path: [], scope: null }
    // names of the CNAME chain so far, made only when there is a chain
    let visited: Set<string> | undefined
    let curLabels = labels
    let curKeys = keys
    let curZoneAt = zoneAt
    for (let step = 0; ; step++) {
      // a delegation on the way down: a referral (RFC 1034 §4.3.2 step 3b); a DS question at the cut is the parent's (RFC 4035 §3.1.4.1)
      for (let j = curZoneAt - 1; j >= 0; j--) {
        if (!this.cuts.has(curKeys[j]!)) continue
        if (j === 0 && qtype === TYPE.DS) break
        if (out.answer.length) {
          // a CNAME chain that leads into a delegation ends there: the resolver follows it
          if (trace) out.path.push(`cname target below the delegation ${toText(curLabels.slice(j))}`)
          return out
        }
        return this.referral(out, curKeys[j]!, trace)
      }
      const k = curKeys[0]!
      let node = this.nodes.get(k)
      const owner = curLabels
      let synthesized = false
      if (!node) {
        if (this.exists.has(k)) {
          if (trace) out.path.push('nodata (empty non-terminal)')
          out.authority.push(this.negativeSoa)
          return out
        }
        // RFC 4592 §3.3.1: the closest encloser, then its wildcard child
        const wild = this.wildcardFor(curKeys, curZoneAt)
        if (!wild) {
          if (trace) out.path.push(`nxdomain ${toText(curLabels)}`)
          out.rcode = RCODE.NXDOMAIN
          out.authority.push(this.negativeSoa)
          return out
        }
        node = wild
        synthesized = true
        if (trace) out.path.push(`wildcard ${toText(wild.labels)}`)
      } else if (trace) out.path.push(`exact ${toText(curLabels)}`)
      const cname = node.rrsets.get(TYPE.CNAME)
      if (cname && qtype !== TYPE.CNAME && qtype !== TYPE.ANY) {
        out.answer.push(synthesized ? cname.map((r) => ({ ...r, owner })) : cname)
        const target = (cname[0]!.rdata[0] as { name: Labels }).name
        const tKeys = suffixKeys(target)
        const tZoneAt = tKeys.indexOf(this.originKey)
        ;(visited ??= new Set()).add(k)
        if (tZoneAt === -1 || step + 1 >= MAX_CHAIN || visited.has(tKeys[0]!)) {
          if (trace) out.path.push(tZoneAt === -1 ? `cname to ${toText(target)}, outside the zone` : `cname chain stopped at ${toText(target)} (a loop or longer than ${MAX_CHAIN})`)
          return out
        }
        if (trace) out.path.push(`cname to ${toText(target)}`)
        curLabels = target
        curKeys = tKeys
        curZoneAt = tZoneAt
        continue
      }
      if (node.balanced && (qtype === TYPE.A || qtype === TYPE.AAAA || (qtype === TYPE.ANY && node.rrsets.size === 0))) {
        const b = node.balanced.answer(qtype === TYPE.AAAA ? TYPE.AAAA : TYPE.A, client, trace)
        out.scope = b.scope
        if (trace) out.path.push(...b.explain)
        if (b.records.length === 0) {
          out.authority.push(this.negativeSoa)
          return out
        }
        out.answer.push(synthesized ? b.records.map((r) => ({ ...r, owner })) : b.records)
        return out
      }
      let set: RRset | undefined
      if (qtype === TYPE.ANY) {
        // RFC 8482 §4.1: one record set of the name is enough
        set = node.rrsets.values().next().value
      } else set = node.rrsets.get(qtype)
      if (!set) {
        if (trace) out.path.push('nodata')
        out.authority.push(this.negativeSoa)
        return out
      }
      out.answer.push(synthesized ? set.map((r) => ({ ...r, owner })) : set)
      const extra = node.extra.get(set[0]!.type)
      if (extra) for (const s of extra) out.additional.push({ set: s, required: false })
      return out
    }
  }

  private wildcardFor(keys: readonly string[], zoneAt: number): ZoneNode | undefined {
    for (let j = 1; j <= zoneAt; j++) {
      if (!this.exists.has(keys[j]!)) continue
      const w = keys[j] === '' ? '*' : '*.' + keys[j]
      return this.nodes.get(w)
    }
    return undefined
  }

  private referral(out: Lookup, cut: string, trace: boolean): Lookup {
    const node = this.nodes.get(cut)!
    const ns = node.rrsets.get(TYPE.NS)!
    out.authoritative = false
    if (trace) out.path.push(`referral to ${toText(node.labels)}`)
    out.authority.push(ns)
    for (const rr of ns) {
      const target = (rr.rdata[0] as { name: Labels }).name
      const tk = key(target)
      const n = this.nodes.get(tk)
      if (!n) continue
      // RFC 9471 §3: glue of a name server inside the delegated zone must be sent (TC if it does not fit); sibling glue may be
      const required = isWithin(tk, cut)
      for (const t of [TYPE.A, TYPE.AAAA]) {
        const s = n.rrsets.get(t)
        if (s) out.additional.push({ set: s, required })
      }
    }
    return out
  }
}

function parentKey(k: string): string {
  for (let i = 0; i < k.length; i++) {
    if (k[i] === '\\') {
      i++
      continue
    }
    if (k[i] === '.') return k.slice(i + 1)
  }
  return ''
}

function sameData(a: WireRecord, b: WireRecord): boolean {
  if (a.rdata.length !== b.rdata.length) return false
  for (let i = 0; i < a.rdata.length; i++) {
    const x = a.rdata[i]!
    const y = b.rdata[i]!
    if (Buffer.isBuffer(x) !== Buffer.isBuffer(y)) return false
    if (Buffer.isBuffer(x)) {
      if (!x.equals(y as Buffer)) return false
    } else if (key(x.name) !== key((y as { name: Labels }).name)) return false
  }
  return true
}

/** What a zone's records say, SOA aside, as one value: two loads of the same records have the same fingerprint (a reload keeps the serial). */
export function fingerprint(entries: readonly ZoneEntry[]): string {
  const lines = entries
    .filter((e) => e.type !== TYPE.SOA)
    .map((e) => `${key(e.owner)} ${e.type} ${e.ttl ?? ''} ${e.rdata.map((p) => (Buffer.isBuffer(p) ? p.toString('hex') : key(p.name))).join(' ')}`)
    .sort()
  return createHash('sha256').update(lines.join('\n')).digest('base64url')
}

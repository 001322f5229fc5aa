/**
 * The caching recursive resolver (docs/dns.md, "Resolver").
 *
 * Iterative resolution from the root hints down the hierarchy (RFC 1034
 * §5.3.3): ask the closest zone known for the name, follow its referral to
 * the child zone, and so on until a server answers with authority; CNAMEs
 * are chased from the top. What each step learns is cached (a byte-bounded
 * LRU that honours TTLs, negative answers for their SOA's negative TTL,
 * RFC 2308), so the next resolution starts as far down as it can.
 *
 * Defences: every record is checked against the zone of the server that
 * sent it (bailiwick): a server for `test.` can tell nothing about
 * `example.com.`, and glue outside the referring zone is never used or
 * cached. Queries go out with a random ID from a random port and a randomly
 * cased name that the answer must repeat exactly (src/dns/client.ts).
 * CNAME chains longer than 8, referrals that do not lead downwards, and
 * resolutions that would take more than 64 queries end in SERVFAIL.
 *
 * Query name minimisation (RFC 9156): a server is told only one label more
 * than the zone it serves, with type A, until the full name is reached.
 * Prefetch: a cached answer asked for in the last tenth of its TTL is
 * refreshed in the background. Serve-stale (RFC 8767): when every server
 * fails, an expired answer younger than `maxStale` is served with a TTL of
 * 30 seconds.
 */

import { randomInt } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../core/clock.ts'
import { ipv6Text } from '../http/address.ts'
import { ask, askDoh, AskError, type Server } from './client.ts'
import { CLASS, RCODE, TYPE, typeName, type Message, type WireRecord } from './message.ts'
import { isWithin, key, type Labels, lowerAscii, parseName, suffixKeys, toText } from './names.ts'

export interface ResolverSettings {
  /** The root servers: names and addresses. */
  rootHints: readonly { name: string; address: string }[]
  /** The port every authority is asked on (53; another for a local hierarchy). */
  authorityPort: number
  /** Bytes the cache may hold. */
  cacheSize: number
  /** Per query sent. */
  timeout: number
  qnameMinimisation: boolean
  prefetch: boolean
  serveStale: { enabled: boolean; maxStale: number }
  /** Ask these resolvers (RD set) instead of iterating: over UDP/TCP, or DNS over HTTPS (`{ url }`). */
  forward: readonly (Server | { url: string })[]
  /** Resolutions in progress at once (distinct names); beyond, SERVFAIL at once. Default 10,000: memory stays bounded. */
  maxInflight?: number
}

/** One step of a resolution, for `+trace` and explanations. */
export interface Step {
  server: string
  zone: string
  question: string
  outcome: string
  ms: number
}

export interface Resolution {
  rcode: number
  /** The answer section: the CNAME chain, then the records of the type asked. */
  answer: WireRecord[][]
  /** For a negative answer, the SOA that says for how long. */
  authority: WireRecord[][]
  /** Served from the cache (nothing asked), or from stale data. */
  source: 'cache' | 'network' | 'stale'
  steps: Step[]
  why?: string
}

type Entry =
  | { kind: 'set'; records: WireRecord[]; stored: number; ttl: number; rank: number }
  | { kind: 'negative'; rcode: number; soa: WireRecord | null; stored: number; ttl: number; rank: number }

/** What a record set in the cache is trusted for (RFC 2181 §5.4.1): an authoritative answer over a referral's NS over glue. */
const RANK = { glue: 1, referral: 2, answer: 3 } as const

const MAX_CNAME = 8
const MAX_QUERIES = 64
const MAX_REFERRALS = 20
/** RFC 8767 §4: the TTL of stale answers. */
const STALE_TTL = 30

/** Root hints (IANA's named.root, the A records of the thirteen root servers). */
export const ROOT_HINTS: readonly { name: string; address: string }[] = [
  ['a', '198.41.0.4'], ['b', '170.247.170.2'], ['c', '192.33.4.12'], ['d', '199.7.91.13'], ['e', '192.203.230.10'], ['f', '192.5.5.241'], ['g', '192.112.36.4'],
  ['h', '198.97.190.53'], ['i', '192.36.148.17'], ['j', '192.58.128.30'], ['k', '193.0.14.129'], ['l', '199.7.83.42'], ['m', '202.12.27.33'],
].map(([l, address]) => ({ name: `${l}.root-servers.net.`, address: address! }))

interface Budget {
  queries: number
  steps: Step[]
}

export class Resolver {
  private readonly cfg: ResolverSettings
  private readonly clock: Clock
  private readonly cache: LRUCache<string, Entry>
  private readonly inflight = new Map<string, Promise<Resolution>>()
  /** Smoothed round-trip time per server address (ms), to choose the fastest of a zone's servers. */
  private readonly srtt = new Map<string, number>()
  private readonly prefetching = new Set<string>()
  /** How long past its TTL an entry may still be served stale (0 without serve-stale). */
  private readonly staleSeconds: number

  constructor(cfg: ResolverSettings, clock: Clock) {
    this.cfg = cfg
    this.clock = clock
    this.staleSeconds = cfg.serveStale.enabled ? Math.floor(cfg.serveStale.maxStale / 1000) : 0
    this.cache = new LRUCache<string, Entry>({
      maxSize: cfg.cacheSize,
      sizeCalculation: (e) => {
        let n = 64
        if (e.kind === 'set') for (const r of e.records) n += recordSize(r)
        else if (e.soa) n += recordSize(e.soa)
        return n
      },
    })
  }

  /** Bytes the cache holds now, and its entries. */
  cacheStats(): { bytes: number; entries: number } {
    return { bytes: this.cache.calculatedSize, entries: this.cache.size }
  }

  /** What the cache holds for a name and type: remaining TTL in seconds (negative: expired), or null. */
  cached(labels: Labels, type: number): { ttl: number; kind: string } | null {
    const e = this.entry(`${key(labels)}|${type}`) ?? this.entry(`${key(labels)}|NX`)
    if (!e) return null
    return { ttl: this.remaining(e), kind: e.kind === 'set' ? 'records' : rcodeOf(e) }
  }

  /**
   * The answer from the cache alone, at once (no promise): the name's records
   * or negative answer, following CNAMEs through the cache; null when any link
   * is missing or expired (then `resolve`). What most queries to a busy
   * resolver get.
   */
  cachedAnswer(labels: Labels, type: number): Resolution | null {
    let name = labels
    const answer: WireRecord[][] = []
    for (let hop = 0; hop <= MAX_CNAME; hop++) {
      const k = key(name)
      const r = this.fromCache(name, type, false, k)
      if (!r) return null
      this.maybePrefetch(name, type, k)
      for (const set of r.answer) answer.push(set)
      const last = r.answer[r.answer.length - 1]
      if (r.rcode === RCODE.NOERROR && last && last[0]!.type === TYPE.CNAME && type !== TYPE.CNAME) {
        name = (last[0]!.rdata[0] as { name: Labels }).name
        continue
      }
      return { rcode: r.rcode, answer, authority: r.authority, source: 'cache', steps: [] }
    }
    return null
  }

  /** Resolves a name, from the cache when it can. Never rejects: a failure is SERVFAIL with `why`. */
  resolve(labels: Labels, type: number): Promise<Resolution> {
    const k = `${key(labels)}|${type}`
    const running = this.inflight.get(k)
    if (running) return running
    if (this.inflight.size >= (this.cfg.maxInflight ?? 10_000)) {
      return Promise.resolve({ rcode: RCODE.SERVFAIL, answer: [], authority: [], source: 'network', steps: [], why: `more than ${this.cfg.maxInflight ?? 10_000} resolutions in progress` })
    }
    const p = this.run(labels, type).finally(() => this.inflight.delete(k))
    this.inflight.set(k, p)
    return p
  }

  private async run(labels: Labels, type: number): Promise<Resolution> {
    const budget: Budget = { queries: 0, steps: [] }
    try {
      const r = await this.chase(labels, type, budget)
      return r
    } catch (err) {
      const why = err instanceof ResolveError ? err.message : `internal error: ${(err as Error).message}`
      if (this.cfg.serveStale.enabled && err instanceof ResolveError && err.kind === 'unreachable') {
        const stale = this.fromCache(labels, type, true)
        if (stale) return { ...stale, source: 'stale', steps: budget.steps, why: `every server failed (${why}); served stale data (RFC 8767)` }
      }
      return { rcode: RCODE.SERVFAIL, answer: [], authority: [], source: 'network', steps: budget.steps, why }
    }
  }

  /** Follows CNAMEs from the name asked: each link from the cache or resolved. */
  private async chase(labels: Labels, type: number, budget: Budget): Promise<Resolution> {
    const answer: WireRecord[][] = []
    const seen = new Set<string>()
    let name = labels
    let fromNetwork = false
    for (let hop = 0; hop <= MAX_CNAME; hop++) {
      const k = key(name)
      if (seen.has(k)) throw new ResolveError(`a CNAME loop at ${toText(name)}`)
      seen.add(k)
      let r = this.fromCache(name, type, false)
      if (r) this.maybePrefetch(name, type)
      else {
        fromNetwork = true
        r = this.cfg.forward.length ? await this.forwardOnce(name, type, budget) : await this.iterate(name, type, budget)
      }
      answer.push(...r.answer)
      const last = r.answer[r.answer.length - 1]
      if (r.rcode === RCODE.NOERROR && last && last[0]!.type === TYPE.CNAME && type !== TYPE.CNAME && !r.answer.some((s) => s[0]!.type === type)) {
        name = (last[0]!.rdata[0] as { name: Labels }).name
        continue
      }
      return { rcode: r.rcode, answer, authority: r.authority, source: fromNetwork ? 'network' : 'cache', steps: budget.steps }
    }
    throw new ResolveError(`a CNAME chain longer than ${MAX_CNAME}`)
  }

  /** The cache's answer for a name: its records, a CNAME, or a negative answer; stale entries only when asked. */
  private fromCache(labels: Labels, type: number, stale: boolean, nameKey = key(labels)): Resolution | null {
    const k = nameKey
    // an entry's remaining TTL, or null when it cannot be used (expired, unless stale data is asked for and still kept)
    const usable = (e: Entry | undefined): number | null => {
      if (!e) return null
      const r = this.remaining(e)
      return r > 0 ? r : stale ? STALE_TTL : null
    }
    const nx = this.entry(`${k}|NX`)
    const nxTtl = usable(nx)
    if (nxTtl !== null && nx!.kind === 'negative') return { rcode: RCODE.NXDOMAIN, answer: [], authority: nx!.soa ? [[{ ...nx!.soa, ttl: nxTtl }]] : [], source: 'cache', steps: [] }
    const e = this.entry(`${k}|${type}`)
    const eTtl = usable(e)
    if (eTtl !== null) {
      if (e!.kind === 'set' && e!.rank >= RANK.answer) return { rcode: RCODE.NOERROR, answer: [withTtl(e!.records, eTtl)], authority: [], source: 'cache', steps: [] }
      if (e!.kind === 'negative') return { rcode: RCODE.NOERROR, answer: [], authority: e!.soa ? [[{ ...e!.soa, ttl: eTtl }]] : [], source: 'cache', steps: [] }
    }
    if (type !== TYPE.CNAME) {
      const c = this.entry(`${k}|${TYPE.CNAME}`)
      const cTtl = usable(c)
      if (cTtl !== null && c!.kind === 'set' && c!.rank >= RANK.answer) return { rcode: RCODE.NOERROR, answer: [withTtl(c!.records, cTtl)], authority: [], source: 'cache', steps: [] }
    }
    return null
  }

  private remaining(e: Entry): number {
    return e.ttl - Math.floor((this.clock.now() - e.stored) / 1000)
  }

  /** A name asked for in the last tenth of its TTL is resolved again in the background (for TTLs of 10 s or more). */
  private maybePrefetch(labels: Labels, type: number, nameKey = key(labels)): void {
    if (!this.cfg.prefetch) return
    const k = `${nameKey}|${type}`
    const e = this.entry(k)
    if (!e || e.ttl < 10 || this.remaining(e) > e.ttl / 10 || this.prefetching.has(k)) return
    this.prefetching.add(k)
    const budget: Budget = { queries: 0, steps: [] }
    ;(this.cfg.forward.length ? this.forwardOnce(labels, type, budget) : this.iterate(labels, type, budget))
      .catch(() => {})
      .finally(() => this.prefetching.delete(k))
  }

  private put(k: string, e: Entry): void {
    const old = this.entry(k)
    // a lower-ranked set never replaces a higher-ranked one that is still fresh (RFC 2181 §5.4.1)
    if (old && old.rank > e.rank && this.remaining(old) > 0) return
    // no lifetime in the LRU itself: entries age by this resolver's clock (entry()), kept past their TTL for serve-stale
    this.cache.set(k, e)
  }

  /** A cached entry, unless it is older than its TTL plus the serve-stale window (then it is dropped). */
  private entry(k: string): Entry | undefined {
    const e = this.cache.get(k)
    if (e && this.remaining(e) < -this.staleSeconds) {
      this.cache.delete(k)
      return undefined
    }
    return e
  }

  private storeSets(records: readonly WireRecord[], rank: number): void {
    const sets = new Map<string, WireRecord[]>()
    for (const r of records) {
      if (r.class !== CLASS.IN) continue
      const k = `${key(r.owner)}|${r.type}`
      const list = sets.get(k)
      if (list) list.push(r)
      else sets.set(k, [r])
    }
    const now = this.clock.now()
    for (const [k, list] of sets) {
      // RFC 2181 §5.2: one TTL per set, the smallest
      const ttl = Math.min(...list.map((r) => r.ttl))
      this.put(k, { kind: 'set', records: list, stored: now, ttl, rank })
    }
  }

  private storeNegative(labels: Labels, type: number | 'NX', soa: WireRecord | null, rcode: number): void {
    // RFC 2308 §5: the negative TTL is the smaller of the SOA's TTL and its MINIMUM; without an SOA, not cached
    if (!soa) return
    const minimum = (soa.rdata[2] as Buffer).readUInt32BE(16)
    const ttl = Math.min(soa.ttl, minimum)
    this.put(`${key(labels)}|${type}`, { kind: 'negative', rcode, soa: { ...soa, ttl }, stored: this.clock.now(), ttl, rank: RANK.answer })
  }

  /** The closest zone whose name servers the cache knows, from the name up; the root from the hints. */
  private closestZone(labels: Labels): { zone: Labels; ns: Labels[] } {
    for (let i = 0; i < labels.length; i++) {
      const zone = labels.slice(i)
      const e = this.entry(`${key(zone)}|${TYPE.NS}`)
      if (e && e.kind === 'set' && this.remaining(e) > 0) return { zone, ns: e.records.map((r) => (r.rdata[0] as { name: Labels }).name) }
    }
    return { zone: [], ns: this.cfg.rootHints.map((h) => parseName(h.name)) }
  }

  /** Addresses of a zone's name servers: the hints for the root, else the cache (glue or answers). */
  private addressesOf(zone: Labels, ns: readonly Labels[]): string[] {
    if (zone.length === 0) return this.cfg.rootHints.map((h) => h.address)
    const out: string[] = []
    for (const n of ns) {
      for (const t of [TYPE.A, TYPE.AAAA]) {
        const e = this.entry(`${key(n)}|${t}`)
        if (e && e.kind === 'set' && this.remaining(e) > 0) for (const r of e.records) out.push(addressText(r))
      }
    }
    return out
  }

  /** Iterative resolution of one name and type: from the closest known zone down. Throws ResolveError. */
  private async iterate(labels: Labels, type: number, budget: Budget): Promise<Resolution> {
    let { zone, ns } = this.closestZone(labels)
    const targetKeys = suffixKeys(labels)
    // with minimisation: how many labels of the name the next query shows
    let shown = this.cfg.qnameMinimisation ? Math.min(labels.length, zone.length + 1) : labels.length
    for (let referrals = 0; referrals <= MAX_REFERRALS; ) {
      let servers = this.addressesOf(zone, ns)
      if (servers.length === 0) servers = await this.resolveServers(zone, ns, budget)
      const full = shown === labels.length
      const qname = labels.slice(labels.length - shown)
      const qtype = full ? type : TYPE.A
      const reply = await this.askZone(zone, servers, qname, qtype, budget)
      const m = lowerNames(reply.message)
      const zoneKey = key(zone)
      const inZone = (r: WireRecord) => isWithin(key(r.owner), zoneKey)
      const soa = m.authority.find((r) => r.type === TYPE.SOA && inZone(r) && isWithin(key(qname), key(r.owner))) ?? null
      if (m.rcode === RCODE.NXDOMAIN) {
        // RFC 8020: nothing exists below a name that does not exist, so the whole name does not
        this.storeNegative(labels, 'NX', soa, RCODE.NXDOMAIN)
        return { rcode: RCODE.NXDOMAIN, answer: [], authority: soa ? [[negativeSoa(soa)]] : [], source: 'network', steps: budget.steps }
      }
      if (m.rcode !== RCODE.NOERROR) throw new ResolveError(`${toText(zone)}'s servers answered ${typeName(qtype)} ${toText(qname)} with rcode ${m.rcode}`)
      const answers = m.answer.filter(inZone)
      // a referral: NS records for a zone below this one, on the way to the name
      const nsRecords = m.authority.filter((r) => r.type === TYPE.NS && inZone(r))
      const child = nsRecords[0]?.owner
      const isReferral = !(m.flags & 0x0400) && answers.length === 0 && child !== undefined
      if (isReferral) {
        const childKey = key(child)
        if (childKey === zoneKey || !isWithin(childKey, zoneKey) || !targetKeys.includes(childKey)) throw new ResolveError(`${toText(zone)}'s servers referred ${toText(qname)} to ${toText(child)}, which is not below ${toText(zone)} on the way to the name (a referral loop or a lame delegation)`)
        const set = nsRecords.filter((r) => key(r.owner) === childKey)
        this.storeSets(set, RANK.referral)
        // glue: only addresses of names inside the referring zone (out-of-bailiwick glue could poison the cache)
        const glue = m.additional.filter((r) => (r.type === TYPE.A || r.type === TYPE.AAAA) && inZone(r) && set.some((n) => key((n.rdata[0] as { name: Labels }).name) === key(r.owner)))
        this.storeSets(glue, RANK.glue)
        budget.steps[budget.steps.length - 1]!.outcome = `referral to ${toText(child)} (${set.map((n) => toText((n.rdata[0] as { name: Labels }).name)).join(', ')})${glue.length ? `, glue ${glue.map(addressText).join(', ')}` : ''}`
        zone = child
        ns = set.map((r) => (r.rdata[0] as { name: Labels }).name)
        referrals++
        shown = this.cfg.qnameMinimisation ? Math.min(labels.length, Math.max(shown, zone.length + 1)) : labels.length
        continue
      }
      if (!full) {
        // the minimised name exists (or is an empty non-terminal) in this zone: show one more label to the same servers
        budget.steps[budget.steps.length - 1]!.outcome = answers.length ? 'exists here; asking with one more label' : 'no records, not a delegation; asking with one more label'
        shown++
        continue
      }
      if (!(m.flags & 0x0400)) throw new ResolveError(`${toText(zone)}'s servers answered ${toText(qname)} without authority and without a referral (a lame server)`)
      // an authoritative answer: keep what is inside the zone, for the name asked and the CNAME chain from it
      const chain: WireRecord[][] = []
      let at = key(labels)
      for (let hop = 0; hop <= MAX_CNAME; hop++) {
        const own = answers.filter((r) => key(r.owner) === at)
        const exact = own.filter((r) => r.type === type || type === TYPE.ANY)
        if (exact.length) {
          chain.push(exact)
          break
        }
        const cname = own.find((r) => r.type === TYPE.CNAME)
        if (!cname) break
        chain.push([cname])
        at = key((cname.rdata[0] as { name: Labels }).name)
        if (!isWithin(at, zoneKey)) break
      }
      this.storeSets(chain.flat(), RANK.answer)
      if (chain.length === 0) {
        this.storeNegative(labels, type, soa, RCODE.NOERROR)
        budget.steps[budget.steps.length - 1]!.outcome = `no ${typeName(type)} records (NODATA)`
        return { rcode: RCODE.NOERROR, answer: [], authority: soa ? [[negativeSoa(soa)]] : [], source: 'network', steps: budget.steps }
      }
      budget.steps[budget.steps.length - 1]!.outcome = `answer: ${chain.flat().map((r) => `${typeName(r.type)} ${r.type === TYPE.A || r.type === TYPE.AAAA ? addressText(r) : r.type === TYPE.CNAME ? toText((r.rdata[0] as { name: Labels }).name) : ''}`.trim()).join(', ')}`
      // the first link only: chase() follows a CNAME that leaves this zone from the top, through the cache
      // the chain inside this zone; chase() follows a CNAME that leaves it from the top, through the cache
      return { rcode: RCODE.NOERROR, answer: chain, authority: [], source: 'network', steps: budget.steps }
    }
    throw new ResolveError(`more than ${MAX_REFERRALS} referrals for ${toText(labels)}`)
  }

  /** Resolves the addresses of a zone's name servers that came without glue. */
  private async resolveServers(zone: Labels, ns: readonly Labels[], budget: Budget): Promise<string[]> {
    for (const n of ns) {
      // a server inside the zone it serves, without glue, cannot be found (the referral was incomplete)
      if (isWithin(key(n), key(zone))) continue
      const r = await this.chase(n, TYPE.A, budget)
      const addrs = r.answer.flat().filter((x) => x.type === TYPE.A).map(addressText)
      if (addrs.length) return addrs
    }
    throw new ResolveError(`no address for any name server of ${toText(zone)} (${ns.map(toText).join(', ')})`)
  }

  /** Asks a zone's servers, fastest first, until one answers; throws ResolveError when none does. */
  private async askZone(zone: Labels, servers: string[], qname: Labels, qtype: number, budget: Budget) {
    const ordered = [...new Set(servers)].sort((a, b) => (this.srtt.get(a) ?? 0) - (this.srtt.get(b) ?? 0))
    const problems: string[] = []
    for (const address of ordered.slice(0, 4)) {
      if (++budget.queries > MAX_QUERIES) throw new ResolveError(`more than ${MAX_QUERIES} queries for one name`)
      const step: Step = { server: address.includes(':') ? `[${address}]:${this.cfg.authorityPort}` : `${address}:${this.cfg.authorityPort}`, zone: toText(zone), question: `${toText(qname)} ${typeName(qtype)}`, outcome: '', ms: 0 }
      budget.steps.push(step)
      try {
        const reply = await ask({ host: address, port: this.cfg.authorityPort }, randomCase(qname), qtype, { timeoutMs: this.cfg.timeout })
        step.ms = Math.round(reply.ms * 10) / 10
        this.srtt.set(address, 0.7 * (this.srtt.get(address) ?? reply.ms) + 0.3 * reply.ms)
        step.outcome = `${reply.message.rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'answered'}${reply.transport === 'tcp' ? ' (over TCP after TC)' : ''}`
        return reply
      } catch (err) {
        const why = err instanceof AskError ? err.message : (err as Error).message
        step.outcome = `failed: ${why}`
        // a server that does not answer goes to the back of the line
        this.srtt.set(address, (this.srtt.get(address) ?? 0) + this.cfg.timeout)
        problems.push(why)
      }
    }
    throw new ResolveError(`no server of ${toText(zone)} answered: ${problems.join('; ')}`, 'unreachable')
  }

  /** Forwarding: one upstream resolver answers (RD set); its answer is cached as it is. */
  private async forwardOnce(labels: Labels, type: number, budget: Budget): Promise<Resolution> {
    const problems: string[] = []
    for (const server of this.cfg.forward) {
      if (++budget.queries > MAX_QUERIES) break
      const step: Step = { server: 'url' in server ? server.url : `${server.host}:${server.port}`, zone: '(forwarder)', question: `${toText(labels)} ${typeName(type)}`, outcome: '', ms: 0 }
      budget.steps.push(step)
      try {
        // over HTTPS the transport protects the answer: no need to randomise the name's case
        const reply = 'url' in server ? await askDoh(server.url, labels, type, { timeoutMs: this.cfg.timeout, rd: true }) : await ask(server, randomCase(labels), type, { timeoutMs: this.cfg.timeout, rd: true })
        step.ms = Math.round(reply.ms * 10) / 10
        const m = lowerNames(reply.message)
        step.outcome = `rcode ${m.rcode}, ${m.answer.length} answer records`
        const soa = m.authority.find((r) => r.type === TYPE.SOA) ?? null
        if (m.rcode === RCODE.NXDOMAIN) {
          this.storeNegative(labels, 'NX', soa, RCODE.NXDOMAIN)
          return { rcode: RCODE.NXDOMAIN, answer: [], authority: soa ? [[negativeSoa(soa)]] : [], source: 'network', steps: budget.steps }
        }
        if (m.rcode !== RCODE.NOERROR) {
          problems.push(`${step.server} answered rcode ${m.rcode}`)
          continue
        }
        this.storeSets(m.answer, RANK.answer)
        const own = m.answer.filter((r) => key(r.owner) === key(labels))
        const exact = own.filter((r) => r.type === type)
        const first = exact.length ? exact : own.filter((r) => r.type === TYPE.CNAME).slice(0, 1)
        if (!first.length) this.storeNegative(labels, type, soa, RCODE.NOERROR)
        return { rcode: RCODE.NOERROR, answer: first.length ? [first] : [], authority: !first.length && soa ? [[negativeSoa(soa)]] : [], source: 'network', steps: budget.steps }
      } catch (err) {
        step.outcome = `failed: ${(err as Error).message}`
        problems.push((err as Error).message)
      }
    }
    throw new ResolveError(`no forwarder answered: ${problems.join('; ')}`, 'unreachable')
  }
}

/** The records with the TTL they have left. */
function withTtl(records: readonly WireRecord[], ttl: number): WireRecord[] {
  const out = new Array<WireRecord>(records.length)
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    out[i] = { owner: r.owner, type: r.type, class: r.class, ttl, rdata: r.rdata }
  }
  return out
}

export class ResolveError extends Error {
  /** `unreachable`: no server answered (stale data may stand in, RFC 8767); `broken`: the answers themselves were unusable (a loop, a lame delegation). */
  readonly kind: 'unreachable' | 'broken'
  constructor(message: string, kind: 'unreachable' | 'broken' = 'broken') {
    super(message)
    this.kind = kind
  }
}

/**
 * The message with every name in lower case: the letter case an authority
 * sends back is the randomised case of the query (DNS 0x20), which means
 * nothing once the answer is checked; what is cached and served on is in
 * one case.
 */
function lowerNames(m: Message): Message {
  const lower = (r: WireRecord): WireRecord => ({ ...r, owner: r.owner.map(lowerAscii), rdata: r.rdata.map((p) => (Buffer.isBuffer(p) ? p : { name: p.name.map(lowerAscii), compress: p.compress })) })
  return { ...m, answer: m.answer.map(lower), authority: m.authority.map(lower), additional: m.additional.map(lower) }
}

function rcodeOf(e: Entry & { kind: 'negative' }): string {
  return e.rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'NODATA'
}

function negativeSoa(soa: WireRecord): WireRecord {
  const minimum = (soa.rdata[2] as Buffer).readUInt32BE(16)
  return { ...soa, ttl: Math.min(soa.ttl, minimum) }
}

function recordSize(r: WireRecord): number {
  let n = 16
  for (const l of r.owner) n += l.length + 1
  for (const p of r.rdata) {
    if (Buffer.isBuffer(p)) n += p.length
    else for (const l of p.name) n += l.length + 1
  }
  return n
}

/** An A or AAAA record's address as text. */
export function addressText(r: WireRecord): string {
  const b = r.rdata[0] as Buffer
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i))
  return ipv6Text(groups)
}

/** The name with each ASCII letter's case chosen at random: the answer must repeat it (DNS 0x20). */
export function randomCase(labels: Labels): Labels {
  return labels.map((l) => {
    let out = ''
    for (let i = 0; i < l.length; i++) {
      const c = l.charCodeAt(i)
      const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
      out += letter ? String.fromCharCode(randomInt(2) ? c | 0x20 : c & ~0x20) : l[i]
    }
    return out
  })
}

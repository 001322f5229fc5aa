/**
 * The configuration's zones to `Zone`s: the zone file (if any) and the
 * records written in the configuration go through the same parser, then
 * the zone is built and checked. Every problem comes back with the
 * configuration path and the file's line, and nothing is served from a zone
 * with a problem.
 */

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Labels, parseAbsolute, parseName, toText } from './names.ts'
import { TYPE } from './message.ts'
import { parseZoneText, tokenize, type ZoneEntry } from './zone-file.ts'
import { parseRdata, RdataError, ttlValue } from './rdata.ts'
import { NameError } from './names.ts'
import { typeNumber, CLASS } from './message.ts'
import { fingerprint, Zone, ZoneError } from './zone.ts'
import { notifyAll } from './notify.ts'
import type { DnsConfig, DnsZoneConfig } from './schema.ts'
import type { NodeSharing } from '../core/health-check.ts'
import { BalancedName } from './gslb.ts'
import type { EdgeView } from '../core/observe.ts'
import { RegionMap, type GeoLookup } from './regions.ts'
import { Reader, type CountryResponse } from 'maxmind'
import { Responder } from './responder.ts'
import { isWithin, key } from './names.ts'
import type { Logger } from '../core/log.ts'
import type { Clock } from '../core/clock.ts'
import { Resolver, ROOT_HINTS } from './resolver.ts'
import { addressSet } from '../http/address.ts'
import type { TsigKey } from './tsig.ts'
import type { AcmeChallenges } from './challenges.ts'

/** Builds one configured zone; throws a list of `path: problem` strings. */
export function buildZone(cfg: DnsZoneConfig, path: string, baseDir: string, now: number, balanced: readonly BalancedName[] = [], previous?: Zone): Zone {
  const origin = parseAbsolute(cfg.origin)
  const problems: string[] = []
  const entries: ZoneEntry[] = []
  if (cfg.file) {
    const file = resolve(baseDir, cfg.file)
    let text: string
    try {
      text = readFileSync(file, 'latin1')
    } catch (err) {
      throw [`${path}.file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]
    }
    const parsed = parseZoneText(text, origin)
    for (const e of parsed.errors) problems.push(`${path}.file: ${cfg.file} ${e}`)
    entries.push(...parsed.entries)
  }
  cfg.records.forEach((r, i) => {
    const at = `${path}.records[${i}]`
    try {
      const owner = parseName(r.name, origin)
      const type = typeNumber(r.type)
      if (type === undefined) throw new RdataError(`type: unknown record type "${r.type}"`)
      const { lines, errors } = tokenize(r.data)
      if (errors.length) throw new RdataError(`data: ${errors.map((e) => e.replace(/^line \d+: /, '')).join('; ')}`)
      const tokens = lines.flatMap((l) => l.tokens)
      let ttl: number | undefined
      if (r.ttl !== undefined) ttl = typeof r.ttl === 'number' ? r.ttl : ttlValue(r.ttl)
      entries.push({ owner, type, class: CLASS.IN, ttl, rdata: parseRdata(type, tokens, origin), text: r.data, line: 0 })
    } catch (err) {
      if (err instanceof RdataError) problems.push(`${at}.${err.message.startsWith('type:') ? err.message : 'data: ' + err.message}`)
      else if (err instanceof NameError) problems.push(`${at}.name: ${err.message}`)
      else throw err
    }
  })
  if (problems.length) throw problems
  if (!entries.some((e) => e.type === TYPE.SOA && sameName(e.owner, origin))) {
    try {
      // the serial of a made SOA: kept while the records stay the same (no needless transfers), else the load time, always increasing
      const same = previous && previous.fingerprint === fingerprint(entries)
      const serial = same ? previous.serial : Math.max(Math.floor(now / 1000), previous ? (previous.serial + 1) >>> 0 : 0)
      entries.unshift(defaultSoa(cfg, origin, entries, serial))
    } catch (err) {
      if (err instanceof RdataError) throw [`${path}.soa: ${err.message}`]
      throw err
    }
  }
  try {
    return new Zone(origin, entries, cfg.ttl, balanced)
  } catch (err) {
    if (err instanceof ZoneError) throw err.problems.map((p) => `${path}: ${p}`)
    throw err
  }
}

function sameName(a: Labels, b: Labels): boolean {
  return a.length === b.length && a.every((l, i) => l.toLowerCase() === b[i]!.toLowerCase())
}

function defaultSoa(cfg: DnsZoneConfig, origin: Labels, entries: readonly ZoneEntry[], serial: number): ZoneEntry {
  const ns = entries.find((e) => e.type === TYPE.NS && sameName(e.owner, origin))
  const mname = cfg.soa.mname ?? (ns ? toText((ns.rdata[0] as { name: Labels }).name) : toText(origin))
  const rname = cfg.soa.rname ?? (origin.length ? `hostmaster.${toText(origin)}` : 'hostmaster.')
  const s = cfg.soa
  const text = `${mname} ${rname} ${serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`
  const { lines } = tokenize(text)
  return { owner: origin, type: TYPE.SOA, class: CLASS.IN, ttl: cfg.ttl, rdata: parseRdata(TYPE.SOA, lines[0]!.tokens, origin), text, line: 0 }
}

/** What the `dns` section provisions: the responder over every zone, and the balanced names' health checks. */
export interface DnsState {
  readonly zones: readonly Zone[]
  /** Whether a name is inside a zone served here (so its DNS-01 challenge can be answered). */
  serves(name: string): boolean
  /**
   * Sends NOTIFY to the secondaries of every zone that is new or has a new
   * serial since `previous` (every zone with secondaries, without it).
   */
  notify(previous?: DnsState | null): void
  /** What the first listen address answers (DNS over HTTPS answers the same). */
  readonly responder: Responder
  /** What a listen address answers: the zones and recursion offered on it. */
  responderFor(host: string): Responder
  readonly resolver: Resolver | undefined
  readonly balanced: readonly BalancedName[]
  /** Every balanced address has had its first health check (or the first round timed out). */
  firstRound(): Promise<void>
  /** Every address of every balanced name, with its health, maintenance and answers given (the operator's view). */
  edges(): EdgeView[]
  /**
   * Puts an edge of a balanced name (every address of it) in maintenance
   * (on) or back (off): left out of answers as a failed health check would
   * leave it. `name` as configured, with or without the final dot, in any
   * case. False when there is no such name or edge.
   */
  maintenance(name: string, edge: string, on: boolean): boolean
  close(): Promise<void>
}

/** Builds every zone and balanced name; throws a list of `path: problem` strings, with nothing left running. */
export function buildDns(cfg: DnsConfig, baseDir: string, log: Logger, clock: Clock, previous?: DnsState | null, challenges?: AcmeChallenges, nodes?: NodeSharing): DnsState {
  const problems: string[] = []
  let geo: GeoLookup | undefined
  if (cfg.geo) {
    const file = resolve(baseDir, cfg.geo.file)
    try {
      // a GeoLite2 / GeoIP2 Country or City database: Edgebox reads the country's and the continent's codes
      const reader = new Reader<CountryResponse>(readFileSync(file))
      geo = (address) => {
        try {
          const [rec, prefix] = reader.getWithPrefixLength(address)
          return rec ? { country: rec.country?.iso_code ?? rec.registered_country?.iso_code, continent: rec.continent?.code, prefix } : null
        } catch {
          return null // an IPv6 address in an IPv4 database
        }
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw [e.code ? `dns.geo.file: cannot read ${file} (${e.code})` : `dns.geo.file: ${file} is not a MaxMind database (${e.message})`]
    }
  }
  const regions = new RegionMap(cfg.regions.length ? cfg.regions : [{ name: 'default', networks: [], next: [] }], cfg.defaultRegion, geo)
  const origins = cfg.zones.map((z) => key(parseAbsolute(z.origin)))
  const balanced: BalancedName[] = []
  const zoneOf = new Map<BalancedName, number>()
  cfg.balance.forEach((b, i) => {
    const owner = parseAbsolute(b.name)
    const k = key(owner)
    // the innermost zone that holds the name
    let best = -1
    origins.forEach((o, zi) => {
      if (isWithin(k, o) && (best === -1 || o.length > origins[best]!.length)) best = zi
    })
    if (best === -1) {
      problems.push(`dns.balance[${i}].name: ${b.name} is in no zone of dns.zones; add its zone`)
      return
    }
    const name = new BalancedName(
      {
        owner,
        ttl: b.ttl,
        answers: b.answers,
        edges: b.edges.map((e) => ({ name: e.name ?? e.addresses[0]!, addresses: e.addresses, weight: e.weight, region: e.region ?? regions.defaultRegion })),
        check: b.check,
      },
      regions,
      log,
      clock,
      nodes,
    )
    balanced.push(name)
    zoneOf.set(name, best)
  })
  const zones: Zone[] = []
  const zoneOn: (readonly string[] | undefined)[] = []
  for (const [i, z] of cfg.zones.entries()) {
    try {
      zoneOn.push(z.on)
      zones.push(buildZone(z, `dns.zones[${i}]`, baseDir, clock.now(), balanced.filter((b) => zoneOf.get(b) === i), previous?.zones.find((p) => p.originKey === origins[i])))
    } catch (err) {
      if (Array.isArray(err)) problems.push(...(err as string[]))
      else throw err
    }
  }
  const close = async () => {
    await Promise.all(balanced.map((b) => b.close()))
  }
  if (problems.length) {
    void close()
    throw problems
  }
  const r = cfg.resolver
  const resolver = r
    ? new Resolver(
        {
          rootHints: (r.rootHints ?? ROOT_HINTS).map((h) => ({ name: toText(parseAbsolute(h.name)), address: h.address })),
          authorityPort: r.authorityPort,
          cacheSize: r.cacheSize,
          timeout: r.timeout,
          qnameMinimisation: r.qnameMinimisation,
          prefetch: r.prefetch,
          serveStale: r.serveStale,
          forward: r.forward.map((f) => (/^https?:\/\//.test(f) ? { url: f } : serverOf(f))),
        },
        clock,
      )
    : undefined
  const allowed = r ? addressSet(r.allow) : undefined
  const keys = new Map(cfg.keys.map((k) => [key(parseAbsolute(k.name)), { name: parseAbsolute(k.name), algorithm: k.algorithm, secret: Buffer.from(k.secret, 'base64') } satisfies TsigKey]))
  const transfers = new Map<string, { allowed: (a: string) => boolean; keys: ReadonlySet<string> }>()
  cfg.zones.forEach((z, i) => {
    if (z.transfer) transfers.set(origins[i]!, { allowed: addressSet(z.transfer.allow), keys: new Set(z.transfer.keys.map((k) => key(parseAbsolute(k)))) })
  })
  const views = new Map<string, Responder>()
  for (const l of cfg.listen) {
    if (views.has(l.host)) continue
    const here = zones.filter((_z, i) => zoneOn[i] === undefined || zoneOn[i]!.includes(l.host))
    const recursion = resolver && (r!.on === undefined || r!.on.includes(l.host)) ? { resolver, allowed: allowed! } : undefined
    views.set(l.host, new Responder(here, { maxUdpSize: cfg.maxUdpSize, recursion, keys, transfers, now: () => Math.floor(clock.now() / 1000), challenges }))
  }
  const first = views.get(cfg.listen[0]!.host)!
  const notify = (prev?: DnsState | null) => {
    cfg.zones.forEach((z, i) => {
      const zone = zones[i]!
      if (!z.transfer?.notify.length) return
      const before = prev?.zones.find((p) => p.originKey === zone.originKey)
      if (before && before.serial === zone.serial) return
      const signer = z.transfer.keys[0] !== undefined ? keys.get(key(parseAbsolute(z.transfer.keys[0]))) : undefined
      void notifyAll(zone, z.transfer.notify.map(serverOf), signer, log)
    })
  }
  return {
    zones,
    serves: (name) => {
      const k = key(parseName(name.replace(/^\*\./, '').replace(/\.?$/, '.')))
      return zones.some((z) => isWithin(k, z.originKey))
    },
    notify,
    resolver,
    responder: first,
    responderFor: (host) => views.get(host) ?? first,
    balanced,
    firstRound: async () => {
      await Promise.all(balanced.map((b) => b.firstRound))
    },
    edges: () => balanced.flatMap((b) => b.edges()),
    maintenance: (name, edge, on) => {
      let k: string
      try {
        k = key(parseAbsolute(name))
      } catch {
        return false
      }
      const b = balanced.find((x) => key(x.owner) === k)
      return b ? b.maintenance(edge, on) : false
    },
    close,
  }
}

/** `192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53` (checked by the schema) to a server; port 53 unless given. */
function serverOf(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v) ?? /^([^:]+)(?::(\d+))?$/.exec(v)
  return m ? { host: m[1]!, port: m[2] ? Number(m[2]) : 53 } : { host: v, port: 53 }
}

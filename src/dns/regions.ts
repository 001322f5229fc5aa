/**
 * Which region a client is in, for the DNS load balancer: the longest
 * configured network that holds the client's address (its EDNS Client
 * Subnet, RFC 7871, when the resolver sent one; else the resolver's own
 * address), and the order of regions to fall over to from there.
 */

import { isIP } from 'node:net'
import { ipv6Bytes } from './rdata.ts'

export interface RegionConfig {
  name: string
  /** Networks (CIDRs or addresses) whose clients belong here. */
  networks: readonly string[]
  /** ISO 3166 country codes (`JP`) and continent codes (`AS`) of the geo database whose clients belong here. */
  countries?: readonly string[]
  continents?: readonly string[]
  /** Regions to use, in order, when this one has no healthy edge (then every other, in configuration order). */
  next: readonly string[]
}

interface Network {
  region: string
  family: 4 | 6
  bytes: Buffer
  prefix: number
  text: string
}

/** An address as bytes (4 or 16), or null. */
export function addressBytes(address: string): Buffer | null {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
  const f = isIP(a)
  if (f === 4) return Buffer.from(a.split('.').map(Number))
  if (f === 6) return ipv6Bytes(a)
  return null
}

/** Whether the first `prefix` bits of `a` and `b` are equal. */
export function samePrefix(a: Buffer, b: Buffer, prefix: number): boolean {
  const whole = prefix >> 3
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false
  const rest = prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return (a[whole]! & mask) === (b[whole]! & mask)
}

export interface Placement {
  region: string
  /** The network that matched (`10.1.0.0/16`), or null when the default region was used. */
  network: string | null
  /** Its prefix length: the ECS scope of an answer that depends on it. */
  prefix: number
}

/** A geo database lookup: the address's country and continent codes, and the prefix length of the network they hold for. */
export type GeoLookup = (address: string) => { country?: string; continent?: string; prefix: number } | null

export class RegionMap {
  private readonly networks: Network[] = []
  private readonly byCountry = new Map<string, string>()
  private readonly byContinent = new Map<string, string>()
  private readonly geo: GeoLookup | undefined
  private readonly orders = new Map<string, string[]>()
  readonly names: readonly string[]
  readonly defaultRegion: string

  constructor(regions: readonly RegionConfig[], defaultRegion?: string, geo?: GeoLookup) {
    this.geo = geo
    this.names = regions.map((r) => r.name)
    for (const r of regions) {
      for (const c of r.countries ?? []) this.byCountry.set(c.toUpperCase(), r.name)
      for (const c of r.continents ?? []) this.byContinent.set(c.toUpperCase(), r.name)
    }
    this.defaultRegion = defaultRegion ?? regions[0]?.name ?? ''
    for (const r of regions) {
      for (const n of r.networks) {
        const [addr, bits] = n.split('/') as [string, string | undefined]
        const bytes = addressBytes(addr)!
        const family = bytes.length === 4 ? 4 : 6
        this.networks.push({ region: r.name, family, bytes, prefix: bits === undefined ? bytes.length * 8 : Number(bits), text: n })
      }
      const order = [r.name, ...r.next.filter((x) => x !== r.name)]
      for (const other of this.names) if (!order.includes(other)) order.push(other)
      this.orders.set(r.name, order)
    }
    // longest prefix first, so the first match is the most specific
    this.networks.sort((a, b) => b.prefix - a.prefix)
  }

  /**
   * The region of an address given as bytes (4 or 16), with at most `bits`
   * significant bits (an ECS source prefix): a configured network first (the
   * longest), then the geo database's country, then its continent, else the
   * default region.
   */
  place(bytes: Buffer | null, bits = bytes ? bytes.length * 8 : 0): Placement {
    if (bytes) {
      for (const n of this.networks) {
        if (n.bytes.length !== bytes.length) continue
        // a network more specific than what the client told cannot be told apart: it does not match
        if (n.prefix > bits) continue
        if (samePrefix(n.bytes, bytes, n.prefix)) return { region: n.region, network: n.text, prefix: n.prefix }
      }
      const found = this.geo && bits > 0 ? this.geo(addressText(bytes)) : null
      if (found) {
        const byCountry = found.country ? this.byCountry.get(found.country) : undefined
        const byContinent = found.continent ? this.byContinent.get(found.continent) : undefined
        if (byCountry) return { region: byCountry, network: `country ${found.country} (geo database, /${found.prefix})`, prefix: found.prefix }
        if (byContinent) return { region: byContinent, network: `continent ${found.continent} (geo database, /${found.prefix})`, prefix: found.prefix }
      }
    }
    return { region: this.defaultRegion, network: null, prefix: 0 }
  }

  /** The regions to try for a client placed in `region`, nearest first. */
  order(region: string): readonly string[] {
    return this.orders.get(region) ?? this.names
  }
}

/** An address's bytes (4 or 16) as text. */
function addressText(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return groups.join(':')
}

/**
 * Global server load balancing: the A and AAAA answers of a balanced name.
 *
 * A balanced name has edges; each edge has addresses, a weight and a region,
 * and every address is health-checked (src/core/health-check.ts, the prober
 * the proxy uses, starting `unknown`: the first probe decides). An answer
 * is chosen so:
 *
 * 1. the client's region: its EDNS Client Subnet (RFC 7871) when the
 *    resolver sent one, else the resolver's address, placed by the
 *    configured networks (the longest that holds it), else the default
 *    region;
 * 2. the nearest region with a healthy address of the family asked (A: IPv4,
 *    AAAA: IPv6): the client's own, then its `next` regions, then the rest;
 * 3. up to `answers` of that region's healthy addresses, rotated by weight:
 *    the first by a smooth weighted round robin over the healthy ones (an
 *    address of weight 2 comes first twice as often as one of weight 1),
 *    then the others;
 * 4. when no address of that family is healthy anywhere, every address of
 *    the nearest region that has any (fail open: a dead edge may be a dead
 *    prober), and a warning is logged, once per outage.
 *
 * The answer's TTL is the name's `ttl` (short, so clients come back soon
 * after a failure), and each decision can be explained in words.
 *
 * The operator may put an edge in maintenance (the admin API's switch): its
 * addresses leave the answers as if their health checks had failed, while
 * the checks go on; failing open then prefers addresses not in maintenance.
 * Resolvers that cached an answer keep it for at most the name's `ttl`.
 */

import { isIP } from 'node:net'
import { startHealthChecks, type CheckSettings, type HealthChecks, type NodeSharing, type Probe } from '../core/health-check.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { Logger } from '../core/log.ts'
import type { Labels } from './names.ts'
import { CLASS, TYPE, type WireRecord } from './message.ts'
import { addressBytes, type Placement, type RegionMap } from './regions.ts'
import type { EdgeView } from '../core/observe.ts'

export interface EdgeConfig {
  name: string
  addresses: readonly string[]
  weight: number
  region: string
}

export interface BalancedConfig {
  owner: Labels
  ttl: number
  answers: number
  edges: readonly EdgeConfig[]
  check: CheckSettings & ({ kind: 'http'; port: number; path: string; scheme: 'http' | 'https'; host?: string; expect: { min: number; max: number } } | { kind: 'tcp'; port: number })
}

interface Endpoint {
  id: string
  edge: string
  address: string
  family: 4 | 6
  region: string
  weight: number
  record: WireRecord
  /** Times this address was given in an answer (the operator's view). */
  answers: number
}

/** One address of a balanced name as the operator sees it (DnsState.edges). */
/** What a client asking about a balanced name is told, and why. */
export interface BalancedAnswer {
  records: WireRecord[]
  /** The ECS scope prefix of this answer (the length of the network that placed the client), or null when ECS played no part. */
  scope: number | null
  explain: string[]
}

export interface Client {
  /** The address the query came from (the resolver). */
  address: string
  /** The EDNS Client Subnet option, when the query had one. */
  ecs?: { family: 4 | 6; sourcePrefix: number; address: Buffer }
}

export class BalancedName {
  readonly owner: Labels
  private readonly answers: number
  private readonly endpoints: Endpoint[]
  private readonly regions: RegionMap
  private readonly checks: HealthChecks
  private readonly log: Logger
  /** Per region and family: its endpoints, and their running scores for the smooth weighted round robin. */
  private readonly wheels = new Map<string, { order: Endpoint[]; scores: Map<Endpoint, number> }>()
  private failingOpen = new Set<string>()
  /** Edges in maintenance, by name: since when (ms since the epoch). */
  private readonly maintained = new Map<string, number>()
  private readonly clock: Clock

  /** `nodes`: the deployment's Redis, for a check that says `shared` (one node probes at a time). */
  constructor(cfg: BalancedConfig, regions: RegionMap, log: Logger, clock?: Clock, nodes?: NodeSharing) {
    this.owner = cfg.owner
    this.clock = clock ?? systemClock
    this.answers = cfg.answers
    this.regions = regions
    this.log = log
    this.endpoints = cfg.edges.flatMap((e) =>
      e.addresses.map((address) => {
        const family = isIP(address) as 4 | 6
        const rdata = addressBytes(address)!
        return { id: e.name === address ? address : `${e.name} ${address}`, edge: e.name, address, family, region: e.region, weight: e.weight, record: { owner: cfg.owner, type: family === 4 ? TYPE.A : TYPE.AAAA, class: CLASS.IN, ttl: cfg.ttl, rdata: [rdata] }, answers: 0 }
      }),
    )
    for (const region of new Set(this.endpoints.map((e) => e.region))) {
      for (const family of [4, 6] as const) {
        const members = this.endpoints.filter((e) => e.region === region && e.family === family)
        if (members.length) this.wheels.set(`${region}/${family}`, { order: members, scores: new Map() })
      }
    }
    const c = cfg.check
    const probeFor = (e: Endpoint): Probe => {
      if (c.kind === 'tcp') return { kind: 'tcp', host: e.address, port: c.port }
      const host = e.family === 6 ? `[${e.address}]` : e.address
      return { kind: 'http', url: new URL(`${c.scheme}://${host}:${c.port}${c.path}`), host: c.host, expect: c.expect }
    }
    this.checks = startHealthChecks(this.endpoints.map((e) => ({ id: e.id, probe: probeFor(e) })), c, {
      initial: 'unknown',
      clock,
      // with workers, the edges are probed once per machine; with `shared`, once per deployment
      scope: `gslb:${nameText(cfg.owner)}`,
      ...(nodes ? { nodes } : {}),
      onChange: (id, state, why) => {
        const name = nameText(cfg.owner)
        if (state === 'up') log.info({ name, edge: id, reason: why }, 'dns: edge healthy')
        else log.warn({ name, edge: id, reason: why }, 'dns: edge unhealthy')
      },
    })
  }

  /** Every address has had its first health check (or the first round timed out). */
  get firstRound(): Promise<void> {
    return this.checks.firstRound
  }

  close(): Promise<void> {
    return this.checks.close()
  }

  /** Each address's health, for explanations. */
  status(): { edge: string; address: string; region: string; weight: number; state: string; reason: string }[] {
    return this.endpoints.map((e) => ({ edge: e.edge, address: e.address, region: e.region, weight: e.weight, state: this.checks.state(e.id), reason: this.checks.reason(e.id) }))
  }

  /** Whether an address may be answered: its health check passes and its edge is not in maintenance. */
  private up(e: Endpoint): boolean {
    return this.checks.state(e.id) === 'up' && (this.maintained.size === 0 || !this.maintained.has(e.edge))
  }

  /** Why an address is or is not answered, in words. */
  private why(e: Endpoint): string {
    const since = this.maintained.get(e.edge)
    return since === undefined ? this.checks.reason(e.id) : `in maintenance since ${new Date(since).toISOString()}`
  }

  /** Every address, as the operator sees it. */
  edges(): EdgeView[] {
    const name = nameText(this.owner)
    return this.endpoints.map((e) => ({ name, edge: e.edge, address: e.address, region: e.region, healthy: this.up(e), maintenance: this.maintained.has(e.edge), reason: this.why(e), answers: e.answers }))
  }

  /**
   * Puts an edge (all its addresses) in maintenance (on) or back (off): its
   * addresses leave the answers as a failed health check would take them out,
   * and come back with their health as checked meanwhile. False when the name
   * has no such edge.
   */
  maintenance(edge: string, on: boolean): boolean {
    if (!this.endpoints.some((e) => e.edge === edge)) return false
    if (on === this.maintained.has(edge)) return true
    if (on) this.maintained.set(edge, this.clock.now())
    else this.maintained.delete(edge)
    this.log.info({ name: nameText(this.owner), edge, maintenance: on }, on ? 'dns: edge in maintenance: left out of answers' : 'dns: edge out of maintenance')
    return true
  }

  /** The answer for `qtype` (A or AAAA) to this client. */
  answer(qtype: number, client: Client, trace = true): BalancedAnswer {
    const family = qtype === TYPE.AAAA ? 6 : 4
    const explain: string[] = []
    let placement: Placement
    let scope: number | null = null
    if (client.ecs && client.ecs.sourcePrefix > 0) {
      placement = this.regions.place(client.ecs.address, client.ecs.sourcePrefix)
      scope = placement.network ? placement.prefix : client.ecs.sourcePrefix
      if (trace) explain.push(placement.network ? `client subnet ${ecsText(client.ecs)} (EDNS Client Subnet) is in ${placement.network}: region ${placement.region}` : `client subnet ${ecsText(client.ecs)} (EDNS Client Subnet) is in no configured network: default region ${placement.region}`)
    } else {
      const bytes = addressBytes(client.address)
      placement = this.regions.place(bytes)
      if (trace) explain.push(placement.network ? `resolver ${client.address} is in ${placement.network}: region ${placement.region}` : `resolver ${client.address} is in no configured network: default region ${placement.region}`)
    }
    const order = this.regions.order(placement.region)
    const all = this.endpoints.filter((e) => e.family === family)
    if (all.length === 0) {
      if (trace) explain.push(`no IPv${family} edge: no ${family === 4 ? 'A' : 'AAAA'} records`)
      return { records: [], scope, explain }
    }
    for (const region of order) {
      const wheel = this.wheels.get(`${region}/${family}`)
      if (!wheel) continue
      const healthy = wheel.order.filter((e) => this.up(e))
      const down = trace ? wheel.order.filter((e) => !this.up(e)) : []
      if (healthy.length === 0) {
        if (trace) explain.push(`region ${region}: no healthy IPv${family} edge (${down.map((e) => `${e.id}: ${this.why(e)}`).join('; ')})`)
        continue
      }
      this.failingOpen.delete(`${family}`)
      const picked = this.rotate(wheel, healthy)
      for (const e of picked) e.answers++
      if (trace) explain.push(`region ${region}: ${healthy.length} healthy${down.length ? `, ${down.length} down (${down.map((e) => e.id).join(', ')})` : ''}; answered ${picked.map((e) => e.address).join(', ')} (rotated by weight)`)
      return { records: picked.map((e) => e.record), scope, explain }
    }
    // fail open: every address of the nearest region that has any (those not in maintenance, when a region has such)
    const serving = (r: string) => this.wheels.get(`${r}/${family}`)?.order.filter((e) => !this.maintained.has(e.edge)) ?? []
    const region = order.find((r) => serving(r).length > 0) ?? order.find((r) => this.wheels.has(`${r}/${family}`))!
    const open = serving(region)
    const every = open.length > 0 ? open : this.wheels.get(`${region}/${family}`)!.order
    for (const e of every) e.answers++
    if (!this.failingOpen.has(`${family}`)) {
      this.failingOpen.add(`${family}`)
      this.log.warn({ name: nameText(this.owner), family: `IPv${family}`, region }, 'dns: every edge is down; answering every edge of the nearest region (fail open)')
    }
    if (trace) explain.push(`every IPv${family} edge is down: failing open with region ${region}'s ${every.map((e) => e.address).join(', ')}`)
    return { records: every.map((e) => e.record), scope, explain }
  }

  /**
   * Up to `answers` distinct healthy endpoints: the first by nginx's smooth
   * weighted round robin over the healthy ones (each query adds every
   * healthy endpoint's weight to its running score and takes the highest,
   * which then gives back the total: over any run of queries each comes
   * first in proportion to its weight, spread out), the rest by score.
   */
  private rotate(wheel: { scores: Map<Endpoint, number> }, healthy: Endpoint[]): Endpoint[] {
    let total = 0
    for (const e of healthy) {
      total += e.weight
      wheel.scores.set(e, (wheel.scores.get(e) ?? 0) + e.weight)
    }
    const ranked = [...healthy].sort((a, b) => wheel.scores.get(b)! - wheel.scores.get(a)!)
    wheel.scores.set(ranked[0]!, wheel.scores.get(ranked[0]!)! - total)
    return ranked.slice(0, this.answers)
  }
}

function ecsText(ecs: NonNullable<Client['ecs']>): string {
  const b = ecs.address
  const addr = ecs.family === 4 ? [0, 1, 2, 3].map((i) => b[i] ?? 0).join('.') : Array.from({ length: 8 }, (_, i) => (((b[i * 2] ?? 0) << 8) | (b[i * 2 + 1] ?? 0)).toString(16)).join(':')
  return `${addr}/${ecs.sourcePrefix}`
}

function nameText(labels: Labels): string {
  return labels.join('.') + '.'
}

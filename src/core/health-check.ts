/**
 * Active health checks: the one prober the proxy's upstreams and the DNS
 * load balancer's edges use. Every `interval` each target is probed once
 * (never two probes of one target at a time): an HTTP `GET path` on a fresh
 * connection whose status must be in `expect`, or a TCP connection that must
 * open. `fall` bad probes in a row take a target down, `rise` good ones in a
 * row bring it back; each change is reported with the reason.
 *
 * A target starts `up` (the proxy: traffic flows while the first probes run)
 * or `unknown` (the DNS load balancer: the first probe decides at once, up or
 * down, so that no answer names an edge nobody has checked). `firstRound`
 * resolves when every target has had its first probe, or after
 * `firstRoundTimeout`, whichever is first.
 */

import net from 'node:net'
import { Agent, request, errors as undiciErrors } from 'undici'
import type { Broadcast } from './broadcast.ts'
import { systemClock, type Clock, type Timer } from './clock.ts'
import type { RedisBus } from './redis.ts'

export type Probe =
  /** `GET url` (path included); `host`: the Host field sent, default the URL's. */
  | { kind: 'http'; url: URL; host?: string; expect: { min: number; max: number } }
  | { kind: 'tcp'; host: string; port: number }

export interface CheckSettings {
  interval: number
  timeout: number
  rise: number
  fall: number
  /** Probed by one node of the deployment at a time, over Redis (see setNodeCheckSharing); default false: each node probes. */
  shared?: boolean
}

export interface CheckTarget {
  readonly id: string
  readonly probe: Probe
}

export type CheckState = 'up' | 'down' | 'unknown'

export interface HealthChecks {
  /** Every target's first probe has finished (or the first round timed out). */
  readonly firstRound: Promise<void>
  state(id: string): CheckState
  /** Why the target is in its state: the last probe's outcome. */
  reason(id: string): string
  close(): Promise<void>
}

export interface CheckOptions {
  /** `up`: healthy until `fall` probes fail; `unknown`: the first probe decides. */
  initial: 'up' | 'unknown'
  /** Called on every change of state, with the probe outcome that caused it. */
  onChange?: (id: string, state: CheckState, why: string) => void
  clock?: Clock
  /** TLS settings for https probes (a private authority, the name to check). */
  connect?: { ca?: string[]; servername?: string }
  /** The longest `firstRound` waits (default: `timeout` plus a second). */
  firstRoundTimeout?: number
  /**
   * What these checks are (`proxy:sites[0].routes[1]`, `gslb:www.example.com`):
   * with workers, only worker 1 probes, and the others take its results
   * under this name (see setCheckSharing). Absent: this process probes.
   */
  scope?: string
  /** The deployment's Redis and its broadcast: checks whose settings say `shared` are probed by one node at a time. */
  nodes?: NodeSharing
}

/** One probe's outcome, as the probing worker sends it to the others. */
interface ProbeResult {
  readonly id: string
  readonly ok: boolean
  readonly why: string
}

/**
 * How the workers of one machine share their health checks (docs/scale.md):
 * the checks run once per machine, in worker 1 (`lead`), and every probe's
 * outcome goes to the other workers over `channel`, where it moves the same
 * state machine (rise, fall, first round) as if they had probed themselves.
 * Set once by a worker at its start (server/app.ts); null in one process.
 */
let sharing: { readonly lead: boolean; readonly channel: Broadcast } | null = null
export function setCheckSharing(s: { readonly lead: boolean; readonly channel: Broadcast } | null): void {
  sharing = s
}

/**
 * How the nodes of a deployment share the checks marked `shared`
 * (docs/scale.md): one node at a time probes them, the one holding a lease
 * in Redis (`<keyPrefix>health-lead:{<scope>}`, renewed every interval and
 * lasting three), and every outcome goes to the other nodes over `channel`,
 * where it moves the same state machine. A node that cannot reach Redis
 * probes on its own. With workers, worker 1 takes part for its machine and
 * passes the outcomes on to the others.
 */
export interface NodeSharing {
  readonly bus: RedisBus
  readonly channel: Broadcast
}

/** Takes the lease when it is free, renews it when it is ours: 1 when this node holds it now. */
const LEASE = `
local cur = redis.call('GET', KEYS[1])
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`
/** Lets the lease go if it is ours (a node stopping hands over at once instead of after the lease ends). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
interface LeaseScripts {
  ebHealthLease(key: string, node: string, ttl: number): Promise<number>
  ebHealthRelease(key: string, node: string): Promise<number>
}

/** The lease of one set of checks on the deployment's Redis; `leading` says whether this node probes now. */
function healthLease(sharing: NodeSharing, scope: string, interval: number, clock: Clock) {
  const bus = sharing.bus
  const r = bus.command as RedisBus['command'] & Partial<LeaseScripts>
  if (r.ebHealthLease === undefined) {
    r.defineCommand('ebHealthLease', { numberOfKeys: 1, lua: LEASE })
    r.defineCommand('ebHealthRelease', { numberOfKeys: 1, lua: RELEASE })
  }
  const redis = r as RedisBus['command'] & LeaseScripts
  const key = `${bus.keyPrefix}health-lead:{${scope}}`
  const ttl = Math.max(3 * interval, 3_000)
  const lease = {
    leading: false,
    async claim(): Promise<void> {
      if (!bus.up) {
        lease.leading = true
        return
      }
      try {
        lease.leading = (await redis.ebHealthLease(key, bus.nodeId, ttl)) === 1
      } catch {
        // Redis away: every node probes on its own until it returns
        lease.leading = true
      }
    },
    async release(): Promise<void> {
      clock.clearInterval(timer)
      if (lease.leading && bus.up) await redis.ebHealthRelease(key, bus.nodeId).catch(() => 0)
      lease.leading = false
    },
  }
  const timer = clock.setInterval(() => void lease.claim(), Math.min(interval, ttl / 3))
  timer.unref()
  return lease
}

interface State {
  target: CheckTarget
  state: CheckState
  good: number
  bad: number
  why: string
  timer: Timer | undefined
  probed: boolean
}

export function startHealthChecks(targets: readonly CheckTarget[], cfg: CheckSettings, opts: CheckOptions): HealthChecks {
  const clock = opts.clock ?? systemClock
  const shared = opts.scope !== undefined ? sharing : null
  const topic = `health:${opts.scope}`
  /** Another worker probes: this one takes its outcomes. */
  const follows = shared !== null && !shared.lead
  /** Shared by the nodes: one probes at a time (the lease's holder), the others take its outcomes. */
  const acrossNodes = cfg.shared === true && opts.scope !== undefined && !follows ? (opts.nodes ?? null) : null
  const lease = acrossNodes ? healthLease(acrossNodes, opts.scope!, cfg.interval, clock) : null
  const states = new Map<string, State>(targets.map((t) => [t.id, { target: t, state: opts.initial, good: 0, bad: 0, why: opts.initial === 'up' ? 'not probed yet' : 'not probed yet', timer: undefined, probed: false }]))
  let closed = false
  let agent: Agent | undefined
  if (targets.some((t) => t.probe.kind === 'http')) {
    agent = new Agent({ connectTimeout: cfg.timeout, headersTimeout: cfg.timeout, bodyTimeout: cfg.timeout, connections: 1, ...(opts.connect ? { connect: opts.connect } : {}) })
  }
  let firstDone!: () => void
  const firstRound = new Promise<void>((resolve) => (firstDone = resolve))
  let unprobed = states.size
  if (unprobed === 0) firstDone()
  // kept referenced (the probes' timers are not): whoever waits for the first round, Edgebox's start among them, must
  // not see the process exit with nothing else keeping it alive; it is cleared when the round completes, at most
  // firstRoundTimeout from now
  const firstTimer = clock.setTimeout(() => firstDone(), opts.firstRoundTimeout ?? cfg.timeout + 1000)

  function set(s: State, next: CheckState, why: string): void {
    if (s.state === next) return
    s.state = next
    opts.onChange?.(s.target.id, next, why)
  }

  function record(s: State, ok: boolean, why: string): void {
    s.why = why
    if (!s.probed) {
      s.probed = true
      if (--unprobed === 0) {
        clock.clearTimeout(firstTimer)
        firstDone()
      }
    }
    if (ok) {
      s.bad = 0
      s.good++
      if (s.state === 'unknown') set(s, 'up', `first health check passed (${why})`)
      else if (s.state === 'down' && s.good >= cfg.rise) set(s, 'up', `${s.good} good health checks in a row (${why})`)
    } else {
      s.good = 0
      s.bad++
      if (s.state === 'unknown') set(s, 'down', `first health check failed (${why})`)
      else if (s.state === 'up' && s.bad >= cfg.fall) set(s, 'down', `${s.bad} failed health checks in a row (${why})`)
    }
  }

  function schedule(s: State, delay: number): void {
    if (closed) return
    s.timer = clock.setTimeout(() => void probe(s), delay)
    s.timer.unref()
  }

  async function probe(s: State): Promise<void> {
    s.timer = undefined
    // another node holds the lease: its outcomes arrive over Redis
    if (lease && !lease.leading) return schedule(s, cfg.interval)
    const started = clock.now()
    const { ok, why } = s.target.probe.kind === 'http' ? await httpProbe(s.target.probe, agent!, cfg.timeout) : await tcpProbe(s.target.probe, cfg.timeout)
    if (closed) return
    record(s, ok, why)
    if (shared) void shared.channel.send(topic, { id: s.target.id, ok, why } satisfies ProbeResult)
    if (lease) void acrossNodes!.channel.send(topic, { id: s.target.id, ok, why } satisfies ProbeResult)
    // the next probe `interval` after this one started; a clock set back counts as no time
    schedule(s, Math.max(0, cfg.interval - Math.max(0, clock.now() - started)))
  }

  let stopFollowing: (() => void) | undefined
  let stopNodes: (() => void) | undefined
  if (follows) {
    stopFollowing = shared.channel.on(topic, (m) => {
      const r = m as ProbeResult
      const s = states.get(r.id)
      if (s && !closed) record(s, r.ok === true, String(r.why))
    })
  } else if (lease) {
    // another node's outcomes, while it holds the lease (passed on to this machine's other workers)
    stopNodes = acrossNodes!.channel.on(topic, (m) => {
      const r = m as ProbeResult
      const s = states.get(r.id)
      if (!s || closed || lease.leading) return
      record(s, r.ok === true, String(r.why))
      if (shared) void shared.channel.send(topic, { id: r.id, ok: r.ok === true, why: String(r.why) } satisfies ProbeResult)
    })
    void lease.claim().then(() => {
      for (const s of states.values()) schedule(s, 0)
    })
  } else for (const s of states.values()) schedule(s, 0)

  return {
    firstRound,
    state: (id) => states.get(id)?.state ?? 'unknown',
    reason: (id) => states.get(id)?.why ?? 'no such target',
    async close() {
      closed = true
      stopFollowing?.()
      stopNodes?.()
      await lease?.release()
      clock.clearTimeout(firstTimer)
      firstDone()
      for (const s of states.values()) {
        clock.clearTimeout(s.timer)
        s.timer = undefined
      }
      await agent?.destroy().catch(() => {})
    },
  }
}

async function httpProbe(p: Extract<Probe, { kind: 'http' }>, agent: Agent, timeout: number): Promise<{ ok: boolean; why: string }> {
  try {
    const res = await request(p.url, {
      dispatcher: agent,
      method: 'GET',
      // a new connection each time: the probe also checks that connecting works
      headers: { host: p.host ?? p.url.host, 'user-agent': 'edgebox-health-check', connection: 'close' },
      signal: AbortSignal.timeout(timeout),
    })
    await res.body.dump({ limit: 64 * 1024 }).catch(() => {})
    const ok = res.statusCode >= p.expect.min && res.statusCode <= p.expect.max
    return { ok, why: ok ? `probe answered ${res.statusCode}` : `probe answered ${res.statusCode}, expected ${p.expect.min}-${p.expect.max}` }
  } catch (err) {
    return { ok: false, why: probeError(err, timeout) }
  }
}

function tcpProbe(p: Extract<Probe, { kind: 'tcp' }>, timeout: number): Promise<{ ok: boolean; why: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: p.host, port: p.port })
    const done = (ok: boolean, why: string) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ ok, why })
    }
    const timer = setTimeout(() => done(false, `no connection within ${timeout} ms`), timeout)
    socket.once('connect', () => done(true, `port ${p.port} open`))
    socket.once('error', (err: NodeJS.ErrnoException) => done(false, err.code === 'ECONNREFUSED' ? 'connection refused' : `${err.code ?? ''} ${err.message}`.trim()))
  })
}

export function probeError(err: unknown, timeout: number): string {
  const e = err as NodeJS.ErrnoException
  if (e.name === 'TimeoutError' || e instanceof undiciErrors.ConnectTimeoutError || e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError) return `no answer within ${timeout} ms`
  if (e.code === 'ECONNREFUSED') return 'connection refused'
  return e.code ? `${e.code}: ${e.message}` : e.message
}

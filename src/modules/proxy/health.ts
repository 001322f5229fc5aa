import { z } from 'zod'
import { duration } from '../../config/units.ts'
import { statusRange } from '../../config/validators.ts'
import type { Logger } from '../../core/log.ts'
import { systemClock, type Clock, type Timer } from '../../core/clock.ts'
import type { Upstream } from './balancers/types.ts'
import { startHealthChecks, type NodeSharing } from '../../core/health-check.ts'

/**
 * Upstream health for the `proxy` handler (docs/proxy.md, "Health").
 *
 * Two independent signals decide `Upstream.healthy`, which the balancers read:
 *
 * - Active checks (opt-in): every `interval` a `GET path` on a fresh
 *   connection, bounded by `timeout`; one probe at a time per upstream. A
 *   status in `expect` is a good probe, anything else (or no answer) a bad
 *   one. `fall` bad probes in a row take the upstream out, `rise` good ones in
 *   a row bring it back. Active checks may take every upstream out: then the
 *   proxy answers 503 with Retry-After.
 * - Passive outlier ejection (always on): `consecutiveFailures` failed
 *   attempts in a row from real traffic (connection errors, timeouts, 5xx)
 *   eject the upstream for `ejectFor`, doubled on each repeated ejection up to
 *   `maxEjectFor`. The doubling decays by one step per `ejectFor` the upstream
 *   then serves without being ejected. After the ejection it comes back on
 *   probation: one more failure before a success ejects it again (for longer).
 *   Passive ejection never leaves zero healthy upstreams: the last healthy one
 *   is kept (the failures are real answers, better than a blanket 503), and an
 *   ejection is lifted early when active checks take out all the others.
 *
 * An upstream is healthy when it is neither down by active checks nor
 * ejected, nor put in maintenance by the operator (the admin API's drain
 * switch, HAProxy's `drain`): the balancer then skips it, requests already
 * in flight finish, and probes and passive counts go on, so the upstream
 * comes back with its true state when maintenance ends.
 *
 * When active checks bring an upstream back (`rise` good probes after it
 * was down), a passive ejection still running is lifted too: the
 * upstream was restarted or repaired. Otherwise a passive ejection runs its
 * course even while probes pass (the probe path can be fine while real
 * requests fail), and successful requests never override active checks.
 */

export const healthSchema = z.strictObject({
  /** Active HTTP probes; absent: no probing (passive detection only). */
  active: z
    .strictObject({
      /** Path probed with GET on each upstream. */
      path: z.string().startsWith('/').default('/'),
      /** Time between the start of two probes of one upstream. */
      interval: duration().default(5000),
      /** A probe without a complete answer within this time has failed. */
      timeout: duration().default(2000),
      /** Good probes in a row that bring an upstream back. */
      rise: z.number().int().min(1).default(2),
      /** Bad probes in a row that take an upstream out. */
      fall: z.number().int().min(1).default(3),
      /** Probe statuses counted as good: `'200-399'` or a single `'204'`. */
      expect: statusRange().prefault('200-399'),
      /** With the top-level `redis`: one node of the deployment probes at a time and the others take its outcomes (docs/scale.md). */
      shared: z.boolean().default(false),
    })
    .optional(),
  passive: z
    .strictObject({
      /** Failed attempts in a row (connection error, timeout, 5xx) that eject an upstream. */
      consecutiveFailures: z.number().int().min(1).default(5),
      /** How long the first ejection lasts; each repeated one doubles it. */
      ejectFor: duration().default(10_000),
      /** The longest an ejection lasts. */
      maxEjectFor: duration().default(300_000),
    })
    .refine((p) => p.maxEjectFor >= p.ejectFor, { message: 'maxEjectFor is at least ejectFor', path: ['maxEjectFor'] })
    .prefault({}),
})

export type HealthConfig = z.output<typeof healthSchema>

/** What one attempt to reach an upstream came to. */
export type Outcome = 'ok' | 'error' | '5xx' | 'timeout'

export interface HealthTracker {
  /** Records an attempt from real traffic (passive detection). */
  observe(target: Upstream, outcome: Outcome): void
  /** Stops probes and timers. */
  close(): Promise<void>
  /** Each upstream's state, for tests and status pages. */
  status(): Array<{ id: string; healthy: boolean; maintenance: boolean; reason: string; ejections: number }>
  /** Puts the upstreams with this id in maintenance (on) or back (off); false when no upstream has the id. */
  maintenance(id: string, on: boolean): boolean
}

interface State {
  readonly target: Upstream & { readonly url: URL }
  // active (its probes and counts are the shared prober's)
  activeDown: boolean
  // passive
  failures: number
  ejected: boolean
  ejections: number
  ejectReason: string
  ejectTimer: Timer | undefined
  returnedAt: number
  /** Logged once per streak when ejection was skipped for being the last healthy upstream. */
  spared: boolean
  /** Passive ejections since the start (ejections above is the doubling step, which decays). */
  ejectedTotal: number
  /** In maintenance since this time (ms since the epoch, the tracker's clock), or 0: not in maintenance. */
  maintenanceSince: number
}

export function createHealth(
  targets: readonly (Upstream & { readonly url: URL })[],
  cfg: HealthConfig,
  log: Logger,
  connect?: { ca?: string[]; servername?: string },
  clock: Clock = systemClock,
  /** The route's place (`sites[0].routes[1]`): with workers, its active checks run once per machine under this name. */
  scope?: string,
  /** The deployment's Redis: with `active.shared`, one node at a time probes. */
  nodes?: NodeSharing,
): HealthTracker {
  const passive = cfg.passive
  const active = cfg.active
  const states: State[] = targets.map((target) => ({
    target,
    activeDown: false,
    failures: 0,
    ejected: false,
    ejections: 0,
    ejectReason: '',
    ejectTimer: undefined,
    returnedAt: 0,
    spared: false,
    maintenanceSince: 0,
    ejectedTotal: 0,
  }))
  const byTarget = new Map<Upstream, State>(states.map((s) => [s.target, s]))
  let closed = false

  function reason(s: State): string {
    if (s.maintenanceSince > 0) return `in maintenance since ${new Date(s.maintenanceSince).toISOString()}`
    if (s.activeDown) return `health check failed: ${checks!.reason(s.target.id)}`
    if (s.ejected) return `ejected: ${s.ejectReason}`
    return 'ok'
  }

  /** Recomputes `healthy` from both signals and the maintenance switch, and logs a change. */
  function update(s: State, why: string): void {
    const healthy = !s.activeDown && !s.ejected && s.maintenanceSince === 0
    if (healthy === s.target.healthy) return
    s.target.healthy = healthy
    if (healthy) log.info({ upstream: s.target.id, reason: why }, 'upstream healthy again')
    else log.warn({ upstream: s.target.id, reason: why }, 'upstream unhealthy')
  }

  function anyHealthy(): boolean {
    return states.some((s) => s.target.healthy)
  }

  // ---- passive ----

  function endEjection(s: State, why: string): void {
    clock.clearTimeout(s.ejectTimer)
    s.ejectTimer = undefined
    s.ejected = false
    s.returnedAt = clock.now()
    // Probation: the next failure before a success ejects it again.
    s.failures = passive.consecutiveFailures - 1
    update(s, why)
  }

  /** Passive ejection never leaves zero healthy upstreams: lift one when nothing else is up. */
  function liftIfNoneHealthy(): void {
    if (anyHealthy()) return
    const s = states.find((x) => x.ejected && !x.activeDown && x.maintenanceSince === 0)
    if (s) endEjection(s, 'ejection lifted early: no other upstream is healthy')
  }

  function eject(s: State, outcome: Outcome): void {
    const now = clock.now()
    // Doubling decays one step per ejectFor served since the last return (a clock set back counts as no time).
    if (s.ejections > 0) s.ejections = Math.max(0, s.ejections - Math.floor(Math.max(0, now - s.returnedAt) / passive.ejectFor))
    const ms = Math.min(passive.ejectFor * 2 ** s.ejections, passive.maxEjectFor)
    s.ejections++
    s.ejectedTotal++
    s.ejected = true
    s.ejectReason = `${s.failures} failed attempts in a row (last: ${outcome}), for ${ms} ms`
    s.ejectTimer = clock.setTimeout(() => endEjection(s, `ejection of ${ms} ms over`), ms)
    s.ejectTimer.unref()
    update(s, s.ejectReason)
  }

  function observe(target: Upstream, outcome: Outcome): void {
    const s = byTarget.get(target)
    if (!s || closed) return
    if (outcome === 'ok') {
      s.failures = 0
      s.spared = false
      return
    }
    if (s.ejected) return // answers from before the ejection change nothing
    s.failures++
    if (s.failures < passive.consecutiveFailures) return
    if (s.target.healthy && !states.some((o) => o !== s && o.target.healthy)) {
      if (!s.spared) log.warn({ upstream: s.target.id, failures: s.failures, last: outcome }, 'upstream failing but not ejected: it is the last healthy one')
      s.spared = true
      return
    }
    s.spared = false
    eject(s, outcome)
  }

  // ---- active: the shared prober (src/core/health-check.ts) ----

  const checks = active
    ? startHealthChecks(
        states.map((s) => ({ id: s.target.id, probe: { kind: 'http' as const, url: new URL(active.path, s.target.url), host: s.target.url.host, expect: active.expect } })),
        active,
        {
          initial: 'up',
          clock,
          connect,
          ...(scope !== undefined ? { scope: `proxy:${scope}` } : {}),
          ...(nodes ? { nodes } : {}),
          onChange: (id, state, why) => {
            const s = states.find((x) => x.target.id === id)!
            if (state === 'down') {
              s.activeDown = true
              update(s, why)
              liftIfNoneHealthy()
            } else if (state === 'up') {
              s.activeDown = false
              if (s.ejected) endEjection(s, `${why}; ejection lifted`)
              else update(s, why)
            }
          },
        },
      )
    : undefined

  return {
    observe,
    async close() {
      closed = true
      for (const s of states) {
        clock.clearTimeout(s.ejectTimer)
        s.ejectTimer = undefined
      }
      await checks?.close()
    },
    status() {
      return states.map((s) => ({ id: s.target.id, healthy: s.target.healthy, maintenance: s.maintenanceSince > 0, reason: reason(s), ejections: s.ejectedTotal }))
    },
    maintenance(id, on) {
      let found = false
      for (const s of states) {
        if (s.target.id !== id) continue
        found = true
        if (on === s.maintenanceSince > 0) continue
        // a clock at 0 (a test's) still marks the switch as on
        s.maintenanceSince = on ? Math.max(1, clock.now()) : 0
        // the operator's switch, logged as such (not as an upstream failing or recovering)
        s.target.healthy = !s.activeDown && !s.ejected && !on
        log.info({ upstream: id, maintenance: on, healthy: s.target.healthy }, on ? 'upstream in maintenance: no new requests go to it' : 'upstream out of maintenance')
      }
      // the last upstream taken out: an ejected one comes back early rather than leaving none
      if (found && on) liftIfNoneHealthy()
      return found
    },
  }
}

import type { BodyLimits } from '../core/body.ts'
import { createForwarding } from '../core/forwarding.ts'
import { endpointTable, healthEndpoint } from '../core/endpoints.ts'
import { originPolicy } from '../core/origin.ts'
import { performance } from 'node:perf_hooks'
import { systemClock, type Clock } from '../core/clock.ts'
import type { Route, Site } from '../core/route.ts'
import { ConfigError } from '../core/errors.ts'
import { createAccessLog, createLogger, reopenLogger, type AccessLog, type Logger } from '../core/log.ts'
import { openRedis, type RedisBus } from '../core/redis.ts'
import { redisBroadcast, type Broadcast } from '../core/broadcast.ts'
import { sharedSecret } from '../core/shared-secret.ts'
import { setCheckSharing } from '../core/health-check.ts'
import type { Postgres } from '../core/postgres.ts'
import { RedisRateLimitStore } from '../core/redis-rate-limit-store.ts'
import type { SharedRateLimitStore } from '../core/rate-limit-store.ts'
import { RedisEngine } from '../realtime/redis-engine.ts'
import { WorkerEngine, WorkerRateLimitStore, workerBroadcast, type WorkerChannel } from './worker-ipc.ts'
import { createPipeline, routeChain, type Pipeline } from '../core/pipeline.ts'
import { certificateSet, loadCertificate, uncoveredHosts, type CertificateSet, type LoadedCertificate } from '../tls/certificates.ts'
import type { AcmeManager, ChallengeType, NamePlan } from '../tls/acme.ts'
import { dataDirProblem, resolveDataDir } from '../core/data-dir.ts'
import { sessionResumption, type SessionResumption } from '../tls/sessions.ts'
import { buildSiteTable, sortRoutes } from '../core/router.ts'
import type { Handler, PreparedFilter, ResponseFilter, RouteParts, SharedEngine } from '../core/types.ts'
import { validateConfig } from '../config/load.ts'
import type { EdgeboxConfig, EdgeboxConfigInput } from '../config/schema.ts'
import { filterModules, handlerModules } from '../modules/registry.ts'
import { createForwardProxy } from '../modules/forward/index.ts'
import { createListener, type Listener, type TlsRuntime } from './listener.ts'
import { adoptSockets, type AdoptedSocket, type InheritedSocket } from './socket-activation.ts'
import { startDnsListener, type DnsListener } from './dns-listener.ts'
import { buildDns, type DnsState } from '../dns/zones.ts'
import { ResponseRateLimit } from '../dns/rate-limit.ts'
import { AcmeChallenges } from '../dns/challenges.ts'
import { createAuth, type Auth } from '../auth/index.ts'
import { WireTrace } from '../core/wire-trace.ts'
import { createCollector, type Collector } from '../rum/collector.ts'
import { openSqliteRumStore } from '../rum/store.ts'
import { openWorkerRumStore } from '../rum/worker-store.ts'
import { startRumApi, type RumApi, type RumApiSource } from '../rum/api.ts'
import { startRumUpkeep, type RumUpkeep } from '../rum/retention.ts'
import { recordPageViews } from '../rum/page-view.ts'
import { siteRum } from '../rum/config.ts'
import { SourceMaps, Symbolicator } from '../rum/symbolicate.ts'
import { createAlerts, type Alerts } from '../rum/alerts.ts'
import { startAdmin, type AdminListener, type AdminSignOn } from '../admin/server.ts'
import type { AdminRouteView, AdminSources, ApplyResult, DnsAnswerText } from '../admin/api.ts'
import type { EdgeView } from '../core/observe.ts'
import { createAccessTap, type AccessTap } from '../admin/access-tap.ts'
import { ChangeLog, type ConfigChange } from '../admin/changes.ts'
import { createMetrics, type Metrics, type MetricsOptions, type RouteViewSource } from '../admin/metrics.ts'
import { realtimeModule } from '../modules/realtime/index.ts'
import { staticModule } from '../modules/static/index.ts'
import { queryRum } from '../rum/api.ts'
import { EXPLAIN_OPTION, questionOf, rcodeName, readMessage, typeName, writeQuery } from '../dns/message.ts'
import { toText } from '../dns/names.ts'
import { recordText } from '../dns/present.ts'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { rumInjectStats } from '../rum/inject.ts'
import { staticFiles } from '../modules/static/index.ts'
import path from 'node:path'
import { createCsrfGuard, type CsrfGuard } from '../modules/security/csrf.ts'
import { addressSet } from '../http/address.ts'

export interface Edgebox {
  /** The configuration in force (the newest one after a reload). */
  readonly config: EdgeboxConfig
  /** One URL per listener, with the port actually bound. */
  readonly urls: readonly string[]
  /** The DNS listeners (UDP and TCP on one port each), when the configuration has `dns`: the first one's port and URL, and every URL. */
  readonly dns: { readonly port: number; readonly url: string; readonly urls: readonly string[] } | null
  /** The query API of real-user monitoring (`rum.api`, when a site has `rum`), with the port bound; it may change with a reload. */
  readonly rumApi: { readonly url: string } | null
  /** The admin listener (`admin`), with the port bound: the admin API, never on a site's listener (docs/admin.md). */
  readonly admin: { readonly url: string; readonly port: number } | null
  readonly log: Logger
  /**
   * Zero-downtime reload: validates the new configuration and provisions it
   * (its sites, handlers and certificates) while the old one keeps serving;
   * then new requests and new TLS handshakes use the new one, and requests
   * in flight finish on the old one, whose handlers close after
   * `limits.shutdownTimeout`. A bad configuration throws its ConfigError
   * and changes nothing. Listeners, limits and logging are fixed at start:
   * a reload that changes `listen`, `limits` or `log` is refused.
   * `source` names who asked, in the admin API's list of changes
   * (`SIGHUP`; default `reload`).
   */
  reload(input: EdgeboxConfigInput | EdgeboxConfig, source?: string): Promise<void>
  /**
   * Opens the log files (`log.file`) again by their names, for log rotation:
   * after logrotate renames them, new lines go to new files at the same
   * paths. Every reload does it too, whether the new configuration is
   * accepted or not. Nothing to do when logging to standard output.
   */
  reopenLogs(): void
  /**
   * Graceful stop: no new connections; long-lived exchanges are ended at once
   * (WebSockets closed with 1001, event streams ended, held polls answered);
   * in-flight requests finish (up to limits.shutdownTimeout); then a
   * `stopped` line with the time it took.
   */
  close(): Promise<void>
}

export interface StartOptions {
  /** Directory relative paths in the configuration are resolved against (default: the working directory). */
  baseDir?: string
  /** Use this logger instead of one built from `config.log`. */
  log?: Logger
  /** The time every module reads (cache freshness, rate limits, health checks, realtime timers); default: the system clock. Tests pass a manual one. */
  clock?: Clock
  /**
   * Reads the configuration again, as SIGHUP does (the CLI: the file, the
   * directory or the built-in configuration, with its flags): what the admin
   * API's `POST /api/v1/reload` switches to. Absent: it re-provisions the
   * configuration in force.
   */
  readConfig?: () => Promise<EdgeboxConfigInput>
  /** Where the built dashboard is (default: the package's `dist/dashboard`); the admin listener serves it at `/`. */
  dashboardDir?: string
  /**
   * This process is worker `index` of `count` under a cluster primary
   * (server/cluster.ts): what the workers share goes through `channel`
   * unless Redis is configured, and only worker 1 runs what a machine runs
   * once (the admin listener, DNS, the RUM query API, ACME).
   */
  worker?: { readonly index: number; readonly count: number; readonly channel: WorkerChannel }
  /**
   * Listening sockets passed by systemd (./socket-activation.ts): each
   * listener listens on the one with its address instead of binding, and
   * they must match one for one (else a ConfigError names the address).
   */
  sockets?: readonly InheritedSocket[]
}

/** One provisioned configuration: what a reload replaces as a whole. */
interface Generation {
  readonly config: EdgeboxConfig
  readonly pipeline: Pipeline
  /** The sites as the pipeline matches them (the metrics resolve their counters per route). */
  readonly sites: readonly Site[]
  readonly handlers: readonly Handler[]
  /** The certificates, when a listener speaks TLS. */
  readonly certificates: CertificateSet | null
  /** The DNS zones and balanced names, when the configuration has `dns`. */
  readonly dns: DnsState | null
  /** Single sign-on, when the configuration has `auth`. */
  readonly auth: Auth | null
  /** Real-user monitoring's collector, when a site has `rum`. */
  readonly rum: Collector | null
  /** Real-user monitoring's store upkeep (retention, counters) and the query API's reads, when a site has `rum`. */
  readonly rumUpkeep: RumUpkeep | null
  /** Real-user monitoring's alerts webhook (`rum.alerts`), told of every stored error. */
  readonly rumAlerts: Alerts | null
}

/**
 * Validates the configuration, provisions every module (any problem is a
 * ConfigError naming its configuration path, and nothing starts), then binds
 * every listener. Either all listeners start or none stays open.
 */
/** How long a start waits for the shared Redis before serving without it (it joins when it is reachable). */
const REDIS_START_WAIT = 3_000

export async function startEdgebox(input: EdgeboxConfigInput | EdgeboxConfig, opts: StartOptions = {}): Promise<Edgebox> {
  const first = validateConfig(input)
  /** The configuration in force as it was given (a validated one is not always valid input again): what the admin API's reload re-provisions without a file. */
  let inForce: EdgeboxConfigInput | EdgeboxConfig = input
  const baseDir = opts.baseDir ?? process.cwd()
  const log = opts.log ?? createLogger(first.log)
  const clock = opts.clock ?? systemClock
  const worker = opts.worker
  /** Whether this process runs what a machine runs once: the only process, or worker 1. */
  const lead = !worker || worker.index === 1
  const accessLog = createAccessLog({ ...first.log, enabled: first.log.access })
  let shuttingDown = false
  const isShuttingDown = () => shuttingDown

  // ACME (tls.acme): one manager for the process, created once the first configuration is provisioned
  let acme: AcmeManager | undefined
  const acmeHttp01 = first.tls.acme ? (token: string) => acme?.http01(token) : undefined
  // pending ACME DNS-01 challenges, answered by every generation's DNS
  const acmeChallenges = new AcmeChallenges()
  // the wire trace lab pages watch: one for the process, across reloads
  const trace = new WireTrace()
  // the operator's side (docs/admin.md), only with an admin listener: the metrics and the live access log wrap the access log
  const dnsListeners: DnsListener[] = []
  // the last reloads and loads, with what each changed (the admin API's config/changes)
  const changes = new ChangeLog()
  // with workers, every worker counts its own answers; worker 1's admin listener shows the node's (the primary adds them up)
  // with workers, worker 1's dashboard shows the node: the others send it their seconds
  const observe: Observe | null = first.admin ? createObserve(() => current, dnsListeners, changes, worker ? { lead, worker: worker.index, channel: workerBroadcast(worker.channel) } : undefined) : null
  const wrapLog = observe ? (l: AccessLog) => observe.tap.wrap(observe.metrics.wrapAccessLog(l)) : undefined
  // the Redis the nodes share (docs/scale.md): one connection pair for the process, fixed at start; an unreachable one is waited for briefly, then served without
  const redis = first.redis ? openRedis({ ...first.redis, ca: first.redis.ca === undefined ? undefined : path.resolve(baseDir, first.redis.ca) }, log.child({ module: 'redis' })) : null
  if (redis) await redis.whenUp(REDIS_START_WAIT)
  // the PostgreSQL the nodes share: a start without it fails, saying where and why
  let postgres: Postgres | null
  try {
    // pg is loaded only for a configuration that uses it
    postgres = first.postgres ? await (await import('../core/postgres.ts')).openPostgres(first.postgres, log.child({ module: 'postgres' })) : null
  } catch (err) {
    await redis?.close()
    throw err
  }
  /** Lets go of Redis and PostgreSQL: at the end, or when a start fails after they were opened. */
  const closeShared = async () => {
    await redis?.close()
    await postgres?.close()
  }
  // with workers, health checks run once per machine: worker 1 probes, the others take its outcomes
  if (worker) setCheckSharing({ lead, channel: workerBroadcast(worker.channel) })
  // what every process shares: through Redis when the nodes share one, else through the workers' primary
  const broadcast = redis ? redisBroadcast(redis) : worker ? workerBroadcast(worker.channel) : null
  const rateLimits = redis ? new RedisRateLimitStore(redis, log.child({ module: 'rateLimit' })) : worker ? new WorkerRateLimitStore(worker.channel) : null
  const sharedEngine: SharedEngine | null = redis
    ? { kind: 'redis', create: (namespace, clock, engineLog) => new RedisEngine(redis, { namespace, clock, log: engineLog }) }
    : worker
      ? { kind: 'workers', create: (namespace) => new WorkerEngine(worker.channel, namespace) }
      : null
  // what every process of the deployment signs with (CSRF tokens): Redis's when the nodes share one, else the data folder's
  let secret: Buffer
  try {
    const dataDir = resolveDataDir(first.dataDir, baseDir)
    const misplaced = first.dataDir === undefined ? null : dataDirProblem(dataDir)
    if (misplaced) throw new ConfigError([`dataDir: ${misplaced}`])
    secret = await sharedSecret('csrf', { dataDir, redis, log })
  } catch (err) {
    await closeShared()
    throw err
  }
  const shared: SharedServices = { secret, redis, postgres, broadcast, rateLimits, sharedEngine }
  // TLS session tickets that every worker and node opens (docs/tls.md), unless tls.ticketKeyFile names the secret
  let ticketSecret: Buffer | undefined
  if (first.listen.some((l) => l.tls) && first.tls.sessionTickets && !first.tls.ticketKeyFile && (worker || redis)) {
    ticketSecret = await sharedSecret('tls-tickets', { dataDir: resolveDataDir(first.dataDir, baseDir), redis, log }).catch(async (err: unknown) => {
      await closeShared()
      throw err
    })
  }
  let current: Generation = await provision(first, baseDir, log, clock, accessLog, isShuttingDown, trace, acmeHttp01, undefined, acmeChallenges, wrapLog, shared).catch(async (err: unknown) => {
    await observe?.close()
    await closeShared()
    throw err
  })
  observe?.prepare(current)
  const retired = new Set<Generation>()
  const usesTls = first.listen.some((l) => l.tls)
  let resumption: SessionResumption | null = null
  try {
    resumption = usesTls ? sessionResumption(first.tls, baseDir, ticketSecret) : null
  } catch (problems) {
    await closeGeneration(current)
    await closeShared()
    if (Array.isArray(problems)) throw new ConfigError(problems as string[])
    throw problems
  }
  let listeners: Listener[] = []
  // with workers, worker 1 orders (one orderer per name); every worker serves the certificates and answers the challenges
  if (first.tls.acme) {
    try {
      acme = await startAcme(
        first,
        current,
        baseDir,
        clock,
        log,
        () => {
          for (const l of listeners) l.updateTls()
        },
        first.dns && lead ? { serves: (name) => current.dns?.serves(name) ?? false, add: (n, v) => acmeChallenges.add(n, v), remove: (n, v) => acmeChallenges.remove(n, v) } : undefined,
        worker ? { peers: workerBroadcast(worker.channel), follow: !lead } : {},
      )
    } catch (err) {
      await closeGeneration(current)
      await closeShared()
      resumption?.close()
      throw err
    }
  }
  // the certificates SNI chooses from: the configuration's, then ACME's (rebuilt when either changes)
  let combined: { gen: Generation; acme: readonly LoadedCertificate[]; set: CertificateSet } | undefined
  const certificates = (): CertificateSet => {
    if (!acme) return current.certificates!
    const got = acme.certificates()
    if (combined?.gen !== current || !sameList(combined.acme, got)) {
      combined = { gen: current, acme: got, set: certificateSet([...current.certificates!.certificates, ...got], current.config.tls) }
    }
    return combined.set
  }
  const tlsRt: TlsRuntime | undefined = resumption ? { certificates, resumption, config: first.tls, alpnChallenge: acme ? (name) => acme!.alpn01(name) : undefined } : undefined

  // Listeners outlive reloads: they ask for the current pipeline on every request.
  const pipeline: Pipeline = {
    handle: (req, res, arrival) => current.pipeline.handle(req, res, arrival),
    acceptsUpgrade: (req) => current.pipeline.acceptsUpgrade(req),
    upgrade: (req, socket, head) => current.pipeline.upgrade(req, socket, head),
    connect: (req, socket, head) => current.pipeline.connect(req, socket, head),
  }
  listeners = first.listen.map((l) => createListener(l, first.limits, pipeline, log, isShuttingDown, l.tls ? tlsRt : undefined, observe?.metrics.connections))
  let bound = 0
  let adopted: AdoptedSocket[] = []
  try {
    if (opts.sockets?.length) adopted = await adoptSockets(opts.sockets, first.listen)
    for (; bound < listeners.length; bound++) await listeners[bound]!.listen(adopted[bound]?.socket)
  } catch (err) {
    // a listener closed here closes its copy of an inherited socket only: systemd keeps the socket and its queue
    await Promise.all(listeners.slice(0, bound).map((l) => l.close(0)))
    await closeGeneration(current)
    await closeShared()
    resumption?.close()
    acme?.close()
    if (err instanceof ConfigError) throw err
    const e = err as NodeJS.ErrnoException
    const which = first.listen[bound]!
    const from = adopted[bound] ? ` on the socket systemd passed (fd ${adopted[bound]!.fd})` : ''
    throw new ConfigError([`listen[${bound}]: cannot listen on ${which.host}:${which.port}${from} (${e.code ?? e.message})`])
  }
  if (adopted.length) log.info({ sockets: adopted.map((a) => ({ fd: a.fd, name: a.name, address: a.address })) }, `socket activation: listening on the sockets systemd passed: ${adopted.map((a) => `${a.address} (fd ${a.fd} "${a.name}")`).join(', ')}`)

  if (first.dns && lead) {
    const dnsLog = log.child({ module: 'dns' })
    // one limiter for every DNS address: a client network gets its rate across all of them
    const rl = first.dns.rateLimit
    const rrl = rl ? new ResponseRateLimit({ perSecond: rl.responsesPerSecond, slip: rl.slip, ipv4Prefix: rl.ipv4Prefix, ipv6Prefix: rl.ipv6Prefix, exempt: addressSet(rl.exempt), maxNetworks: 100_000 }, clock) : undefined
    if (rrl) rrl.onLimit = (network) => dnsLog.warn({ network }, 'dns: rate limiting answers to a client network (UDP answers beyond the rate are dropped or truncated)')
    for (const [i, l] of first.dns.listen.entries()) {
      try {
        dnsListeners.push(await startDnsListener(first.dns, l, () => current.dns!.responderFor(l.host), dnsLog, rrl))
      } catch (err) {
        await Promise.all([...listeners.map((x) => x.close(0)), ...dnsListeners.map((x) => x.close())])
        await closeGeneration(current)
        await closeShared()
        resumption?.close()
        acme?.close()
        const e = err as NodeJS.ErrnoException
        const at = first.dns.listen.length > 1 ? `dns.listen[${i}]` : 'dns.listen'
        throw new ConfigError([`${at}: cannot listen on ${l.host}:${l.port} over UDP and TCP (${e.code ?? e.message})`])
      }
    }
  }
  // the query API of real-user monitoring: a listener of its own that outlives reloads, reading the current configuration's store
  let rumApi: RumApi | null = null
  // the admin listener: its own server, fixed at start, answering from the configuration in force
  let admin: AdminListener | null = null
  try {
    rumApi = lead ? await syncRumApi(null, first, () => current.rumUpkeep, rumStats(() => current), clock, log) : null
    if (first.admin && observe && lead) {
      const a = first.admin
      const adminLog = log.child({ module: 'admin' })
      await observe.startLive({ baseDir, clock, trace, log: adminLog, dashboardDir: opts.dashboardDir })
      const sources = observe.sources({
        log: adminLog,
        reload: async () => {
          let next: EdgeboxConfigInput | EdgeboxConfig
          try {
            next = opts.readConfig ? await opts.readConfig() : inForce
          } catch (err) {
            // a configuration file that cannot be read or parsed is a refused reload too
            observe.reloaded(false, 'api reload', null)
            return refused(err)
          }
          try {
            return { ok: true, change: await applyConfig(next, 'api reload') }
          } catch (err) {
            return refused(err)
          }
        },
        load: async (input) => {
          try {
            return { ok: true, change: await applyConfig(input as EdgeboxConfigInput, 'api load') }
          } catch (err) {
            return refused(err)
          }
        },
        certificates: () => (current.certificates ? certificates().certificates : []),
        clock,
      })
      // the sign-on gate (admin.auth): the configuration in force's, made once per configuration
      const signOn = a.auth !== undefined && a.auth !== false ? () => adminSignOn(current) : undefined
      admin = await startAdmin({ host: a.host, port: a.port, token: a.token, signOn, sources, metrics: worker ? { render: () => worker.channel.request('metrics') } : observe.metrics, live: observe.live!, dashboard: observe.dashboard, log: adminLog }).catch((err: NodeJS.ErrnoException) => {
        throw new ConfigError([`admin: cannot listen on ${a.host}:${a.port} (${err.code ?? err.message})`])
      })
      log.info({ url: admin.url }, `admin listener on ${admin.url}`)
    }
  } catch (err) {
    await Promise.all([...listeners.map((x) => x.close(0)), ...dnsListeners.map((x) => x.close()), rumApi?.close()])
    await observe?.close()
    await closeGeneration(current)
    await closeShared()
    resumption?.close()
    acme?.close()
    throw err
  }
  // the primary gathers the node's metrics from every worker
  worker?.channel.on('metrics', ({ id }) => {
    if (!observe) return worker.channel.send({ t: 'metrics', id, metrics: null })
    void observe.metrics.json().then(
      (metrics) => worker.channel.send({ t: 'metrics', id, metrics }),
      () => worker.channel.send({ t: 'metrics', id, metrics: null }),
    )
  })
  // the secondaries learn of every zone now (they may have missed changes while Edgebox was down)
  current.dns?.notify()
  const urls = listeners.map((l) => l.url())
  // orders start once the listeners can answer the authority's challenges
  acme?.start()
  function reopenLogs(): void {
    // a logger passed in by the caller (opts.log) is the caller's to reopen
    if (!opts.log) reopenLogger(log)
    accessLog.reopen()
  }
  let closing: Promise<void> | undefined
  let reloading: Promise<void> = Promise.resolve()
  return {
    get config() {
      return current.config
    },
    urls,
    dns: dnsListeners.length ? { port: dnsListeners[0]!.port, url: dnsListeners[0]!.url(), urls: dnsListeners.map((d) => d.url()) } : null,
    get rumApi() {
      return rumApi ? { url: rumApi.url } : null
    },
    admin: admin ? { url: admin.url, port: admin.port } : null,
    log,
    reopenLogs,
    reload(next, source = 'reload') {
      return applyConfig(next, source).then(() => {})
    },
    close() {
      closing ??= (async () => {
        const started = performance.now()
        // Stop accepting first (later connections wait in the socket's queue: with systemd's socket, for the next
        // process), and serve the first request of each connection accepted before, which could not know of the shutdown.
        await Promise.all(listeners.map((l) => l.stopAccepting()))
        shuttingDown = true
        // Then end what never finishes on its own: the listeners wait only for real requests.
        const closed = listeners.map((l) => l.close(current.config.limits.shutdownTimeout))
        for (const d of dnsListeners) closed.push(d.close())
        if (rumApi) closed.push(rumApi.close())
        if (admin) closed.push(admin.close())
        for (const g of [current, ...retired]) drainGeneration(g, log)
        await Promise.all(closed)
        await Promise.all([current, ...retired].map(closeGeneration))
        await observe?.close()
        await closeShared()
        resumption?.close()
        acme?.close()
        await accessLog.close()
        log.info({ ms: Math.round(performance.now() - started) }, 'stopped')
      })()
      return closing
    },
  }

  /**
   * Switches to a new configuration (Edgebox.reload): validated and
   * provisioned while the old one serves, then swapped in; returns what
   * changed. A refused one throws its ConfigError and changes nothing.
   */
  function applyConfig(next: EdgeboxConfigInput | EdgeboxConfig, source: string): Promise<ConfigChange> {
      reopenLogs()
      const run = reloading.then(async () => {
        if (shuttingDown) throw new ConfigError(['reload: Edgebox is shutting down'])
        const config = validateConfig(next)
        const fixed: string[] = []
        if (JSON.stringify(config.listen) !== JSON.stringify(first.listen)) fixed.push('listen: listeners cannot change on reload; restart Edgebox to change them')
        if (JSON.stringify(dnsFixed(config)) !== JSON.stringify(dnsFixed(first))) fixed.push('dns: the DNS listener and its limits cannot change on reload (its zones can); restart Edgebox to change them')
        if (JSON.stringify(config.log) !== JSON.stringify(first.log)) fixed.push('log: logging cannot change on reload; restart Edgebox to change it')
        if (JSON.stringify(config.admin) !== JSON.stringify(first.admin)) fixed.push('admin: the admin listener cannot change on reload; restart Edgebox to change it')
        if (JSON.stringify(config.redis) !== JSON.stringify(first.redis)) fixed.push('redis: the shared Redis cannot change on reload; restart Edgebox to change it')
        if (JSON.stringify(config.postgres) !== JSON.stringify(first.postgres)) fixed.push('postgres: the shared PostgreSQL cannot change on reload; restart Edgebox to change it')
        if (config.workers !== first.workers) fixed.push('workers: the number of workers cannot change on reload; restart Edgebox to change it')
        if (JSON.stringify(config.limits) !== JSON.stringify(first.limits)) fixed.push('limits: connection limits and timeouts belong to the listeners and cannot change on reload; restart Edgebox to change them')
        if (usesTls && JSON.stringify(sessionSettings(config.tls)) !== JSON.stringify(sessionSettings(first.tls))) fixed.push('tls: session settings (tickets, rotation, timeout, cache) cannot change on reload; certificates can')
        if (JSON.stringify(config.tls.acme) !== JSON.stringify(first.tls.acme)) fixed.push("tls.acme: the ACME settings cannot change on reload (the sites' names can); restart Edgebox to change them")
        if (fixed.length) throw new ConfigError(fixed)
        const fresh = await provision(config, baseDir, log, clock, accessLog, isShuttingDown, trace, acmeHttp01, current, acmeChallenges, wrapLog, shared)
        let api: RumApi | null
        try {
          api = lead ? await syncRumApi(rumApi, config, () => current.rumUpkeep, rumStats(() => current), clock, log) : null
        } catch (err) {
          await closeGeneration(fresh)
          throw err
        }
        const old = current
        // the operator's switches (upstreams and edges in maintenance) hold across reloads; the counters resolve per route before it serves
        observe?.prepare(fresh)
        current = fresh
        if (rumApi && rumApi !== api) void rumApi.close()
        rumApi = api
        fresh.dns?.notify(old.dns)
        if (acme) acme.setNames((await acmePlan(config, fresh, log)).names)
        for (const l of listeners) l.updateTls()
        retired.add(old)
        const timer = setTimeout(() => {
          retired.delete(old)
          void closeGeneration(old)
        }, config.limits.shutdownTimeout)
        timer.unref()
        log.info({ sites: config.sites.length }, 'configuration reloaded')
        inForce = next
        return changes.record(source, old.config, config)
      })
      reloading = run.then(
        (change) => observe?.reloaded(true, source, change),
        () => observe?.reloaded(false, source, null),
      )
      return run
  }
}

/** A refused switch: its problems; anything else than a ConfigError is the server's own failure, thrown on. */
function refused(err: unknown): ApplyResult {
  if (err instanceof ConfigError) return { ok: false, problems: err.issues }
  throw err
}

/**
 * The query API a configuration asks for (`rum.api`, when a site has `rum`):
 * the one running when its address is the same (port 0: whatever it bound),
 * its token updated; else a new one, started here (a ConfigError when it
 * cannot listen), which the caller swaps in. null: none wanted.
 */
/** What the query API's `stats` adds to the collector's counters: the SDK injection's, and the current configuration's alerts'. */
function rumStats(current: () => Generation): Record<string, () => unknown> {
  return { inject: () => rumInjectStats, alerts: () => current().rumAlerts?.stats ?? null }
}

async function syncRumApi(running: RumApi | null, config: EdgeboxConfig, source: () => RumApiSource | null, extraStats: Record<string, () => unknown>, clock: Clock, log: Logger): Promise<RumApi | null> {
  const want = config.rum.api
  if (!want) return null
  if (!config.sites.some((s) => s.rum)) {
    log.info('rum.api is set, but no site has rum: the monitoring query API is not started')
    return null
  }
  if (running && running.host === want.host && (want.port === 0 || want.port === running.port)) {
    running.setToken(want.token)
    return running
  }
  try {
    const api = await startRumApi({ host: want.host, port: want.port, token: want.token, source, extraStats, clock, log: log.child({ module: 'rum' }) })
    log.info({ url: api.url }, `real-user monitoring query API listening on ${api.url}`)
    return api
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new ConfigError([`rum.api: cannot listen on ${want.host}:${want.port} (${e.code ?? e.message})`])
  }
}

/** The names ACME orders for a configuration; the others are logged with the reason. */
async function acmePlan(config: EdgeboxConfig, gen: Generation, log: Logger): Promise<NamePlan> {
  const { planAcmeNames } = await import('../tls/acme.ts')
  const plan = planAcmeNames(config.sites, gen.certificates?.certificates ?? [], (name) => (config.tls.acme?.challenges.includes('dns-01') ?? false) && (gen.dns?.serves(name) ?? false))
  for (const s of plan.skipped) log.info({ name: s.name, reason: s.reason }, 'ACME: no certificate ordered for this name')
  return plan
}

/** Creates the ACME manager for the first configuration (it loads the certificates stored before). */
async function startAcme(
  config: EdgeboxConfig,
  gen: Generation,
  baseDir: string,
  clock: Clock,
  log: Logger,
  onChange: () => void,
  dns01: { serves(name: string): boolean; add(name: string, value: string): void; remove(name: string, value: string): void } | undefined,
  workers: { peers?: Broadcast; follow?: boolean },
): Promise<AcmeManager> {
  const cfg = config.tls.acme!
  const can: ChallengeType[] = []
  if (config.listen.some((l) => !l.tls)) can.push('http-01')
  if (config.listen.some((l) => l.tls)) can.push('tls-alpn-01')
  if (config.dns?.zones.length) can.push('dns-01')
  const challenges = cfg.challenges.filter((c) => can.includes(c))
  if (challenges.length === 0) throw new ConfigError([`tls.acme.challenges: ${cfg.challenges.join(', ')} needs a cleartext listener (port 80), and no listener here is one; add it, allow 'tls-alpn-01', or 'dns-01' with zones of your own (dns.zones)`])
  // the ACME client is loaded only when ACME is configured
  const { createAcme } = await import('../tls/acme.ts')
  try {
    return await createAcme({ config: cfg, baseDir, dataDir: resolveDataDir(config.dataDir, baseDir), clock, log: log.child({ module: 'acme' }), challenges, names: (await acmePlan(config, gen, log)).names, onChange, ...(dns01 ? { dns01 } : {}), ...workers })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ENOENT' || e.code === 'EACCES') throw new ConfigError([`tls.acme.ca: cannot read ${cfg.ca} (${e.code})`])
    throw err
  }
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** What of `dns` a reload cannot change: whether it is on, and its listener. */
function dnsFixed(c: EdgeboxConfig) {
  return c.dns ? [c.dns.listen, c.dns.maxUdpSize, c.dns.tcpIdleTimeout, c.dns.tcpMaxConnections, c.dns.queryLog, c.dns.rateLimit] : null
}

/** The session settings a reload cannot change (the resumption state is the listeners'). */
function sessionSettings(t: EdgeboxConfig['tls']) {
  return [t.sessionTickets, t.ticketRotation, t.ticketKeyFile, t.sessionTimeout, t.sessionCacheSize]
}

/** Shutdown has begun: each handler ends its long-lived exchanges (a failing one must not keep the others or the shutdown waiting). */
function drainGeneration(g: Generation, log: Logger): void {
  for (const h of g.handlers) {
    try {
      h.drain?.()
    } catch (err) {
      log.error({ err, kind: h.kind }, 'a handler failed to drain its connections at shutdown')
    }
  }
}

async function closeGeneration(g: Generation): Promise<void> {
  await Promise.all([...g.handlers.map((h) => h.close?.()), g.dns?.close(), g.auth?.close(), g.rum?.close()])
  await Promise.all([g.rumUpkeep?.close(), g.rumAlerts?.close()])
}

/** What every configuration generation of the process shares (docs/scale.md): the deployment's secret and, with `redis`, Redis and the broadcast over it. */
interface SharedServices {
  readonly secret: Buffer
  readonly redis: RedisBus | null
  readonly postgres: Postgres | null
  readonly broadcast: Broadcast | null
  readonly rateLimits: SharedRateLimitStore | null
  readonly sharedEngine: SharedEngine | null
}

/** Provisions a configuration: sites and handlers, certificates, the pipeline. Any problem is a ConfigError, and what was started is closed. */
async function provision(
  config: EdgeboxConfig,
  baseDir: string,
  log: Logger,
  clock: Clock,
  accessLog: AccessLog,
  isShuttingDown: () => boolean,
  trace: WireTrace,
  acmeHttp01: ((token: string) => string | undefined) | undefined,
  previous: Generation | undefined,
  acmeChallenges: AcmeChallenges,
  wrapLog: ((log: AccessLog) => AccessLog) | undefined,
  shared: SharedServices,
): Promise<Generation> {
  const { secret, postgres } = shared
  const dataDir = resolveDataDir(config.dataDir, baseDir)
  const misplaced = config.dataDir === undefined ? null : dataDirProblem(dataDir)
  if (misplaced) throw new ConfigError([`dataDir: ${misplaced}`])
  // certificates first: with tls.local they create the local authority other modules may trust (a proxy to a sibling listener)
  const certificates = config.listen.some((l) => l.tls) ? await loadTls(config, baseDir, dataDir) : null
  const handlers: Handler[] = []
  // What every response gets, whatever its route: Server-Timing, and a closing connection during shutdown.
  const global = new Map<string, RouteParts>([['shutdown', { filter: closeWhileShuttingDown(isShuttingDown) }]])
  if (config.serverTiming) global.set('serverTiming', { filter: serverTiming })
  // DNS first: a DNS-over-HTTPS route answers with it
  let dns: DnsState | null = null
  if (config.dns) {
    try {
      dns = buildDns(config.dns, baseDir, log.child({ module: 'dns' }), clock, previous?.dns, acmeChallenges, shared.redis && shared.broadcast ? { bus: shared.redis, channel: shared.broadcast } : undefined)
    } catch (err) {
      if (Array.isArray(err)) throw new ConfigError(err as string[])
      throw err
    }
  }
  // single sign-on: the sign-out form passes the CSRF filter's origin check of its site
  const csrfGuards = new Map<string, CsrfGuard>()
  let auth: Auth | null = null
  let rum: Collector | null = null
  let rumUpkeep: RumUpkeep | null = null
  let rumAlerts: Alerts | null = null
  let sites: Site[]
  try {
    // real-user monitoring: one collector and store for the sites with `rum`
    if (config.sites.some((s) => s.rum)) {
      // alerts: told of each transaction's rows once they are written (their state in <dataDir>/rum/alerts.sqlite)
      const alerts = config.rum.alerts ? await createAlerts({ config: config.rum.alerts, dataDir, log: log.child({ module: 'rum' }), clock }) : null
      rumAlerts = alerts
      rum = createCollector({
        // with a shared PostgreSQL the events go there (src/rum/pg-store.ts), else to this machine's SQLite file
        store: postgres ? await (await import('../rum/pg-store.ts')).openPostgresRumStore(postgres) : await openSqliteRumStore(dataDir),
        log: log.child({ module: 'rum' }),
        clock,
        limits: bodyLimits(config),
        perMinute: config.rum.perMinute,
        maxQueue: config.rum.queue,
        countryHeader: config.rum.countryHeader,
        ...(alerts ? { onStored: (rows: Parameters<Alerts['onStored']>[0]) => alerts.onStored(rows) } : {}),
      })
      // retention, the operator's counters, and the query API's reads: a connection to the store of their own, in a worker thread (its queries and sweeps never hold the thread serving pages)
      rumUpkeep = startRumUpkeep({ store: postgres ? await (await import('../rum/pg-store.ts')).openPostgresRumStore(postgres) : await openWorkerRumStore(dataDir, { log: log.child({ module: 'rum' }) }), stats: rum.stats, clock, log: log.child({ module: 'rum' }), retention: config.rum.retention })
    }
    // the admin listener's sign-on endpoints (admin.auth) take the same origin check for the sign-out form
    if (config.admin?.auth) csrfGuards.set('admin', createCsrfGuard(true, originPolicy([]), secret, 'admin'))
    if (config.auth) {
      auth = await createAuth(
        config.auth,
        {
          dataDir,
          log: log.child({ module: 'auth' }),
          clock,
          limits: bodyLimits(config),
          csrfCheck: (ctx) => csrfGuards.get(ctx.site!.id)!.check(ctx),
          ...(shared.redis ? { redis: shared.redis } : {}),
          ...(shared.broadcast ? { broadcast: shared.broadcast } : {}),
        },
        previous?.auth ?? undefined,
      )
    }
    sites = await provisionSites(config, baseDir, dataDir, log, clock, handlers, global, dns, auth, csrfGuards, trace, rum, shared)
    // balanced names answer only once every edge has had its first health check: no answer names an edge nobody checked
    await dns?.firstRound()
  } catch (err) {
    await Promise.all([dns?.close(), auth?.close(), rum?.close()])
    await Promise.all([rumUpkeep?.close(), rumAlerts?.close()])
    throw err
  }
  const defaultIndex = Math.max(0, config.sites.findIndex((s) => s.default))
  const filters = routeChain(global).filters

  // Forward proxy mode (opt-in; the schema refuses it without clients or credentials).
  const forward = config.forwardProxy.enabled ? createForwardProxy(config.forwardProxy, log.child({ module: 'forwardProxy' })) : undefined
  if (forward) handlers.push(forward)

  const pipeline = createPipeline({
    sites: buildSiteTable(sites, defaultIndex),
    filters,
    // an answer with a page-view id also leaves Edgebox's row for it (src/rum/page-view.ts); with an admin listener, the metrics and the live access log see it too
    accessLog: wrap(rum ? recordPageViews(accessLog, rum, clock) : accessLog, wrapLog),
    log,
    streamIdleTimeout: config.limits.idleTimeout,
    forwarding: createForwarding(config),
    isShuttingDown,
    forwardProxy: forward,
    connectHandler: () => forward,
    acmeHttp01,
  })
  return { config, pipeline, sites, handlers, certificates, dns, auth, rum, rumUpkeep, rumAlerts }
}

const wrap = (l: AccessLog, by: ((l: AccessLog) => AccessLog) | undefined): AccessLog => (by ? by(l) : l)

/** The configured certificates (or the local authority's), checked, and every TLS site host covered. */
async function loadTls(config: EdgeboxConfig, baseDir: string, dataDir: string): Promise<CertificateSet> {
  const problems: string[] = []
  const loaded: LoadedCertificate[] = []
  let sources = config.tls.certificates.map((c, i) => ({ id: `tls.certificates[${i}]`, src: c, dir: baseDir }))
  if (sources.length === 0 && !config.tls.acme) {
    // tls.local: the local authority's certificate for the sites' hosts (created once, reused while valid)
    const hosts = [...new Set(config.sites.flatMap((s) => s.hosts))]
    // the local authority's code (X.509 generation) is loaded only when it is used
    const { issueLocalCertificate } = await import('../tls/local-ca.ts')
    const local = await issueLocalCertificate(dataDir, hosts)
    sources = [{ id: 'tls.local', src: { cert: local.certPath, key: local.keyPath }, dir: '/' }]
  }
  for (const { id, src, dir } of sources) {
    try {
      loaded.push(loadCertificate(id, src, dir))
    } catch (err) {
      if (Array.isArray(err)) problems.push(...(err as string[]))
      else throw err
    }
  }
  // with ACME, the names it orders are covered once obtained, and the others are logged (startAcme)
  if (!problems.length && !config.tls.acme) problems.push(...uncoveredHosts(loaded, config.sites))
  if (problems.length) throw new ConfigError(problems)
  return certificateSet(loaded, config.tls)
}

/**
 * Every site's routes: the handler of each, and what the filter modules
 * (rate limit, CORS, JSONP, CSRF, security headers, Early Hints) give it,
 * put in the pipeline's order; the site's own chain for answers no route
 * gave; and its /_edgebox/ endpoints.
 */
async function provisionSites(
  config: EdgeboxConfig,
  baseDir: string,
  dataDir: string,
  log: Logger,
  clock: Clock,
  handlers: Handler[],
  global: ReadonlyMap<string, RouteParts>,
  dns: DnsState | null,
  auth: Auth | null,
  csrfGuards: Map<string, CsrfGuard>,
  trace: WireTrace,
  rum: Collector | null,
  shared: SharedServices,
): Promise<Site[]> {
  const { secret, redis, postgres, broadcast, rateLimits, sharedEngine } = shared
  const problems: string[] = []
  const sites: Site[] = []
  const filters = filterModules.map((m) => [m.name, m.start({ clock, trace, log, secret, ...(rateLimits ? { rateLimits } : {}) })] as const)
  const partsFor = (route: EdgeboxConfig['sites'][number]['routes'][number] | null, site: EdgeboxConfig['sites'][number], configPath: string, origins: ReturnType<typeof originPolicy>) => {
    const parts = new Map(global)
    for (const [name, f] of filters) {
      const p = f.route(route, site, { configPath, origins })
      if (p) parts.set(name, p)
    }
    // the sign-on gate: a route's own `auth`, else its site's
    const gate = route && auth ? auth.route(configPath, route.auth, site.auth, route.forwardAuth) : null
    if (gate) parts.set('auth', gate)
    return routeChain(parts)
  }
  const health = config.health ? [healthEndpoint(config.health)] : []
  // the sign-on's cookies (docs/sso.md): the session id would let an upstream act as the user
  const ownCookies = config.auth ? ownCookieNames(config.auth.sessions.cookie) : []
  // symbolication's parsed maps and release copies, shared by the sites with `rum`
  const sourceMaps = rum ? new SourceMaps({ dir: path.join(dataDir, 'rum', 'maps'), log: log.child({ module: 'rum' }) }) : null
  for (const [si, siteCfg] of config.sites.entries()) {
    const routes: Route[] = []
    const origins = originPolicy(siteCfg.origins)
    csrfGuards.set(`sites[${si}]`, createCsrfGuard(true, origins, secret, `sites[${si}]`))
    // a site with a gate anywhere gets the sign-on endpoints (the callback, sign-out, the assertion key)
    const gated = auth !== null && (siteCfg.auth !== undefined && siteCfg.auth !== false ? true : siteCfg.routes.some((r) => r.auth !== undefined && r.auth !== false))
    for (const [ri, routeCfg] of siteCfg.routes.entries()) {
      const id = `sites[${si}].routes[${ri}]`
      const mod = handlerModules.find((m) => (routeCfg as Record<string, unknown>)[m.kind] !== undefined)!
      try {
        const handler = await mod.create((routeCfg as unknown as Record<string, never>)[mod.kind], {
          configPath: `${id}.${mod.kind}`,
          baseDir,
          dataDir,
          prefix: routeCfg.path,
          log: log.child({ route: id }),
          limits: bodyLimits(config),
          origins,
          clock,
          trace,
          ownCookies,
          ...(dns ? { dns: dns.responder } : {}),
          ...(redis ? { redis } : {}),
          ...(postgres ? { postgres } : {}),
          ...(rateLimits ? { rateLimits } : {}),
          ...(broadcast ? { broadcast } : {}),
          ...(sharedEngine ? { sharedEngine } : {}),
        })
        handlers.push(handler)
        routes.push({ prefix: routeCfg.path, handler, id, ...partsFor(routeCfg, siteCfg, id, origins) })
      } catch (err) {
        if (err instanceof ConfigError) problems.push(...err.issues)
        else throw err
      }
    }
    const rumSite = rum ? siteRum(siteCfg.rum) : null
    let symbolicator: Symbolicator | undefined
    if (rumSite && sourceMaps) {
      // the site's static routes: their files are what symbolication reads, and their maps stay private unless served
      const files = routes.map((r) => ({ prefix: r.prefix, files: staticFiles(r.handler) }))
      if (!rumSite.serveMaps) for (const f of files) f.files?.hideSourceMaps()
      if (rumSite.symbolicate) symbolicator = new Symbolicator({ routes: files, maxMapSize: rumSite.maxMapSize, maps: sourceMaps, scope: [...siteCfg.hosts].sort().join(',') })
    }
    const endpoints = endpointTable([...health, ...(gated ? auth!.endpoints : []), ...(rumSite && rum ? rum.endpointsFor(origins, { sentry: rumSite.sentry, symbolicator }) : [])])
    sites.push({ id: `sites[${si}]`, hosts: siteCfg.hosts, routes: sortRoutes(routes), filters: partsFor(null, siteCfg, `sites[${si}]`, origins).filters, endpoints })
  }
  if (problems.length) {
    await Promise.all(handlers.map((h) => h.close?.()))
    throw new ConfigError(problems)
  }
  return sites
}

/** The names of the sign-on's cookies, over HTTP and HTTPS. */
function ownCookieNames(session: string): string[] {
  return [session, `__Host-${session}`, 'edgebox-login', '__Host-edgebox-login']
}

/** The request body limits of `limits`, as modules receive them. */
function bodyLimits(config: EdgeboxConfig): BodyLimits {
  const l = config.limits
  return { maxBodySize: l.maxBodySize, bodyIdleTimeout: l.bodyIdleTimeout, bodyMinRate: l.bodyMinRate, bodyRateGrace: l.bodyRateGrace, bodyBuffer: l.bodyBuffer, bodyTempMax: l.bodyTempMax }
}

/** Asks an HTTP/1 connection to close after this response while the server shuts down. */
function closeWhileShuttingDown(isShuttingDown: () => boolean): ResponseFilter {
  const filter: ResponseFilter = function closeWhileShuttingDown(ctx) {
    if (isShuttingDown() && 'shouldKeepAlive' in ctx.res) ctx.res.shouldKeepAlive = false
  }
  return Object.assign(filter, { prepared: { kind: 'fieldless' } as const })
}

/**
 * `Server-Timing: edge;dur=0.21` (RFC-style metric, W3C Server Timing): time spent in Edgebox until the headers.
 * One field whose value is per response: a prepared response (a static file, a stored response) gets only its value.
 */
const serverTimingField: PreparedFilter & { kind: 'field' } = {
  kind: 'field',
  name: 'Server-Timing',
  // Math.round(ms * 100) / 100 as text, written from two small integers (whose strings V8 keeps) rather than through
  // the shortest-decimal path of a fraction: the same characters (bench/profiles/h1-number-format-bench.mjs), less work.
  value: (ctx) => {
    const c = Math.round((performance.now() - ctx.start) * 100)
    const i = Math.floor(c / 100)
    const f = c - i * 100
    return (f === 0 ? 'edge;dur=' + i : f % 10 === 0 ? 'edge;dur=' + i + '.' + f / 10 : 'edge;dur=' + i + (f < 10 ? '.0' : '.') + f) + ctx.timing
  },
}
const serverTiming = Object.assign<ResponseFilter, { readonly prepared: PreparedFilter }>(function serverTiming(ctx, headers) {
  headers['Server-Timing'] = serverTimingField.value(ctx)
}, { prepared: serverTimingField })

const adminSignOns = new WeakMap<Generation, AdminSignOn>()

/**
 * The admin listener's sign-on gate (`admin.auth`, docs/admin.md) in a
 * configuration: one gate per admin route, made from the configuration's
 * single sign-on (registered there by route id, so a login asked for an admin
 * path offers the providers the gate allows), and its sign-on endpoints.
 * Made at the first request a configuration serves, then kept with it.
 */
function adminSignOn(g: Generation): AdminSignOn {
  let made = adminSignOns.get(g)
  if (made) return made
  const auth = g.auth
  const option = g.config.admin?.auth
  // the schema refuses admin.auth without the top-level auth, and a reload cannot change admin
  if (!auth || option === undefined || option === false) throw new Error('admin.auth: the configuration in force has no sign-on gate for the admin listener')
  const gates = new Map<string, RouteParts>()
  made = {
    gate(route) {
      let parts = gates.get(route)
      if (!parts) gates.set(route, (parts = auth.route(route, option, undefined)!))
      return parts
    },
    endpoints: auth.endpoints,
  }
  adminSignOns.set(g, made)
  return made
}

/** The operator's side of a running Edgebox (docs/admin.md): the metrics, the live access log, the admin hub, the dashboard, and the switches kept across reloads. */
interface Observe {
  readonly metrics: Metrics
  readonly tap: AccessTap
  /** The admin hub (`/live/`) and the dashboard (`/`), once startLive has made them. */
  live: Handler | null
  dashboard: Handler | null
  startLive(deps: { baseDir: string; clock: Clock; trace: WireTrace; log: Logger; dashboardDir: string | undefined }): Promise<void>
  /** A generation was provisioned: its counters resolved, the switches in force applied, before it serves. */
  prepare(gen: Generation): void
  reloaded(ok: boolean, source: string, change: ConfigChange | null): void
  sources(more: { log: Logger; reload: AdminSources['reload']; load: AdminSources['load']; certificates: () => readonly LoadedCertificate[]; clock: Clock }): AdminSources
  close(): Promise<void>
}

/** The package's built dashboard (`npm run build:dashboard`), from src/server/ or dist/server/ alike. */
const DASHBOARD_DIR = fileURLToPath(new URL('../../dist/dashboard/', import.meta.url))

/** The admin hub's channels: the one-second samples and the operator's events, published by the server only, with a short history. */
const LIVE_CHANNELS = {
  channels: {
    series: { publish: 'backend', subscribe: 'anyone', history: { size: 60 } },
    events: { publish: 'backend', subscribe: 'anyone', history: { size: 20 } },
  },
}

function createObserve(current: () => Generation, dnsListeners: readonly DnsListener[], changes: ChangeLog, peers: MetricsOptions['peers']): Observe {
  const dnsOf = (g: Generation): DnsState | null => g.dns
  const edgesOf = (g: Generation): readonly EdgeView[] => dnsOf(g)?.edges() ?? []
  const metrics = createMetrics({
    sources: {
      dnsQueries: () => {
        // one row per type and response code, over every DNS address
        const sum = new Map<string, { type: string; rcode: string; count: number }>()
        for (const l of dnsListeners) {
          for (const q of l.queries()) {
            const k = `${q.type} ${q.rcode}`
            const row = sum.get(k)
            if (row) row.count += q.count
            else sum.set(k, { ...q })
          }
        }
        return [...sum.values()]
      },
      gslbEdges: () => edgesOf(current()).map((e) => ({ name: e.name, edge: e.edge, healthy: e.healthy })),
      rum: () => current().rum?.stats ?? null,
    },
    ...(peers ? { peers } : {}),
  })
  const tap = createAccessTap()
  /** Upstreams put in maintenance, by route id; edges, as `name\0edge`. */
  const drainedUpstreams = new Map<string, Set<string>>()
  const drainedEdges = new Set<string>()

  function views(g: Generation): AdminRouteView[] {
    const out: AdminRouteView[] = []
    for (const site of g.sites) {
      for (const r of site.routes) if (r.handler.admin) out.push({ site: site.id, hosts: site.hosts, route: r.id, path: r.prefix, admin: r.handler.admin })
    }
    return out.sort((a, b) => a.route.localeCompare(b.route, 'en', { numeric: true }))
  }

  const observe: Observe = {
    metrics,
    tap,
    live: null,
    dashboard: null,
    async startLive({ baseDir, clock, trace, log, dashboardDir }) {
      const g = current()
      const deps = (prefix: string, configPath: string) => ({ configPath, baseDir, dataDir: resolveDataDir(g.config.dataDir, baseDir), prefix, log, limits: bodyLimits(g.config), origins: originPolicy([]), clock, trace, ownCookies: [] })
      const live = await realtimeModule.create(realtimeModule.schema.parse(LIVE_CHANNELS), deps('/live/', 'admin.live'))
      observe.live = live
      metrics.onSample((sample) => {
        live.admin?.publish?.('series', sample).catch(() => {})
      })
      const dir = dashboardDir ?? DASHBOARD_DIR
      if (existsSync(dir)) {
        observe.dashboard = await staticModule.create(staticModule.schema.parse({ root: dir, spa: true, cacheControl: { rules: [{ match: 'assets/**', value: 'public, max-age=31536000, immutable' }] } }), deps('/', 'admin.dashboard'))
      } else {
        log.info({ dir }, 'the dashboard is not built (npm run build:dashboard): the admin listener serves the API and the metrics only')
      }
    },
    prepare(g) {
      for (const v of views(g)) {
        const drained = drainedUpstreams.get(v.route)
        if (!drained || !v.admin.maintenance) continue
        // an upstream the new configuration no longer has leaves the switch
        for (const u of drained) if (!v.admin.maintenance(u, true)) drained.delete(u)
      }
      const dns = dnsOf(g)
      for (const k of drainedEdges) {
        const [name, edge] = k.split('\0') as [string, string]
        if (!dns?.maintenance(name, edge, true)) drainedEdges.delete(k)
      }
      metrics.prepare(g.sites, (): RouteViewSource[] => views(g).map((v) => ({ site: v.site, route: v.route, admin: v.admin })))
    },
    reloaded(ok, source, change) {
      metrics.reloaded(ok)
      event('reload', { ok, source, ...(change ? { changed: change.diff.length } : {}) })
    },
    sources(more) {
      return {
        config: () => current().config,
        changes: () => changes.list(),
        reload: more.reload,
        load: more.load,
        limits: () => bodyLimits(current().config),
        metrics,
        views: () => views(current()),
        upstreamMaintenance(route, upstream, on) {
          const v = views(current()).find((x) => x.route === route && x.admin.maintenance)
          if (!v) return 'no route'
          if (!v.admin.maintenance!(upstream, on)) return 'no upstream'
          let set = drainedUpstreams.get(route)
          if (!set) drainedUpstreams.set(route, (set = new Set()))
          if (on) set.add(upstream)
          else set.delete(upstream)
          return 'ok'
        },
        edges: () => (current().dns ? edgesOf(current()) : null),
        edgeMaintenance(name, edge, on) {
          const dns = dnsOf(current())
          if (!dns) return null
          // a name as asked (with or without its final dot, any case)
          const known = edgesOf(current()).find((e) => sameName(e.name, name) && e.edge === edge)
          if (!known || !dns.maintenance(known.name, edge, on)) return 'no edge'
          if (on) drainedEdges.add(`${known.name}\0${edge}`)
          else drainedEdges.delete(`${known.name}\0${edge}`)
          return 'ok'
        },
        certificates: () => more.certificates().map((c) => ({ id: c.id, names: c.names, cert: c.cert })),
        tap,
        rum(endpoint, query) {
          const upkeep = current().rumUpkeep
          if (!upkeep) return null
          return queryRum(endpoint, query, upkeep, more.clock.now(), rumStats(current))
        },
        zones: () => current().dns?.zones.map((z) => ({ origin: toText(z.origin), serial: z.serial, records: z.recordCount })) ?? null,
        dnsQuery(name, type) {
          const dns = current().dns
          return dns ? askOwnDns(dns, name, type) : null
        },
        event,
      }
    },
    async close() {
      metrics.close()
      await observe.live?.close?.()
      await observe.dashboard?.close?.()
    },
  }
  /** Tells the dashboard's live feed (the admin hub's `events` channel). */
  function event(type: string, data: Readonly<Record<string, unknown>>): void {
    observe.live?.admin?.publish?.('events', { type, at: Date.now(), ...data }).catch(() => {})
  }
  return observe
}

/** Two domain names are the same, whatever their case and final dot. */
function sameName(a: string, b: string): boolean {
  const n = (s: string) => s.toLowerCase().replace(/\.$/, '')
  return n(a) === n(b)
}

/**
 * Asks Edgebox's own DNS one question, as a client on this machine would
 * with `edgebox dig --explain` (over TCP sizes, from loopback, so the
 * responder explains how it found the answer): the answer as text.
 */
async function askOwnDns(dns: DnsState, name: string, type: string): Promise<DnsAnswerText | string> {
  const q = questionOf(name, type)
  if ('problem' in q) return q.problem.replace('?name=', 'name').replace('?type=', 'type')
  const msg = writeQuery(0, q.labels, q.type, { rd: true, udpSize: 65_535, options: [{ code: EXPLAIN_OPTION, data: Buffer.alloc(0) }] })
  const out = await dns.responder.answer(msg, 'tcp', '127.0.0.1', true)
  const reply = out.reply ? readMessage(out.reply) : null
  const asked = { name: toText(q.labels), type: typeName(q.type) }
  if (!reply) return { question: asked, rcode: out.rcode ?? 'none', answer: [], authority: [], additional: [], explain: [out.why ?? 'the responder gave no answer'] }
  const explained = reply.edns?.options.find((o) => o.code === EXPLAIN_OPTION)?.data.toString('utf8').split('\n').filter(Boolean)
  return {
    question: asked,
    rcode: rcodeName(reply.rcode),
    answer: reply.answer.map(recordText),
    authority: reply.authority.map(recordText),
    additional: reply.additional.map(recordText),
    explain: explained ?? out.path ?? (out.why ? [out.why] : []),
  }
}

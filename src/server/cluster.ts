import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from '../core/log.ts'
import { MemoryRateLimitStore } from '../core/rate-limit-store.ts'
import { MemoryEngine } from '../realtime/memory-engine.ts'
import type { ToPrimary, ToWorker } from './worker-ipc.ts'
import { workerStdio, type InheritedSocket } from './socket-activation.ts'

/**
 * The cluster primary (`workers` > 1, docs/scale.md). It serves no request
 * itself: Node's cluster module makes it own every listening socket and
 * hand each new connection to a worker in turn, so a worker that dies takes
 * only its own requests in flight with it and a reload, done inside each
 * worker, never closes a listener. The primary:
 *
 * - starts the workers (`EDGEBOX_WORKER`=1..N; worker 1 also runs what a
 *   machine runs once: the admin listener, DNS, the RUM query API, ACME),
 *   and starts a worker again when one dies;
 * - passes SIGHUP (reload), SIGUSR2 (reopen logs) and SIGTERM/SIGINT
 *   (shutdown) on to every worker, and exits when they are done;
 * - holds what the workers share without Redis: the realtime channels (a
 *   memory engine per hub), the rate-limit buckets, and the relay of
 *   broadcasts (purges) from each worker to the others;
 * - with socket activation, holds the listening sockets systemd passed
 *   (never accepting on them) and hands them to every worker it starts.
 */

export interface PrimaryOptions {
  readonly workers: number
  readonly log: Logger
  /** How long a shutdown waits for the workers before killing them. */
  readonly shutdownTimeout: number
  /** The listening sockets systemd passed (./socket-activation.ts): every worker gets them, and listens on them instead of binding. */
  readonly sockets?: readonly InheritedSocket[]
  /** Every worker is listening (the first time): their URLs. */
  onListening(urls: readonly string[]): void
  /** The primary is done (after a shutdown, or a first start that failed): the exit code. */
  onExit(code: number): void
}

/** How fast a worker that keeps dying is started again: 100 ms, doubling to 10 s while it dies within 10 s of its start. */
const RESTART_MIN = 100
const RESTART_MAX = 10_000
const STABLE_AFTER = 10_000
/** How long a scrape of the node's metrics waits for the workers' figures. */
const METRICS_WAIT = 2_000

export interface Primary {
  reload(): void
  reopenLogs(): void
  shutdown(signal: string): void
}

export function startPrimary(opts: PrimaryOptions): Primary {
  const { log } = opts
  // Each worker accepts from the listening socket the primary made (SCHED_NONE), as nginx's workers do. The primary's
  // round robin would hand each connection over itself: more work per connection, and a connection being handed to a
  // worker at the moment it dies is held by the primary and never answered (Node's round-robin handle keeps it).
  cluster.schedulingPolicy = cluster.SCHED_NONE
  // structured clone over the channel: messages keep their types (a Message's data, a Buffer) and need no JSON text
  // With socket activation each worker gets the inherited sockets as descriptors of its own and listens on them itself.
  // Not listen({ fd }) through the primary: the primary would open the descriptor in a shared handle and close it when
  // its last worker lets go (all of them dying at once), and the workers started after could never listen on it again.
  const inherited = opts.sockets?.length ? workerStdio(opts.sockets) : null
  cluster.setupPrimary({ serialization: 'advanced', ...(inherited ? { stdio: inherited.stdio } : {}) })
  const byIndex = new Map<number, Worker>()
  const indexOf = new Map<Worker, number>()
  const started = new Map<number, number>()
  const delay = new Map<number, number>()
  const listening = new Set<number>()
  let announced = false
  let stopping = false
  let exitCode = 0

  // --- what the workers share
  const engines = new Map<string, MemoryEngine>()
  const buckets = new MemoryRateLimitStore()
  /** Per hub and channel: the workers that listen, and how to stop the engine's listeners. */
  const followers = new Map<string, { workers: Set<Worker>; stop: () => void }>()
  const engineOf = (ns: string) => {
    let e = engines.get(ns)
    if (!e) engines.set(ns, (e = new MemoryEngine()))
    return e
  }
  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m)
  }

  function listen(w: Worker, ns: string, ch: string, on: boolean): void {
    const key = `${ns}\u0000${ch}`
    let f = followers.get(key)
    if (on) {
      if (!f) {
        const engine = engineOf(ns)
        const workers = new Set<Worker>()
        const stopMessages = engine.listen(ch, (m) => {
          for (const x of workers) send(x, { t: 'msg', ns, m })
        })
        const stopPresence = engine.listenPresence(ch, (ev) => {
          for (const x of workers) send(x, { t: 'presence', ns, ev })
        })
        f = {
          workers,
          stop: () => {
            stopMessages()
            stopPresence()
          },
        }
        followers.set(key, f)
      }
      f.workers.add(w)
    } else if (f) {
      f.workers.delete(w)
      if (f.workers.size === 0) {
        f.stop()
        followers.delete(key)
      }
    }
  }

  const ops: Record<string, (...args: never[]) => unknown> = {
    'rt.publish': (ns: string, ch: string, data: unknown, id: string | undefined, history: { size: number; age: number }) => engineOf(ns).publishNow(ch, data, { id, history }),
    'rt.since': (ns: string, ch: string, after: { e: string; o: number }, history: { size: number; age: number }) => engineOf(ns).sinceNow(ch, after, history),
    'rt.position': (ns: string, ch: string) => engineOf(ns).position(ch),
    'rt.join': (ns: string, ch: string, who: string) => engineOf(ns).join(ch, who),
    'rt.leave': (ns: string, ch: string, who: string) => engineOf(ns).leave(ch, who),
    'rt.members': (ns: string, ch: string) => engineOf(ns).members(ch),
    'rl.take': (key: string, now: number, capacity: number, refillPerMs: number) => buckets.take(key, now, capacity, refillPerMs),
    metrics: () => nodeMetrics(),
  }

  // --- the node's metrics: every worker's, added up by each metric's aggregator (worker 1's admin listener asks)
  let metricsAsked = 0
  const metricsWaiting = new Map<number, { left: number; got: unknown[][]; done(): void }>()
  function nodeMetrics(): Promise<{ contentType: string; body: string }> {
    const id = ++metricsAsked
    const workers = [...byIndex.values()].filter((w) => w.isConnected())
    return new Promise((resolve) => {
      const finish = () => {
        const entry = metricsWaiting.get(id)
        if (!entry) return
        metricsWaiting.delete(id)
        clearTimeout(timer)
        const registry = AggregatorRegistry.aggregate(entry.got as never)
        void Promise.resolve(registry.metrics()).then((body) => resolve({ contentType: registry.contentType, body }))
      }
      // a worker that does not answer in time (it is starting, or stuck) is left out of this scrape
      const timer = setTimeout(finish, METRICS_WAIT)
      metricsWaiting.set(id, { left: workers.length, got: [], done: finish })
      for (const w of workers) send(w, { t: 'metrics', id })
      if (workers.length === 0) finish()
    })
  }
  function onMetrics(m: Extract<ToPrimary, { t: 'metrics' }>): void {
    const entry = metricsWaiting.get(m.id)
    if (!entry) return
    if (m.metrics) entry.got.push(m.metrics as unknown[])
    if (--entry.left === 0) entry.done()
  }

  function onMessage(w: Worker, m: ToPrimary): void {
    switch (m.t) {
      case 'req': {
        const op = ops[m.op]
        if (!op) return send(w, { t: 'res', id: m.id, ok: false, error: `no operation ${m.op}` })
        Promise.resolve()
          .then(() => (op as (...a: unknown[]) => unknown)(...m.args))
          .then(
            (value) => send(w, { t: 'res', id: m.id, ok: true, value }),
            (err: unknown) => send(w, { t: 'res', id: m.id, ok: false, error: (err as Error).message }),
          )
        return
      }
      case 'listen':
        return listen(w, m.ns, m.ch, m.on)
      case 'bc':
        for (const x of byIndex.values()) if (x !== w) send(x, { t: 'bc', topic: m.topic, m: m.m })
        return
      case 'state':
        return onState(w, m)
      case 'metrics':
        return onMetrics(m)
    }
  }

  function onState(w: Worker, m: Extract<ToPrimary, { t: 'state' }>): void {
    const index = indexOf.get(w)!
    if (m.state === 'listening') {
      listening.add(index)
      if (!announced && listening.size === opts.workers) {
        announced = true
        opts.onListening(m.urls ?? [])
      }
    } else if (m.state === 'failed' && !announced) {
      // a first start that fails (a configuration error) fails the same way in every worker: stop
      log.error({ worker: index }, `worker ${index} could not start: ${m.detail ?? 'see its log'}`)
      exitCode = 1
      shutdown('a worker could not start')
    } else if (m.state === 'reloaded') log.info({ worker: index }, `worker ${index} reloaded`)
    else if (m.state === 'reload-refused') log.error({ worker: index }, `worker ${index} refused the reload: ${m.detail ?? ''}`)
  }

  function fork(index: number): void {
    const w = cluster.fork({ EDGEBOX_WORKER: String(index), EDGEBOX_WORKERS: String(opts.workers), ...inherited?.env })
    byIndex.set(index, w)
    indexOf.set(w, index)
    started.set(index, Date.now())
    w.on('message', (m: ToPrimary) => onMessage(w, m))
    w.on('exit', (code, signal) => {
      for (const key of [...followers.keys()]) {
        const f = followers.get(key)!
        f.workers.delete(w)
        if (f.workers.size === 0) {
          f.stop()
          followers.delete(key)
        }
      }
      indexOf.delete(w)
      if (byIndex.get(index) === w) byIndex.delete(index)
      listening.delete(index)
      if (stopping) {
        if (byIndex.size === 0) opts.onExit(exitCode)
        return
      }
      // a worker died: its requests in flight are lost, the others serve on, and it starts again
      const lived = Date.now() - (started.get(index) ?? 0)
      const wait = lived > STABLE_AFTER ? RESTART_MIN : Math.min(RESTART_MAX, (delay.get(index) ?? RESTART_MIN / 2) * 2)
      delay.set(index, wait)
      log.warn({ worker: index, pid: w.process.pid, code, signal, restartIn: wait }, `worker ${index} exited (${signal ?? `code ${code}`}); starting it again in ${wait} ms`)
      // A timer that keeps the primary alive: with every worker gone at once, nothing else would, and the primary
      // would exit (code 0) instead of starting them again. A shutdown exits the process itself (onExit).
      setTimeout(() => {
        if (!stopping) fork(index)
      }, wait)
    })
  }

  function shutdown(signal: string): void {
    if (stopping) return
    stopping = true
    log.info({ signal, workers: byIndex.size }, 'shutting down: the workers finish their requests in flight')
    if (byIndex.size === 0) return opts.onExit(exitCode)
    for (const w of byIndex.values()) send(w, { t: 'shutdown' })
    // a worker that does not finish in time is killed
    setTimeout(() => {
      for (const w of byIndex.values()) w.process.kill('SIGKILL')
    }, opts.shutdownTimeout + 5_000).unref()
  }

  for (let i = 1; i <= opts.workers; i++) fork(i)
  return {
    reload() {
      log.info({ workers: byIndex.size }, 'reloading the configuration in every worker')
      for (const w of byIndex.values()) send(w, { t: 'reload' })
    },
    reopenLogs() {
      for (const w of byIndex.values()) send(w, { t: 'reopen-logs' })
    },
    shutdown,
  }
}

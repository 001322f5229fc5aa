import { availableParallelism } from 'node:os'
import type { Edgebox } from '../server/app.ts'
import { ConfigError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { startPrimary } from '../server/cluster.ts'
import type { InheritedSocket } from '../server/socket-activation.ts'
import { WorkerChannel, type ToPrimary, type ToWorker } from '../server/worker-ipc.ts'
import type { EdgeboxConfig } from '../config/schema.ts'

/**
 * The command line's side of workers (docs/scale.md): how many, the
 * primary's signals, and a worker's life under its primary.
 */

/** `workers` as a number: `auto` is one per core the process may use. */
export function workerCount(setting: EdgeboxConfig['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting
}

/** This process's place when it is a worker (EDGEBOX_WORKER from the primary), else null. */
export function workerIndex(env: NodeJS.ProcessEnv = process.env): { index: number; count: number } | null {
  const index = Number(env.EDGEBOX_WORKER)
  const count = Number(env.EDGEBOX_WORKERS)
  return Number.isInteger(index) && index >= 1 && Number.isInteger(count) ? { index, count } : null
}

/**
 * Runs the cluster primary: starts the workers, passes signals on, and
 * exits when they are done. `banner` is logged once every worker listens.
 * `sockets`: the listening sockets systemd passed, for the workers.
 */
export function runPrimary(cfg: EdgeboxConfig, log: Logger, banner: (urls: readonly string[]) => void, exit: (code: number) => void, onStop: (stop: (why: string) => void) => void, sockets: readonly InheritedSocket[] = []): void {
  const count = workerCount(cfg.workers)
  const primary = startPrimary({ workers: count, log, shutdownTimeout: cfg.limits.shutdownTimeout, onListening: banner, onExit: exit, sockets })
  let signals = 0
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(1)
    primary.shutdown(signal)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => primary.reload())
  process.on('SIGUSR2', () => primary.reopenLogs())
  onStop(stop)
}

/** What a worker hears from its primary before it serves: a shutdown during its start is kept until it can stop. */
let stopAsked = false
let stopNow: (() => void) | null = null

/** The channel to the primary (this process is a worker). From now on a shutdown, or the primary going away, stops this worker as soon as it has started. */
export function primaryChannel(): WorkerChannel {
  const channel = new WorkerChannel(
    (m: ToPrimary) => {
      if (process.connected) process.send!(m)
    },
    (fn) => process.on('message', (m) => fn(m as ToWorker)),
  )
  const asked = () => {
    stopAsked = true
    stopNow?.()
  }
  channel.on('shutdown', asked)
  process.on('disconnect', asked)
  return channel
}

/**
 * A worker's life once started: it says it listens, reloads and reopens
 * its logs when the primary says so, and stops on the primary's shutdown,
 * or when the primary is gone. Signals are the primary's to handle: a
 * Ctrl-C that reaches the whole process group does not stop a worker on
 * its own.
 */
export function serveAsWorker(box: Edgebox, channel: WorkerChannel, readConfig: () => Promise<Parameters<Edgebox['reload']>[0]>): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2'] as const) process.on(signal, () => {})
  channel.send({ t: 'state', state: 'listening', urls: box.urls })
  channel.on('reload', () => {
    readConfig()
      .then((next) => box.reload(next, 'SIGHUP'))
      .then(
        () => channel.send({ t: 'state', state: 'reloaded' }),
        (err: unknown) => {
          const detail = err instanceof ConfigError ? err.issues.join('; ') : (err as Error).message
          box.log.error({ issues: err instanceof ConfigError ? err.issues : undefined }, `reload refused, the running configuration keeps serving: ${detail}`)
          channel.send({ t: 'state', state: 'reload-refused', detail })
        },
      )
  })
  channel.on('reopen-logs', () => box.reopenLogs())
  let stopping = false
  stopNow = () => {
    if (stopping) return
    stopping = true
    box.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  if (stopAsked) stopNow()
}

/** Tells the primary this worker could not start (it stops the others), then exits. */
export async function workerFailed(detail: string): Promise<never> {
  process.stderr.write(`edgebox worker ${process.env.EDGEBOX_WORKER}: ${detail}\n`)
  const m: ToPrimary = { t: 'state', state: 'failed', detail }
  if (process.connected) await new Promise((resolve) => process.send!(m, resolve))
  process.exit(1)
}

import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { outputTail } from './output-tail.ts'

/**
 * A real Prometheus (Debian's `prometheus` package, which .ci/run installs)
 * for tests about Edgebox's `/metrics`: `promtool check metrics` lints the
 * text format, and a Prometheus of the test's own scrapes a target every
 * second on loopback, with its own temporary storage, and answers PromQL
 * through its HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/).
 */

export const PROMETHEUS = process.env.PROMETHEUS_PATH ?? '/usr/bin/prometheus'
export const PROMTOOL = process.env.PROMTOOL_PATH ?? '/usr/bin/promtool'

/** How long Prometheus may take to answer /-/ready, and its target to be `up`. */
const START_TIMEOUT = 30_000
/** How long a stopped Prometheus may take to exit before it is killed. */
const STOP_TIMEOUT = 5_000
const POLL = 100
/** Lines of Prometheus's own log kept for failure messages. */
const OUTPUT_LINES = 60

/** A port that was free a moment ago: binds 127.0.0.1:0, reads the port, closes. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The `skip` option for suites that need Prometheus: false when they must
 * run, else the reason. Outside CI missing binaries skip them (the reason is
 * shown); with CI=true they always run, so missing binaries fail instead.
 */
export function prometheusSkip(): false | string {
  const missing = [PROMETHEUS, PROMTOOL].filter((f) => !executable(f))
  if (process.env.CI === 'true' || missing.length === 0) return false
  return `${missing.join(' and ')} not installed (apt-get install prometheus; .ci/run installs it; with CI=true these tests always run)`
}

/** What `promtool check metrics` said of a text: its exit code (0: no problems) and everything it printed. */
export interface MetricsLint {
  readonly code: number
  readonly output: string
}

/** Runs `promtool check metrics` with `text` on its standard input (the linter of Prometheus's text format). */
export function checkMetrics(text: string): Promise<MetricsLint> {
  return new Promise((resolve, reject) => {
    if (!executable(PROMTOOL)) return reject(new Error(`${PROMTOOL} is not installed (apt-get install prometheus; .ci/run installs it)`))
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT)
    child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')))
    child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')))
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === null) return reject(new Error(`promtool check metrics was stopped (${signal}) after ${START_TIMEOUT} ms:\n${output}`))
      resolve({ code, output: output.trim() })
    })
    child.stdin!.on('error', () => {}) // promtool may exit before reading everything; its exit code says why
    child.stdin!.end(text)
  })
}

/** A scrape job: its name, its one target's `host:port`, a bearer token when it needs one, and the health the test expects of it. */
export interface ScrapeTarget {
  /** The job's name (the `job` label of its series). */
  readonly job: string
  readonly address: string
  readonly metricsPath?: string
  /** Sent as `Authorization: Bearer <token>` (the scrape config's `authorization.credentials`). */
  readonly token?: string
  /** What startPrometheus waits for: `up` (the default) or `down` (a scrape that is meant to be refused). */
  readonly expect?: 'up' | 'down'
}

/** One active target as /api/v1/targets lists it. */
export interface TargetState {
  readonly health: 'up' | 'down' | 'unknown'
  readonly lastError: string
  readonly scrapeUrl: string
  readonly labels: Readonly<Record<string, string>>
}

/** An instant vector's element (`/api/v1/query`). */
export interface Sample {
  readonly metric: Readonly<Record<string, string>>
  readonly value: readonly [number, string]
}

/** The API's answer to a query: `success` with its result, or `error` with the reason. */
export type QueryAnswer =
  | { readonly status: 'success'; readonly data: { readonly resultType: string; readonly result: readonly Sample[] | readonly [number, string] } }
  | { readonly status: 'error'; readonly errorType: string; readonly error: string }

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>`, its HTTP API. */
  readonly url: string
  /** The scrape configuration it runs (YAML). */
  readonly config: string
  /** Its active targets. */
  targets(): Promise<readonly TargetState[]>
  /** An instant query at the current time (GET /api/v1/query). */
  query(expr: string): Promise<QueryAnswer>
  /** The last lines of its log. */
  output(): string
  /** Kills it and removes its storage folder. */
  stop(): Promise<void>
}

/** The scrape configuration: every job scraped each second (YAML; strings as JSON, which YAML reads). */
export function scrapeConfig(jobs: readonly ScrapeTarget[]): string {
  const lines = ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', '  evaluation_interval: 1s', 'scrape_configs:']
  for (const job of jobs) {
    lines.push(`  - job_name: ${JSON.stringify(job.job)}`, `    metrics_path: ${JSON.stringify(job.metricsPath ?? '/metrics')}`)
    if (job.token !== undefined) lines.push('    authorization:', `      credentials: ${JSON.stringify(job.token)}`)
    lines.push('    static_configs:', `      - targets: [${JSON.stringify(job.address)}]`)
  }
  return `${lines.join('\n')}\n`
}

/** GET on loopback with a bound; resolves the status and body, rejects on a network error or timeout. */
function get(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

/** Sends SIGTERM, then SIGKILL when it has not exited within STOP_TIMEOUT; resolves when it has exited. */
function stopChild(child: ChildProcess): Promise<void> {
  // never started (spawn failed), or already exited
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/**
 * Starts Prometheus on a free loopback port with a temporary configuration
 * scraping `jobs` every second and a temporary storage folder; resolves
 * once every job's target has the health it expects (`up` unless told), or
 * rejects (with the targets' last errors and Prometheus's log) after
 * START_TIMEOUT, having stopped it and removed its folder.
 */
export async function startPrometheus(jobs: readonly ScrapeTarget[]): Promise<RunningPrometheus> {
  if (!executable(PROMETHEUS)) throw new Error(`${PROMETHEUS} is not installed (apt-get install prometheus; .ci/run installs it)`)
  const home = await mkdtemp(path.join(tmpdir(), 'edgebox-prometheus-'))
  const config = scrapeConfig(jobs)
  const configFile = path.join(home, 'prometheus.yml')
  await writeFile(configFile, config)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`

  const { collect, output } = outputTail(OUTPUT_LINES)

  const child = spawn(PROMETHEUS, [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(home, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    cwd: home,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  let spawnError: Error | undefined
  child.on('error', (err) => (spawnError = err))

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= stopChild(child).then(() => rm(home, { recursive: true, force: true }))
    return stopping
  }

  const targets = async (): Promise<readonly TargetState[]> => {
    const r = await get(`${url}/api/v1/targets?state=active`)
    if (r.status !== 200) throw new Error(`Prometheus's /api/v1/targets answered ${r.status}: ${r.body}`)
    return (JSON.parse(r.body) as { data: { activeTargets: TargetState[] } }).data.activeTargets
  }
  const query = async (expr: string): Promise<QueryAnswer> => {
    const r = await get(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)
    return JSON.parse(r.body) as QueryAnswer
  }

  try {
    const deadline = Date.now() + START_TIMEOUT
    let last = 'not ready'
    for (;;) {
      if (spawnError) throw new Error(`Prometheus could not be started: ${spawnError.message}`)
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Prometheus exited (${child.exitCode ?? child.signalCode}) before its targets were scraped`)
      const ready = await get(`${url}/-/ready`, 1_000).catch(() => undefined)
      if (ready?.status === 200) {
        const active = await targets()
        const wrong = jobs.map((job) => ({ job, t: active.find((t) => t.labels.job === job.job) })).filter(({ job, t }) => t?.health !== (job.expect ?? 'up'))
        if (wrong.length === 0) break
        last = wrong.map(({ job, t }) => (t ? `${job.job}: ${t.scrapeUrl} is ${t.health}${t.lastError ? ` (${t.lastError})` : ''}, expected ${job.expect ?? 'up'}` : `${job.job}: not listed`)).join('; ')
      }
      if (Date.now() >= deadline) throw new Error(`Prometheus's targets were not as expected within ${START_TIMEOUT} ms: ${last}`)
      await new Promise((r) => setTimeout(r, POLL))
    }
  } catch (err) {
    const log = output()
    await stop()
    throw new Error(`${(err as Error).message}\nits configuration:\n${config}its log:\n${log}`)
  }
  return { url, config, targets, query, output, stop }
}

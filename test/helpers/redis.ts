import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { outputTail } from './output-tail.ts'
import { freePort } from './pebble.ts'

/**
 * A real Redis server (Debian package `redis-server`, installed by .ci/run)
 * for the tests of the shared engines: on a private loopback port, with its
 * files in a temporary folder, stopped by `close`. `kill` and `start` are
 * the fault tests' outage: the server goes away (SIGKILL, as a crash) and
 * comes back on the same port, with what it had written to its append-only
 * file when `persist` is set.
 */

const REDIS = '/usr/bin/redis-server'
/** Debian's redis-tools, which redis-server depends on. */
const REDIS_CLI = '/usr/bin/redis-cli'
const START_TIMEOUT = 10_000
const OUTPUT_LINES = 40

export interface RedisOptions {
  /** Keep data across `kill` and `start` (appendonly, fsync always). Default false: a restart is empty. */
  persist?: boolean
  /** Extra redis.conf lines (ACL users, TLS). */
  conf?: string[]
  /** Serve TLS on the port instead of plain TCP: the files are written into the server's folder by the caller's `conf`. */
  tls?: boolean
}

export interface RedisServer {
  readonly port: number
  /** redis://127.0.0.1:<port> */
  readonly url: string
  /** The server's folder (its append-only file, its redis.conf). */
  readonly dir: string
  /** Stops it at once (SIGKILL), as a crash would. */
  kill(): Promise<void>
  /** Starts it again on the same port (after `kill`). */
  start(): Promise<void>
  close(): Promise<void>
}

/** Whether this machine has redis-server (.ci/run installs it). */
export const hasRedis = existsSync(REDIS)

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  if (!hasRedis) throw new Error(`${REDIS} is missing: install Debian's redis-server (.ci/run does)`)
  const dir = await mkdtemp(path.join(tmpdir(), 'edgebox-redis-'))
  const port = await freePort()
  const lines = [
    'bind 127.0.0.1',
    opts.tls ? 'port 0' : `port ${port}`,
    ...(opts.tls ? [`tls-port ${port}`] : []),
    `dir ${dir}`,
    'save ""',
    `appendonly ${opts.persist ? 'yes' : 'no'}`,
    'appendfsync always',
    'daemonize no',
    'protected-mode yes',
    'loglevel notice',
    ...(opts.conf ?? []),
  ]
  const confFile = path.join(dir, 'redis.conf')
  await writeFile(confFile, lines.join('\n') + '\n')
  let child: ChildProcess | null = null

  const start = async (): Promise<void> => {
    const tail = outputTail(OUTPUT_LINES)
    const proc = spawn(REDIS, [confFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    proc.stderr.on('data', tail.collect)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start in ${START_TIMEOUT} ms:\n${tail.output()}`)), START_TIMEOUT)
      const fail = (err: Error) => {
        clearTimeout(timer)
        proc.kill('SIGKILL')
        reject(err)
      }
      proc.on('exit', (code) => fail(new Error(`redis-server exited (${code}):\n${tail.output()}`)))
      proc.stdout.on('data', (chunk: Buffer) => {
        tail.collect(chunk)
        if (/Ready to accept connections/.test(tail.output())) {
          clearTimeout(timer)
          proc.removeAllListeners('exit')
          resolve()
        }
      })
    })
    // keep draining its output so it never blocks on a full pipe
    proc.stdout.resume()
  }

  const kill = async (): Promise<void> => {
    const proc = child
    child = null
    if (!proc || proc.exitCode !== null) return
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    dir,
    kill,
    start,
    async close() {
      await kill()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export interface SentinelServer {
  readonly port: number
  /** Which address the sentinel names as master `name` now (host:port). */
  master(): Promise<string>
  close(): Promise<void>
}

/**
 * A Redis Sentinel (the same redis-server, in sentinel mode) watching the
 * master at 127.0.0.1:`masterPort` as `name`, quick to act: the master is
 * taken as down after 1 s, and a replica promoted.
 */
export async function startSentinel(masterPort: number, name = 'mymaster'): Promise<SentinelServer> {
  if (!hasRedis) throw new Error(`${REDIS} is missing: install Debian's redis-server (.ci/run does)`)
  const dir = await mkdtemp(path.join(tmpdir(), 'edgebox-sentinel-'))
  const port = await freePort()
  const confFile = path.join(dir, 'sentinel.conf')
  await writeFile(
    confFile,
    [`bind 127.0.0.1`, `port ${port}`, `dir ${dir}`, 'daemonize no', `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 3000`].join('\n') + '\n',
  )
  const tail = outputTail(OUTPUT_LINES)
  const proc = spawn(REDIS, [confFile, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] })
  proc.stderr.on('data', tail.collect)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`redis sentinel did not start in ${START_TIMEOUT} ms:\n${tail.output()}`))
    }, START_TIMEOUT)
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis sentinel exited (${code}):\n${tail.output()}`))
    })
    proc.stdout.on('data', (chunk: Buffer) => {
      tail.collect(chunk)
      if (/\+monitor master/.test(tail.output())) {
        clearTimeout(timer)
        proc.removeAllListeners('exit')
        resolve()
      }
    })
  })
  proc.stdout.resume()
  return {
    port,
    master: () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1')
        let text = ''
        s.on('data', (d: Buffer) => {
          text += d.toString()
          const lines = text.split('\r\n')
          // *2 $len host $len port
          if (lines.length >= 5) {
            s.destroy()
            resolve(`${lines[2]}:${lines[4]}`)
          }
        })
        s.on('error', reject)
        s.write(`SENTINEL get-master-addr-by-name ${name}\r\n`)
      }),
    async close() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface RedisCluster {
  /** The nodes, each a master of a third of the slots (`kill` and `start` take one away and bring it back with its slots). */
  readonly nodes: readonly RedisServer[]
  /** `127.0.0.1:<port>` of each node, as `redis.cluster` lists them. */
  readonly hosts: readonly string[]
  /** Waits until every node that runs says `cluster_state:ok` (at most 20 s). */
  ok(): Promise<void>
  close(): Promise<void>
}

const CLUSTER_TIMEOUT = 20_000

/**
 * A real Redis Cluster of three masters and no replicas: three
 * redis-servers with `cluster-enabled yes`, each in its own folder on its
 * own loopback ports (the client port and the cluster bus port, both
 * free ones), joined by `redis-cli --cluster create`, which gives each a
 * third of the 16384 slots. Returns once every node says
 * `cluster_state:ok`; `close` stops them all and removes their folders.
 * A node that is killed and started again rejoins with its slots (its
 * nodes.conf is kept in its folder), empty unless `persist`. With `tls`
 * (the authority's PEM file), the nodes serve TLS only, as `conf` sets them
 * up (their certificate and key, `tls-cluster yes` for their bus), and
 * redis-cli trusts that authority.
 */
export async function startRedisCluster(opts: { persist?: boolean; conf?: string[]; tls?: { ca: string } } = {}): Promise<RedisCluster> {
  if (!existsSync(REDIS_CLI)) throw new Error(`${REDIS_CLI} is missing: install Debian's redis-tools (redis-server depends on it)`)
  const nodes: RedisServer[] = []
  const tlsArgs = opts.tls ? ['--tls', '--cacert', opts.tls.ca] : []
  const cluster: RedisCluster = {
    nodes,
    get hosts() {
      return nodes.map((n) => `127.0.0.1:${n.port}`)
    },
    async ok() {
      const end = Date.now() + CLUSTER_TIMEOUT
      for (const n of nodes) {
        for (;;) {
          const info = await cli([...tlsArgs, '-p', String(n.port), 'cluster', 'info']).catch((err: Error) => err.message)
          if (/^cluster_state:ok\r?$/m.test(info)) break
          if (Date.now() > end) throw new Error(`the cluster is not ok on ${n.port} after ${CLUSTER_TIMEOUT} ms:\n${info}`)
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    },
    async close() {
      await Promise.all(nodes.map((n) => n.close()))
    },
  }
  try {
    for (let i = 0; i < 3; i++) {
      // the bus port defaults to the client port + 10000, which may be taken or beyond 65535: a free one of its own
      const conf = ['cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-port ${await freePort()}`, 'cluster-node-timeout 2000', ...(opts.conf ?? [])]
      nodes.push(await startRedis({ ...(opts.persist ? { persist: true } : {}), ...(opts.tls ? { tls: true } : {}), conf }))
    }
    await cli([...tlsArgs, '--cluster', 'create', ...cluster.hosts, '--cluster-replicas', '0', '--cluster-yes'])
    await cluster.ok()
    return cluster
  } catch (err) {
    await cluster.close()
    throw err
  }
}

/** Runs redis-cli against 127.0.0.1 (at most 20 s); its output, or an error with it. */
function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', ...args], { timeout: CLUSTER_TIMEOUT }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`))
      else resolve(stdout)
    })
  })
}

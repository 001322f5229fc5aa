import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before } from 'node:test'
import { pino } from 'pino'
import { openPostgres, type Postgres } from '../../src/core/postgres.ts'
import { outputTail } from './output-tail.ts'
import { listening } from './redis.ts'
import { freePort } from './pebble.ts'

/**
 * A real PostgreSQL server (Debian package `postgresql`, installed by
 * .ci/run) for the tests of the PostgreSQL stores: a cluster of its own made
 * by initdb in a temporary folder, on a private loopback port, run as the
 * `postgres` user when the tests run as root (PostgreSQL refuses root), and
 * stopped by `close`. `stop` and `start` are the fault tests' outage.
 */

const START_TIMEOUT = 20_000
const OUTPUT_LINES = 40

/** The newest installed server's programs (/usr/lib/postgresql/<version>/bin), or null. */
function binDir(): string | null {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return null
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
  return versions.length ? path.join(root, versions[0]!, 'bin') : null
}

const BIN = binDir()
/** Whether this machine has a PostgreSQL server (.ci/run installs it). */
export const hasPostgres = BIN !== null

export interface PostgresServer {
  readonly port: number
  /** postgres://edgebox:edgebox@127.0.0.1:<port>/edgebox */
  readonly url: string
  /** A URL for another database of this server (created on demand by `database`). */
  database(name: string): Promise<string>
  /** Stops it at once (SIGKILL to the postmaster), as a crash would. */
  kill(): Promise<void>
  /** Starts it again on the same port. */
  start(): Promise<void>
  close(): Promise<void>
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** Runs a server program, as `postgres` when we are root. */
function command(program: string, args: string[]): [string, string[]] {
  const file = path.join(BIN!, program)
  return asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args]
}

function run(program: string, args: string[]): string {
  const [file, argv] = command(program, args)
  return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export async function startPostgres(): Promise<PostgresServer> {
  if (!BIN) throw new Error('no PostgreSQL server in /usr/lib/postgresql: install Debian\'s postgresql (.ci/run does)')
  const dir = await mkdtemp(path.join(tmpdir(), 'edgebox-pg-'))
  const data = path.join(dir, 'data')
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dir, uid, gid)
  }
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'])
  const port = await freePort()
  let child: ChildProcess | null = null

  const start = async (): Promise<void> => {
    const tail = outputTail(OUTPUT_LINES)
    const [file, argv] = command('postgres', ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=50'])
    const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    proc.stdout.on('data', tail.collect)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`postgres did not start in ${START_TIMEOUT} ms:\n${tail.output()}`)), START_TIMEOUT)
      const fail = (err: Error) => {
        clearTimeout(timer)
        proc.kill('SIGKILL')
        reject(err)
      }
      proc.on('exit', (code) => fail(new Error(`postgres exited (${code}):\n${tail.output()}`)))
      let ready = false
      proc.stderr.on('data', (chunk: Buffer) => {
        tail.collect(chunk)
        // once: later lines (the server stopping) must not touch the exit listeners kill() sets
        if (!ready && /database system is ready to accept connections/.test(tail.output())) {
          ready = true
          clearTimeout(timer)
          proc.removeAllListeners('exit')
          resolve()
        }
      })
    })
    proc.stderr.resume()
  }

  const kill = async (): Promise<void> => {
    const proc = child
    child = null
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((r) => proc.once('exit', r))
    // as root the child is runuser; the postmaster is its child: stop the whole group of the cluster by its pid file
    try {
      const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      if (pid > 0) {
        // its backends outlive it (one in the middle of a write would go on writing while the next server recovers)
        try {
          execFileSync('pkill', ['-KILL', '-P', String(pid)])
        } catch {
          // none left
        }
        process.kill(pid, 'SIGKILL')
      }
    } catch {
      // not written yet: the child itself
    }
    proc.kill('SIGKILL')
    await exited
    // a crash leaves its pid file; the next start would otherwise look for that process. The backends go with the
    // postmaster a moment later: wait until the port is free of them
    rmSync(path.join(data, 'postmaster.pid'), { force: true })
    rmSync(path.join(dir, `.s.PGSQL.${port}.lock`), { force: true })
    for (let i = 0; i < 100 && (await listening(port)); i++) await new Promise((r) => setTimeout(r, 50))
  }

  const psql = (sql: string, db = 'postgres') => run('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql])

  await start()
  psql("CREATE ROLE edgebox LOGIN PASSWORD 'edgebox'")
  psql('CREATE DATABASE edgebox OWNER edgebox')
  const urlOf = (db: string) => `postgres://edgebox:edgebox@127.0.0.1:${port}/${db}`
  return {
    port,
    url: urlOf('edgebox'),
    async database(name) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a database name: ${name}`)
      psql(`CREATE DATABASE ${name} OWNER edgebox`)
      return urlOf(name)
    },
    kill,
    start,
    async close() {
      await kill()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * One PostgreSQL for a test file (the store contract suites): started
 * before its tests and stopped after them, with every pool made through
 * `connect`. `database()` makes a new database on it, `<prefix>_<n>`.
 */
export function postgresPerFile(prefix: string): { database(): Promise<string>; connect(url: string): Promise<Postgres> } {
  let server: PostgresServer | undefined
  let databases = 0
  const pools: Postgres[] = []
  const log = pino({ level: 'silent' })
  before(async () => {
    server = await startPostgres()
  })
  after(async () => {
    await Promise.all(pools.map((p) => p.close()))
    await server?.close()
  })
  return {
    database: () => server!.database(`${prefix}_${++databases}`),
    async connect(url) {
      const pg = await openPostgres({ url, max: 4, connectTimeout: 2_000 }, log)
      pools.push(pg)
      return pg
    },
  }
}

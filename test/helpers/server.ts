import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import type { EdgeboxConfigInput } from '../../src/config/schema.ts'
import type { Clock } from '../../src/core/clock.ts'

/** Protocols every end-to-end suite runs over. */
export const PROTOCOLS = ['http/1.1', 'h2c'] as const
export type Protocol = (typeof PROTOCOLS)[number]

export interface TestServer {
  box: Edgebox
  url: string
  port: number
  close(): Promise<void>
}

/** Starts Edgebox on 127.0.0.1 with a free port, access log off and a silent logger unless given; `clock`: a manual clock (test/helpers/clock.ts) for tests about time passing. */
export async function startServer(input: Omit<EdgeboxConfigInput, 'listen'> & { listen?: EdgeboxConfigInput['listen'] }, baseDir?: string, opts: { clock?: Clock } = {}): Promise<TestServer> {
  // a data folder of its own unless the test names one (dataDir, or EDGEBOX_HOME for the default): no test touches the user's (~/.local/share/edgebox)
  const ownData = input.dataDir === undefined && !process.env.EDGEBOX_HOME ? mkdtempSync(path.join(tmpdir(), 'edgebox-test-data-')) : null
  const config: EdgeboxConfigInput = {
    ...input,
    ...(ownData ? { dataDir: ownData } : {}),
    listen: input.listen ?? [{ host: '127.0.0.1', port: 0 }],
    log: { access: false, level: 'silent', ...input.log },
  }
  let box: Edgebox
  try {
    box = await startEdgebox(config, { baseDir: baseDir ?? process.cwd(), log: pino({ level: 'silent' }), ...(opts.clock ? { clock: opts.clock } : {}) })
  } catch (err) {
    if (ownData) rmSync(ownData, { recursive: true, force: true })
    throw err
  }
  const url = box.urls[0]!
  const close = async () => {
    await box.close()
    if (ownData) rmSync(ownData, { recursive: true, force: true })
  }
  return { box, url, port: Number(new URL(url).port), close }
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  text: string
}

export interface RequestOptions {
  method?: string
  headers?: Record<string, string | string[]>
  body?: Buffer | string
}

/** One request over a fresh connection, HTTP/1.1 or h2c (prior knowledge). */
export function request(protocol: Protocol, url: string, opts: RequestOptions = {}): Promise<Reply> {
  return protocol === 'h2c' ? requestH2(url, opts) : requestH1(url, opts)
}

function requestH1(url: string, opts: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8') })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

function requestH2(url: string, opts: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const session = http2.connect(u.origin)
    session.on('error', reject)
    const stream = session.request({ ':method': opts.method ?? 'GET', ':path': u.pathname + u.search, ...opts.headers })
    const chunks: Buffer[] = []
    let headers: Record<string, string | string[] | undefined> = {}
    let status = 0
    stream.on('response', (h) => {
      status = Number(h[':status'])
      headers = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':'))) as Record<string, string | string[] | undefined>
    })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => {
      const body = Buffer.concat(chunks)
      session.close()
      resolve({ status, headers, body, text: body.toString('utf8') })
    })
    stream.on('error', (err) => {
      session.destroy()
      reject(err)
    })
    stream.end(opts.body)
  })
}

/**
 * Sends raw bytes on a new TCP connection and collects everything the server
 * sends until it closes the connection or `waitMs` passes.
 */
export function raw(port: number, bytes: string | Buffer, waitMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bytes))
    let data = ''
    const timer = setTimeout(() => {
      sock.destroy()
      resolve(data)
    }, waitMs)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => (data += d))
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(data)
    })
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') return // the close handler resolves
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** Splits raw HTTP/1.1 text into responses' status codes, in order. */
export function statuses(rawText: string): number[] {
  return [...rawText.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))
}

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'edgebox-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Resolves true when the socket closes within `ms`, false (and destroys it) otherwise. */
export function closedWithin(sock: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sock.destroy()
      resolve(false)
    }, ms)
    sock.on('close', () => {
      clearTimeout(t)
      resolve(true)
    })
    sock.on('error', () => {})
  })
}

/** Open file descriptors of this process (servers under test run in it). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

/** Waits (up to ~2 s) for the descriptor count to fall back to `baseline`; returns the final count. */
export async function fdsSettle(baseline: number): Promise<number> {
  let now = openFds()
  for (let i = 0; i < 40 && now > baseline; i++) {
    await new Promise((r) => setTimeout(r, 50))
    now = openFds()
  }
  return now
}

/** Reads a started `edgebox` process's output until it prints the URL it listens on. */
export function listeningUrl(child: ChildProcess, timeoutMs = 10_000): Promise<{ url: string; output(): string }> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`no URL printed within ${timeoutMs} ms:\n${out}`)), timeoutMs)
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /listening on (http:\/\/\S+?)(?:"|\s)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1]!, output: () => out })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}:\n${out}`))
    })
  })
}

/** A loopback port nothing listens on (bound, then released). */
/** Starts a test's own HTTP server on 127.0.0.1 with a free port; `close` also ends its open connections. */
export async function listening(server: http.Server): Promise<{ port: number; url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

export async function closedPort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

/** One access-log line as Edgebox writes it in JSON (the fields tests read). */
export interface AccessLogLine {
  method: string
  path: string
  status: number
  cors?: string
  csrf?: string
  proto?: string
  bytes?: number
}

/**
 * Every line of a server's JSON access log once everything sent before now is
 * in it: the log is written in batches, so a marker request to `base + markerPath`
 * is sent and the file read until the marker shows up (bounded by `timeout`).
 */
export async function accessLogThrough(base: string, markerPath: string, file: string, timeout = 5_000): Promise<AccessLogLine[]> {
  const r = await fetch(base + markerPath, { signal: AbortSignal.timeout(timeout) })
  await r.arrayBuffer()
  const deadline = Date.now() + timeout
  for (;;) {
    const lines = existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .slice(0, -1) // a line still being written has no newline yet
          .map((l) => JSON.parse(l) as AccessLogLine)
      : []
    if (lines.some((l) => l.path === markerPath)) return lines
    if (Date.now() > deadline) throw new Error(`the access log did not show ${markerPath} within ${timeout} ms (${lines.length} lines)`)
    await new Promise((res) => setTimeout(res, 50))
  }
}

/** A logger whose lines a test reads: as text (`text`) and parsed (`lines`). */
export interface CapturedLog {
  readonly logger: pino.Logger
  readonly lines: Array<Record<string, unknown>>
  readonly text: string[]
}

/** A pino logger at `level` writing into arrays instead of a file. */
export function captureLog(level = 'info'): CapturedLog {
  const lines: Array<Record<string, unknown>> = []
  const text: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (!l.trim()) continue
        text.push(l)
        lines.push(JSON.parse(l) as Record<string, unknown>)
      }
      done()
    },
  })
  return { logger: pino({ level }, sink), lines, text }
}

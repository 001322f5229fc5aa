import { spawn } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import { existsSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import path from 'node:path'
import tls, { type TLSSocket } from 'node:tls'
import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import type { Handler, ModuleDeps } from '../../core/types.ts'
import { isLoopback, unmapped } from '../../http/address.ts'
import { ask, type Asked } from '../../dns/client.ts'
import { FLAG, questionOf, rcodeName, readMessage, typeName, writeQuery, type Message } from '../../dns/message.ts'
import { toText } from '../../dns/names.ts'
import { recordText } from '../../dns/present.ts'
import { proxyModule } from '../proxy/index.ts'

/**
 * `lab: { demo: 'journey' }`: what happens when you type a URL, measured
 * against this Edgebox, for the journey lab page (lab/www/lab/journey.html).
 * Every measurement targets the listener the request came in on, at its own
 * loopback address; a request that did not arrive on a loopback address is
 * refused (403), so nothing here ever connects anywhere else.
 *
 *   GET <prefix>ping?delay=MS&run=ID         a tiny answer, after `delay` ms (0-500): what the comparisons request
 *   GET <prefix>connections?n=N              N requests over one kept-alive connection, over N new connections,
 *                                            and over N new TLS connections, full and resumed (TLS listeners)
 *   GET <prefix>hol?n=50&slow=6&delay=100    head-of-line blocking: N requests, the first `slow` of them answered
 *                                            after `delay` ms, over HTTP/1.1 with 6 connections and over one HTTP/2 connection
 *   GET <prefix>dns?name=&type=              a query whose answer is too large for UDP: truncated (TC), then over TCP
 *   GET <prefix>exchange?path=/P             one request for P over HTTP/1.1 and one over HTTP/2 (h2c on a cleartext
 *                                            listener), timed by Edgebox's own client
 *   GET <prefix>inspect?path=/P              `edgebox inspect --json` of P on this listener (a child process, bounded)
 *   GET <prefix>cache/edge/<name>[?edge=X]   a demo object through two cache tiers: an `edge` cache whose upstream is
 *                                            this listener's `cache/parent/`, a `parent` cache in front of a demo origin
 *
 * The comparisons run one at a time (another is answered 503 with
 * Retry-After) and each within a deadline (504 beyond); a parameter out of
 * range or unknown is a 400 naming it. Every answer is JSON with
 * `Cache-Control: no-store`, except the demo objects, whose caching is the point.
 */

export const journeySchema = z
  .strictObject({
    /** Edgebox's own DNS server (a loopback address and port) and the name whose answer is too large for a classic UDP message. */
    dns: z
      .strictObject({
        address: z.string().regex(/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1)$/, 'is a loopback address (127.x.y.z or ::1)'),
        port: z.number().int().min(1).max(65535),
        name: z.string().min(1).default('big.edgebox.test'),
        type: z.string().min(1).default('TXT'),
      })
      .optional(),
  })
  .prefault({})

export type JourneyConfig = z.output<typeof journeySchema>

/** How long one comparison may take in all; `edgebox inspect`'s child process gets longer. */
const DEADLINE_MS = 15_000
const INSPECT_DEADLINE_MS = 30_000
/** The largest `edgebox inspect --json` output read (bytes). */
const INSPECT_MAX_OUTPUT = 2 * 1024 * 1024
/** A browser's connections per origin over HTTP/1.1 (what Chromium and Firefox open). */
const H1_CONNECTIONS = 6
/** The `edgebox` command of this package (from src/modules/lab or dist/modules/lab). */
const EDGEBOX_BIN = path.resolve(import.meta.dirname, '..', '..', '..', 'bin', 'edgebox.js')
const OBJECT = /^[a-z0-9-]{1,40}$/
const RUN = /^[A-Za-z0-9_-]{1,32}$/

/** The listener a request came in on, as the comparisons address it. */
interface Listener {
  /** The loopback address, as a URL writes it (`127.0.0.1`, `[::1]`). */
  urlHost: string
  address: string
  port: number
  tls: boolean
  /** Host (or `:authority`) sent on every request: the client's own, so that the same site answers. */
  authority: string
  /** SNI: the client's host name, when it named one. */
  servername: string | undefined
}

/** A parameter problem or a refusal, answered as JSON with its status. */
class Refusal extends Error {
  readonly status: number
  readonly headers: Record<string, string>
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.headers = headers
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return round(s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2)
}

/** The request's query, with only `allowed` names (each once); anything else is a 400 naming it. */
function params(ctx: Context, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of new URLSearchParams(ctx.query.slice(1))) {
    if (!allowed.includes(k)) throw new Refusal(400, `unknown parameter ${JSON.stringify(k)}${allowed.length ? ` (this endpoint takes ${allowed.join(', ')})` : ' (this endpoint takes none)'}`)
    if (out.has(k)) throw new Refusal(400, `?${k}= given twice`)
    out.set(k, v)
  }
  return out
}

/** A whole number parameter within [min, max], or its default. */
function intParam(p: Map<string, string>, name: string, min: number, max: number, fallback: number): number {
  const text = p.get(name)
  if (text === undefined) return fallback
  const n = /^\d{1,6}$/.test(text) ? Number(text) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new Refusal(400, `?${name}= is a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`)
  return n
}

/** A path on this site (origin form, RFC 9112 §3.2.1), not one of the journey's own endpoints. */
function pathParam(p: Map<string, string>, prefix: string, fallback: string): string {
  const v = p.get('path') ?? fallback
  if (!/^\/(?!\/)[\x21-\x7e]{0,300}$/.test(v) || v.includes('#') || v.includes('\\')) throw new Refusal(400, `?path= is a path on this site such as /lab/journey.html (printable ASCII, no fragment), not ${JSON.stringify(v)}`)
  if (v.startsWith(prefix)) throw new Refusal(400, `?path= may not be one of the journey's own endpoints (${prefix}...)`)
  return v
}

/** Where the request came in, as the comparisons reach it: refused unless it is a loopback address. */
function listenerOf(ctx: Context): Listener {
  const socket = ctx.req.socket as (net.Socket & { encrypted?: boolean }) | null
  const address = socket?.localAddress ? unmapped(socket.localAddress) : ''
  const port = socket?.localPort ?? 0
  if (!address || !isLoopback(address) || !port) {
    throw new Refusal(403, `the journey's measurements run only against a loopback listener; open the page at http://127.0.0.1:<port>/lab/journey.html on this machine (this request arrived on ${address || 'an unknown address'})`)
  }
  const host = ctx.host
  return {
    urlHost: address.includes(':') ? `[${address}]` : address,
    address,
    port,
    tls: socket?.encrypted === true,
    authority: ctx.authority || `${address.includes(':') ? `[${address}]` : address}:${port}`,
    servername: host && net.isIP(host) === 0 ? host : undefined,
  }
}

const originOf = (l: Listener) => `${l.tls ? 'https' : 'http'}://${l.urlHost}:${l.port}`

/** Everything a comparison opened (agents, sessions, sockets, sockets' servers), closed at its end or at its deadline. */
class Scope {
  private readonly closers: (() => void)[] = []
  add<T>(thing: T, close: (t: T) => void): T {
    this.closers.push(() => close(thing))
    return thing
  }
  close(): void {
    for (const c of this.closers.splice(0)) {
      try {
        c()
      } catch {
        // already closed
      }
    }
  }
}

/** Runs `work` with a scope closed when it ends; past `ms` the scope is closed and the promise rejects with a 504. */
async function bounded<T>(ms: number, what: string, work: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope()
  let timer: ReturnType<typeof setTimeout> | undefined
  const working = work(scope)
  // past the deadline the scope's sockets are destroyed and the work fails late: nobody waits for it any more
  working.catch(() => {})
  try {
    return await Promise.race([
      working,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Refusal(504, `${what} did not finish within ${ms / 1000} s`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
    scope.close()
  }
}

/** One HTTP/1.1 exchange, timed: TCP connect, TLS handshake (new connections only), waiting for the head, the whole. */
interface H1Timing {
  status: number
  bytes: number
  /** The connection was opened for this request (false: a kept-alive one was reused). */
  newConnection: boolean
  connectMs: number | null
  tlsMs: number | null
  /** The TLS handshake resumed an earlier session (RFC 8446 §2.2); null on cleartext or a reused connection. */
  resumed: boolean | null
  waitMs: number
  totalMs: number
  /** When it completed, in ms from the comparison's start. */
  doneAt: number
  socket: net.Socket
}

function h1Get(l: Listener, target: string, agent: http.Agent | false, t0: number): Promise<H1Timing> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    let connectAt: number | null = null
    let secureAt: number | null = null
    let newConnection = false
    let socket: net.Socket | undefined
    const options = {
      host: l.address,
      port: l.port,
      path: target,
      headers: { host: l.authority, 'cache-control': 'no-cache' },
      agent,
      ...(l.tls ? { servername: l.servername ?? '', rejectUnauthorized: false } : {}),
    }
    const req = (l.tls ? https : http).request(options, (res) => {
      const headAt = performance.now()
      let bytes = 0
      res.on('data', (c: Buffer) => (bytes += c.length))
      res.on('error', reject)
      res.on('end', () => {
        const end = performance.now()
        const sent = secureAt ?? connectAt ?? start
        resolve({
          status: res.statusCode ?? 0,
          bytes,
          newConnection,
          connectMs: connectAt === null ? null : round(connectAt - start),
          tlsMs: secureAt === null || connectAt === null ? null : round(secureAt - connectAt),
          resumed: l.tls && newConnection ? (socket as TLSSocket).isSessionReused() : null,
          waitMs: round(headAt - sent),
          totalMs: round(end - start),
          doneAt: round(end - t0),
          socket: socket!,
        })
      })
    })
    req.on('socket', (s: net.Socket) => {
      socket = s
      if (!s.connecting) return
      newConnection = true
      s.once('connect', () => (connectAt = performance.now()))
      if (l.tls) s.once('secureConnect', () => (secureAt = performance.now()))
    })
    req.on('error', reject)
    req.end()
  })
}

/** An HTTP/2 connection to the listener (h2c with prior knowledge on cleartext, RFC 9113 §3.3; h2 by ALPN over TLS), timed. */
function h2Connect(l: Listener, scope: Scope): Promise<{ session: http2.ClientHttp2Session; connectMs: number; tlsMs: number | null; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    let connectAt = 0
    let secureAt: number | null = null
    let socket: net.Socket | undefined
    const session = scope.add(
      http2.connect(originOf(l), {
        createConnection: () => {
          const s = l.tls
            ? tls.connect({ host: l.address, port: l.port, servername: l.servername ?? '', ALPNProtocols: ['h2'], rejectUnauthorized: false })
            : net.connect({ host: l.address, port: l.port })
          s.once('connect', () => (connectAt = performance.now()))
          if (l.tls) s.once('secureConnect', () => (secureAt = performance.now()))
          socket = s
          return s
        },
      }),
      (s) => s.destroy(),
    )
    session.once('error', reject)
    session.once('connect', () => {
      session.off('error', reject)
      session.on('error', () => {})
      resolve({ session, connectMs: round(connectAt - start), tlsMs: secureAt === null ? null : round(secureAt - connectAt), socket: socket! })
    })
  })
}

interface H2Timing {
  status: number
  bytes: number
  waitMs: number
  totalMs: number
  doneAt: number
}

function h2Get(session: http2.ClientHttp2Session, l: Listener, target: string, t0: number): Promise<H2Timing> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const stream = session.request({ ':method': 'GET', ':path': target, ':authority': l.authority, 'cache-control': 'no-cache' })
    let status = 0
    let headAt = start
    let bytes = 0
    stream.on('response', (h) => {
      status = Number(h[':status'])
      headAt = performance.now()
    })
    stream.on('data', (c: Buffer) => (bytes += c.length))
    stream.on('error', reject)
    stream.on('end', () => {
      const end = performance.now()
      resolve({ status, bytes, waitMs: round(headAt - start), totalMs: round(end - start), doneAt: round(end - t0) })
    })
    stream.end()
  })
}

/** Connections the server saw for each comparison run: the peers of the pings carrying its run id. */
class RunPeers {
  private readonly runs = new Map<string, Set<string>>()
  open(): string {
    const id = randomBytes(9).toString('base64url')
    this.runs.set(id, new Set())
    return id
  }
  seen(id: string, peer: string): void {
    this.runs.get(id)?.add(peer)
  }
  count(id: string): number {
    return this.runs.get(id)?.size ?? 0
  }
  close(id: string): void {
    this.runs.delete(id)
  }
}

/** A sample of one way of connecting: N exchanges, timed. */
function summary(runs: readonly H1Timing[], serverConnections: number) {
  const connects = runs.flatMap((r) => (r.connectMs === null ? [] : [r.connectMs]))
  const handshakes = runs.flatMap((r) => (r.tlsMs === null ? [] : [r.tlsMs]))
  return {
    requests: runs.length,
    statuses: [...new Set(runs.map((r) => r.status))],
    connections: new Set(runs.map((r) => r.socket)).size,
    serverConnections,
    newConnections: runs.filter((r) => r.newConnection).length,
    resumed: runs.filter((r) => r.resumed === true).length,
    totalMs: round(runs.reduce((a, r) => a + r.totalMs, 0)),
    medianMs: median(runs.map((r) => r.totalMs)),
    connectMedianMs: median(connects),
    tlsMedianMs: median(handshakes),
    waitMedianMs: median(runs.map((r) => r.waitMs)),
  }
}

/** One UDP datagram to `server` and the answer with the same ID, timed; no retry over TCP (that is what is shown next). */
function udpOnce(server: { host: string; port: number }, query: Buffer, id: number, timeoutMs: number, scope: Scope): Promise<{ raw: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = scope.add(dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4'), (s) => s.close())
    const start = performance.now()
    const timer = setTimeout(() => reject(new Refusal(502, `no answer from ${server.host}:${server.port} over UDP within ${timeoutMs} ms`)), timeoutMs)
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(new Refusal(502, `UDP to ${server.host}:${server.port}: ${err.message}`))
    })
    socket.on('message', (raw, rinfo) => {
      if (rinfo.port !== server.port || raw.length < 12 || raw.readUInt16BE(0) !== id) return
      clearTimeout(timer)
      resolve({ raw, ms: round(performance.now() - start) })
    })
    socket.send(query, server.port, server.host)
  })
}

/** What the page shows of one DNS answer. */
function dnsAnswer(transport: string, m: Message, bytes: number, ms: number) {
  return {
    transport,
    ms,
    bytes,
    tc: (m.flags & FLAG.TC) !== 0,
    aa: (m.flags & FLAG.AA) !== 0,
    rcode: rcodeName(m.rcode),
    answers: m.answer.length,
    records: m.answer.map(recordText),
  }
}

export async function createJourneyDemo(deps: ModuleDeps, cfg: JourneyConfig): Promise<Handler> {
  const prefix = deps.prefix
  const peers = new RunPeers()
  let busy: string | null = null

  // ---- the cache tiers: a demo origin, a parent cache in front of it, and (per listener) an edge cache in front of the parent
  let originRequests = 0
  const origin = http.createServer((req, res) => {
    const name = (req.url ?? '/').split('?')[0]!.slice(1)
    if (!OBJECT.test(name) || (req.method !== 'GET' && req.method !== 'HEAD')) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no such demo object\n')
    originRequests++
    const body = JSON.stringify({ object: name, originRequests, servedAt: new Date().toISOString() })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=60', etag: `"${name}"`, 'x-origin': 'journey' })
    res.end(req.method === 'HEAD' ? undefined : body)
  })
  origin.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    origin.once('error', reject)
    origin.listen(0, '127.0.0.1', () => resolve())
  })
  const originPort = (origin.address() as AddressInfo).port
  const parentPrefix = `${prefix}cache/parent/`
  const edgePrefix = `${prefix}cache/edge/`
  const parent = await proxyModule.create(
    proxyModule.schema.parse({
      upstreams: [`http://127.0.0.1:${originPort}`],
      stripPrefix: true,
      timeouts: { connect: '1s', response: '5s', idle: '5s' },
      // `?edge=` stands for another edge location asking: a key of its own at the edge, the same object at the parent
      // both tiers ignore the client's Cache-Control, as CDNs do: the page's requests bypass the browser's cache (no-cache), not these
      cache: { name: 'parent', maxBytes: '1m', ignoreQuery: ['edge'], ignoreRequestDirectives: true },
    }),
    { ...deps, prefix: parentPrefix, configPath: `${deps.configPath}(journey parent cache)` },
  )
  /** The edge tier of each listener (its upstream is that listener), made on first use. */
  const edges = new Map<string, Promise<Handler>>()
  const caFile = path.join(deps.dataDir, 'ca', 'ca.crt')
  function edgeFor(l: Listener): Promise<Handler> {
    const key = originOf(l)
    let edge = edges.get(key)
    if (!edge) {
      const made = Promise.resolve().then(() => proxyModule.create(
        proxyModule.schema.parse({
          upstreams: [key],
          stripPrefix: true,
          prefix: parentPrefix.slice(0, -1),
          timeouts: { connect: '1s', response: '5s', idle: '5s' },
          ...(l.tls && existsSync(caFile) ? { tls: { ca: caFile, servername: l.servername ?? 'localhost' } } : {}),
          cache: { name: 'edge', maxBytes: '1m', ignoreRequestDirectives: true },
        }),
        { ...deps, prefix: edgePrefix, configPath: `${deps.configPath}(journey edge cache)` },
      ))
      edges.set(key, (edge = made))
      made.catch(() => edges.delete(key))
    }
    return edge
  }

  // ---- the endpoints

  function ping(ctx: Context): void | Promise<void> {
    const p = params(ctx, ['delay', 'run'])
    const delay = intParam(p, 'delay', 0, 500, 0)
    const run = p.get('run')
    if (run !== undefined && !RUN.test(run)) throw new Refusal(400, '?run= is an id of letters, digits, _ and - (at most 32)')
    const socket = ctx.req.socket
    if (run !== undefined && socket) peers.seen(run, `${socket.remoteAddress}:${socket.remotePort}`)
    const answer = () => ctx.send(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, 'pong\n')
    if (delay === 0) return answer()
    return new Promise((resolve) => setTimeout(() => resolve(answer()), delay))
  }

  /** Connection reuse against new TCP and TLS handshakes (RFC 9112 §9.3: persistent connections; RFC 8446 §2: the handshake, §2.2: resumption). */
  async function connections(ctx: Context) {
    const p = params(ctx, ['n'])
    const n = intParam(p, 'n', 1, 50, 10)
    const l = listenerOf(ctx)
    return bounded(DEADLINE_MS, 'the connection comparison', async (scope) => {
      const run = async (agentFor: (i: number) => http.Agent | false) => {
        const id = peers.open()
        try {
          const t0 = performance.now()
          const out: H1Timing[] = []
          for (let i = 0; i < n; i++) out.push(await h1Get(l, `${prefix}ping?run=${id}`, agentFor(i), t0))
          return summary(out, peers.count(id))
        } finally {
          peers.close(id)
        }
      }
      const Agent = l.tls ? https.Agent : http.Agent
      const kept = scope.add(new Agent({ keepAlive: true, maxSockets: 1 }), (a) => a.destroy())
      const reused = await run(() => kept)
      // agent: false: a new connection each time, and no TLS session kept for the next (full handshakes)
      const fresh = await run(() => false)
      let resumed = null
      if (l.tls) {
        // one agent without keep-alive: a new connection each time, resuming the session it cached from the first
        const sessions = scope.add(new https.Agent({ keepAlive: false, maxCachedSessions: 1 }), (a) => a.destroy())
        resumed = await run(() => sessions)
      }
      return {
        target: `${originOf(l)}${prefix}ping`,
        protocol: 'http/1.1',
        tls: l.tls,
        n,
        reused,
        fresh,
        resumed,
        note: l.tls
          ? 'fresh: a new TCP connection and a full TLS handshake per request; resumed: a new TCP connection whose TLS handshake resumes the first session (a ticket, RFC 8446 §2.2).'
          : 'This listener is cleartext: fresh connections cost a TCP handshake only. Run npm start -- --https to compare TLS handshakes, full and resumed.',
      }
    })
  }

  /** Head-of-line blocking: the same requests over HTTP/1.1 with 6 connections and over one HTTP/2 connection (RFC 9113 §5: streams). */
  async function hol(ctx: Context) {
    const p = params(ctx, ['n', 'slow', 'delay'])
    const n = intParam(p, 'n', 1, 100, 50)
    const slow = intParam(p, 'slow', 0, Math.min(n, 12), Math.min(n, H1_CONNECTIONS))
    const delay = intParam(p, 'delay', 0, 500, 100)
    const l = listenerOf(ctx)
    const targetOf = (id: string, i: number) => `${prefix}ping?run=${id}${i < slow && delay > 0 ? `&delay=${delay}` : ''}`
    const shape = (doneAt: readonly number[], totalMs: number) => ({
      totalMs: round(totalMs),
      fastMedianMs: median(doneAt.slice(slow)),
      fastMaxMs: doneAt.length > slow ? round(Math.max(...doneAt.slice(slow))) : null,
      slowMedianMs: median(doneAt.slice(0, slow)),
      doneAt,
    })
    return bounded(DEADLINE_MS, 'the head-of-line comparison', async (scope) => {
      // HTTP/1.1: a connection carries one request at a time (RFC 9112 §9.3.2): requests queue for the 6 connections
      const id1 = peers.open()
      let http1
      try {
        const Agent = l.tls ? https.Agent : http.Agent
        const agent = scope.add(new Agent({ keepAlive: true, maxSockets: H1_CONNECTIONS, maxFreeSockets: H1_CONNECTIONS }), (a) => a.destroy())
        const t0 = performance.now()
        const runs = await Promise.all(Array.from({ length: n }, (_, i) => h1Get(l, targetOf(id1, i), agent, t0)))
        const total = performance.now() - t0
        http1 = { protocol: 'http/1.1', requests: runs.length, statuses: [...new Set(runs.map((r) => r.status))], connections: new Set(runs.map((r) => r.socket)).size, serverConnections: peers.count(id1), ...shape(runs.map((r) => r.doneAt), total) }
      } finally {
        peers.close(id1)
      }
      // HTTP/2: every request a stream of one connection, answered in any order
      const id2 = peers.open()
      let http2Result
      try {
        const t0 = performance.now()
        const { session } = await h2Connect(l, scope)
        const runs = await Promise.all(Array.from({ length: n }, (_, i) => h2Get(session, l, targetOf(id2, i), t0)))
        const total = performance.now() - t0
        http2Result = { protocol: l.tls ? 'h2' : 'h2c', requests: runs.length, statuses: [...new Set(runs.map((r) => r.status))], connections: 1, serverConnections: peers.count(id2), ...shape(runs.map((r) => r.doneAt), total) }
      } finally {
        peers.close(id2)
      }
      return { target: `${originOf(l)}${prefix}ping`, n, slow, delayMs: delay, http1, http2: http2Result }
    })
  }

  /** A query whose answer does not fit a classic UDP message: TC over UDP (RFC 1035 §4.2.1), then TCP (RFC 7766 §5). */
  async function dns(ctx: Context) {
    const p = params(ctx, ['name', 'type'])
    if (!cfg.dns) throw new Refusal(503, 'the DNS lab is off here: this configuration gives the journey no DNS server (npm start does, on 127.0.0.4)')
    const q = questionOf(p.get('name') ?? cfg.dns.name, p.get('type') ?? cfg.dns.type)
    if ('problem' in q) throw new Refusal(400, q.problem)
    const server = { host: cfg.dns.address, port: cfg.dns.port }
    return bounded(DEADLINE_MS, 'the DNS comparison', async (scope) => {
      const id = randomInt(0, 65536)
      // no EDNS (no OPT record): the classic 512-byte limit applies
      const udp = await udpOnce(server, writeQuery(id, q.labels, q.type, { rd: false }), id, 2000, scope)
      const udpMessage = readMessage(udp.raw)
      if (!udpMessage) throw new Refusal(502, `the UDP answer from ${server.host}:${server.port} is not a DNS message`)
      const askOr502 = (tcp: boolean): Promise<Asked> =>
        ask(server, q.labels, q.type, { timeoutMs: 2000, rd: false, udpSize: 0, tcp, mismatch: 'fail' }).catch((err: Error) => {
          throw new Refusal(502, `${tcp ? 'TCP' : 'UDP'} to ${server.host}:${server.port}: ${err.message}`)
        })
      const tcp = await askOr502(true)
      // Edgebox's own client, as its resolver and `edgebox dig` use it: UDP first, TCP again after TC
      const retry = await askOr502(false)
      return {
        server: `${server.host}:${server.port}`,
        question: `${toText(q.labels)} ${typeName(q.type)}`,
        udp: dnsAnswer('udp', udpMessage, udp.raw.length, udp.ms),
        tcp: dnsAnswer('tcp', tcp.message, tcp.raw.length, round(tcp.ms)),
        retry: { transport: retry.transport, ms: round(retry.ms), tc: (retry.message.flags & FLAG.TC) !== 0, answers: retry.message.answer.length },
      }
    })
  }

  /** One request for a path over HTTP/1.1 and one over HTTP/2, each on a new connection, by Edgebox's own client. */
  async function exchange(ctx: Context) {
    const p = params(ctx, ['path'])
    const target = pathParam(p, prefix, '/lab/journey.html')
    const l = listenerOf(ctx)
    return bounded(DEADLINE_MS, 'the exchange', async (scope) => {
      const h1 = await h1Get(l, target, false, performance.now())
      h1.socket.destroy()
      const t0 = performance.now()
      const c = await h2Connect(l, scope)
      const h2 = await h2Get(c.session, l, target, t0)
      const { socket: _s, doneAt: _d, ...http1 } = h1
      void _s
      void _d
      return {
        url: `${originOf(l)}${target}`,
        http1: { protocol: 'http/1.1', ...http1 },
        http2: { protocol: l.tls ? 'h2' : 'h2c', status: h2.status, bytes: h2.bytes, newConnection: true, connectMs: c.connectMs, tlsMs: c.tlsMs, resumed: l.tls ? (c.socket as TLSSocket).isSessionReused() : null, waitMs: h2.waitMs, totalMs: round(performance.now() - t0) },
        note: l.tls ? 'Both over TLS: h2 and http/1.1 chosen by ALPN (RFC 7301).' : 'Cleartext: HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3), which browsers never speak: they use HTTP/2 over TLS only.',
      }
    })
  }

  /** `edgebox inspect --json` of a path on this listener: the CLI in a child process, with a deadline and an output bound. */
  async function inspect(ctx: Context) {
    const p = params(ctx, ['path'])
    const target = pathParam(p, prefix, '/lab/journey.html')
    const l = listenerOf(ctx)
    const url = `${originOf(l)}${target}`
    const args = [EDGEBOX_BIN, 'inspect', '--json', '--timeout', '5', ...(l.tls ? ['--insecure', ...(existsSync(caFile) ? ['--ca', caFile] : [])] : []), url]
    return bounded(INSPECT_DEADLINE_MS, 'edgebox inspect', (scope) =>
      new Promise((resolve, reject) => {
        const child = scope.add(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), (c) => void c.kill('SIGKILL'))
        const out: Buffer[] = []
        const err: Buffer[] = []
        let size = 0
        child.stdout.on('data', (c: Buffer) => {
          size += c.length
          if (size > INSPECT_MAX_OUTPUT) return void child.kill('SIGKILL')
          out.push(c)
        })
        child.stderr.on('data', (c: Buffer) => err.length < 64 && err.push(c))
        child.on('error', (e) => reject(new Refusal(502, `edgebox inspect could not start: ${e.message}`)))
        child.on('close', (code) => {
          const stderr = Buffer.concat(err).toString('utf8').slice(0, 2000).trim()
          if (size > INSPECT_MAX_OUTPUT) return reject(new Refusal(502, `edgebox inspect wrote more than ${INSPECT_MAX_OUTPUT} bytes`))
          let report: unknown = null
          try {
            report = JSON.parse(Buffer.concat(out).toString('utf8'))
          } catch {
            return reject(new Refusal(502, `edgebox inspect exited ${code} without a JSON report${stderr ? `: ${stderr}` : ''}`))
          }
          resolve({ url, command: `edgebox inspect ${args.slice(2).join(' ')}`, exitCode: code, report, ...(stderr ? { stderr } : {}) })
        })
      }),
    )
  }

  const heavy: Record<string, (ctx: Context) => Promise<unknown>> = { connections, hol, dns, exchange, inspect }

  async function runHeavy(ctx: Context, name: string): Promise<void> {
    if (busy !== null) throw new Refusal(503, `another measurement (${busy}) is running; try again in a moment`, { 'retry-after': '1' })
    busy = name
    let result: unknown
    try {
      result = await heavy[name]!(ctx)
    } catch (err) {
      if (err instanceof Refusal) throw err
      // a connection to this very listener failed (refused, reset): say which measurement and why
      throw new Refusal(502, `the ${name} measurement failed: ${(err as Error).message}`)
    } finally {
      busy = null
    }
    json(ctx, 200, result)
  }

  function json(ctx: Context, status: number, body: unknown, headers: Record<string, string> = {}): void {
    ctx.send(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }, JSON.stringify(body))
  }

  async function cache(ctx: Context): Promise<void> {
    const l = listenerOf(ctx)
    const tier = ctx.path.startsWith(edgePrefix) ? await edgeFor(l) : parent
    const name = ctx.path.slice((tier === parent ? parentPrefix : edgePrefix).length)
    if (!OBJECT.test(name)) throw new Refusal(404, `no demo object ${JSON.stringify(name)}: names are 1 to 40 of a-z, 0-9 and -`)
    return tier.handle(ctx)
  }

  return {
    kind: 'lab',
    methods: ['GET', 'HEAD'],
    async handle(ctx: Context) {
      const rest = ctx.path.slice(prefix.length)
      try {
        if (rest === 'ping') return await ping(ctx)
        if (Object.hasOwn(heavy, rest)) return await runHeavy(ctx, rest)
        if (ctx.path.startsWith(edgePrefix) || ctx.path.startsWith(parentPrefix)) return await cache(ctx)
        throw new Refusal(404, `no journey endpoint ${ctx.path} (${['ping', ...Object.keys(heavy), 'cache/edge/<name>'].map((e) => prefix + e).join(', ')})`)
      } catch (err) {
        if (!(err instanceof Refusal)) throw err
        json(ctx, err.status, { error: err.message }, err.headers)
      }
    },
    async close() {
      await parent.close?.()
      for (const edge of edges.values()) await edge.then((e) => e.close?.(), () => {})
      await new Promise<void>((resolve) => {
        origin.close(() => resolve())
        origin.closeAllConnections()
      })
    },
  }
}

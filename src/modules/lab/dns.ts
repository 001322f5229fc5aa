import http from 'node:http'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { Handler } from '../../core/types.ts'
import { toText } from '../../dns/names.ts'
import { questionOf, typeName } from '../../dns/message.ts'
import { recordText } from '../../dns/present.ts'
import { Resolver } from '../../dns/resolver.ts'
import { systemClock } from '../../core/clock.ts'

/**
 * `lab: { demo: 'dns' }`: the DNS lab page's helpers (lab/www/lab/dns.html).
 *
 *   GET  <prefix>state                    the demo edges: address, port, up, requests
 *   POST <prefix>edges/<name>/stop|start  stop or restart a demo edge (the load balancer's health checks see it)
 *   GET  <prefix>trace?name=&type=        an iterative resolution from the lab's root, each step (server, zone, question, answer)
 *
 * The demo edges are tiny HTTP servers on loopback addresses of their own
 * (127.0.0.2, 127.0.0.3), all on `edges.port`: an A record names an address,
 * never a port, so two edges can only differ by address. They live as long
 * as any configuration uses them (a reload keeps them running).
 */

export interface DnsDemoConfig {
  edges: { names: readonly string[]; addresses: readonly string[]; port: number }
  /** The lab hierarchy's root server and the port every authority listens on. */
  root: { address: string; port: number }
}

interface DemoEdge {
  readonly name: string
  readonly address: string
  readonly port: number
  server: http.Server | null
  requests: number
  users: number
}

/** Running demo edges by address:port, shared by the generations of a reload. */
const running = new Map<string, DemoEdge>()

function startEdge(e: DemoEdge): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      e.requests++
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-edge': e.name })
      res.end(`demo edge ${e.name} (${e.address}:${e.port})\n`)
    })
    server.keepAliveTimeout = 1000
    server.once('error', reject)
    server.listen(e.port, e.address, () => {
      server.off('error', reject)
      e.server = server
      resolve()
    })
  })
}

function stopEdge(e: DemoEdge): Promise<void> {
  const server = e.server
  e.server = null
  if (!server) return Promise.resolve()
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

export async function createDnsDemo(prefix: string, cfg: DnsDemoConfig): Promise<Handler> {
  const edges: DemoEdge[] = []
  try {
    for (const [i, address] of cfg.edges.addresses.entries()) {
      const k = `${address}:${cfg.edges.port}`
      let e = running.get(k)
      if (!e) {
        e = { name: cfg.edges.names[i] ?? `edge-${i + 1}`, address, port: cfg.edges.port, server: null, requests: 0, users: 0 }
        await startEdge(e)
        running.set(k, e)
      }
      e.users++
      edges.push(e)
    }
  } catch (err) {
    await release(edges)
    const e = err as NodeJS.ErrnoException
    throw new Error(`the DNS lab's demo edges cannot listen on port ${cfg.edges.port} (${e.code ?? e.message})`)
  }

  function state(ctx: Context): void {
    const body = { edges: edges.map((e) => ({ name: e.name, address: e.address, port: e.port, up: e.server !== null, requests: e.requests })), root: `${cfg.root.address}:${cfg.root.port}` }
    ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(body))
  }

  async function trace(ctx: Context): Promise<void> {
    const params = new URLSearchParams(ctx.query.slice(1))
    const nameText = params.get('name') ?? 'www.edgebox.test'
    const q = questionOf(nameText, params.get('type') ?? 'A')
    if ('problem' in q) throw httpError('EB_ERR_BAD_REQUEST', q.problem)
    const { labels, type } = q
    // a resolver of its own, with nothing cached and no minimisation: every step from the root, each asked the whole name
    const resolver = new Resolver({ rootHints: [{ name: 'a.root-servers.net.', address: cfg.root.address }], authorityPort: cfg.root.port, cacheSize: 1024 * 1024, timeout: 1000, qnameMinimisation: false, prefetch: false, serveStale: { enabled: false, maxStale: 0 }, forward: [] }, systemClock)
    const r = await resolver.resolve(labels, type)
    const rcodes = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED']
    const body = { question: `${toText(labels)} ${typeName(type)}`, rcode: rcodes[r.rcode] ?? String(r.rcode), steps: r.steps, answer: r.answer.flat().map(recordText), authority: r.authority.flat().map(recordText), ...(r.why ? { why: r.why } : {}) }
    ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(body))
  }

  return {
    kind: 'lab',
    methods: ['GET', 'HEAD', 'POST'],
    async handle(ctx: Context) {
      const rest = ctx.path.slice(prefix.length)
      const read = ctx.method === 'GET' || ctx.method === 'HEAD'
      if (rest === 'state' && read) return state(ctx)
      if (rest === 'trace' && read) return trace(ctx)
      const m = /^edges\/([a-z0-9-]{1,32})\/(stop|start)$/.exec(rest)
      if (m && ctx.method === 'POST') {
        const e = edges.find((x) => x.name === m[1])
        if (!e) throw httpError('EB_ERR_NOT_FOUND', `no demo edge ${m[1]} (${edges.map((x) => x.name).join(', ')})`)
        if (m[2] === 'stop') await stopEdge(e)
        else if (!e.server) await startEdge(e)
        return state(ctx)
      }
      if (rest === 'state' || rest === 'trace') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'GET, HEAD' })
      if (m) throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'POST' })
      throw httpError('EB_ERR_NOT_FOUND', `no lab endpoint ${ctx.path}`)
    },
    async close() {
      await release(edges)
    },
  }
}

/** This configuration no longer uses these edges; the last user stops them. */
async function release(edges: DemoEdge[]): Promise<void> {
  for (const e of edges.splice(0)) {
    if (--e.users > 0) continue
    running.delete(`${e.address}:${e.port}`)
    await stopEdge(e)
  }
}

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import type { ConnectionStats } from '../../src/admin/metrics.ts'
import { validateConfig } from '../../src/config/load.ts'
import type { Pipeline } from '../../src/core/pipeline.ts'
import type { Req, Res } from '../../src/core/types.ts'
import { createListener, type Listener, type TlsRuntime } from '../../src/server/listener.ts'
import { testCa } from '../helpers/certs.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * Connections counted by the listeners (HTTP/1.1, HTTP/2 over h2c and over
 * TLS by ALPN, TLS handshakes and resumptions), on real loopback sockets;
 * then the whole of it through Edgebox: answers and connections on the
 * admin listener's GET /metrics.
 */

const TIMEOUT = 5_000

/** Records what a listener reports. */
function recorder() {
  const events: string[] = []
  const stats: ConnectionStats = {
    opened: (p) => void events.push(`open ${p}`),
    closed: (p) => void events.push(`close ${p}`),
    tlsHandshake: (resumed) => void events.push(`tls resumed=${resumed}`),
  }
  return { events, stats }
}

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A pipeline that answers every request `ok`. */
const okPipeline: Pipeline = {
  handle(_req: Req, res: Res) {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' })
    res.end('ok')
  },
  acceptsUpgrade: () => false,
  upgrade: (_req, socket) => void socket.destroy(),
  connect: (_req, socket) => void socket.destroy(),
}

function count(events: readonly string[], e: string): number {
  return events.filter((x) => x === e).length
}

/** Two requests on one kept-alive HTTP/1.1 connection, then the connection closed. */
async function twoOnOneH1(url: string, agentOpts: http.AgentOptions & { ca?: string } = {}): Promise<void> {
  const u = new URL(url)
  const mod = u.protocol === 'https:' ? await import('node:https') : http
  const agent = new mod.Agent({ keepAlive: true, maxSockets: 1, ...agentOpts })
  const get = () =>
    new Promise<number>((resolve, reject) => {
      mod.get(url, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode!))
      }).on('error', reject)
    })
  assert.equal(await get(), 200)
  assert.equal(await get(), 200)
  agent.destroy()
}

/** Two requests on one HTTP/2 session, then the session closed. */
async function twoOnOneH2(origin: string, opts: http2.SecureClientSessionOptions = {}): Promise<void> {
  const session = http2.connect(origin, opts)
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/' })
      let status = 0
      s.on('response', (h) => (status = Number(h[':status'])))
      s.resume()
      s.on('end', () => resolve(status))
      s.on('error', reject)
      s.end()
    })
  assert.equal(await get(), 200)
  assert.equal(await get(), 200)
  await new Promise<void>((r) => session.close(() => r()))
}

describe('listeners count their connections', () => {
  const log = pino({ level: 'silent' })
  const opened: Listener[] = []
  after(async () => {
    await Promise.all(opened.map((l) => l.close(100)))
  })

  async function listen(listenInput: Record<string, unknown>, stats: ConnectionStats, tlsRt?: TlsRuntime): Promise<Listener> {
    const cfg = validateConfig({ listen: [{ host: '127.0.0.1', port: 0, ...listenInput }], ...(listenInput.tls ? { tls: { local: true } } : {}), sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] })
    const l = createListener(cfg.listen[0]!, cfg.limits, okPipeline, log, () => false, tlsRt, stats)
    await l.listen()
    opened.push(l)
    return l
  }

  test('cleartext with h2c: an HTTP/1.1 connection and an h2c session, each once however many requests, and each closed', async () => {
    const { events, stats } = recorder()
    const l = await listen({}, stats)
    await twoOnOneH1(l.url())
    await until(() => events.includes('close http/1.1'), 'the HTTP/1.1 connection to close')
    assert.deepEqual(events, ['open http/1.1', 'close http/1.1'])
    await twoOnOneH2(l.url().replace(/\/$/, ''))
    await until(() => events.includes('close h2'), 'the h2c session to close')
    assert.deepEqual(events, ['open http/1.1', 'close http/1.1', 'open h2', 'close h2'])
  })

  test('cleartext HTTP/1.1 only: every connection counted from its first byte on', async () => {
    const { events, stats } = recorder()
    const l = await listen({ protocols: ['http/1.1'] }, stats)
    await twoOnOneH1(l.url())
    await until(() => count(events, 'close http/1.1') === 1, 'the first connection to close')
    await twoOnOneH1(l.url())
    await until(() => count(events, 'close http/1.1') === 2, 'the second connection to close')
    assert.deepEqual(events, ['open http/1.1', 'close http/1.1', 'open http/1.1', 'close http/1.1'])
  })

  test('TLS: handshakes (a resumed one too), HTTP/1.1 and h2 by ALPN', async () => {
    const ca = await testCa()
    const leaf = await ca.leaf(['127.0.0.1'])
    const cfg = validateConfig({ tls: { local: true }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] })
    const rt: TlsRuntime = {
      certificates: () => ({ certificates: [], contextFor: () => null, defaultOptions: { cert: leaf.certPem, key: leaf.keyPem, minVersion: 'TLSv1.2' } }),
      resumption: { attach() {}, ticketKeys: () => undefined, close() {}, cached: () => 0 },
      config: cfg.tls,
    }
    const { events, stats } = recorder()
    const l = await listen({ tls: true }, stats, rt)
    const port = Number(new URL(l.url()).port)
    await twoOnOneH1(l.url(), { ca: ca.certPem })
    await until(() => events.includes('close http/1.1'), 'the HTTPS connection to close')
    assert.deepEqual(events, ['tls resumed=false', 'open http/1.1', 'close http/1.1'])
    await twoOnOneH2(`https://127.0.0.1:${port}`, { ca: ca.certPem })
    await until(() => events.includes('close h2'), 'the h2 session to close')
    assert.deepEqual(events.slice(3), ['tls resumed=false', 'open h2', 'close h2'])
    // a second connection with the first one's session (a TLS 1.3 ticket): resumed
    const session = await new Promise<Buffer>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, ALPNProtocols: ['http/1.1'] })
      s.once('session', (sess: Buffer) => {
        resolve(sess)
        s.end()
      })
      s.on('error', reject)
    })
    await until(() => count(events, 'close http/1.1') === 2, 'the first connection to close')
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, ALPNProtocols: ['http/1.1'], session })
      s.once('secureConnect', () => {
        assert.equal(s.isSessionReused(), true)
        s.end()
        resolve()
      })
      s.on('error', reject)
    })
    await until(() => count(events, 'close http/1.1') === 3, 'the resumed connection to close')
    assert.deepEqual(events.slice(6), ['tls resumed=false', 'open http/1.1', 'close http/1.1', 'tls resumed=true', 'open http/1.1', 'close http/1.1'])
  })
})

describe('GET /metrics on the admin listener', () => {
  let box: TestServer
  let admin: string
  let cleanup: () => void

  before(async () => {
    let dir: string
    ;({ dir, cleanup } = tempDir())
    writeFileSync(`${dir}/index.html`, '<!doctype html><title>m</title>\n')
    box = await startServer({ admin: { port: 0 }, sites: [{ routes: [{ path: '/', static: { root: dir } }] }] })
    admin = box.box.admin!.url
  })

  after(async () => {
    await box?.close()
    cleanup?.()
  })

  /** The sample lines of the admin listener's /metrics now. */
  async function scrape(): Promise<{ status: number; type: string | undefined; values: Map<string, number> }> {
    const r = await request('http/1.1', `${admin}metrics`)
    const values = new Map<string, number>()
    for (const line of r.text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue
      const cut = line.lastIndexOf(' ')
      values.set(line.slice(0, cut), Number(line.slice(cut + 1)))
    }
    return { status: r.status, type: r.headers['content-type'] as string | undefined, values }
  }

  test('answers by route, method and class, and connections by protocol, after traffic over HTTP/1.1 and h2c', async () => {
    assert.equal((await request('http/1.1', box.url)).status, 200)
    assert.equal((await request('h2c', box.url)).status, 200)
    assert.equal((await request('http/1.1', `${box.url}missing`)).status, 404)
    const route = 'site="sites[0]",route="sites[0].routes[0]"'
    // the access log is written once an answer is out, and the h2c session closes after its stream: scrape until both show (bounded)
    const settled = (m: Map<string, number>) => m.get(`edgebox_http_requests_total{${route},method="GET",code="4xx"}`) === 1 && m.get('edgebox_open_connections{protocol="h2"}') === 0
    let last = await scrape()
    const deadline = Date.now() + TIMEOUT
    while (!settled(last.values) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20))
      last = await scrape()
    }
    assert.equal(last.status, 200)
    assert.equal(last.type, 'text/plain; version=0.0.4; charset=utf-8')
    const v = last.values
    assert.equal(v.get(`edgebox_http_requests_total{${route},method="GET",code="2xx"}`), 2)
    assert.equal(v.get(`edgebox_http_requests_total{${route},method="GET",code="4xx"}`), 1)
    assert.equal(v.get(`edgebox_http_request_duration_seconds_count{${route}}`), 3)
    assert.ok((v.get('edgebox_connections_total{protocol="http/1.1"}') ?? 0) >= 2, 'two HTTP/1.1 connections to the site')
    assert.ok((v.get('edgebox_connections_total{protocol="h2"}') ?? 0) >= 1, 'one h2c session')
    assert.equal(v.get('edgebox_open_connections{protocol="h2"}'), 0)
    assert.equal(v.get('edgebox_open_connections{protocol="websocket"}'), 0)
    assert.equal(v.get('edgebox_open_connections{protocol="sse"}'), 0)
    assert.ok(v.has('process_cpu_seconds_total'))
  })

  test('/metrics is only on the admin listener, never on a site', async () => {
    const r = await request('http/1.1', `${box.url}metrics`)
    assert.equal(r.status, 404)
    assert.doesNotMatch(r.text, /edgebox_http_requests_total/)
  })
})

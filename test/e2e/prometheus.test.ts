import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { certDir, testCa } from '../helpers/certs.ts'
import { lines, query, udp } from '../helpers/dns.ts'
import { checkMetrics, prometheusSkip, startPrometheus, type RunningPrometheus, type Sample } from '../helpers/prometheus.ts'
import { openSse, type SseStream } from '../helpers/realtime-clients.ts'
import { request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * Edgebox's `/metrics` as Prometheus sees it (docs/admin.md, "The metrics"):
 * promtool lints the text a real Edgebox renders after traffic of every
 * kind (static files, a proxy with a cache, failing upstreams and retries,
 * a realtime hub, refusals, TLS with resumption, DNS, real-user monitoring);
 * a real Prometheus scrapes the admin listener every second (from loopback,
 * with the Host of the target, as the admin access rules want; with the
 * admin token where one is set); and every query of the Grafana dashboard
 * (docs/grafana/edgebox.json) runs against that Prometheus and finds data.
 */

const ROOT = path.join(import.meta.dirname, '..', '..')
const DASHBOARD = path.join(ROOT, 'docs', 'grafana', 'edgebox.json')
const ADMIN_DOC = path.join(ROOT, 'docs', 'admin.md')
const TOKEN = 'a'.repeat(20) + '-admin-token-0123456789'
const PURGE_TOKEN = 'purge-token-0123456789'
/** How long the dashboard's queries may take to find the traffic's data (Prometheus scrapes every second). */
const DATA_TIMEOUT = 40_000

/** Every PromQL expression of the dashboard, with its panel's title. */
interface DashboardQuery {
  readonly panel: string
  readonly expr: string
}

/** Reads every `expr` of every panel's targets (rows' nested panels included). */
function dashboardQueries(dashboard: unknown): DashboardQuery[] {
  const out: DashboardQuery[] = []
  const walk = (panels: unknown): void => {
    for (const p of (panels ?? []) as Array<{ title?: string; targets?: Array<{ expr?: string }>; panels?: unknown }>) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string') out.push({ panel: p.title ?? '', expr: t.expr })
      walk(p.panels)
    }
  }
  walk((dashboard as { panels?: unknown }).panels)
  return out
}

/**
 * A dashboard expression as Prometheus itself takes it: Grafana's interval
 * variables become `1m` (what `$__rate_interval` is with a data source's
 * default scrape interval of 15 s: four of them; here sixty scrapes), the
 * dashboard's own variables their "All" value
 * (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables).
 */
function asPromQL(expr: string, allValues: Readonly<Record<string, string>>): string {
  return expr.replace(/\$(?:\{(\w+)(?::\w+)?\}|(\w+))/g, (_match, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare!
    if (name === '__rate_interval' || name === '__interval' || name === '__range') return '1m'
    const value = allValues[name]
    if (value === undefined) throw new Error(`the dashboard uses $${name}, which is neither a Grafana interval nor one of its variables`)
    return value
  })
}

/**
 * The metric names docs/admin.md's tables list (its section "The metrics"); a name written `_x_total`
 * after a full one is that name with as many trailing words replaced
 * (`edgebox_upstream_attempts_total`, `_failures_total`).
 */
function documentedMetrics(markdown: string): Map<string, string> {
  const section = markdown.split('\n## The metrics (')[1]!.split('\n## ')[0]!
  const names = new Map<string, string>()
  for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
    const [cells, type] = [row.split('|')[1]!, row.split('|')[2]!.trim()]
    let full = ''
    for (const [, name] of cells.matchAll(/`([a-z_]+)`/g)) {
      if (!name!.startsWith('_')) full = name!
      else full = full.split('_').slice(0, -name!.slice(1).split('_').length).concat(name!.slice(1).split('_')).join('_')
      names.set(full, type)
    }
  }
  return names
}

/**
 * The metric names an expression selects: its words once strings, label
 * matchers, ranges, grouping clauses, function calls, keywords and numbers
 * are set aside.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/[a-zA-Z_][a-zA-Z0-9_]*\s*\(/g, '(')
  const keywords = new Set(['or', 'and', 'unless', 'bool', 'offset'])
  const words = [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0])
  return [...new Set(words.filter((w) => !keywords.has(w)))]
}

const skip = prometheusSkip()

describe('Prometheus and the Grafana dashboard', { skip }, () => {
  let box: TestServer
  let tokenBox: TestServer
  let prom: RunningPrometheus
  let upstream: http.Server
  let sse: SseStream | undefined
  let files: ReturnType<typeof certDir>
  let adminPort: number
  let tokenAdminPort: number
  let tlsPort: number

  before(async () => {
    const ca = await testCa()
    const leaf = await ca.leaf(['localhost', '127.0.0.1'])
    files = certDir({ 'a.crt': leaf.certPem, 'a.key': leaf.keyPem })
    mkdirSync(files.path('www'))
    writeFileSync(files.path('www/index.html'), '<!doctype html><title>metrics</title><p>hello</p>\n')
    writeFileSync(files.path('www/a.txt'), 'x'.repeat(2000))
    upstream = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60' }).end(JSON.stringify({ path: req.url })))
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const upPort = (upstream.address() as AddressInfo).port
    const live = `http://127.0.0.1:${upPort}`
    // a port nothing listens on: attempts to it fail (refused) and are retried on the live upstream
    const dead = await new Promise<string>((resolve) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo
        s.close(() => resolve(`http://127.0.0.1:${port}`))
      })
    })
    box = await startServer({
      admin: { port: 0 },
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, tls: true }],
      tls: { certificates: [{ cert: files.path('a.crt'), key: files.path('a.key') }] },
      dns: {
        listen: { host: '127.0.0.1', port: 0 },
        zones: [{ origin: 'edge.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '127.0.0.1' }, { name: 'api', type: 'A', data: '127.0.0.1' }] }],
        balance: [{ name: 'www.edge.test', edges: [{ name: 'loopback', addresses: ['127.0.0.1'] }], check: { kind: 'tcp', port: upPort, interval: 60_000, timeout: 1_000 } }],
      },
      sites: [
        {
          rum: true,
          origins: ['https://app.example.test'],
          cors: {},
          routes: [
            { path: '/api/', proxy: { upstreams: [live], cache: { purge: { token: PURGE_TOKEN } } } },
            { path: '/flaky/', proxy: { upstreams: [dead, live], retries: { attempts: 1, budget: 1 } } },
            { path: '/form/', proxy: { upstreams: [live] }, csrf: true },
            { path: '/limited/', static: { root: files.path('www') }, rateLimit: { requests: 1, per: '1m' } },
            { path: '/live/', realtime: { channels: { 'c:*': { history: { size: 10, age: '1m' } } } } },
            { path: '/', static: { root: files.path('www') } },
          ],
        },
      ],
    })
    adminPort = box.box.admin!.port
    tlsPort = Number(new URL(box.box.urls[1]!).port)
    tokenBox = await startServer({ admin: { port: 0, token: TOKEN }, sites: [{ routes: [{ path: '/', static: { root: files.path('www') } }] }] })
    tokenAdminPort = tokenBox.box.admin!.port
    await traffic()
    prom = await startPrometheus([
      { job: 'edgebox', address: `127.0.0.1:${adminPort}` },
      { job: 'edgebox-token', address: `127.0.0.1:${tokenAdminPort}`, token: TOKEN },
      { job: 'edgebox-wrong-token', address: `127.0.0.1:${tokenAdminPort}`, token: 'w'.repeat(40), expect: 'down' },
    ])
  })

  after(async () => {
    sse?.close()
    await prom?.stop()
    await box?.close()
    await tokenBox?.close()
    await new Promise((r) => upstream?.close(r))
    files?.cleanup()
  })

  /** A TLS connection to the TLS listener that sends one request; resolves whether it resumed `session`, and the session to resume next. */
  function tlsExchange(session?: Buffer): Promise<{ resumed: boolean; session: Buffer | undefined }> {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ port: tlsPort, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...(session ? { session } : {}) })
      const timer = setTimeout(() => (sock.destroy(), reject(new Error('no TLS session within 5 s'))), 5_000)
      let ticket: Buffer | undefined
      let resumed = false
      sock.on('session', (s: Buffer) => (ticket = s))
      sock.on('secureConnect', () => {
        resumed = sock.isSessionReused()
        sock.write('GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
      })
      sock.on('data', () => {})
      sock.on('error', reject)
      sock.on('close', () => {
        clearTimeout(timer)
        resolve({ resumed, session: ticket ?? sock.getSession() })
      })
    })
  }

  /** Traffic of every kind the dashboard shows, each answer checked (bounded: a few dozen requests). */
  async function traffic(): Promise<void> {
    const url = box.url
    for (const protocol of ['http/1.1', 'h2c'] as const) {
      assert.equal((await request(protocol, url)).status, 200)
      assert.equal((await request(protocol, `${url}a.txt`)).status, 200)
      assert.equal((await request(protocol, `${url}missing.txt`)).status, 404)
      assert.equal((await request(protocol, `${url}a.txt`, { method: 'HEAD' })).status, 200)
    }
    // the cache: a miss, then hits; a purge
    const cached = await request('http/1.1', `${url}api/item`)
    assert.equal(cached.status, 200)
    assert.match(String(cached.headers['cache-status']), /fwd=miss/)
    for (let i = 0; i < 3; i++) assert.match(String((await request('http/1.1', `${url}api/item`)).headers['cache-status']), /hit/)
    const purge = await request('http/1.1', `${url}api/item`, { method: 'PURGE', headers: { authorization: `Bearer ${PURGE_TOKEN}` } })
    assert.equal(purge.status, 200, purge.text)
    assert.equal((await request('http/1.1', `${url}api/item`)).status, 200)
    // failing attempts on the dead upstream, each retried on the live one
    for (let i = 0; i < 4; i++) assert.equal((await request('http/1.1', `${url}flaky/x${i}`)).status, 200)
    // refusals: a rate limit, CSRF, CORS
    assert.equal((await request('http/1.1', `${url}limited/a.txt`)).status, 200)
    assert.equal((await request('http/1.1', `${url}limited/a.txt`)).status, 429)
    const forged = await request('http/1.1', `${url}form/transfer`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body: 'to=eve' })
    assert.equal(forged.status, 403, forged.text)
    const foreign = await request('http/1.1', `${url}a.txt`, { headers: { origin: 'https://evil.example' } })
    assert.equal(foreign.status, 200)
    assert.equal(foreign.headers['access-control-allow-origin'], undefined)
    // the realtime hub: one SSE subscriber kept open, and messages delivered to it
    sse = openSse('http/1.1', `${url}live/sse?ch=c:news`)
    await sse.ready
    assert.equal(sse.status, 200)
    await sse.wait((d) => d.some((e) => e.t === 'sub'))
    for (let i = 0; i < 3; i++) {
      const r = await request('http/1.1', `${url}live/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ t: 'pub', ch: 'c:news', d: i }) })
      assert.equal(r.status, 200, r.text)
    }
    await sse.wait((d) => d.filter((e) => e.t === 'msg').length === 3)
    // TLS: a full handshake, then one that resumes its session
    const first = await tlsExchange()
    assert.equal(first.resumed, false)
    assert.ok(first.session, 'the server sent a session ticket')
    assert.equal((await tlsExchange(first.session)).resumed, true)
    // DNS: an answer and a name that does not exist
    const dnsPort = box.box.dns!.port
    assert.match(lines(await udp(dnsPort, query('api.edge.test', 'A'))).join('\n'), /^api\.edge\.test \d+ A 127\.0\.0\.1$/)
    assert.equal((await udp(dnsPort, query('nothing.edge.test', 'A'))).rcode, 'NXDOMAIN')
    // real-user monitoring: a beacon taken, one refused
    const beacon = { v: 1, pv: 'pv-metrics', page: '/', events: [{ t: 'vital', at: 1200, name: 'LCP', value: 1180.5, rating: 'good' }] }
    assert.equal((await request('http/1.1', `${url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(beacon) })).status, 204)
    assert.equal((await request('http/1.1', `${url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":1' })).status, 400)
  }

  test('promtool check metrics: the text after traffic of every kind has no problem; every documented metric is there with its type', async () => {
    const r = await request('http/1.1', `${box.box.admin!.url}metrics`)
    assert.equal(r.status, 200, r.text)
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    const lint = await checkMetrics(r.text)
    assert.deepEqual(lint, { code: 0, output: '' }, lint.output)
    const types = new Map([...r.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
    const documented = documentedMetrics(readFileSync(ADMIN_DOC, 'utf8'))
    assert.ok(documented.size >= 26, `docs/admin.md lists ${documented.size} metrics`)
    for (const [name, type] of documented) assert.equal(types.get(name), type, `${name}: /metrics has TYPE ${types.get(name)}, docs/admin.md says ${type}`)
  })

  test('Prometheus scrapes the admin listener: up from loopback without a token; with the admin token where one is set; a wrong token is refused', async () => {
    const targets = await prom.targets()
    const byJob = new Map(targets.map((t) => [t.labels.job, t]))
    assert.equal(byJob.get('edgebox')!.health, 'up', byJob.get('edgebox')!.lastError)
    assert.equal(byJob.get('edgebox')!.scrapeUrl, `http://127.0.0.1:${adminPort}/metrics`)
    assert.equal(byJob.get('edgebox-token')!.health, 'up', byJob.get('edgebox-token')!.lastError)
    assert.equal(byJob.get('edgebox-wrong-token')!.health, 'down')
    assert.match(byJob.get('edgebox-wrong-token')!.lastError, /401/)
    const up = await prom.query('up')
    assert.equal(up.status, 'success')
    const values = new Map((up.status === 'success' ? (up.data.result as Sample[]) : []).map((s) => [s.metric.job, s.value[1]]))
    assert.deepEqual(Object.fromEntries(values), { 'edgebox': '1', 'edgebox-token': '1', 'edgebox-wrong-token': '0' })
  })

  test('every query of the Grafana dashboard runs, finds data, and names only documented metrics', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { templating: { list: Array<{ name: string; allValue?: string }> }; __inputs: Array<{ name: string }> }
    assert.deepEqual(dashboard.__inputs.map((i) => i.name), ['DS_PROMETHEUS'])
    const allValues = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v.allValue ?? '.*']))
    const queries = dashboardQueries(dashboard)
    assert.ok(queries.length >= 30, `${queries.length} queries`)

    // every metric it names is in docs/admin.md's table or prom-client's process and Node.js metrics, and every documented one is shown
    const documented = documentedMetrics(readFileSync(ADMIN_DOC, 'utf8'))
    const used = new Set<string>()
    for (const q of queries) {
      for (const name of metricNames(asPromQL(q.expr, allValues))) {
        const family = name.replace(/_(bucket|sum|count)$/, '')
        assert.ok(documented.has(family) || /^(process|nodejs)_/.test(name), `${q.panel}: ${name} is not in docs/admin.md's table`)
        used.add(family)
      }
    }
    assert.deepEqual([...documented.keys()].filter((n) => !used.has(n)), [], 'metrics the dashboard does not show')

    // each query, as Prometheus takes it, until it has a result (the traffic is in; the scrapes come each second)
    const deadline = Date.now() + DATA_TIMEOUT
    const results = new Map<string, Sample[]>()
    for (const q of queries) {
      const promql = asPromQL(q.expr, allValues)
      for (;;) {
        const a = await prom.query(promql)
        assert.equal(a.status, 'success', `${q.panel}: ${promql}: ${a.status === 'error' ? a.error : ''}`)
        const result = a.status === 'success' ? (a.data.result as Sample[]) : []
        if (result.length > 0) {
          results.set(promql, result)
          break
        }
        assert.ok(Date.now() < deadline, `${q.panel}: ${promql} found no data within ${DATA_TIMEOUT} ms`)
        await new Promise((r) => setTimeout(r, 250))
      }
    }

    // the labels the traffic fed are the ones the panels split by
    const labels = (exprPart: string, label: string) => {
      const hit = [...results].find(([promql]) => promql.includes(exprPart))
      assert.ok(hit, `no query with ${exprPart}`)
      return new Set(hit[1].map((s) => s.metric[label]))
    }
    assert.deepEqual(labels('sum by (code) (rate(edgebox_http_requests_total', 'code'), new Set(['2xx', '4xx']))
    assert.deepEqual(labels('sum by (kind) (rate(edgebox_refusals_total', 'kind'), new Set(['rate_limit', 'csrf', 'cors']))
    assert.deepEqual(labels('sum by (rcode) (rate(edgebox_dns_queries_total', 'rcode'), new Set(['NOERROR', 'NXDOMAIN']))
    assert.ok(labels('sum by (outcome) (rate(edgebox_cache_requests_total', 'outcome').has('hit'))
    assert.deepEqual(labels('sum by (resumed) (rate(edgebox_tls_handshakes_total', 'resumed'), new Set(['true', 'false']))
    const sseGauge = [...results].find(([promql]) => promql.startsWith('sum by (transport) (edgebox_realtime_connections'))![1].find((s) => s.metric.transport === 'sse')
    assert.equal(sseGauge?.value[1], '1', 'the open SSE subscriber')
  })

  test('what Prometheus stored is what the traffic did, counter by counter', async () => {
    // the traffic ended before Prometheus started: every counter's latest sample is its final value.
    // Exact where the traffic fixes it; "at least" where the balancer's picks or the static file cache decide.
    const expected: Array<[string, '=' | '>=', number]> = [
      // answers: 6 static 2xx and 2 404 over two protocols, 6 through the cache (a purge among them), 4 retried, 1 rate-limited,
      // 1 CSRF refusal, 1 foreign origin, 3 publishes, 2 over TLS, 1 beacon taken and 1 refused (the open SSE stream is not yet an answer)
      ['sum(edgebox_http_requests_total{job="edgebox", code="2xx"})', '=', 24],
      ['sum(edgebox_http_requests_total{job="edgebox", code="4xx"})', '=', 5],
      ['sum(edgebox_http_request_duration_seconds_count{job="edgebox"})', '=', 29],
      ['sum(edgebox_http_requests_total{job="edgebox", method="HEAD"})', '=', 2],
      ['sum(edgebox_http_response_bytes_total{job="edgebox"})', '>=', 6 * 2000],
      ['sum(edgebox_cache_requests_total{job="edgebox", outcome="hit"})', '>=', 3],
      ['sum(edgebox_cache_purged_total{job="edgebox"})', '=', 1],
      ['sum(edgebox_upstream_failures_total{job="edgebox"})', '>=', 1],
      ['sum(edgebox_upstream_retries_total{job="edgebox"})', '>=', 1],
      ['sum(edgebox_connections_total{job="edgebox", protocol="h2"})', '=', 4],
      ['sum(edgebox_tls_handshakes_total{job="edgebox", resumed="true"})', '=', 1],
      ['sum(edgebox_tls_handshakes_total{job="edgebox", resumed="false"})', '=', 1],
      ['sum(edgebox_open_connections{job="edgebox", protocol="sse"})', '=', 1],
      ['sum(edgebox_realtime_published_total{job="edgebox"})', '=', 3],
      ['sum(edgebox_realtime_delivered_total{job="edgebox"})', '=', 3],
      ['sum(edgebox_realtime_history_messages{job="edgebox"})', '=', 3],
      ['sum(edgebox_refusals_total{job="edgebox", kind="rate_limit"})', '=', 1],
      ['sum(edgebox_refusals_total{job="edgebox", kind="csrf"})', '=', 1],
      // the forged POST came from a foreign origin too: CORS refuses both it and the foreign GET
      ['sum(edgebox_refusals_total{job="edgebox", kind="cors"})', '=', 2],
      ['sum(edgebox_dns_queries_total{job="edgebox", rcode="NOERROR"})', '=', 1],
      ['sum(edgebox_dns_queries_total{job="edgebox", rcode="NXDOMAIN"})', '=', 1],
      ['sum(edgebox_rum_events_total{job="edgebox", kind="accepted"})', '=', 1],
      ['sum(edgebox_rum_dropped_total{job="edgebox", reason!="queue"})', '=', 1],
    ]
    const wrong: string[] = []
    for (const [expr, op, want] of expected) {
      const a = await prom.query(expr)
      assert.equal(a.status, 'success', expr)
      const value = a.status === 'success' ? Number((a.data.result as Sample[])[0]?.value[1] ?? NaN) : NaN
      if (op === '=' ? value !== want : !(value >= want)) wrong.push(`${expr} = ${value}, expected ${op} ${want}`)
    }
    assert.deepEqual(wrong, [])
  })
})

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { createMetrics, siteLabel, type MetricSources, type RouteViewSource } from '../../src/admin/metrics.ts'
import type { Context } from '../../src/core/context.ts'
import type { AccessLog } from '../../src/core/log.ts'
import type { HandlerAdmin, HandlerView } from '../../src/core/observe.ts'
import type { Route, Site } from '../../src/core/route.ts'

/**
 * The metrics (src/admin/metrics.ts): answers counted through the access
 * log into per-route slots resolved by prepare(), rendered in Prometheus's
 * text format with exact values; handler views, DNS, GSLB and RUM read at
 * scrape time; the overview, security and recent-error views; the
 * exposition checked by promtool where it is installed.
 */

const PROMTOOL = '/usr/bin/promtool'

function route(id: string): Route {
  return { id, prefix: '/', handler: {} as Route['handler'], access: [], beforeHandler: [], filters: [], upgradeChecks: [] }
}

function site(id: string, hosts: string[], routes: Route[]): Site {
  return { id, hosts, routes, filters: [], endpoints: {} as Site['endpoints'] }
}

/** What the metrics read of a Context, with its defaults; cast through unknown. */
function answer(fields: Record<string, unknown>): Context {
  return {
    route: null,
    site: null,
    method: 'GET',
    status: 200,
    bytes: 0,
    cache: '',
    rateLimited: false,
    csrfRefused: '',
    corsRefused: '',
    clientAddress: '192.0.2.1',
    host: 'a.test',
    rawPath: '/',
    error: undefined,
    upstream: '',
    ...fields,
  } as unknown as Context
}

function nullLog(): AccessLog & { written: Array<[Context, number]>; calls: string[] } {
  const written: Array<[Context, number]> = []
  const calls: string[] = []
  return {
    written,
    calls,
    write: (ctx, ms) => void written.push([ctx, ms]),
    flush: () => void calls.push('flush'),
    close: async () => void calls.push('close'),
    reopen: () => void calls.push('reopen'),
  }
}

/** The sample lines of an exposition: `name{labels}` → value. */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const cut = line.lastIndexOf(' ')
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)))
  }
  return out
}

/** The lines of edgebox's own metrics only. */
function own(body: string): Map<string, number> {
  return new Map([...samples(body)].filter(([k]) => k.startsWith('edgebox_')))
}

function setup(sources: MetricSources = {}) {
  const c = { t: 1_000_000 }
  const m = createMetrics({ sources, now: () => c.t, timer: false })
  const r0 = route('sites[0].routes[0]')
  const r1 = route('sites[0].routes[1]')
  const s0 = site('sites[0]', ['a.test', 'www.a.test'], [r0, r1])
  const s1 = site('sites[1]', [], [])
  const inner = nullLog()
  const log = m.wrapAccessLog(inner)
  return { m, c, r0, r1, s0, s1, inner, log }
}

test('answers are counted by site, route, method and status class, with exact histogram buckets, sum and bytes', async (t) => {
  const { m, r0, r1, s0, s1, log } = setup()
  t.after(() => m.close())
  m.prepare([s0, s1], () => [])
  log.write(answer({ route: r0, site: s0, method: 'GET', status: 200, bytes: 100 }), 3)
  log.write(answer({ route: r0, site: s0, method: 'GET', status: 204, bytes: 0 }), 5) // on the bound: le=0.005
  log.write(answer({ route: r0, site: s0, method: 'POST', status: 201, bytes: 7 }), 40)
  log.write(answer({ route: r0, site: s0, method: 'BREW', status: 418, bytes: 1 }), 20_000) // +Inf only
  log.write(answer({ route: r1, site: s0, method: 'HEAD', status: 304 }), 1)
  log.write(answer({ route: null, site: s0, method: 'GET', status: 404, bytes: 9 }), 1) // no route: the site's `none`
  log.write(answer({ route: null, site: s1, method: 'OPTIONS', status: 101 }), 1) // a site with no host: its id
  log.write(answer({ route: null, site: null, method: 'DELETE', status: 503 }), 1) // no site at all
  const v = own((await m.render()).body)
  const a0 = 'site="a.test",route="sites[0].routes[0]"'
  const want: Record<string, number> = {
    [`edgebox_http_requests_total{${a0},method="GET",code="2xx"}`]: 2,
    [`edgebox_http_requests_total{${a0},method="POST",code="2xx"}`]: 1,
    [`edgebox_http_requests_total{${a0},method="other",code="4xx"}`]: 1,
    'edgebox_http_requests_total{site="a.test",route="sites[0].routes[1]",method="HEAD",code="3xx"}': 1,
    'edgebox_http_requests_total{site="a.test",route="none",method="GET",code="4xx"}': 1,
    'edgebox_http_requests_total{site="sites[1]",route="none",method="OPTIONS",code="1xx"}': 1,
    'edgebox_http_requests_total{site="none",route="none",method="DELETE",code="5xx"}': 1,
    [`edgebox_http_request_duration_seconds_bucket{${a0},le="0.005"}`]: 2,
    [`edgebox_http_request_duration_seconds_bucket{${a0},le="0.025"}`]: 2,
    [`edgebox_http_request_duration_seconds_bucket{${a0},le="0.05"}`]: 3,
    [`edgebox_http_request_duration_seconds_bucket{${a0},le="10"}`]: 3,
    [`edgebox_http_request_duration_seconds_bucket{${a0},le="+Inf"}`]: 4,
    [`edgebox_http_request_duration_seconds_sum{${a0}}`]: 20.048,
    [`edgebox_http_request_duration_seconds_count{${a0}}`]: 4,
    [`edgebox_http_response_bytes_total{${a0}}`]: 108,
    'edgebox_http_response_bytes_total{site="a.test",route="none"}': 9,
  }
  for (const [k, n] of Object.entries(want)) assert.equal(v.get(k), n, k)
  // exactly these request series: nothing for cells or routes without answers
  assert.deepEqual([...v.keys()].filter((k) => k.startsWith('edgebox_http_requests_total')).sort(), Object.keys(want).filter((k) => k.startsWith('edgebox_http_requests_total')).sort())
  assert.equal(siteLabel(s0), 'a.test')
  assert.equal(siteLabel(s1), 'sites[1]')
})

test('the wrapped access log writes every answer to the inner log, after counting it, and passes flush, close and reopen on', async (t) => {
  const { m, r0, s0, inner, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  const ctx = answer({ route: r0, site: s0 })
  log.write(ctx, 12.5)
  assert.deepEqual(inner.written, [[ctx, 12.5]])
  log.flush()
  log.reopen()
  await log.close()
  assert.deepEqual(inner.calls, ['flush', 'reopen', 'close'])
})

test('cache outcomes and refusals by site and route; security() tallies them and the clients rate limits refused most', async (t) => {
  const { m, c, r0, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  for (const [label, n] of [['HIT', 3], ['MISS', 2], ['EXPIRED', 1], ['STALE', 1], ['REVALIDATED', 1], ['BYPASS', 1], ['SOMETHING', 4]] as const) {
    for (let i = 0; i < n; i++) log.write(answer({ route: r0, site: s0, cache: label }), 1)
  }
  for (let i = 0; i < 3; i++) log.write(answer({ route: r0, site: s0, status: 429, rateLimited: true, clientAddress: '198.51.100.7' }), 1)
  c.t += 5000
  log.write(answer({ route: r0, site: s0, status: 429, rateLimited: true, clientAddress: '198.51.100.8' }), 1)
  log.write(answer({ route: r0, site: s0, status: 403, csrfRefused: 'cross-site POST' }), 1)
  log.write(answer({ route: r0, site: s0, status: 200, corsRefused: 'origin not allowed' }), 1)
  log.write(answer({ route: r0, site: s0, status: 200, corsRefused: 'origin not allowed' }), 1)
  const v = own((await m.render()).body)
  const a0 = 'site="a.test",route="sites[0].routes[0]"'
  assert.equal(v.get(`edgebox_cache_requests_total{${a0},outcome="hit"}`), 3)
  assert.equal(v.get(`edgebox_cache_requests_total{${a0},outcome="miss"}`), 3) // MISS and EXPIRED
  assert.equal(v.get(`edgebox_cache_requests_total{${a0},outcome="stale"}`), 1)
  assert.equal(v.get(`edgebox_cache_requests_total{${a0},outcome="revalidated"}`), 1)
  assert.equal(v.get(`edgebox_cache_requests_total{${a0},outcome="bypass"}`), 1)
  assert.equal([...v.keys()].filter((k) => k.startsWith('edgebox_cache_requests_total')).length, 5)
  assert.equal(v.get(`edgebox_refusals_total{${a0},kind="rate_limit"}`), 4)
  assert.equal(v.get(`edgebox_refusals_total{${a0},kind="csrf"}`), 1)
  assert.equal(v.get(`edgebox_refusals_total{${a0},kind="cors"}`), 2)
  const sec = m.security(10)
  assert.deepEqual(sec.refusals, { rateLimit: 4, csrf: 1, cors: 2 })
  assert.deepEqual(sec.rateLimited, [
    { client: '198.51.100.7', count: 3, last: 1_000_000 },
    { client: '198.51.100.8', count: 1, last: 1_005_000 },
  ])
  assert.deepEqual(m.security(1).rateLimited.map((x) => x.client), ['198.51.100.7'])
})

test('the rate-limited clients tally keeps at most 1000 clients, dropping the one refused least recently', async (t) => {
  const { m, r0, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  const refuse = (client: string) => log.write(answer({ route: r0, site: s0, status: 429, rateLimited: true, clientAddress: client }), 1)
  for (let i = 0; i < 1000; i++) refuse(`10.0.${i >> 8}.${i & 255}`)
  refuse('10.0.0.0') // refused again: the most recent now
  for (let i = 0; i < 5; i++) refuse(`172.16.0.${i}`)
  const all = m.security(5000).rateLimited
  assert.equal(all.length, 1000)
  const clients = new Set(all.map((x) => x.client))
  assert.ok(clients.has('10.0.0.0'), 'refused again, kept')
  for (let i = 1; i <= 5; i++) assert.ok(!clients.has(`10.0.0.${i}`), `10.0.0.${i} dropped`)
  assert.ok(clients.has('10.0.0.6'))
  assert.ok(clients.has('172.16.0.4'))
  assert.deepEqual(all[0], { client: '10.0.0.0', count: 2, last: 1_000_000 })
})

test('many answers add to the same slots: the series stay the same, only their values grow', async (t) => {
  const { m, r0, r1, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'M-SEARCH', 'get']
  const round = (k: number) => {
    for (const method of methods) {
      for (let status = 100; status < 600; status += 37) {
        for (const r of [r0, r1, null]) log.write(answer({ route: r, site: s0, method, status, bytes: status, cache: 'HIT', rawPath: `/p/${k}/${status}`, host: `h${k}.a.test` }), (k * status) % 3000)
      }
    }
  }
  round(0)
  const first = own((await m.render()).body)
  for (let k = 1; k <= 100; k++) round(k)
  const after = own((await m.render()).body)
  assert.deepEqual([...after.keys()].sort(), [...first.keys()].sort())
  const total = (s: Map<string, number>) => [...s].filter(([k]) => k.startsWith('edgebox_http_requests_total')).reduce((n, [, x]) => n + x, 0)
  const perRound = methods.length * Math.ceil(500 / 37) * 3
  assert.equal(total(first), perRound)
  assert.equal(total(after), perRound * 101)
  // every unknown method (lower case too) is `other`
  assert.equal(after.get('edgebox_http_requests_total{site="a.test",route="sites[0].routes[0]",method="other",code="2xx"}'), 3 * 3 * 101)
})

test('a reload keeps the counters of routes by site and id, and drops the series of routes that went', async (t) => {
  const { m, r0, r1, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  log.write(answer({ route: r0, site: s0 }), 1)
  log.write(answer({ route: r1, site: s0 }), 1)
  // the new configuration: the same first route (new objects), the second gone
  const n0 = route('sites[0].routes[0]')
  const ns0 = site('sites[0]', ['a.test'], [n0])
  m.prepare([ns0], () => [])
  log.write(answer({ route: n0, site: ns0 }), 1)
  // an answer of the old configuration still in flight counts on the same slot
  log.write(answer({ route: r0, site: s0 }), 1)
  const v = own((await m.render()).body)
  assert.equal(v.get('edgebox_http_requests_total{site="a.test",route="sites[0].routes[0]",method="GET",code="2xx"}'), 3)
  assert.equal([...v.keys()].some((k) => k.includes('sites[0].routes[1]')), false)
})

test('handler views, DNS, balanced names and RUM are read at scrape time; a view that throws is left out', async (t) => {
  let attempts = 4
  const proxy: HandlerAdmin = {
    view: (): HandlerView => ({
      upstreams: [
        { id: 'http://127.0.0.1:3000', healthy: true, maintenance: false, reason: 'ok', attempts, failures: 1, retries: 2, ejections: 0, inFlight: 0, latencyMsSum: 0, latencyCount: 0 },
        { id: 'http://127.0.0.1:3001', healthy: false, maintenance: true, reason: 'in maintenance', attempts: 0, failures: 0, retries: 0, ejections: 0, inFlight: 0, latencyMsSum: 0, latencyCount: 0 },
      ],
      cache: { hits: 1, misses: 1, stale: 0, revalidations: 0, purges: 6, objects: 12, bytes: 3456, topKeys: [] },
    }),
  }
  const hub: HandlerAdmin = {
    view: (): HandlerView => ({
      realtime: { connections: { websocket: 3, sse: 2, longPoll: 1 }, shortPolls: 0, published: 10, delivered: 25, channelCount: 5, channels: [{ name: 'a', subscribers: 1, history: 2, published: 3 }, { name: 'b', subscribers: 0, history: 1, published: 1 }], historySize: 3 },
    }),
  }
  const hub2: HandlerAdmin = { view: () => ({ realtime: { connections: { websocket: 1, sse: 1, longPoll: 0 }, shortPolls: 0, published: 0, delivered: 0, channelCount: 0, channels: [], historySize: 0 } }) }
  const broken: HandlerAdmin = {
    view: () => {
      throw new Error('not now')
    },
  }
  const sources: MetricSources = {
    dnsQueries: () => [{ type: 'A', rcode: 'NOERROR', count: 7 }, { type: 'AAAA', rcode: 'NXDOMAIN', count: 2 }],
    gslbEdges: () => [{ name: 'www.a.test', edge: 'eu', healthy: true }, { name: 'www.a.test', edge: 'us', healthy: false }],
    rum: () => ({ accepted: 5, stored: 9, dropped: 1, ignored: 2, refused: { invalid: 3, 'too large': 1 } }),
  }
  const { m, s0 } = setup(sources)
  t.after(() => m.close())
  const views: RouteViewSource[] = [
    { site: 'a.test', route: 'sites[0].routes[0]', admin: proxy },
    { site: 'a.test', route: 'sites[0].routes[1]', admin: hub },
    { site: 'a.test', route: 'sites[0].routes[2]', admin: hub2 },
    { site: 'a.test', route: 'sites[0].routes[3]', admin: broken },
  ]
  m.prepare([s0], () => views)
  m.connections.opened('http/1.1')
  m.connections.opened('http/1.1')
  m.connections.opened('h2')
  m.connections.closed('http/1.1')
  m.connections.tlsHandshake(false)
  m.connections.tlsHandshake(true)
  m.connections.tlsHandshake(true)
  m.reloaded(true)
  m.reloaded(false)
  m.reloaded(true)
  const v = own((await m.render()).body)
  const p = 'route="sites[0].routes[0]"'
  const u0 = `${p},upstream="http://127.0.0.1:3000"`
  const u1 = `${p},upstream="http://127.0.0.1:3001"`
  const rt = 'route="sites[0].routes[1]"'
  const want: Record<string, number> = {
    [`edgebox_upstream_attempts_total{${u0}}`]: 4,
    [`edgebox_upstream_failures_total{${u0}}`]: 1,
    [`edgebox_upstream_retries_total{${u0}}`]: 2,
    [`edgebox_upstream_healthy{${u0}}`]: 1,
    [`edgebox_upstream_healthy{${u1}}`]: 0,
    [`edgebox_upstream_maintenance{${u0}}`]: 0,
    [`edgebox_upstream_maintenance{${u1}}`]: 1,
    [`edgebox_cache_objects{${p}}`]: 12,
    [`edgebox_cache_bytes{${p}}`]: 3456,
    [`edgebox_cache_purged_total{${p}}`]: 6,
    [`edgebox_realtime_connections{${rt},transport="websocket"}`]: 3,
    [`edgebox_realtime_connections{${rt},transport="sse"}`]: 2,
    [`edgebox_realtime_connections{${rt},transport="long_poll"}`]: 1,
    // every channel counts, not only the ones the view lists
    [`edgebox_realtime_channels{${rt}}`]: 5,
    [`edgebox_realtime_history_messages{${rt}}`]: 3,
    [`edgebox_realtime_published_total{${rt}}`]: 10,
    [`edgebox_realtime_delivered_total{${rt}}`]: 25,
    'edgebox_open_connections{protocol="http/1.1"}': 1,
    'edgebox_open_connections{protocol="h2"}': 1,
    'edgebox_open_connections{protocol="websocket"}': 4,
    'edgebox_open_connections{protocol="sse"}': 3,
    'edgebox_connections_total{protocol="http/1.1"}': 2,
    'edgebox_connections_total{protocol="h2"}': 1,
    'edgebox_tls_handshakes_total{resumed="false"}': 1,
    'edgebox_tls_handshakes_total{resumed="true"}': 2,
    'edgebox_dns_queries_total{type="A",rcode="NOERROR"}': 7,
    'edgebox_dns_queries_total{type="AAAA",rcode="NXDOMAIN"}': 2,
    'edgebox_gslb_edge_healthy{name="www.a.test",edge="eu"}': 1,
    'edgebox_gslb_edge_healthy{name="www.a.test",edge="us"}': 0,
    'edgebox_rum_events_total{kind="accepted"}': 5,
    'edgebox_rum_events_total{kind="stored"}': 9,
    'edgebox_rum_events_total{kind="ignored"}': 2,
    'edgebox_rum_dropped_total{reason="queue"}': 1,
    'edgebox_rum_dropped_total{reason="invalid"}': 3,
    'edgebox_rum_dropped_total{reason="too_large"}': 1,
    'edgebox_config_reloads_total{result="ok"}': 2,
    'edgebox_config_reloads_total{result="refused"}': 1,
  }
  for (const [k, n] of Object.entries(want)) assert.equal(v.get(k), n, k)
  assert.equal([...v.keys()].some((k) => k.includes('sites[0].routes[3]')), false)
  // read again at the next scrape
  attempts = 9
  assert.equal(own((await m.render()).body).get(`edgebox_upstream_attempts_total{${u0}}`), 9)
  assert.deepEqual(m.overview().connections, { 'http/1.1': 1, h2: 1, websocket: 4, sse: 3 })
})

test('render(): Prometheus text 0.0.4 with HELP and TYPE for every metric, and prom-client\'s process and Node.js metrics', async (t) => {
  const { m, s0, r0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  log.write(answer({ route: r0, site: s0 }), 1)
  const { contentType, body } = await m.render()
  assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8')
  const names = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]])
  const helped = new Set([...body.matchAll(/^# HELP (\S+) \S/gm)].map((x) => x[1]))
  for (const [name] of names) assert.ok(helped.has(name), `${name} has HELP`)
  const types = Object.fromEntries(names)
  for (const [name, type] of Object.entries({
    edgebox_http_requests_total: 'counter',
    edgebox_http_request_duration_seconds: 'histogram',
    edgebox_http_response_bytes_total: 'counter',
    edgebox_open_connections: 'gauge',
    edgebox_connections_total: 'counter',
    edgebox_tls_handshakes_total: 'counter',
    edgebox_cache_requests_total: 'counter',
    edgebox_cache_objects: 'gauge',
    edgebox_cache_bytes: 'gauge',
    edgebox_cache_purged_total: 'counter',
    edgebox_upstream_attempts_total: 'counter',
    edgebox_upstream_failures_total: 'counter',
    edgebox_upstream_retries_total: 'counter',
    edgebox_upstream_healthy: 'gauge',
    edgebox_upstream_maintenance: 'gauge',
    edgebox_realtime_connections: 'gauge',
    edgebox_realtime_channels: 'gauge',
    edgebox_realtime_history_messages: 'gauge',
    edgebox_realtime_published_total: 'counter',
    edgebox_realtime_delivered_total: 'counter',
    edgebox_refusals_total: 'counter',
    edgebox_dns_queries_total: 'counter',
    edgebox_gslb_edge_healthy: 'gauge',
    edgebox_rum_events_total: 'counter',
    edgebox_rum_dropped_total: 'counter',
    edgebox_config_reloads_total: 'counter',
    process_cpu_seconds_total: 'counter',
    nodejs_heap_size_used_bytes: 'gauge',
  })) assert.equal(types[name], type, name)
  // every counter ends in _total, no other type does
  for (const [name, type] of names) assert.equal(name!.endsWith('_total'), type === 'counter', name)
})

test('promtool check metrics passes the exposition', { skip: existsSync(PROMTOOL) ? false : `${PROMTOOL} is not installed (Debian: apt-get install prometheus)` }, async (t) => {
  const { m, s0, r0, log } = setup({ rum: () => ({ accepted: 1, stored: 1, dropped: 0, ignored: 0, refused: { 'too large': 1 } }), dnsQueries: () => [{ type: 'A', rcode: 'NOERROR', count: 1 }] })
  t.after(() => m.close())
  const hub: HandlerAdmin = { view: () => ({ realtime: { connections: { websocket: 1, sse: 0, longPoll: 0 }, shortPolls: 0, published: 1, delivered: 1, channelCount: 0, channels: [], historySize: 0 } }) }
  m.prepare([s0], () => [{ site: 'a.test', route: 'sites[0].routes[1]', admin: hub }])
  log.write(answer({ route: r0, site: s0, cache: 'HIT', status: 500, error: new Error('a "quoted"\nmessage'), rawPath: '/a\\b' }), 7)
  log.write(answer({ route: null, site: null, method: 'PATCH', status: 429, rateLimited: true }), 7)
  const { body } = await m.render()
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
})

test('recentErrors(): the 5xx answers, newest first, at most 200 kept', async (t) => {
  const { m, c, r0, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  log.write(answer({ route: r0, site: s0, status: 502, method: 'POST', host: 'a.test', rawPath: '/api/x', error: new Error('upstream refused the connection'), upstream: 'http://127.0.0.1:3000' }), 12.3456)
  log.write(answer({ route: r0, site: s0, status: 404 }), 1) // not a server error
  c.t += 1
  log.write(answer({ route: null, site: null, status: 503 }), 1)
  const two = m.recentErrors(10)
  assert.deepEqual(two, [
    { at: 1_000_001, site: 'none', route: 'none', method: 'GET', host: 'a.test', path: '/', status: 503, ms: 1, error: '', upstream: '' },
    { at: 1_000_000, site: 'a.test', route: 'sites[0].routes[0]', method: 'POST', host: 'a.test', path: '/api/x', status: 502, ms: 12.346, error: 'upstream refused the connection', upstream: 'http://127.0.0.1:3000' },
  ])
  assert.equal(m.recentErrors(1).length, 1)
  assert.equal(m.recentErrors(0).length, 0)
  for (let i = 0; i < 250; i++) log.write(answer({ route: r0, site: s0, status: 500, rawPath: `/${i}` }), 1)
  const all = m.recentErrors(1000)
  assert.equal(all.length, 200)
  assert.equal(all[0]!.path, '/249')
  assert.equal(all[199]!.path, '/50')
})

test('overview(): the last minute\'s rates, status mix, percentiles and hit ratio; totals since start; onSample hears each second', async (t) => {
  const { m, c, r0, s0, log } = setup()
  t.after(() => m.close())
  m.prepare([s0], () => [])
  const empty = m.overview()
  assert.equal(empty.requestsPerSecond, 0)
  assert.equal(empty.cacheHitRatio, null)
  const heard: number[] = []
  const stop = m.onSample((s) => heard.push(s.requests))
  m.connections.opened('h2')
  // 70 seconds: 10 answers a second (8 × 2xx, 1 × 4xx, 1 × 5xx), 2 hits and 1 miss, 1000 bytes
  for (let sec = 1; sec <= 70; sec++) {
    for (let i = 0; i < 10; i++) {
      const status = i < 8 ? 200 : i === 8 ? 404 : 500
      log.write(answer({ route: r0, site: s0, status, bytes: 100, cache: i < 2 ? 'HIT' : i === 2 ? 'MISS' : '' }), 1.5)
    }
    c.t += 1000
    const s = m.tick()
    assert.equal(s.connections, 1)
    if (sec === 2) stop()
  }
  assert.deepEqual(heard, [10, 10])
  const o = m.overview()
  assert.equal(o.uptimeSeconds, 70)
  assert.equal(o.requestsPerSecond, 10)
  assert.equal(o.bytesPerSecond, 1000)
  assert.deepEqual(o.statusMix, { '1xx': 0, '2xx': 8, '3xx': 0, '4xx': 1, '5xx': 1 })
  assert.equal(o.errorsPerSecond, 1)
  assert.equal(o.p50, 1.5)
  assert.equal(o.cacheHitRatio, 2 / 3)
  assert.deepEqual(o.totals, { requests: 700, bytes: 70_000, errors: 70 })
  assert.deepEqual(o.connections, { 'http/1.1': 0, h2: 1, websocket: 0, sse: 0 })
  const h = m.series('1h')
  assert.equal(h.step, 1)
  assert.equal(h.samples.length, 70)
  assert.equal(h.samples[0]!.at, 1_001_000)
  assert.equal(h.samples[0]!.s5xx, 1)
  // the minute that ended at 1_020_000 (its last 20 seconds were Edgebox's); the next one is not over
  const d = m.series('1d')
  assert.equal(d.step, 60)
  assert.deepEqual(d.samples.map((s) => [s.at, s.requests]), [[1_020_000, 200]])
})

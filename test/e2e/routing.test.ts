import assert from 'node:assert/strict'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { Context } from '../../src/core/context.ts'
import { createAccessLog } from '../../src/core/log.ts'
import { createPipeline } from '../../src/core/pipeline.ts'
import { createForwarding } from '../../src/core/forwarding.ts'
import { buildSiteTable } from '../../src/core/router.ts'
import { PROTOCOLS, raw, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/** Sites by Host, routes by longest prefix, the redirect handler, errors and the access log (items 1, 3, 10, 12). */

const t = tempDir()
mkdirSync(path.join(t.dir, 'main', 'evil.example'), { recursive: true })
for (const d of ['main', 'api', 'wild', 'other', 'deep']) {
  mkdirSync(path.join(t.dir, d), { recursive: true })
  writeFileSync(path.join(t.dir, d, 'who.txt'), d)
}
writeFileSync(path.join(t.dir, 'main', 'big.bin'), Buffer.alloc(300 * 1024, 1))
const logFile = path.join(t.dir, 'access.log')

let srv: TestServer
before(async () => {
  srv = await startServer(
    {
      log: { access: true, format: 'json', file: logFile },
      sites: [
        {
          hosts: ['main.test'],
          routes: [
            { path: '/', static: { root: 'main' } },
            { path: '/api', static: { root: 'api' } },
            { path: '/api/deep/', static: { root: 'deep' } },
            { path: '/old/', redirect: { to: '/new/', status: 301, preservePath: true } },
            { path: '/see', redirect: { to: 'https://example.test/other', status: 303 } },
            { path: '/secure/', redirect: { to: 'https://{host}/secure', status: 308, preservePath: true } },
            { path: '/r302', redirect: { to: '/x' } },
            { path: '/r307', redirect: { to: '/x', status: 307, preservePath: true, preserveQuery: false } },
          ],
        },
        { hosts: ['*.wild.test'], routes: [{ path: '/', static: { root: 'wild' } }] },
        { hosts: ['redir.test'], routes: [{ path: '/', redirect: { to: '/', status: 301, preservePath: true } }] },
        { hosts: ['other.test'], default: true, routes: [{ path: '/', static: { root: 'other' } }] },
      ],
    },
    t.dir,
  )
})
after(async () => {
  await srv.close()
  t.cleanup()
})

for (const protocol of PROTOCOLS) {
  describe(`routing over ${protocol}`, () => {
    const get = (host: string, p: string, method = 'GET') => request(protocol, srv.url + p.slice(1), { method, headers: protocol === 'h2c' ? { ':authority': host } : { host } })
    test('sites by exact host, wildcard, and the default site', async () => {
      assert.equal((await get('main.test', '/who.txt')).text, 'main')
      assert.equal((await get('MAIN.test:8080', '/who.txt')).text, 'main')
      assert.equal((await get('a.wild.test', '/who.txt')).text, 'wild')
      assert.equal((await get('a.b.wild.test', '/who.txt')).text, 'wild')
      assert.equal((await get('wild.test', '/who.txt')).text, 'other')
      assert.equal((await get('unknown.test', '/who.txt')).text, 'other')
    })
    test('a trailing dot in Host names the same site', async () => {
      assert.equal((await get('main.test.', '/who.txt')).text, 'main')
    })
    test('no open redirect: a target starting with // never becomes a protocol-relative Location', async () => {
      const r = await get('redir.test', '///evil.example/x')
      assert.equal(r.status, 301)
      assert.equal(r.headers.location, '/evil.example/x')
      const d = await get('main.test', '//evil.example')
      assert.equal(d.status, 301)
      assert.equal(d.headers.location, '/evil.example/')
    })
    test('longest prefix wins; /api matches /api/x but not /apix', async () => {
      assert.equal((await get('main.test', '/api/who.txt')).text, 'api')
      assert.equal((await get('main.test', '/api/deep/who.txt')).text, 'deep')
      assert.equal((await get('main.test', '/apix/who.txt')).status, 404)
      // the path below the prefix starts at a slash, whether the prefix ends in one or not, and an empty segment stays one
      assert.equal((await get('main.test', '/who.txt')).text, 'main')
      assert.equal((await get('main.test', '//who.txt')).text, 'main')
      assert.equal((await get('main.test', '/api//who.txt')).text, 'api')
      assert.equal((await get('main.test', '/api/deep//who.txt')).text, 'deep')
    })
    test('redirects: status, Location, path and query preserved as configured', async () => {
      let r = await get('main.test', '/old/a/b%20c.txt?q=1')
      assert.equal(r.status, 301)
      assert.equal(r.headers.location, '/new/a/b%20c.txt?q=1')
      r = await get('main.test', '/see', 'POST')
      assert.equal(r.status, 303)
      assert.equal(r.headers.location, 'https://example.test/other')
      r = await get('main.test', '/secure/x?y=2')
      assert.equal(r.status, 308)
      assert.equal(r.headers.location, 'https://main.test/secure/x?y=2')
      r = await get('main.test', '/r302/anything')
      assert.equal(r.status, 302)
      assert.equal(r.headers.location, '/x')
      r = await get('main.test', '/r307/p?dropped=1', 'PUT')
      assert.equal(r.status, 307)
      assert.equal(r.headers.location, '/x/p')
    })
  })
}

test('a plain-HTTP listener configured with httpsRedirect sends everything to HTTPS', async () => {
  const s = await startServer({ listen: [{ host: '127.0.0.1', port: 0, httpsRedirect: { port: 8443 } }], sites: [{ routes: [{ path: '/', static: { root: path.join(t.dir, 'main') } }] }] })
  try {
    const r = await raw(s.port, 'GET /a%20b?x=1 HTTP/1.1\r\nHost: shop.test:8080\r\nConnection: close\r\n\r\n')
    assert.match(r, /^HTTP\/1\.1 308 /)
    assert.match(r, /\r\nLocation: https:\/\/shop\.test:8443\/a%20b\?x=1\r\n/)
  } finally {
    await s.close()
  }
})

test('the access log has one JSON line per request with method, host, path, status, bytes, duration and cache outcome', async () => {
  await get1('/who.txt')
  await get1('/nope')
  await get1('/big.bin')
  await srv.box.close() // flushes the log
  const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const ok = lines.find((l) => l.path === '/who.txt' && l.host === 'main.test')!
  assert.equal(ok.method, 'GET')
  assert.equal(ok.status, 200)
  assert.equal(ok.bytes, 4)
  assert.equal(typeof ok.ms, 'number')
  assert.match(String(ok.cache), /^(HIT|MISS)$/)
  assert.ok(lines.some((l) => l.path === '/nope' && l.status === 404))
  const streamed = lines.find((l) => l.path === '/big.bin')!
  assert.equal(streamed.status, 200)
  assert.equal(streamed.bytes, 300 * 1024, 'a streamed response is logged with its byte count')
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: path.join(t.dir, 'main') } }] }] })
  async function get1(p: string) {
    await request('http/1.1', srv.url + p.slice(1), { headers: { host: 'main.test' } })
  }
})

test('a handler that throws gives a clean 500: no stack on the wire, the stack in the log', async () => {
  const logged: string[] = []
  const log = pino({ level: 'error' }, { write: (l: string) => logged.push(l) })
  const handler = {
    kind: 'boom',
    methods: ['GET'],
    handle(_ctx: Context): Promise<void> {
      return Promise.reject(new Error('secret internal detail'))
    },
  }
  const pipeline = createPipeline({
    sites: buildSiteTable([{ id: 's', hosts: [], routes: [{ prefix: '/', handler, id: 'r', access: [], beforeHandler: [], filters: [], upgradeChecks: [] }], filters: [], endpoints: new Map() }], 0),
    filters: [],
    accessLog: createAccessLog({ enabled: false, level: 'info', format: 'json' }),
    forwarding: createForwarding({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }),
    log,
    streamIdleTimeout: 60_000,
    isShuttingDown: () => false,
  })
  const server = http.createServer((req, res) => pipeline.handle(req, res, { protocol: 'http/1.1' }))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    const port = (server.address() as { port: number }).port
    const r = await raw(port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.match(r, /^HTTP\/1\.1 500 Internal Server Error\r\n/)
    assert.ok(r.endsWith('\r\n\r\n500 Internal Server Error: Internal Server Error\n'))
    assert.doesNotMatch(r, /secret internal detail/)
    await new Promise((res) => setTimeout(res, 20))
    assert.ok(logged.some((l) => l.includes('secret internal detail') && l.includes('"stack"')), 'stack logged')
  } finally {
    server.close()
  }
})

test('in a terminal format the access log is one readable line per request', async () => {
  const file = path.join(t.dir, 'pretty.log')
  const s = await startServer({ log: { access: true, format: 'pretty', file }, sites: [{ routes: [{ path: '/', static: { root: path.join(t.dir, 'main') } }] }] })
  try {
    await request('http/1.1', s.url + 'who.txt')
  } finally {
    await s.close()
  }
  assert.match(readFileSync(file, 'utf8'), /^\d\d:\d\d:\d\d 200 GET 127\.0\.0\.1\/who\.txt 4B \d+\.\dms (HIT|MISS) http\/1\.1\n$/)
})

test('several listeners serve the same sites; a listener can be HTTP/1.1 only', async () => {
  const s = await startServer({
    listen: [
      { host: '127.0.0.1', port: 0 },
      { host: '127.0.0.1', port: 0, protocols: ['http/1.1'] },
    ],
    sites: [{ routes: [{ path: '/', static: { root: path.join(t.dir, 'main') } }] }],
  })
  try {
    assert.equal(s.box.urls.length, 2)
    for (const url of s.box.urls) assert.equal((await request('http/1.1', url + 'who.txt')).text, 'main')
    assert.equal((await request('h2c', s.box.urls[0]! + 'who.txt')).text, 'main')
    const port = Number(new URL(s.box.urls[1]!).port)
    // the HTTP/2 preface on an HTTP/1.1-only listener is refused, not served
    const r = await raw(port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 1000)
    assert.match(r, /^HTTP\/1\.1 505 /)
  } finally {
    await s.close()
  }
})

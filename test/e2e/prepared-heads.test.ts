import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { utimesSync, writeFileSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import { h2Answer } from '../helpers/h2-answer.ts'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startServer, type TestServer } from '../helpers/server.ts'
import { certDir, testCa } from '../helpers/certs.ts'
import { ManualClock } from '../helpers/clock.ts'
import { formatHttpDate } from '../../src/http/date.ts'

/**
 * Static files and cache hits answer with heads prepared once per
 * representation or stored response (core/respond.ts sendPrepared): on the
 * wire every answer has the fields, values and order the per-response way
 * gives, over HTTP/1.1 (names as written) and HTTP/2 over TLS, with what
 * changes per response (Server-Timing, Age, Cache-Status) new each time.
 */

const clock = new ManualClock()
let files: ReturnType<typeof certDir>
let ca: string
let srv: TestServer
let plainUrl: string
let tlsUrl: string
let origin: http.Server

const TXT = 'hello prepared\n'
const CSS = 'body { color: red }\n'.repeat(60)

before(async () => {
  const authority = await testCa()
  const leaf = await authority.leaf(['localhost', '127.0.0.1'])
  ca = authority.certPem
  files = certDir({ 'leaf.crt': leaf.certPem, 'leaf.key': leaf.keyPem })
  mkdirSync(files.path('www'))
  files.write('www/a.txt', TXT)
  files.write('www/style.css', CSS)
  files.write('www/change.txt', 'one\n')
  for (const f of ['a.txt', 'style.css']) utimesSync(files.path(`www/${f}`), new Date('2024-01-01T00:00:00Z'), new Date('2024-01-01T00:00:00Z'))
  origin = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60', date: formatHttpDate(clock.now()), etag: '"o"' })
    res.end(req.method === 'HEAD' ? undefined : 'stored body')
  })
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const up = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  srv = await startServer(
    {
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, tls: true }],
      tls: { certificates: [{ cert: files.path('leaf.crt'), key: files.path('leaf.key') }] },
      sites: [
        {
          headers: { hsts: { maxAge: '1d' } },
          routes: [
            { path: '/cors/', static: { root: files.path('www') }, cors: { origins: ['https://a.test'] } },
            { path: '/strict/', static: { root: files.path('www') }, headers: { csp: 'strict' } },
            { path: '/c/', proxy: { upstreams: [up], cache: true } },
            { path: '/', static: { root: files.path('www'), memoryCache: { revalidate: '20ms' } } },
          ],
        },
      ],
    },
    undefined,
    { clock },
  )
  plainUrl = srv.box.urls[0]!
  tlsUrl = srv.box.urls[1]!
})

after(async () => {
  await srv?.close()
  await new Promise((r) => origin.close(r))
  files?.cleanup()
})

interface Answer {
  status: number
  /** Fields in the order received, without Date and the connection's own; Server-Timing's value as `<dur>` once checked. */
  fields: [string, string][]
  body: string
}

function clean(raw: string[]): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    let value = raw[i + 1]!
    if (/^(date|connection|keep-alive|:status)$/i.test(name)) continue
    if (name.toLowerCase() === 'server-timing') {
      assert.match(value, /^edge;dur=(0|[1-9]\d*)(\.\d?[1-9])?$/, 'milliseconds with at most two decimals, written as the shortest decimal')
      value = '<dur>'
    }
    out.push([name, value])
  }
  return out
}

function h1(target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(plainUrl + target.slice(1), { method, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, fields: clean(res.rawHeaders), body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function h2(target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const a = await h2Answer(tlsUrl, { ca }, target, headers, method)
  return { status: a.status, fields: clean(a.raw), body: a.body }
}

const SECURITY: [string, string][] = [
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'strict-origin-when-cross-origin'],
  ['x-frame-options', 'SAMEORIGIN'],
  ['content-security-policy', "frame-ancestors 'self'"],
]
const HSTS: [string, string] = ['strict-transport-security', 'max-age=86400']
const lower = (fields: [string, string][]) => fields.map(([n, v]): [string, string] => [n.toLowerCase(), v])

test('a static file: every answer over HTTP/1.1 and HTTP/2 has the fields, values and order of the per-response way; HSTS only over TLS', async () => {
  const first = await h1('/a.txt')
  const etag = first.fields.find(([n]) => n === 'ETag')![1]
  const lastModified = 'Mon, 01 Jan 2024 00:00:00 GMT'
  const ok: [string, string][] = [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['ETag', etag],
    ['Last-Modified', lastModified],
    ['Cache-Control', 'public, max-age=300'],
    ['Accept-Ranges', 'bytes'],
    ['Content-Length', String(TXT.length)],
    ['Server-Timing', '<dur>'],
    ...SECURITY,
  ]
  const notModified: [string, string][] = [
    ['ETag', etag],
    ['Last-Modified', lastModified],
    ['Cache-Control', 'public, max-age=300'],
    ['Server-Timing', '<dur>'],
  ]
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await h1('/a.txt'), { status: 200, fields: ok, body: TXT })
    assert.deepEqual(await h2('/a.txt'), { status: 200, fields: [...lower(ok), HSTS], body: TXT })
    assert.deepEqual(await h1('/a.txt', {}, 'HEAD'), { status: 200, fields: ok, body: '' })
    assert.deepEqual(await h2('/a.txt', {}, 'HEAD'), { status: 200, fields: [...lower(ok), HSTS], body: '' })
    assert.deepEqual(await h1('/a.txt', { 'if-none-match': etag }), { status: 304, fields: notModified, body: '' })
    assert.deepEqual(await h2('/a.txt', { 'if-none-match': etag }), { status: 304, fields: lower(notModified), body: '' })
  }
})

test('a compressed representation kept in memory: its own prepared head (Vary, Content-Encoding, its ETag) and bytes', async () => {
  const identity = await h1('/style.css')
  const etag = identity.fields.find(([n]) => n === 'ETag')![1]
  const gzTag = `${etag.slice(0, -1)}-gz"`
  const gz = await h1('/style.css', { 'accept-encoding': 'gzip' })
  const length = gz.fields.find(([n]) => n === 'Content-Length')![1]
  const fields: [string, string][] = [
    ['Content-Type', 'text/css; charset=utf-8'],
    ['ETag', gzTag],
    ['Last-Modified', 'Mon, 01 Jan 2024 00:00:00 GMT'],
    ['Cache-Control', 'public, max-age=300'],
    ['Accept-Ranges', 'bytes'],
    ['Vary', 'Accept-Encoding'],
    ['Content-Encoding', 'gzip'],
    ['Content-Length', length],
    ['Server-Timing', '<dur>'],
    ...SECURITY,
  ]
  assert.ok(Number(length) < CSS.length)
  for (let i = 0; i < 2; i++) {
    const a = await h1('/style.css', { 'accept-encoding': 'gzip' })
    assert.deepEqual(a.fields, fields)
    const b = await h2('/style.css', { 'accept-encoding': 'gzip' })
    assert.deepEqual(b.fields, [...lower(fields), HSTS])
    assert.equal(Buffer.from(b.body, 'latin1').length, Number(length))
    assert.equal(b.body, a.body, 'the same bytes over both protocols')
    assert.equal((await h2('/style.css', { 'accept-encoding': 'gzip', 'if-none-match': gzTag })).status, 304)
  }
})

test('a file changed on disk gets a new prepared head: new ETag, length and bytes; the old ETag no longer matches', async () => {
  const v1 = await h1('/change.txt')
  assert.equal(v1.body, 'one\n')
  await h2('/change.txt')
  const tag1 = v1.fields.find(([n]) => n === 'ETag')![1]
  writeFileSync(files.path('www/change.txt'), 'version two\n')
  utimesSync(files.path('www/change.txt'), new Date('2025-01-01T00:00:00Z'), new Date('2025-01-01T00:00:00Z'))
  await sleep(60) // past memoryCache.revalidate
  for (const get of [h1, h2]) {
    const v2 = await get('/change.txt')
    assert.equal(v2.body, 'version two\n')
    const tag2 = v2.fields.find(([n]) => n.toLowerCase() === 'etag')![1]
    assert.notEqual(tag2, tag1)
    assert.deepEqual(v2.fields.find(([n]) => n.toLowerCase() === 'content-length'), [get === h1 ? 'Content-Length' : 'content-length', '12'])
    assert.equal((await get('/change.txt', { 'if-none-match': tag1 })).status, 200)
    assert.equal((await get('/change.txt', { 'if-none-match': tag2 })).status, 304)
  }
})

test('routes whose filters work per response still get them on every answer: CORS for an allowed Origin only, the strict CSP', async () => {
  for (const get of [h1, h2]) {
    for (let i = 0; i < 2; i++) {
      const allowed = lower((await get('/cors/a.txt', { origin: 'https://a.test' })).fields)
      assert.deepEqual(allowed.find(([n]) => n === 'access-control-allow-origin'), ['access-control-allow-origin', 'https://a.test'])
      assert.deepEqual(allowed.find(([n]) => n === 'vary'), ['vary', 'Origin'])
      const none = lower((await get('/cors/a.txt')).fields)
      assert.equal(none.find(([n]) => n === 'access-control-allow-origin'), undefined)
      const strict = lower((await get('/strict/a.txt')).fields)
      assert.match(strict.find(([n]) => n === 'content-security-policy')![1], /^default-src 'self'; .*script-src 'self'; style-src 'self'; connect-src 'self'$/)
    }
  }
})

test('cache hits: Age and Cache-Status follow the clock on each hit, over HTTP/1.1 and HTTP/2, in the per-response order', async () => {
  const miss = await h1('/c/obj')
  assert.match(lower(miss.fields).find(([n]) => n === 'cache-status')![1], /fwd=miss/)
  const hit = (age: number, ttl: number, proto: 'h1' | 'h2'): [string, string][] => {
    const fields: [string, string][] = [
      ['content-type', 'text/plain'],
      ['cache-control', 'public, max-age=60'],
      ['date', ''],
      ['etag', '"o"'],
      ['via', '1.1 edgebox'],
      ['age', String(age)],
      ['cache-status', `edgebox; hit; ttl=${ttl}`],
      ['Content-Length', '11'],
      ['Server-Timing', '<dur>'],
      ...SECURITY,
    ]
    return (proto === 'h1' ? fields : [...lower(fields), HSTS]).filter(([n]) => n !== 'date')
  }
  for (const [advance, age, ttl] of [
    [0, 0, 60],
    [2000, 2, 58],
    [0, 2, 58],
    [1000, 3, 57],
  ] as const) {
    clock.advance(advance)
    assert.deepEqual(await h1('/c/obj'), { status: 200, fields: hit(age, ttl, 'h1'), body: 'stored body' })
    assert.deepEqual(await h2('/c/obj'), { status: 200, fields: hit(age, ttl, 'h2'), body: 'stored body' })
    assert.deepEqual(await h2('/c/obj', {}, 'HEAD'), { status: 200, fields: hit(age, ttl, 'h2'), body: '' })
  }
})

import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import zlib from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { rumInjectModule, rumInjectStats } from '../../src/rum/inject.ts'
import { Context, PreparedResponse } from '../../src/core/context.ts'
import type { Route } from '../../src/core/route.ts'

/**
 * SDK injection (`sites[].rum.inject`): the SDK's script tag goes in before
 * the first `</head>` of a site's HTML answers, static or proxied, whole or
 * streamed, compressed or not, on the way out (a cached entry keeps the
 * origin's bytes); everything else is sent byte for byte as it was, and
 * each skip is counted.
 */

const TAG = '<script src="/_edgebox/rum/sdk.js" defer data-release="1.2.3" data-env="prod&quot;&lt;x" data-sample-rate="0.5"></script>'
const PAGE = '<!doctype html>\n<html><head><meta charset="utf-8"><title>Shop</title></HEAD>\n<body><h1>Shop</h1></body></html>\n'
/** The page with the tag, where Edgebox puts it. */
const injected = (html: string, tag = TAG): string => {
  const at = html.search(/<\/head[\s/>]/i)
  return html.slice(0, at) + tag + html.slice(at)
}
/** Larger than the static memory cache (64 KiB): read from the file in pieces. */
const BIG = `<!doctype html><html><head><title>big</title></head><body>\n${'<p>row of the big page</p>\n'.repeat(4000)}</body></html>\n`
/** Above the static handler's compression threshold, within its memory cache: its compressed forms are kept whole. */
const MID = `<!doctype html><html><head><title>mid</title></head><body>\n${'<p>a line of the page</p>\n'.repeat(200)}</body></html>\n`
const NO_HEAD = '<!doctype html><p>a fragment with no head element</p>\n'
const JSON_BODY = JSON.stringify({ ok: true, html: '</head>' })
/** A `</head>` beyond the first 64 KiB. */
const LATE_HEAD = `<!doctype html><html><!-- ${'x'.repeat(70 * 1024)} --><head><title>late</title></head><body></body></html>`

let root: string
let cleanup: () => void
let cacheDir: string
let upstream: http.Server
let origin: TestServer
let box: TestServer

/** An upstream whose answers each test names by path. */
function upstreamAnswer(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://upstream')
  const html = { 'content-type': 'text/html; charset=utf-8', etag: '"up-1"' }
  switch (url.pathname) {
    case '/gzip':
      return void res.writeHead(200, { ...html, 'content-encoding': 'gzip', vary: 'accept-encoding' }).end(zlib.gzipSync(BIG))
    case '/br':
      return void res.writeHead(200, { ...html, 'content-encoding': 'br' }).end(zlib.brotliCompressSync(PAGE))
    case '/deflate':
      return void res.writeHead(200, { ...html, 'content-encoding': 'deflate' }).end(zlib.deflateSync(PAGE))
    case '/zstd':
      return void res.writeHead(200, { ...html, 'content-encoding': 'zstd' }).end('not really zstd</head>')
    case '/bad-gzip':
      return void res.writeHead(200, { ...html, 'content-encoding': 'gzip' }).end('this is not gzip </head>')
    case '/split': {
      // the page in two writes, cut at `at`; the chunked coding keeps them apart on the wire
      const at = Number(url.searchParams.get('at'))
      const gz = url.searchParams.get('gzip') === '1'
      const body = gz ? zlib.gzipSync(PAGE) : Buffer.from(PAGE)
      res.writeHead(200, gz ? { ...html, 'content-encoding': 'gzip' } : html)
      res.write(body.subarray(0, at))
      setTimeout(() => res.end(body.subarray(at)), 20)
      return
    }
    case '/no-transform':
      return void res.writeHead(200, { ...html, 'cache-control': 'public, no-transform', 'content-length': Buffer.byteLength(PAGE) }).end(PAGE)
    case '/not-found':
      return void res.writeHead(404, { ...html, 'content-length': Buffer.byteLength(PAGE) }).end(PAGE)
    case '/json':
      return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(JSON_BODY) }).end(JSON_BODY)
    case '/csp-none':
      return void res.writeHead(200, { ...html, 'content-security-policy': "default-src 'self'; SCRIPT-SRC 'none'", 'content-length': Buffer.byteLength(PAGE) }).end(PAGE)
    case '/csp-two':
      // two policies in one field: the second blocks
      return void res.writeHead(200, { ...html, 'content-security-policy': "script-src 'self', script-src 'strict-dynamic' 'self'" }).end(PAGE)
    case '/csp-report-only':
      return void res.writeHead(200, { ...html, 'content-security-policy-report-only': "script-src 'none'" }).end(PAGE)
    case '/csp-self':
      return void res.writeHead(200, { ...html, 'content-security-policy': "script-src 'self' https://cdn.test" }).end(PAGE)
    case '/late-head':
      return void res.writeHead(200, html).end(LATE_HEAD)
    default:
      return void res.writeHead(200, html).end(PAGE)
  }
}

before(async () => {
  ;({ dir: root, cleanup } = tempDir('edgebox-inject-'))
  const www = path.join(root, 'www')
  mkdirSync(www)
  writeFileSync(path.join(www, 'index.html'), PAGE)
  writeFileSync(path.join(www, 'big.html'), BIG)
  writeFileSync(path.join(www, 'mid.html'), MID)
  writeFileSync(path.join(www, 'nohead.html'), NO_HEAD)
  writeFileSync(path.join(www, 'data.json'), JSON_BODY)
  cacheDir = path.join(root, 'cache')
  upstream = http.createServer(upstreamAnswer)
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  // an origin Edgebox without rum: what the caching proxy route fetches
  origin = await startServer({ sites: [{ routes: [{ path: '/', static: { root: www, cacheControl: { html: 'public, max-age=600' } } }] }] })
  box = await startServer({
    sites: [
      {
        default: true,
        rum: { inject: { release: '1.2.3', env: 'prod"<x', sampleRate: 0.5 } },
        routes: [
          { path: '/up/', proxy: { upstreams: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`], stripPrefix: true } },
          { path: '/cached/', proxy: { upstreams: [origin.url.replace(/\/$/, '')], stripPrefix: true, cache: { disk: cacheDir } } },
          { path: '/strict/', static: { root: www }, headers: { csp: 'strict' } },
          { path: '/own-csp/', static: { root: www }, headers: { csp: "default-src 'self'; script-src 'nonce-fixed'" } },
          { path: '/', static: { root: www } },
        ],
      },
      { hosts: ['plain.localhost'], rum: true, routes: [{ path: '/', static: { root: www } }] },
    ],
  })
})

after(async () => {
  await box?.close()
  await origin?.close()
  await new Promise((r) => upstream?.close(r))
  cleanup?.()
})

/** The counters' change while `run` runs. */
async function counted(run: () => Promise<void>): Promise<{ injected: number; 'no-transform': number; encoding: number; 'no-head': number; csp: number }> {
  const snap = () => ({ injected: rumInjectStats.injected, ...rumInjectStats.skipped })
  const before = snap()
  await run()
  const after = snap()
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]])) as Awaited<ReturnType<typeof counted>>
}

const NONE = { injected: 0, 'no-transform': 0, encoding: 0, 'no-head': 0, csp: 0 }

/** The body of an answer in its content coding, decoded. */
function decoded(body: Buffer, coding: string | string[] | undefined): string {
  if (coding === 'gzip') return zlib.gunzipSync(body).toString('utf8')
  if (coding === 'br') return zlib.brotliDecompressSync(body).toString('utf8')
  if (coding === 'deflate') return zlib.inflateSync(body).toString('utf8')
  assert.equal(coding, undefined)
  return body.toString('utf8')
}

for (const protocol of PROTOCOLS) {
  describe(`SDK injection over ${protocol}`, () => {
    test('a static page: the tag before </head>, no Content-Length, a weak ETag that revalidates to a 304', async () => {
      const head = await request(protocol, `${box.url}index.html`, { method: 'HEAD' })
      const strong = String(head.headers.etag)
      assert.match(strong, /^"[^"]+"$/)
      let r!: Awaited<ReturnType<typeof request>>
      const n = await counted(async () => {
        r = await request(protocol, `${box.url}index.html`)
      })
      assert.equal(r.status, 200)
      assert.equal(r.text, injected(PAGE))
      assert.equal(r.headers['content-length'], undefined)
      assert.equal(r.headers.etag, `W/${strong}`)
      assert.equal(r.headers['accept-ranges'], 'none')
      assert.deepEqual(n, { ...NONE, injected: 1 })
      // If-None-Match with the weak tag: weak comparison (RFC 9110 §13.1.2) matches the file's strong one
      const again = await request(protocol, `${box.url}index.html`, { headers: { 'if-none-match': `W/${strong}` } })
      assert.equal(again.status, 304)
      assert.equal(again.body.length, 0)
      assert.equal(again.headers.etag, `W/${strong}`)
      // the same page again (prepared once, injected every time)
      assert.equal((await request(protocol, `${box.url}`)).text, injected(PAGE))
    })

    test('a large page read from its file, and the same compressed on the fly, are injected while streamed', async () => {
      const r = await request(protocol, `${box.url}big.html`)
      assert.equal(r.status, 200)
      assert.equal(r.headers['content-length'], undefined)
      assert.equal(r.text, injected(BIG))
      for (const coding of ['gzip', 'br']) {
        const z = await request(protocol, `${box.url}big.html`, { headers: { 'accept-encoding': coding } })
        assert.equal(z.headers['content-encoding'], coding)
        assert.equal(decoded(z.body, coding), injected(BIG))
      }
      // a page's compressed forms kept in memory, sent whole by the static handler
      for (const coding of ['gzip', 'br']) {
        const mid = await request(protocol, `${box.url}mid.html`, { headers: { 'accept-encoding': coding } })
        assert.equal(mid.headers['content-encoding'], coding)
        assert.equal(mid.headers['content-length'], undefined)
        assert.equal(decoded(mid.body, coding), injected(MID))
      }
    })

    test('proxied pages in gzip, br and deflate are decoded, injected and encoded again in the same coding', async () => {
      for (const [name, page] of [['gzip', BIG], ['br', PAGE], ['deflate', PAGE]] as const) {
        const r = await request(protocol, `${box.url}up/${name}`)
        assert.equal(r.status, 200)
        assert.equal(r.headers['content-encoding'], name)
        assert.equal(r.headers['content-length'], undefined)
        assert.equal(r.headers.etag, 'W/"up-1"')
        assert.equal(decoded(r.body, name), injected(page), name)
      }
    })

    test('a </head> split across two upstream chunks, at every place, in identity and gzip', async () => {
      const at = PAGE.search(/<\/head>/i)
      for (let cut = at - 1; cut <= at + 8; cut++) {
        const r = await request(protocol, `${box.url}up/split?at=${cut}`)
        assert.equal(r.text, injected(PAGE), `cut at ${cut}`)
      }
      const gz = zlib.gzipSync(PAGE).length
      for (const cut of [1, 10, gz >> 1, gz - 3]) {
        const r = await request(protocol, `${box.url}up/split?gzip=1&at=${cut}`)
        assert.equal(decoded(r.body, 'gzip'), injected(PAGE), `gzip cut at ${cut}`)
      }
    })
  })
}

describe('left as they are (byte for byte, Content-Length kept)', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: no-transform, a range, HEAD, JSON, a 404 page, a page without </head>, another site`, async () => {
      const n = await counted(async () => {
        const nt = await request(protocol, `${box.url}up/no-transform`)
        assert.equal(nt.text, PAGE)
        assert.equal(Number(nt.headers['content-length']), Buffer.byteLength(PAGE))
        assert.equal(nt.headers.etag, '"up-1"')
        // the client's own no-transform (RFC 9111 §5.2.1.6)
        const asked = await request(protocol, `${box.url}index.html`, { headers: { 'cache-control': 'no-transform' } })
        assert.equal(asked.text, PAGE)
        assert.equal(Number(asked.headers['content-length']), Buffer.byteLength(PAGE))

        const range = await request(protocol, `${box.url}index.html`, { headers: { range: 'bytes=0-40' } })
        assert.equal(range.status, 206)
        assert.equal(range.text, PAGE.slice(0, 41))
        assert.equal(Number(range.headers['content-length']), 41)

        const head = await request(protocol, `${box.url}index.html`, { method: 'HEAD' })
        assert.equal(head.status, 200)
        assert.equal(head.body.length, 0)
        assert.equal(Number(head.headers['content-length']), Buffer.byteLength(PAGE))
        assert.match(String(head.headers.etag), /^"/)

        const json = await request(protocol, `${box.url}data.json`)
        assert.equal(json.text, JSON_BODY)
        assert.equal(Number(json.headers['content-length']), JSON_BODY.length)
        const upJson = await request(protocol, `${box.url}up/json`)
        assert.equal(upJson.text, JSON_BODY)

        const missing = await request(protocol, `${box.url}up/not-found`)
        assert.equal(missing.status, 404)
        assert.equal(missing.text, PAGE)
        assert.equal(Number(missing.headers['content-length']), Buffer.byteLength(PAGE))

        const bare = await request(protocol, `${box.url}nohead.html`)
        assert.equal(bare.text, NO_HEAD)
        assert.equal(Number(bare.headers['content-length']), Buffer.byteLength(NO_HEAD))
        assert.match(String(bare.headers.etag), /^"/)

        const other = await request(protocol, `${box.url}index.html`, { headers: { host: 'plain.localhost' } })
        assert.equal(other.text, PAGE)
        assert.equal(Number(other.headers['content-length']), Buffer.byteLength(PAGE))
      })
      assert.deepEqual(n, { ...NONE, 'no-transform': 2, 'no-head': 1 })
    })
  }

  test('a </head> past the first 64 KiB, an unknown content coding, a body that is not the gzip it claims: sent as they came, counted', async () => {
    const n = await counted(async () => {
      const late = await request('http/1.1', `${box.url}up/late-head`)
      assert.equal(late.text, LATE_HEAD)
      const zstd = await request('http/1.1', `${box.url}up/zstd`)
      assert.equal(zstd.headers['content-encoding'], 'zstd')
      assert.equal(zstd.text, 'not really zstd</head>')
      const bad = await request('http/1.1', `${box.url}up/bad-gzip`)
      assert.equal(bad.text, 'this is not gzip </head>')
    })
    assert.deepEqual(n, { ...NONE, 'no-head': 1, encoding: 2 })
  })
})

describe('Content-Security-Policy', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: with the strict preset the tag carries the nonce of the response's policy`, async () => {
      const r = await request(protocol, `${box.url}strict/index.html`)
      const csp = String(r.headers['content-security-policy'])
      const nonce = /'nonce-([^']+)'/.exec(csp)?.[1]
      assert.ok(nonce, csp)
      assert.equal(r.text, injected(PAGE, TAG.replace('></script>', ` nonce="${nonce}"></script>`)))
      // a new nonce for every answer
      const again = await request(protocol, `${box.url}strict/index.html`)
      assert.notEqual(/'nonce-([^']+)'/.exec(String(again.headers['content-security-policy']))?.[1], nonce)
    })
  }

  test("a policy that blocks a same-origin script skips the page (counted); 'self' and Report-Only do not", async () => {
    const n = await counted(async () => {
      const none = await request('http/1.1', `${box.url}up/csp-none`)
      assert.equal(none.text, PAGE)
      assert.equal(Number(none.headers['content-length']), Buffer.byteLength(PAGE))
      assert.equal((await request('http/1.1', `${box.url}up/csp-two`)).text, PAGE)
      // a configured policy string is checked the same way
      assert.equal((await request('http/1.1', `${box.url}own-csp/index.html`)).text, PAGE)
      assert.equal((await request('http/1.1', `${box.url}up/csp-self`)).text, injected(PAGE))
      assert.equal((await request('http/1.1', `${box.url}up/csp-report-only`)).text, injected(PAGE))
    })
    assert.deepEqual(n, { ...NONE, csp: 3, injected: 2 })
  })
})

/** The body of each entry the disk cache holds (the layout of src/modules/cache/disk-store.ts). */
function storedBodies(): Buffer[] {
  return readdirSync(cacheDir)
    .filter((f) => f.endsWith('.entry'))
    .map((f) => {
      const file = readFileSync(path.join(cacheDir, f))
      const metaLength = file.readUInt32BE(12)
      const bodyLength = Number(file.readBigUInt64BE(16))
      return file.subarray(28 + metaLength, 28 + metaLength + bodyLength)
    })
}

test("through a caching proxy route: the stored entry is the origin's bytes, every answer from it is injected", async () => {
  for (const protocol of PROTOCOLS) {
    const miss = await request(protocol, `${box.url}cached/index.html`)
    assert.equal(miss.status, 200)
    assert.equal(miss.text, injected(PAGE))
    assert.equal(miss.headers['content-length'], undefined)
    const hit = await request(protocol, `${box.url}cached/index.html`)
    assert.match(String(hit.headers['cache-status']), /hit/)
    assert.equal(hit.text, injected(PAGE))
    assert.equal(hit.headers['content-length'], undefined)
    assert.match(String(hit.headers.etag), /^W\/"/)
    // revalidation from the stored response with the weak tag the client holds
    const cond = await request(protocol, `${box.url}cached/index.html`, { headers: { 'if-none-match': String(hit.headers.etag) } })
    assert.equal(cond.status, 304)
    assert.equal(cond.headers.etag, hit.headers.etag)
  }
  let bodies: Buffer[] = []
  for (let i = 0; i < 50 && bodies.length === 0; i++) {
    bodies = storedBodies()
    if (bodies.length === 0) await sleep(20)
  }
  assert.deepEqual(bodies.map((b) => b.toString('utf8')), [PAGE])
})

test('a prepared response the filter leaves alone keeps its prepared head; an HTML one goes the per-response way', async () => {
  const parts = rumInjectModule.start({} as never).route({ path: '/' } as never, { rum: { inject: true }, headers: { csp: false } } as never, {} as never)
  const filter = parts!.filter!
  const route = { filters: [filter] } as unknown as Route
  const css = new PreparedResponse(200, { 'Content-Type': 'text/css' }, Buffer.from('b{}'))
  const html = new PreparedResponse(200, { 'Content-Type': 'text/html; charset=utf-8' }, Buffer.from(PAGE))
  const server = http.createServer((req, res) => {
    const ctx = new Context(req, res, { filters: [], finished() {}, streamIdleTimeout: 10_000, forwarding: null as never }, 'http/1.1', 0)
    ctx.route = route
    ctx.sendPrepared(req.url === '/css' ? css : html)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    for (let i = 0; i < 2; i++) {
      const a = await request('http/1.1', `${url}/css`)
      assert.equal(a.text, 'b{}')
      assert.equal(Number(a.headers['content-length']), 3)
      const b = await request('http/1.1', `${url}/html`)
      assert.equal(b.text, injected(PAGE, '<script src="/_edgebox/rum/sdk.js" defer></script>'))
    }
    assert.ok(css.plain?.h1, 'the stylesheet is sent from its prepared head')
    assert.equal(html.plain?.h1, null, 'the page is sent the per-response way')
  } finally {
    await new Promise((r) => server.close(r))
  }
})

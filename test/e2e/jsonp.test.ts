import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import vm from 'node:vm'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/** JSONP for configured JSON endpoints (docs/security.md): static files and a proxied API, on real sockets. */

const DATA = { name: 'edgebox', list: [1, 2, 3], text: 'a </script> and "quotes"' }
const BIG = { rows: Array.from({ length: 20000 }, (_, i) => ({ i, v: 'x'.repeat(10) })) } // larger than the memory cache: read from the file
let srv: TestServer
let api: http.Server
let root: string

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'edgebox-jsonp-'))
  writeFileSync(path.join(root, 'data.json'), JSON.stringify(DATA))
  writeFileSync(path.join(root, 'big.json'), JSON.stringify(BIG))
  writeFileSync(path.join(root, 'page.html'), '<p>not json</p>')
  api = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', etag: '"api-1"' })
    res.end(JSON.stringify({ from: 'api', url: req.url, ae: req.headers['accept-encoding'] ?? null }))
  })
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r))
  srv = await startServer({
    sites: [
      {
        routes: [
          { path: '/', static: { root }, jsonp: true },
          { path: '/api/', proxy: { upstreams: [`http://127.0.0.1:${(api.address() as AddressInfo).port}`], stripPrefix: true }, jsonp: { param: 'cb' } },
          { path: '/plain/', static: { root } },
        ],
      },
    ],
  })
})
after(async () => {
  await srv.close()
  await new Promise((r) => api.close(r))
  rmSync(root, { recursive: true, force: true })
})

/** Runs a JSONP answer as a browser would run the script, and returns what the callback got. */
function runScript(code: string, callback: string): unknown {
  let got: unknown
  const parts = callback.split('.')
  const sandbox: Record<string, unknown> = {}
  let obj = sandbox
  for (const p of parts.slice(0, -1)) obj = obj[p] = {} as Record<string, unknown>
  obj[parts.at(-1)!] = (v: unknown) => (got = v)
  vm.runInNewContext(code, sandbox)
  return JSON.parse(JSON.stringify(got)) // out of the script's realm
}

for (const protocol of PROTOCOLS) {
  describe(`JSONP over ${protocol}`, () => {
    test('a static JSON file with ?callback= is a script calling it; without it, plain JSON', async () => {
      const r = await request(protocol, srv.url + 'data.json?callback=app.handlers.data', { headers: { 'accept-encoding': 'gzip', range: 'bytes=0-3', 'if-none-match': '*' } })
      assert.equal(r.status, 200, 'no 206, no 304: ranges and validators of the JSON do not apply to the script')
      assert.equal(r.headers['content-type'], 'application/javascript; charset=utf-8')
      assert.equal(r.headers['x-content-type-options'], 'nosniff')
      assert.equal(r.headers.etag, undefined)
      assert.equal(r.headers['content-encoding'], undefined)
      assert.ok(r.text.startsWith('/**/ app.handlers.data('), r.text.slice(0, 40))
      assert.ok(r.text.endsWith(');'))
      assert.equal(Number(r.headers['content-length']), r.body.length)
      assert.deepEqual(runScript(r.text, 'app.handlers.data'), DATA)
      const plain = await request(protocol, srv.url + 'data.json')
      assert.match(String(plain.headers['content-type']), /^application\/json/)
      assert.deepEqual(JSON.parse(plain.text), DATA)
    })

    test('a large JSON file (read from disk) and a proxied JSON API are wrapped too', async () => {
      const big = await request(protocol, srv.url + 'big.json?callback=cb')
      assert.equal(Number(big.headers['content-length']), big.body.length)
      assert.deepEqual(runScript(big.text, 'cb'), BIG)
      const r = await request(protocol, srv.url + 'api/items?cb=$jq_1', { headers: { 'accept-encoding': 'gzip, br' } })
      assert.equal(r.headers['content-type'], 'application/javascript; charset=utf-8')
      assert.equal(r.headers.etag, undefined)
      const got = runScript(r.text, '$jq_1') as { from: string; url: string; ae: string | null }
      assert.equal(got.from, 'api')
      assert.equal(got.ae, null, 'the upstream is not asked for a compressed body it would be impossible to wrap')
    })

    test('a callback that is not an identifier path is refused with 400, never echoed', async () => {
      for (const bad of ['alert(1)//', 'a<b', 'x=1', 'cb\nalert(1)', '1abc', 'a..b', 'a.', '', 'x'.repeat(129)]) {
        const r = await request(protocol, srv.url + 'data.json?callback=' + encodeURIComponent(bad))
        assert.equal(r.status, 400, JSON.stringify(bad))
        assert.doesNotMatch(r.headers['content-type'] as string, /javascript/)
      }
      assert.equal((await request(protocol, srv.url + 'data.json?callback=ok')).status, 200, 'the next good request is served')
    })

    test('non-JSON answers and routes without jsonp are left alone', async () => {
      const html = await request(protocol, srv.url + 'page.html?callback=cb')
      assert.match(String(html.headers['content-type']), /^text\/html/)
      assert.equal(html.text, '<p>not json</p>')
      const off = await request(protocol, srv.url + 'plain/data.json?callback=cb')
      assert.match(String(off.headers['content-type']), /^application\/json/)
    })
  })
}

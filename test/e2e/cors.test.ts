import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/** CORS in the pipeline (docs/security.md): preflights, actual responses, refusals, Vary, over HTTP/1.1 and h2c. */

const A = 'https://app.example'
let srv: TestServer
let logFile: string
let logDir: { dir: string; cleanup(): void }
let root: string

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'edgebox-cors-'))
  writeFileSync(path.join(root, 'data.json'), '{"ok":true}\n')
  logDir = tempDir()
  logFile = path.join(logDir.dir, 'access.log')
  srv = await startServer({
    log: { access: true, format: 'json', file: logFile },
    sites: [
      {
        origins: [A],
        cors: { methods: ['GET', 'HEAD', 'POST', 'PUT'], allowHeaders: ['content-type', 'x-token'], exposeHeaders: ['etag'], maxAge: '10m' },
        routes: [
          { path: '/', static: { root } },
          { path: '/open/', static: { root }, cors: { origins: ['*'] } },
          { path: '/private/', static: { root }, cors: { credentials: true } },
          { path: '/closed/', static: { root }, cors: false },
        ],
      },
    ],
  })
})
after(async () => {
  await srv.close()
  logDir.cleanup()
  rmSync(root, { recursive: true, force: true })
})

for (const protocol of PROTOCOLS) {
  describe(`CORS over ${protocol}`, () => {
    test('a preflight from an allowed origin: 204 with exactly the allowed values, before any handler', async () => {
      const r = await request(protocol, srv.url + 'data.json', { method: 'OPTIONS', headers: { origin: A, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'Content-Type,X-Token' } })
      assert.equal(r.status, 204)
      assert.equal(r.headers['access-control-allow-origin'], A)
      assert.equal(r.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT')
      assert.equal(r.headers['access-control-allow-headers'], 'content-type, x-token')
      assert.equal(r.headers['access-control-max-age'], '600')
      assert.equal(r.headers['access-control-allow-credentials'], undefined)
      assert.equal(r.headers.vary, 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
      assert.equal(r.body.length, 0)
    })

    test('a refused preflight: 403 without any CORS header, with the reason', async () => {
      for (const [headers, reason] of [
        [{ origin: 'https://evil.example', 'access-control-request-method': 'PUT' }, 'origin https://evil.example is not allowed'],
        [{ origin: A, 'access-control-request-method': 'DELETE' }, 'method DELETE is not allowed'],
        [{ origin: A, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' }, 'request header authorization is not allowed'],
      ] as const) {
        const r = await request(protocol, srv.url + 'data.json', { method: 'OPTIONS', headers })
        assert.equal(r.status, 403)
        assert.equal(r.headers['access-control-allow-origin'], undefined)
        assert.match(r.text, new RegExp(reason))
      }
    })

    test('an allowed cross-origin request gets CORS headers and Vary: Origin; a refused one only Vary', async () => {
      const ok = await request(protocol, srv.url + 'data.json', { headers: { origin: A } })
      assert.equal(ok.status, 200)
      assert.equal(ok.headers['access-control-allow-origin'], A)
      assert.equal(ok.headers['access-control-expose-headers'], 'etag')
      assert.match(String(ok.headers.vary), /\bOrigin\b/)
      const no = await request(protocol, srv.url + 'data.json', { headers: { origin: 'https://evil.example' } })
      assert.equal(no.status, 200, 'served: the browser is the one that withholds it')
      assert.equal(no.headers['access-control-allow-origin'], undefined)
      assert.match(String(no.headers.vary), /\bOrigin\b/)
      const plain = await request(protocol, srv.url + 'data.json')
      assert.match(String(plain.headers.vary), /\bOrigin\b/, 'a cache must not reuse an answer without CORS headers for a CORS request')
      const same = await request(protocol, srv.url + 'data.json', { headers: { origin: srv.url.replace(/\/$/, '') } })
      assert.equal(same.headers['access-control-allow-origin'], undefined, 'same-origin requests are left alone')
    })

    test('* without credentials; the exact origin (never *) with credentials; no CORS on a route that opts out', async () => {
      const open = await request(protocol, srv.url + 'open/data.json', { headers: { origin: 'https://anyone.example' } })
      assert.equal(open.headers['access-control-allow-origin'], '*')
      assert.doesNotMatch(String(open.headers.vary ?? ''), /Origin/, 'the answer does not depend on the origin')
      const cred = await request(protocol, srv.url + 'private/data.json', { headers: { origin: A } })
      assert.equal(cred.headers['access-control-allow-origin'], A)
      assert.equal(cred.headers['access-control-allow-credentials'], 'true')
      const closed = await request(protocol, srv.url + 'closed/data.json', { headers: { origin: A } })
      assert.equal(closed.headers['access-control-allow-origin'], undefined)
    })
  })
}

test('hostile Origin values get no CORS headers, and the access log says why', async () => {
  for (const origin of ['null', 'HTTPS://APP.EXAMPLE', 'https://app.example.', 'https://app.example.evil.test']) {
    const r = await request('http/1.1', srv.url + 'data.json?o=' + encodeURIComponent(origin), { headers: { origin } })
    assert.equal(r.headers['access-control-allow-origin'], undefined, origin)
  }
  await new Promise((r) => setTimeout(r, 1200)) // the access log flushes at least once a second
  const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const refused = lines.filter((l) => typeof l.cors === 'string' && (l.cors as string).startsWith('refused: origin'))
  assert.ok(refused.some((l) => l.cors === 'refused: origin https://app.example.evil.test is not allowed'))
  assert.ok(refused.some((l) => l.cors === 'refused: origin null is not allowed'))
})

test('repeated or oversized Origin fields are refused, never half-believed', async () => {
  const { raw } = await import('../helpers/server.ts')
  const twice = await raw(srv.port, `GET /data.json HTTP/1.1\r\nHost: x\r\nOrigin: ${A}\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n`, 2000)
  assert.match(twice, /^HTTP\/1\.1 200 /)
  assert.doesNotMatch(twice, /access-control-allow-origin/i, 'two origins are no origin')
  const pre = await raw(srv.port, `OPTIONS /data.json HTTP/1.1\r\nHost: x\r\nOrigin: ${A}\r\nOrigin: ${A}\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n`, 2000)
  assert.match(pre, /^HTTP\/1\.1 403 /)
  const long = await request('http/1.1', srv.url + 'data.json', { headers: { origin: `https://${'a'.repeat(5000)}.example` } })
  assert.equal(long.status, 200)
  assert.equal(long.headers['access-control-allow-origin'], undefined)
  const huge = await request('http/1.1', srv.url + 'data.json', { headers: { origin: `https://${'a'.repeat(20000)}.example` } })
  assert.equal(huge.status, 431, 'beyond maxHeaderSize: refused before any policy runs')
  assert.equal((await request('http/1.1', srv.url + 'data.json', { headers: { origin: A } })).headers['access-control-allow-origin'], A, 'the next request is served')
})

test('a route with a function for origins (TypeScript configuration)', async () => {
  const s = await startServer({ sites: [{ routes: [{ path: '/', redirect: { to: '/x' }, cors: { origins: (o: string) => o.endsWith('.trusted.test') } }] }] })
  try {
    const yes = await request('http/1.1', s.url, { headers: { origin: 'https://a.trusted.test' } })
    assert.equal(yes.headers['access-control-allow-origin'], 'https://a.trusted.test')
    const no = await request('http/1.1', s.url, { headers: { origin: 'https://a.untrusted.test' } })
    assert.equal(no.headers['access-control-allow-origin'], undefined)
  } finally {
    await s.close()
  }
})

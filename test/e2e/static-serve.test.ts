import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PROTOCOLS, request, startServer, tempDir, type Reply, type TestServer } from '../helpers/server.ts'

/** Headers that legitimately differ between two responses. */
const VOLATILE = new Set(['date', 'server-timing', 'connection', 'keep-alive', 'expires'])

function stable(h: Reply['headers']): Record<string, unknown> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => !VOLATILE.has(k)))
}

let srv: TestServer
const tmp = tempDir()
const site = path.join(tmp.dir, 'site')

function write(rel: string, content: string | Buffer): void {
  const file = path.join(tmp.dir, rel)
  mkdirSync(path.dirname(file), { recursive: true })
  writeFileSync(file, content)
}

before(async () => {
  write('site/index.html', '<!doctype html><title>home</title>')
  write('site/style.css', 'body{color:red}')
  write('site/app.js', 'console.log(1)')
  write('site/data.json', '{"a":1}')
  write('site/notes.txt', 'hello notes')
  write('site/pixel.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  write('site/blob.bin', Buffer.from([1, 2, 3]))
  write('site/image.svg', '<svg xmlns="http://www.w3.org/2000/svg"/>')
  write('site/docs/index.html', '<p>docs</p>')
  write('site/empty/keep.txt', 'x')
  write('site/assets/app.3f9a1c.js', 'fingerprinted-hex')
  write('site/assets/index-BxK3a9Qz.js', 'fingerprinted-vite')
  write('site/assets/plain.js', 'not fingerprinted')
  write('site/nocache/a.txt', 'rule')
  write('site/.env', 'SECRET=1')
  write('site/.hidden/x.txt', 'hidden dir')
  write('site/.well-known/x', 'well known')
  write('site/files/report.pdf', '%PDF-1.4 fake')
  write('site/naïve file.txt', 'unicode name')
  write('site/replace.txt', 'version one')

  write('spa/index.html', '<div id=app></div>')
  write('spa/main.js', 'spa()')

  write('listed/<b>x.txt', 'tag name')
  write('listed/plain.txt', 'plain')
  write('listed/sub/a.txt', 'a')
  write('listed/.dot', 'dot')

  write('deny/.env', 'SECRET=2')
  write('deny/.well-known/x', 'well known deny')
  write('deny/ok.txt', 'ok')
  write('allow/.env', 'SECRET=3')

  write('exp/a.txt', 'expires')
  write('exp/index.html', 'expires html')

  srv = await startServer(
    {
      sites: [
        {
          routes: [
            {
              path: '/',
              static: {
                root: 'site',
                download: { paths: ['files/*.pdf'] },
                cacheControl: { rules: [{ match: 'nocache/**', value: 'no-store' }] },
              },
            },
            { path: '/spa/', static: { root: 'spa', spa: true } },
            { path: '/listed/', static: { root: 'listed', listing: true } },
            { path: '/unlisted/', static: { root: 'listed' } },
            { path: '/deny/', static: { root: 'deny', dotfiles: 'deny' } },
            { path: '/allow/', static: { root: 'allow', dotfiles: 'allow' } },
            { path: '/exp/', static: { root: 'exp', expires: true } },
          ],
        },
      ],
    },
    tmp.dir,
  )
})

after(async () => {
  await srv?.close()
  tmp.cleanup()
})

for (const protocol of PROTOCOLS) {
  const get = (p: string, opts?: Parameters<typeof request>[2]) => request(protocol, new URL(p, srv.url).href, opts)

  /** The server still answers a normal request. */
  async function alive(): Promise<void> {
    const r = await get('/notes.txt')
    assert.equal(r.status, 200)
    assert.equal(r.text, 'hello notes')
  }

  describe(`static serve over ${protocol}`, () => {
    test('MIME types and charset', async () => {
      const cases: Array<[string, string]> = [
        ['/index.html', 'text/html; charset=utf-8'],
        ['/style.css', 'text/css; charset=utf-8'],
        ['/app.js', 'text/javascript; charset=utf-8'],
        ['/data.json', 'application/json; charset=utf-8'],
        ['/notes.txt', 'text/plain; charset=utf-8'],
        ['/image.svg', 'image/svg+xml; charset=utf-8'],
        ['/pixel.png', 'image/png'],
        ['/blob.bin', 'application/octet-stream'],
      ]
      for (const [p, type] of cases) {
        const r = await get(p)
        assert.equal(r.status, 200, p)
        assert.equal(r.headers['content-type'], type, p)
      }
    })

    test('a directory serves its index.html', async () => {
      const root = await get('/')
      assert.equal(root.status, 200)
      assert.equal(root.text, '<!doctype html><title>home</title>')
      const docs = await get('/docs/')
      assert.equal(docs.status, 200)
      assert.equal(docs.text, '<p>docs</p>')
      assert.equal(docs.headers['content-type'], 'text/html; charset=utf-8')
    })

    test('a directory without a trailing slash redirects (301), query kept', async () => {
      const r = await get('/docs?x=1&y=2')
      assert.equal(r.status, 301)
      assert.equal(r.headers.location, '/docs/?x=1&y=2')
      const plain = await get('/docs')
      assert.equal(plain.status, 301)
      assert.equal(plain.headers.location, '/docs/')
    })

    test('a directory without index and listing off -> 404', async () => {
      const r = await get('/empty/')
      assert.equal(r.status, 404)
      await alive()
    })

    test('SPA fallback: unknown routes serve index.html, missing assets 404', async () => {
      const route = await get('/spa/some/route')
      assert.equal(route.status, 200)
      assert.equal(route.text, '<div id=app></div>')
      assert.equal(route.headers['content-type'], 'text/html; charset=utf-8')
      assert.equal(route.headers['cache-control'], 'no-cache')
      const asset = await get('/spa/main.js')
      assert.equal(asset.status, 200)
      assert.equal(asset.text, 'spa()')
      const missing = await get('/spa/missing.js')
      assert.equal(missing.status, 404)
      // served again (now possibly from the memory cache)
      const again = await get('/spa/some/route')
      assert.equal(again.status, 200)
      assert.equal(again.text, '<div id=app></div>')
    })

    test('directory listing is off by default (404)', async () => {
      const r = await get('/unlisted/')
      assert.equal(r.status, 404)
      await alive()
    })

    test('directory listing when configured, names HTML-escaped', async () => {
      const r = await get('/listed/')
      assert.equal(r.status, 200)
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8')
      assert.ok(r.text.includes('&lt;b&gt;x.txt'), r.text)
      assert.ok(!r.text.includes('<b>x.txt'))
      assert.ok(r.text.includes('href="%3Cb%3Ex.txt"'))
      assert.ok(r.text.includes('plain.txt'))
      assert.ok(r.text.includes('href="sub/"'))
      assert.ok(!r.text.includes('.dot'), 'dotfiles are not listed')
      const file = await get('/listed/%3Cb%3Ex.txt')
      assert.equal(file.status, 200)
      assert.equal(file.text, 'tag name')
    })

    test('dotfiles are hidden (404) by default', async () => {
      assert.equal((await get('/.env')).status, 404)
      assert.equal((await get('/.hidden/x.txt')).status, 404)
      await alive()
    })

    test('dotfiles: deny -> 403, allow -> served, /.well-known/ always served', async () => {
      const denied = await get('/deny/.env')
      assert.equal(denied.status, 403)
      assert.ok(!denied.text.includes('SECRET'))
      assert.equal((await get('/deny/ok.txt')).status, 200)
      const allowed = await get('/allow/.env')
      assert.equal(allowed.status, 200)
      assert.equal(allowed.text, 'SECRET=3')
      const wk = await get('/.well-known/x')
      assert.equal(wk.status, 200)
      assert.equal(wk.text, 'well known')
      const wkDeny = await get('/deny/.well-known/x')
      assert.equal(wkDeny.status, 200)
      assert.equal(wkDeny.text, 'well known deny')
    })

    test('Content-Disposition with ?download and configured globs', async () => {
      const q = await get('/notes.txt?download')
      assert.equal(q.status, 200)
      assert.equal(q.headers['content-disposition'], `attachment; filename="notes.txt"; filename*=UTF-8''notes.txt`)
      const q2 = await get('/notes.txt?a=1&download=1')
      assert.equal(q2.headers['content-disposition'], `attachment; filename="notes.txt"; filename*=UTF-8''notes.txt`)
      const u = await get('/na%C3%AFve%20file.txt?download')
      assert.equal(u.status, 200)
      assert.equal(u.text, 'unicode name')
      assert.equal(u.headers['content-disposition'], `attachment; filename="na_ve file.txt"; filename*=UTF-8''na%C3%AFve%20file.txt`)
      const glob = await get('/files/report.pdf')
      assert.equal(glob.status, 200)
      assert.equal(glob.headers['content-type'], 'application/pdf')
      assert.equal(glob.headers['content-disposition'], `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`)
      const none = await get('/notes.txt')
      assert.equal(none.headers['content-disposition'], undefined)
      const notQuery = await get('/notes.txt?downloads')
      assert.equal(notQuery.headers['content-disposition'], undefined)
    })

    test('HEAD has the same headers as GET and no body', async () => {
      for (const p of ['/notes.txt', '/index.html', '/docs/', '/spa/some/route']) {
        const g = await get(p)
        const h = await get(p, { method: 'HEAD' })
        assert.equal(h.status, g.status, p)
        assert.equal(h.body.length, 0, p)
        assert.deepEqual(stable(h.headers), stable(g.headers), p)
        assert.equal(h.headers['content-length'], String(g.body.length), p)
      }
    })

    test('OPTIONS -> 204 with Allow', async () => {
      const r = await get('/notes.txt', { method: 'OPTIONS' })
      assert.equal(r.status, 204)
      assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS')
      assert.equal(r.body.length, 0)
    })

    test('POST -> 405 with Allow', async () => {
      const r = await get('/notes.txt', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
      assert.equal(r.status, 405)
      assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS')
      await alive()
    })

    test('Cache-Control defaults and rules', async () => {
      const cases: Array<[string, string]> = [
        ['/index.html', 'no-cache'],
        ['/', 'no-cache'],
        ['/assets/app.3f9a1c.js', 'public, max-age=31536000, immutable'],
        ['/assets/index-BxK3a9Qz.js', 'public, max-age=31536000, immutable'],
        ['/assets/plain.js', 'public, max-age=300'],
        ['/notes.txt', 'public, max-age=300'],
        ['/nocache/a.txt', 'no-store'],
      ]
      for (const [p, cc] of cases) {
        const r = await get(p)
        assert.equal(r.status, 200, p)
        assert.equal(r.headers['cache-control'], cc, p)
        assert.equal(r.headers.expires, undefined, p)
      }
    })

    test('expires: true adds Expires = now + max-age', async () => {
      const r = await get('/exp/a.txt')
      assert.equal(r.status, 200)
      assert.equal(r.headers['cache-control'], 'public, max-age=300')
      const expires = Date.parse(String(r.headers.expires))
      assert.ok(Number.isFinite(expires), String(r.headers.expires))
      assert.match(String(r.headers.expires), /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/)
      const delta = expires - Date.now()
      assert.ok(delta > 290_000 && delta <= 301_000, `Expires is ${delta} ms ahead`)
      // no max-age (no-cache for HTML): no Expires
      const html = await get('/exp/index.html')
      assert.equal(html.headers.expires, undefined)
    })

    test('a file replaced on disk is served with a new ETag and new bytes', async () => {
      const name = `replace-${protocol.replace(/\W/g, '')}.txt`
      write(`site/${name}`, 'version one')
      const first = await get(`/${name}`)
      assert.equal(first.status, 200)
      assert.equal(first.text, 'version one')
      const oldTag = first.headers.etag
      // atomic replace: write a temp file and rename it over the old one
      const tmpFile = path.join(site, `.tmp-${name}`)
      writeFileSync(tmpFile, 'version two, longer')
      renameSync(tmpFile, path.join(site, name))
      const deadline = Date.now() + 1200
      let r = await get(`/${name}`)
      while (r.text !== 'version two, longer' && Date.now() < deadline) {
        await sleep(50)
        r = await get(`/${name}`)
      }
      assert.equal(r.status, 200)
      assert.equal(r.text, 'version two, longer')
      assert.notEqual(r.headers.etag, oldTag)
      assert.equal(r.headers['content-length'], String(Buffer.byteLength('version two, longer')))
    })
  })
}

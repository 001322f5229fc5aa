import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import path from 'node:path'
import { PROTOCOLS, raw, request, startServer, tempDir, type Protocol, type TestServer } from '../helpers/server.ts'

const SECRET = 'TOP-SECRET-7f3a9c-outside-the-root'

let srv: TestServer
const tmp = tempDir()

before(async () => {
  const root = path.join(tmp.dir, 'root')
  const follow = path.join(tmp.dir, 'follow')
  mkdirSync(path.join(root, 'a'), { recursive: true })
  mkdirSync(follow)
  mkdirSync(path.join(tmp.dir, 'etc'))
  writeFileSync(path.join(tmp.dir, 'secret.txt'), SECRET)
  writeFileSync(path.join(tmp.dir, 'etc', 'passwd'), SECRET)
  writeFileSync(path.join(root, 'ok.txt'), 'ok')
  writeFileSync(path.join(root, 'a', 'b.txt'), 'b')
  symlinkSync(path.join(tmp.dir, 'secret.txt'), path.join(root, 'link.txt'))
  symlinkSync(path.join(tmp.dir, 'etc'), path.join(root, 'linkdir'))
  symlinkSync(path.join(root, 'ok.txt'), path.join(root, 'inside-link.txt'))
  symlinkSync(path.join(tmp.dir, 'secret.txt'), path.join(follow, 'link.txt'))
  srv = await startServer(
    {
      sites: [
        {
          routes: [
            { path: '/', static: { root: 'root' } },
            { path: '/follow/', static: { root: 'follow', symlinks: 'follow' } },
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

/** A GET with the target exactly as given (no client-side normalization); returns status and body text. */
async function rawGet(protocol: Protocol, target: string): Promise<{ status: number; text: string }> {
  if (protocol === 'http/1.1') {
    const text = await raw(srv.port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(text)
    return { status: m ? Number(m[1]) : 0, text }
  }
  const session = http2.connect(srv.url)
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject)
      const stream = session.request({ ':method': 'GET', ':path': target })
      let status = 0
      let text = ''
      stream.setEncoding('latin1')
      stream.on('response', (h) => (status = Number(h[':status'])))
      stream.on('data', (d: string) => (text += d))
      stream.on('end', () => resolve({ status, text }))
      stream.on('error', reject)
    })
  } finally {
    session.close()
  }
}

const BAD: Array<[target: string, status: number]> = [
  ['/../etc/passwd', 400],
  ['/../secret.txt', 400],
  ['/a/../../secret.txt', 400],
  ['/%2e%2e/%2e%2e/etc/passwd', 400],
  ['/%2E%2E/secret.txt', 400],
  ['/a/%2F..%2F..', 400],
  ['/a/%2f..%2f..%2fsecret.txt', 400],
  ['/..%5c..%5cetc/passwd', 400],
  ['/..%5Csecret.txt', 400],
  ['/%00', 400],
  ['/ok.txt%00.png', 400],
  ['/%c0%ae%c0%ae/', 400],
  ['/%c0%ae%c0%ae/secret.txt', 400],
  ['/%ZZ', 400],
  ['/%', 400],
  ['/..\\..\\etc\\passwd', 400],
  ['/a\\..\\..\\secret.txt', 400],
]

for (const protocol of PROTOCOLS) {
  async function alive(): Promise<void> {
    const r = await request(protocol, new URL('/ok.txt', srv.url).href)
    assert.equal(r.status, 200)
    assert.equal(r.text, 'ok')
  }

  describe(`static path safety over ${protocol}`, () => {
    for (const [target, status] of BAD) {
      test(`${JSON.stringify(target)} -> ${status}, never the file`, async () => {
        const r = await rawGet(protocol, target)
        assert.equal(r.status, status, r.text)
        assert.ok(!r.text.includes(SECRET))
        await alive()
      })
    }

    test('dot segments that stay inside the root are resolved', async () => {
      const r = await rawGet(protocol, '/a/../ok.txt')
      assert.equal(r.status, 200)
      assert.ok(r.text.endsWith('ok'))
      const enc = await rawGet(protocol, '/a/%2e%2e/a/b.txt')
      assert.equal(enc.status, 200)
      assert.ok(enc.text.endsWith('b'))
    })

    test('a symlink leading outside the root -> 404', async () => {
      for (const target of ['/link.txt', '/linkdir/passwd']) {
        const r = await rawGet(protocol, target)
        assert.equal(r.status, 404, target)
        assert.ok(!r.text.includes(SECRET))
        await alive()
      }
      const inside = await rawGet(protocol, '/inside-link.txt')
      assert.equal(inside.status, 200, 'a link that stays inside is served')
      assert.ok(inside.text.endsWith('ok'))
    })

    test("symlinks: 'follow' serves a link leading outside", async () => {
      const r = await request(protocol, new URL('/follow/link.txt', srv.url).href)
      assert.equal(r.status, 200)
      assert.equal(r.text, SECRET)
    })
  })
}

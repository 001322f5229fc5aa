import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PROTOCOLS, raw, request, startServer, statuses, tempDir, type Protocol, type Reply, type TestServer } from '../helpers/server.ts'

const TOKEN = 'a-very-long-secret-token'
const BEARER = { authorization: `Bearer ${TOKEN}` }
const BASIC = { authorization: `Basic ${Buffer.from('alice:correct-horse').toString('base64')}` }
const MAX = 64 * 1024
const CHALLENGE = 'Basic realm="edgebox uploads", charset="UTF-8", Bearer realm="edgebox uploads"'
const TEMP_PREFIX = '.edgebox-upload-'

let srv: TestServer
const tmp = tempDir()
const root = path.join(tmp.dir, 'root')
const upDir = path.join(root, 'up')
const denyRoot = path.join(tmp.dir, 'deny')
/** A folder outside every root, reached through links: nothing may be written or removed there. */
const outside = path.join(tmp.dir, 'outside')
const OUTSIDE_TREE = ['sub', 'victim.txt']

function outsideTree(): string[] {
  return (readdirSync(outside, { recursive: true }) as string[]).sort()
}

before(async () => {
  mkdirSync(upDir, { recursive: true })
  mkdirSync(path.join(outside, 'sub'), { recursive: true })
  writeFileSync(path.join(outside, 'victim.txt'), 'outside the root')
  // /up/linked is a folder inside the root that leads outside it; /up/inlink leads to another folder inside.
  symlinkSync(outside, path.join(upDir, 'linked'))
  symlinkSync(path.join(outside, 'victim.txt'), path.join(upDir, 'victim-link.txt'))
  mkdirSync(path.join(upDir, 'inside-target'))
  symlinkSync(path.join(upDir, 'inside-target'), path.join(upDir, 'inlink'))
  mkdirSync(path.join(tmp.dir, 'follow'))
  mkdirSync(denyRoot)
  symlinkSync(outside, path.join(tmp.dir, 'follow', 'linked'))
  mkdirSync(path.join(tmp.dir, 'ro'))
  writeFileSync(path.join(tmp.dir, 'ro', 'file.txt'), 'read only')
  srv = await startServer(
    {
      limits: { bodyIdleTimeout: 300 },
      sites: [
        {
          routes: [
            {
              path: '/',
              static: {
                root: 'root',
                upload: {
                  enabled: true,
                  maxBodySize: MAX,
                  credentials: [
                    { token: TOKEN, paths: ['/up/**'] },
                    { user: 'alice', password: 'correct-horse', paths: ['/up/basic/**'] },
                  ],
                },
              },
            },
            { path: '/ro/', static: { root: 'ro' } },
            { path: '/deny/', static: { root: 'deny', dotfiles: 'deny', upload: { enabled: true, credentials: [{ token: TOKEN }] } } },
            { path: '/follow/', static: { root: 'follow', symlinks: 'follow', upload: { enabled: true, credentials: [{ token: TOKEN }] } } },
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

type Outcome = Reply | { closed: true; status?: undefined }

/**
 * A request whose body is written by `writer` (chunk by chunk, with pauses),
 * over a fresh connection. Resolves with the response, or `{ closed: true }`
 * if the connection or stream ended without one.
 */
function streamed(protocol: Protocol, url: string, method: string, headers: Record<string, string>, writer: (write: (b: Buffer | string) => boolean, abort: () => void) => Promise<void>, finish = true): Promise<Outcome> {
  return new Promise((resolve) => {
    let done = false
    const settle = (o: Outcome) => {
      if (!done) {
        done = true
        resolve(o)
      }
    }
    const collect = (status: number, hdrs: Reply['headers'], body: NodeJS.ReadableStream) => {
      const chunks: Buffer[] = []
      body.on('data', (c: Buffer) => chunks.push(c))
      body.on('end', () => {
        const b = Buffer.concat(chunks)
        settle({ status, headers: hdrs, body: b, text: b.toString('utf8') })
      })
      body.on('error', () => settle({ closed: true }))
    }
    if (protocol === 'h2c') {
      const u = new URL(url)
      const session = http2.connect(u.origin)
      session.on('error', () => settle({ closed: true }))
      session.on('close', () => setImmediate(() => settle({ closed: true })))
      const stream = session.request({ ':method': method, ':path': u.pathname, ...headers })
      stream.on('response', (h) => {
        const status = Number(h[':status'])
        const hdrs = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':'))) as Reply['headers']
        collect(status, hdrs, stream)
      })
      stream.on('error', () => settle({ closed: true }))
      stream.on('close', () => setImmediate(() => settle({ closed: true })))
      void writer(
        (b) => (stream.writable ? stream.write(b) : false),
        () => session.destroy(),
      ).then(() => {
        if (finish && stream.writable) stream.end()
      })
      void (async () => {
        while (!done) await sleep(20)
        // destroy, not close: after an early final response (413, 408) the
        // request side of the stream is still open and close() would wait for it
        session.destroy()
      })()
    } else {
      const req = http.request(url, { method, headers, agent: false })
      req.on('response', (res) => collect(res.statusCode!, res.headers, res))
      req.on('error', () => settle({ closed: true }))
      req.on('close', () => setImmediate(() => settle({ closed: true })))
      void writer(
        (b) => (req.writable && !req.destroyed ? req.write(b) : false),
        () => req.destroy(),
      ).then(() => {
        if (finish && req.writable && !req.destroyed) req.end()
      })
    }
  })
}

function tempFiles(): string[] {
  return readdirSync(upDir).filter((n) => n.startsWith(TEMP_PREFIX))
}

for (const protocol of PROTOCOLS) {
  const p = protocol === 'h2c' ? 'h2' : 'h1'
  const url = (u: string) => new URL(u, srv.url).href
  const call = (u: string, opts: Parameters<typeof request>[2]) => request(protocol, url(u), opts)
  const get = (u: string) => request(protocol, url(u))

  async function alive(): Promise<void> {
    const r = await get('/ro/file.txt')
    assert.equal(r.status, 200)
    assert.equal(r.text, 'read only')
  }

  describe(`static uploads over ${protocol}`, () => {
    test('uploads disabled -> PUT 405 with Allow', async () => {
      const r = await call('/ro/file.txt', { method: 'PUT', body: 'x' })
      assert.equal(r.status, 405)
      assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS')
      assert.equal(readFileSync(path.join(tmp.dir, 'ro', 'file.txt'), 'utf8'), 'read only')
      await alive()
    })

    test('OPTIONS lists PUT and DELETE when uploads are enabled', async () => {
      const r = await call('/up/x.txt', { method: 'OPTIONS' })
      assert.equal(r.status, 204)
      assert.equal(r.headers.allow, 'GET, HEAD, PUT, DELETE, OPTIONS')
    })

    test('no credential -> 401 with WWW-Authenticate; wrong token -> 401', async () => {
      const none = await call(`/up/${p}-auth.txt`, { method: 'PUT', body: 'x' })
      assert.equal(none.status, 401)
      assert.equal(none.headers['www-authenticate'], CHALLENGE)
      const wrong = await call(`/up/${p}-auth.txt`, { method: 'PUT', body: 'x', headers: { authorization: 'Bearer a-very-long-secret-tokem' } })
      assert.equal(wrong.status, 401)
      assert.equal(wrong.headers['www-authenticate'], CHALLENGE)
      const del = await call(`/up/${p}-auth.txt`, { method: 'DELETE' })
      assert.equal(del.status, 401)
      assert.ok(!existsSync(path.join(upDir, `${p}-auth.txt`)))
      await alive()
    })

    test('a valid token outside its paths -> 403', async () => {
      const r = await call(`/elsewhere/${p}.txt`, { method: 'PUT', body: 'x', headers: BEARER })
      assert.equal(r.status, 403)
      assert.ok(!existsSync(path.join(root, 'elsewhere', `${p}.txt`)))
      await alive()
    })

    test('PUT creates (201 + Location), replaces (204), DELETE removes (204)', async () => {
      const name = `/up/${p}-new file.txt`
      const enc = `/up/${p}-new%20file.txt`
      const created = await call(enc, { method: 'PUT', body: 'first version', headers: BEARER })
      assert.equal(created.status, 201)
      assert.equal(created.headers.location, enc)
      assert.match(String(created.headers.etag), /^"[^"]+"$/)
      const g = await get(enc)
      assert.equal(g.status, 200)
      assert.equal(g.text, 'first version')
      assert.equal(g.headers.etag, created.headers.etag)
      const replaced = await call(enc, { method: 'PUT', body: 'second version', headers: BEARER })
      assert.equal(replaced.status, 204)
      assert.equal(replaced.body.length, 0)
      assert.equal((await get(enc)).text, 'second version')
      assert.equal(readFileSync(path.join(root, name), 'utf8'), 'second version')
      const del = await call(enc, { method: 'DELETE', headers: BEARER })
      assert.equal(del.status, 204)
      assert.equal((await get(enc)).status, 404)
      assert.equal((await call(enc, { method: 'DELETE', headers: BEARER })).status, 404)
    })

    test('preconditions: If-None-Match: * on an existing file -> 412; If-Match', async () => {
      const u = `/up/${p}-cond.txt`
      const file = path.join(root, u)
      assert.equal((await call(u, { method: 'PUT', body: 'original', headers: { ...BEARER, 'if-none-match': '*' } })).status, 201)
      const again = await call(u, { method: 'PUT', body: 'overwrite', headers: { ...BEARER, 'if-none-match': '*' } })
      assert.equal(again.status, 412)
      assert.equal(readFileSync(file, 'utf8'), 'original')
      await alive()
      const etag = String((await get(u)).headers.etag)
      const stale = await call(u, { method: 'PUT', body: 'stale write', headers: { ...BEARER, 'if-match': '"stale"' } })
      assert.equal(stale.status, 412)
      assert.equal(readFileSync(file, 'utf8'), 'original')
      await alive()
      const ok = await call(u, { method: 'PUT', body: 'updated', headers: { ...BEARER, 'if-match': etag } })
      assert.equal(ok.status, 204)
      assert.equal(readFileSync(file, 'utf8'), 'updated')
      const old = await call(u, { method: 'PUT', body: 'lost update', headers: { ...BEARER, 'if-match': etag } })
      assert.equal(old.status, 412, 'the etag is stale now')
      assert.equal(readFileSync(file, 'utf8'), 'updated')
      const delStale = await call(u, { method: 'DELETE', headers: { ...BEARER, 'if-match': etag } })
      assert.equal(delStale.status, 412)
      assert.ok(existsSync(file))
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('a declared Content-Length over the limit -> 413', async () => {
      const r = await call(`/up/${p}-big.txt`, { method: 'PUT', body: Buffer.alloc(MAX + 1, 'a'), headers: BEARER })
      assert.equal(r.status, 413)
      assert.ok(!existsSync(path.join(upDir, `${p}-big.txt`)))
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('a body without Content-Length that grows over the limit -> 413', async () => {
      const r = await streamed(protocol, url(`/up/${p}-chunked.txt`), 'PUT', { ...BEARER }, async (write) => {
        for (let i = 0; i < 12; i++) {
          if (!write(Buffer.alloc(16 * 1024, 'b'))) break
          await sleep(10)
        }
      })
      assert.equal(r.status, 413)
      await sleep(50)
      assert.ok(!existsSync(path.join(upDir, `${p}-chunked.txt`)))
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('a client that disconnects halfway leaves no file and no temp file', async () => {
      const r = await streamed(
        protocol,
        url(`/up/${p}-half.txt`),
        'PUT',
        { ...BEARER, 'content-length': '10000' },
        async (write, abort) => {
          write(Buffer.alloc(5000, 'h'))
          await sleep(100)
          abort()
        },
        false,
      )
      assert.ok('closed' in r)
      const deadline = Date.now() + 1000
      while (tempFiles().length > 0 && Date.now() < deadline) await sleep(20)
      assert.ok(!existsSync(path.join(upDir, `${p}-half.txt`)))
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('a body that stalls longer than bodyIdleTimeout is cut', async () => {
      const start = Date.now()
      const r = await streamed(
        protocol,
        url(`/up/${p}-stall.txt`),
        'PUT',
        { ...BEARER, 'content-length': '10000' },
        async (write) => {
          write(Buffer.alloc(1000, 's'))
          // then nothing: the body stalls
        },
        false,
      )
      assert.ok('closed' in r || r.status === 408, `status ${r.status}`)
      assert.ok(Date.now() - start < 5000)
      const deadline = Date.now() + 1000
      while (tempFiles().length > 0 && Date.now() < deadline) await sleep(20)
      assert.ok(!existsSync(path.join(upDir, `${p}-stall.txt`)))
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('a slow but steadily flowing upload succeeds', async () => {
      const chunk = Buffer.alloc(100, 'f')
      const r = await streamed(protocol, url(`/up/${p}-slow.txt`), 'PUT', { ...BEARER, 'content-length': String(chunk.length * 11) }, async (write) => {
        for (let i = 0; i < 11; i++) {
          write(chunk)
          if (i < 10) await sleep(100)
        }
      })
      assert.equal(r.status, 201)
      assert.equal(readFileSync(path.join(upDir, `${p}-slow.txt`)).length, 1100)
    })

    test('a Basic credential works within its paths', async () => {
      const r = await call(`/up/basic/${p}.txt`, { method: 'PUT', body: 'basic upload', headers: BASIC })
      assert.equal(r.status, 201)
      assert.equal((await get(`/up/basic/${p}.txt`)).text, 'basic upload')
      const outside = await call(`/up/${p}-basic-outside.txt`, { method: 'PUT', body: 'x', headers: BASIC })
      assert.equal(outside.status, 403)
      const wrong = await call(`/up/basic/${p}-2.txt`, { method: 'PUT', body: 'x', headers: { authorization: `Basic ${Buffer.from('alice:wrong-horse').toString('base64')}` } })
      assert.equal(wrong.status, 401)
      await alive()
    })

    test('PUT through a folder linked outside the root creates nothing outside (404 as for GET; 403 with symlinks: follow)', async () => {
      for (const u of [`/up/linked/${p}-new/deep/file.txt`, `/up/linked/sub/${p}-new/file.txt`, `/up/linked/${p}-file.txt`]) {
        const r = await call(u, { method: 'PUT', body: 'escaped', headers: BEARER })
        assert.equal(r.status, 404, u)
        assert.deepEqual(outsideTree(), OUTSIDE_TREE, u)
      }
      // symlinks: 'follow' serves such links, but uploads never write outside the root
      const f = await call(`/follow/linked/${p}-new/file.txt`, { method: 'PUT', body: 'escaped', headers: BEARER })
      assert.equal(f.status, 403)
      assert.deepEqual(outsideTree(), OUTSIDE_TREE)
      assert.deepEqual(tempFiles(), [])
      await alive()
    })

    test('DELETE through a folder linked outside the root removes nothing outside (404 as for GET; 403 with symlinks: follow)', async () => {
      for (const [u, status] of [['/up/linked/victim.txt', 404], ['/follow/linked/victim.txt', 403]] as const) {
        const r = await call(u, { method: 'DELETE', headers: BEARER })
        assert.equal(r.status, status, u)
        assert.equal(readFileSync(path.join(outside, 'victim.txt'), 'utf8'), 'outside the root', u)
      }
      assert.deepEqual(outsideTree(), OUTSIDE_TREE)
      await alive()
    })

    test('PUT creates missing folders inside the root, also through a link that stays inside', async () => {
      const a = await call(`/up/${p}-tree/a/b.txt`, { method: 'PUT', body: 'nested', headers: BEARER })
      assert.equal(a.status, 201)
      assert.equal(readFileSync(path.join(upDir, `${p}-tree`, 'a', 'b.txt'), 'utf8'), 'nested')
      const b = await call(`/up/inlink/${p}-tree/c.txt`, { method: 'PUT', body: 'through a link', headers: BEARER })
      assert.equal(b.status, 201)
      assert.equal(readFileSync(path.join(upDir, 'inside-target', `${p}-tree`, 'c.txt'), 'utf8'), 'through a link')
      for (const u of [`/up/${p}-tree/a/b.txt/e.txt`, `/up/${p}-tree/a/b.txt/d/e.txt`]) {
        const file = await call(u, { method: 'PUT', body: 'x', headers: BEARER })
        assert.equal(file.status, 400, u)
        assert.match(file.text, /a parent of this path is a file/)
      }
      assert.equal(readFileSync(path.join(upDir, `${p}-tree`, 'a', 'b.txt'), 'utf8'), 'nested')
      await alive()
    })

    test('a hidden dotfile gets the same answer for every method (404 under ignore, 403 under deny) and stays', async () => {
      const cases = [
        [`/up/.${p}-secret`, path.join(upDir, `.${p}-secret`), 404],
        [`/up/.${p}-dir/file.txt`, path.join(upDir, `.${p}-dir`, 'file.txt'), 404],
        [`/deny/.${p}-env`, path.join(denyRoot, `.${p}-env`), 403],
        [`/deny/.${p}-dir/file.txt`, path.join(denyRoot, `.${p}-dir`, 'file.txt'), 403],
      ] as const
      for (const [u, file, status] of cases) {
        mkdirSync(path.dirname(file), { recursive: true })
        writeFileSync(file, 'SECRET=1')
        const g = await get(u)
        assert.equal(g.status, status, `GET ${u}`)
        assert.ok(!g.text.includes('SECRET'))
        assert.equal((await call(u, { method: 'HEAD' })).status, status, `HEAD ${u}`)
        const del = await call(u, { method: 'DELETE', headers: BEARER })
        assert.equal(del.status, status, `DELETE ${u}`)
        assert.equal(readFileSync(file, 'utf8'), 'SECRET=1', `DELETE ${u} left the file`)
        const put = await call(u, { method: 'PUT', body: 'replaced', headers: BEARER })
        assert.equal(put.status, status, `PUT ${u}`)
        assert.equal(readFileSync(file, 'utf8'), 'SECRET=1', `PUT ${u} left the file`)
      }
      // nor is a new hidden name or folder created
      for (const [u, made, status] of [[`/up/.${p}-new`, path.join(upDir, `.${p}-new`), 404], [`/deny/.${p}-newdir/x.txt`, path.join(denyRoot, `.${p}-newdir`), 403]] as const) {
        const r = await call(u, { method: 'PUT', body: 'x', headers: BEARER })
        assert.equal(r.status, status, u)
        assert.ok(!existsSync(made), u)
      }
      assert.deepEqual(tempFiles(), [])
      await alive()
      assert.equal((await call(`/deny/${p}-ok.txt`, { method: 'PUT', body: 'fine', headers: BEARER })).status, 201)
      assert.equal((await get(`/deny/${p}-ok.txt`)).text, 'fine')
    })

    test('/.well-known/ stays as it was: served, removable, not writable', async () => {
      const file = path.join(upDir, '.well-known', `${p}.txt`)
      mkdirSync(path.dirname(file), { recursive: true })
      writeFileSync(file, 'well known')
      const u = `/up/.well-known/${p}.txt`
      const g = await get(u)
      assert.equal(g.status, 200)
      assert.equal(g.text, 'well known')
      const put = await call(u, { method: 'PUT', body: 'replaced', headers: BEARER })
      assert.equal(put.status, 403)
      assert.match(put.text, /names starting with a dot cannot be written/)
      assert.equal(readFileSync(file, 'utf8'), 'well known')
      const del = await call(u, { method: 'DELETE', headers: BEARER })
      assert.equal(del.status, 204)
      assert.ok(!existsSync(file))
      await alive()
    })

    test('a link leading outside the root is absent for every method (404); symlinks: follow serves it but never writes it', async () => {
      for (const u of ['/up/linked/victim.txt', '/up/victim-link.txt']) {
        for (const [method, headers, body] of [['GET', {}, undefined], ['HEAD', {}, undefined], ['PUT', BEARER, 'escaped'], ['DELETE', BEARER, undefined]] as const) {
          const r = await call(u, { method, headers, body })
          assert.equal(r.status, 404, `${method} ${u}`)
          assert.ok(!r.text.includes('outside the root'))
        }
      }
      const served = await get('/follow/linked/victim.txt')
      assert.equal(served.status, 200)
      assert.equal(served.text, 'outside the root')
      for (const [method, body] of [['PUT', 'escaped'], ['DELETE', undefined]] as const) {
        const r = await call('/follow/linked/victim.txt', { method, headers: BEARER, body })
        assert.equal(r.status, 403, method)
        assert.match(r.text, /the path leads outside the root/)
      }
      assert.equal(readFileSync(path.join(outside, 'victim.txt'), 'utf8'), 'outside the root')
      assert.deepEqual(outsideTree(), OUTSIDE_TREE)
      assert.ok(existsSync(path.join(upDir, 'victim-link.txt')), 'the link itself stays')
      await alive()
    })

    if (protocol === 'http/1.1') {
      test('Expect: 100-continue with a too-large Content-Length -> 413 without 100 Continue', async () => {
        const text = await raw(
          srv.port,
          `PUT /up/h1-expect-big.txt HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${MAX + 1}\r\nExpect: 100-continue\r\n\r\n`,
          800,
        )
        assert.ok(!text.includes('100 Continue'), text)
        assert.deepEqual(statuses(text), [413])
        assert.ok(!existsSync(path.join(upDir, 'h1-expect-big.txt')))
        await alive()
      })

      test('Expect: 100-continue with an acceptable request -> 100 Continue, then 201', async () => {
        const { connect } = await import('node:net')
        const text = await new Promise<string>((resolve, reject) => {
          const sock = connect(srv.port, '127.0.0.1')
          let data = ''
          let sentBody = false
          sock.setEncoding('latin1')
          sock.on('data', (d: string) => {
            data += d
            if (!sentBody && data.includes('HTTP/1.1 100 Continue\r\n\r\n')) {
              sentBody = true
              sock.write('hello')
            }
            if (/HTTP\/1\.1 201 [^\r]*\r\n[\s\S]*\r\n\r\n[\s\S]*\n$/.test(data)) sock.end()
          })
          sock.on('close', () => resolve(data))
          sock.on('error', reject)
          setTimeout(() => sock.destroy(), 2000)
          sock.write(`PUT /up/h1-expect.txt HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`)
        })
        assert.ok(text.startsWith('HTTP/1.1 100 Continue\r\n'), text)
        assert.deepEqual(statuses(text), [100, 201])
        assert.equal(readFileSync(path.join(upDir, 'h1-expect.txt'), 'utf8'), 'hello')
      })
    } else {
      test('Expect: 100-continue over h2c: too large -> 413 without continue; acceptable -> continue, then 201', async () => {
        async function expect(u: string, length: number, body: string): Promise<{ continued: boolean; status: number }> {
          const session = http2.connect(srv.url)
          try {
            return await new Promise((resolve, reject) => {
              let continued = false
              const stream = session.request({ ':method': 'PUT', ':path': u, ...BEARER, 'content-length': String(length), expect: '100-continue' })
              stream.on('continue', () => {
                continued = true
                stream.end(body)
              })
              stream.on('response', (h) => {
                const status = Number(h[':status'])
                stream.resume()
                stream.on('end', () => resolve({ continued, status }))
                stream.on('close', () => resolve({ continued, status }))
              })
              stream.on('error', reject)
            })
          } finally {
            session.close()
          }
        }
        const big = await expect('/up/h2-expect-big.txt', MAX + 1, '')
        assert.deepEqual(big, { continued: false, status: 413 })
        assert.ok(!existsSync(path.join(upDir, 'h2-expect-big.txt')))
        const ok = await expect('/up/h2-expect.txt', 5, 'hello')
        assert.deepEqual(ok, { continued: true, status: 201 })
        assert.equal(readFileSync(path.join(upDir, 'h2-expect.txt'), 'utf8'), 'hello')
        await alive()
      })
    }
  })
}

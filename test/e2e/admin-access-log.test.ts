import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { closedWithin, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The live access log of the admin API (`GET /api/v1/access-log`) over real
 * sockets: Server-Sent Events of `event: access`, one JSON line per answer,
 * its filters and their refusals, and a client that stops reading is cut
 * while the sites go on serving.
 */

let box: TestServer
let admin: string
let adminPort: number
let cleanup: () => void

before(async () => {
  let dir: string
  ;({ dir, cleanup } = tempDir())
  writeFileSync(path.join(dir, 'index.html'), 'home')
  box = await startServer({ admin: { port: 0 }, sites: [{ routes: [{ path: '/', static: { root: dir } }] }] })
  admin = box.box.admin!.url
  adminPort = box.box.admin!.port
})

after(async () => {
  await box?.close()
  cleanup?.()
})

/** A JSON answer of the admin API. */
function call(p: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${admin}${p.replace(/^\//, '')}`, { agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as Record<string, unknown> }))
      })
      .on('error', reject)
  })
}

/** A request to the site, on `agent`'s connections. */
function site(p: string, agent: http.Agent | false = false): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${box.url}${p.replace(/^\//, '')}`, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode!))
      })
      .on('error', reject)
  })
}

/** Opens the stream; resolves once it is open, with the events as they come. */
function stream(query: string): Promise<{ events: Record<string, unknown>[]; raw: () => string; next(n: number): Promise<Record<string, unknown>[]>; close(): void; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${admin}api/v1/access-log${query}`, { agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
      const events: Record<string, unknown>[] = []
      let text = ''
      let waiting: (() => void) | null = null
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        text += c
        for (;;) {
          const end = text.indexOf('\n\n')
          if (end === -1) break
          const block = text.slice(0, end)
          text = text.slice(end + 2)
          all += block + '\n\n'
          const m = /^event: access\ndata: (.*)$/.exec(block)
          if (m) events.push(JSON.parse(m[1]!) as Record<string, unknown>)
        }
        waiting?.()
      })
      let all = ''
      resolve({
        events,
        headers: res.headers,
        raw: () => all,
        next: (n) =>
          new Promise((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`only ${events.length} of ${n} events within 5 s: ${JSON.stringify(events)}`)), 5000)
            const check = () => {
              if (events.length < n) return
              clearTimeout(timer)
              waiting = null
              done(events.slice(0, n))
            }
            waiting = check
            check()
          }),
        close: () => req.destroy(),
      })
    })
    req.on('error', () => {})
  })
}

/** The live access log streams open and cut so far (the overview's accessLogStreams). */
async function streams(): Promise<{ open: number; cut: number }> {
  return (await call('/api/v1/overview')).json.accessLogStreams as { open: number; cut: number }
}

test('event: access lines of JSON, only the answers the filters keep (status and path), in order', async () => {
  const s = await stream('?status=404&path=/missing')
  assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8')
  assert.equal(s.headers['cache-control'], 'no-store')
  assert.equal(await site('/index.html'), 200)
  assert.equal(await site('/other'), 404)
  assert.equal(await site('/missing/x'), 404)
  assert.equal(await site('/missing/y?q=1'), 404)
  const [x, y] = await s.next(2)
  // the access log's own line (log.format json)
  assert.deepEqual(Object.keys(x!), ['time', 'msg', 'method', 'host', 'path', 'status', 'bytes', 'ms', 'cache', 'proto', 'client'])
  const { time, ms, bytes, ...rest } = x!
  assert.ok(typeof time === 'number' && Math.abs(time - Date.now()) < 60_000)
  assert.ok(typeof ms === 'number' && typeof bytes === 'number' && bytes > 0)
  assert.deepEqual(rest, { msg: 'request', method: 'GET', host: '127.0.0.1', path: '/missing/x', status: 404, cache: 'MISS', proto: 'http/1.1', client: '127.0.0.1' })
  assert.equal(y!.path, '/missing/y')
  assert.equal(s.events.length, 2)
  s.close()
})

test('a status class and a site (by id or host) filter too', async () => {
  const byId = await stream(`?site=${encodeURIComponent('sites[0]')}&status=2xx`)
  const byHost = await stream('?site=127.0.0.1&status=2XX')
  const other = await stream('?site=elsewhere.test')
  assert.equal(await site('/none'), 404)
  assert.equal(await site('/index.html'), 200)
  assert.equal(((await byId.next(1))[0]!).path, '/index.html')
  assert.equal(((await byHost.next(1))[0]!).path, '/index.html')
  assert.equal(other.events.length, 0)
  for (const s of [byId, byHost, other]) s.close()
})

test('malformed filters: 400 naming the parameter; the next request is served', async () => {
  const cases: Array<[string, RegExp]> = [
    ['?status=4x', /^status: expected a status \(404\) or a class \(4xx\), not "4x"$/],
    ['?status=600', /^status: /],
    ['?path=missing', /^path: expected a path prefix starting with \/ \(at most 2048 characters\), not "missing"$/],
    ['?site=%20bad', /^site: expected a host of a site or its id/],
    ['?status=404&status=500', /^status: given more than once$/],
    ['?tail=1', /^tail: unknown parameter \(this endpoint takes site, status, path\)$/],
  ]
  for (const [q, why] of cases) {
    const r = await call(`/api/v1/access-log${q}`)
    assert.equal(r.status, 400, q)
    assert.match(r.json.error as string, why, q)
  }
  const ok = await stream('?status=404')
  assert.equal(await site('/nope'), 404)
  assert.equal(((await ok.next(1))[0]!).path, '/nope')
  ok.close()
})

test('a client that stops reading is cut (and counted); requests go on being served', async () => {
  const before = await streams()
  const sock = net.connect(adminPort, '127.0.0.1')
  await new Promise<void>((resolve) => sock.once('connect', resolve))
  sock.write(`GET /api/v1/access-log HTTP/1.1\r\nHost: 127.0.0.1:${adminPort}\r\n\r\n`)
  const head = await new Promise<string>((resolve) => sock.once('data', (c: Buffer) => resolve(c.toString('latin1'))))
  assert.match(head, /^HTTP\/1\.1 200 /)
  sock.pause()
  // watched from now: the cut may close the connection before the loop below sees the count
  const closed = closedWithin(sock, 30_000)
  // long paths: each answer is a long line on the stream; the kernel's buffers fill first, then the stream's
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  const long = 'a'.repeat(8000)
  let sent = 0
  let cut = false
  try {
    while (!cut && sent < 20_000) {
      const statuses = await Promise.all(Array.from({ length: 200 }, (_, i) => site(`/slow-${sent + i}-${long}`, agent)))
      sent += statuses.length
      assert.ok(statuses.every((s) => s === 404))
      cut = (await streams()).cut > before.cut
    }
  } finally {
    agent.destroy()
  }
  assert.ok(cut, `the stream was not cut after ${sent} requests`)
  assert.equal(await site('/index.html'), 200)
  sock.resume()
  assert.equal(await closed, true)
  assert.equal((await streams()).open, before.open)
})

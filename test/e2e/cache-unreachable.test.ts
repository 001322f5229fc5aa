import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock } from '../helpers/clock.ts'
import { formatHttpDate } from '../../src/http/date.ts'

/**
 * cache.staleIfUnreachable (docs/cache.md): a disconnected cache (RFC 9111
 * §4.2.4) serves a stale stored response while the origin cannot be reached
 * at all, within the configured window. Time is a manual clock shared by
 * Edgebox and the origin's Date field; the origin is closed for real, so
 * connections to it are refused.
 */

const clock = new ManualClock()
const origin = http.createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'Content-Type': 'text/plain', Date: formatHttpDate(clock.now()), 'Cache-Control': 'max-age=10' })
  res.end(`body of ${req.url}`)
})

let lenient: TestServer | undefined
let strict: TestServer | undefined
before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
  const proxy = (cache: object) => ({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [url], retries: { attempts: 0 }, cache } }] }] })
  lenient = await startServer(proxy({ staleIfUnreachable: '1m' }), undefined, { clock })
  strict = await startServer(proxy({}), undefined, { clock })
})
after(async () => {
  await lenient?.close()
  await strict?.close()
  if (origin.listening) await new Promise((r) => origin.close(r))
})

test('with staleIfUnreachable, a stale stored response is served while the origin refuses connections, within the window only; without it, the 502', async () => {
  const first = await request('http/1.1', lenient!.url + 'page')
  assert.equal(first.status, 200)
  const off = await request('http/1.1', strict!.url + 'page')
  assert.equal(off.status, 200)
  origin.closeAllConnections()
  await new Promise((r) => origin.close(r))
  clock.advance(10_000 + 60_000) // stale for 60 s: the edge of the 1m window
  const stale = await request('http/1.1', lenient!.url + 'page')
  assert.equal(stale.status, 200)
  assert.equal(stale.text, 'body of /page')
  assert.equal(stale.headers['cache-status'], 'edgebox; hit; ttl=-60; detail=stale-if-unreachable')
  const refused = await request('http/1.1', strict!.url + 'page')
  assert.equal(refused.status, 502, 'without the option the error goes through')
  clock.advance(1000)
  const late = await request('http/1.1', lenient!.url + 'page')
  assert.equal(late.status, 502, 'past the window the error goes through')
  assert.equal(late.headers['cache-status'], undefined)
})

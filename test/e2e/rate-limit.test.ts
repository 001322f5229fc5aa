import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, test } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock } from '../helpers/clock.ts'

/**
 * Rate limits per route (docs/security.md), with clients on several loopback
 * addresses. Time is a manual clock: buckets refill only when a test moves it.
 */

let srv: TestServer
const clock = new ManualClock()
before(async () => {
  srv = await startServer(
    {
      trustedProxies: ['127.0.0.3'],
      sites: [
        {
          routes: [
            { path: '/', redirect: { to: '/elsewhere' }, rateLimit: { requests: 4, per: '4s' } },
            { path: '/api/', redirect: { to: '/elsewhere' }, rateLimit: { requests: 2, per: '10s', key: 'credential' } },
            { path: '/free/', redirect: { to: '/elsewhere' } },
          ],
        },
      ],
    },
    undefined,
    { clock },
  )
})
after(() => srv.close())

function get(path: string, from = '127.0.0.1', headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: srv.port, path, localAddress: from, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', reject)
  })
}

test('a flood gets 429 with Retry-After and RateLimit fields, while another client is still served', async () => {
  const codes: number[] = []
  let refused
  for (let i = 0; i < 12; i++) {
    const r = await get('/x', '127.0.0.1')
    codes.push(r.status)
    if (r.status === 429) refused = r
  }
  assert.deepEqual(codes, [302, 302, 302, 302, 429, 429, 429, 429, 429, 429, 429, 429], 'no time passed: no token came back')
  assert.ok(refused)
  assert.equal(refused.headers['retry-after'], '1', 'the next token in 1 s (4 per 4 s)')
  assert.equal(refused.headers['ratelimit-limit'], '4')
  assert.equal(refused.headers['ratelimit-remaining'], '0')
  assert.equal(refused.headers['ratelimit-reset'], '1')
  assert.equal(refused.headers['ratelimit-policy'], '4;w=4')
  assert.match(refused.body, /rate limit of 4 requests per 4 s reached/)
  const other = await get('/x', '127.0.0.2')
  assert.equal(other.status, 302, 'another address has its own bucket')
  assert.equal(other.headers['ratelimit-remaining'], '3')
  assert.equal((await get('/free/x', '127.0.0.1')).status, 302, 'routes without a limit are not limited')
  // 4 per 4 s: a token comes back every second, not before
  clock.advance(999)
  assert.equal((await get('/x', '127.0.0.1')).status, 429)
  clock.advance(1)
  const back = await get('/x', '127.0.0.1')
  assert.equal(back.status, 302)
  assert.equal(back.headers['ratelimit-remaining'], '0')
  assert.equal(back.headers['ratelimit-reset'], '4', 'full again 4 s from now')
  assert.equal((await get('/x', '127.0.0.1')).status, 429, 'exactly one token came back')
  // a long quiet spell refills the bucket up to its size, no more
  clock.advance(60_000)
  const after = []
  for (let i = 0; i < 5; i++) after.push((await get('/x', '127.0.0.1')).status)
  assert.deepEqual(after, [302, 302, 302, 302, 429])
})

test('per credential: each token has its own bucket; no credential counts by address', async () => {
  const a = { authorization: 'Bearer alice' }
  const b = { authorization: 'Bearer bob' }
  assert.deepEqual([(await get('/api/1', '127.0.0.4', a)).status, (await get('/api/2', '127.0.0.4', a)).status, (await get('/api/3', '127.0.0.4', a)).status], [302, 302, 429])
  assert.equal((await get('/api/4', '127.0.0.4', b)).status, 302)
  assert.deepEqual([(await get('/api/5', '127.0.0.5')).status, (await get('/api/6', '127.0.0.5')).status, (await get('/api/7', '127.0.0.5')).status], [302, 302, 429])
})

test('behind a trusted proxy the forwarded client is limited; a forged X-Forwarded-For from anyone else is ignored', async () => {
  // 127.0.0.3 is a trusted proxy: each forwarded client has its own bucket
  for (let i = 0; i < 4; i++) assert.equal((await get('/p', '127.0.0.3', { 'x-forwarded-for': '203.0.113.7' })).status, 302)
  assert.equal((await get('/p', '127.0.0.3', { 'x-forwarded-for': '203.0.113.7' })).status, 429)
  assert.equal((await get('/p', '127.0.0.3', { 'x-forwarded-for': '203.0.113.8' })).status, 302)
  // 127.0.0.6 is not trusted: rotating the header does not give it new buckets
  const codes = []
  for (let i = 0; i < 6; i++) codes.push((await get('/p', '127.0.0.6', { 'x-forwarded-for': `198.51.100.${i}` })).status)
  assert.deepEqual(codes, [302, 302, 302, 302, 429, 429])
})

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { routeChain, RESPONSE_FILTERS, ROUTE_STEPS } from '../../src/core/pipeline.ts'
import type { RouteParts } from '../../src/core/types.ts'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/** Edgebox's own endpoints under /_edgebox/ (docs/configuration.md), and the pipeline's declared order. */

describe("Edgebox's own endpoints", () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer({
      sites: [
        { hosts: ['a.test'], routes: [{ path: '/', redirect: { to: '/elsewhere' } }], headers: { frameOptions: 'DENY' } },
        { hosts: ['b.test'], routes: [{ path: '/', redirect: { to: '/elsewhere' } }] },
      ],
    })
  })
  after(() => srv.close())

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: health on every site, before the routes, with the site's security headers`, async () => {
      for (const host of ['a.test', 'b.test']) {
        const r = await request(protocol, `${srv.url}_edgebox/health`, { headers: protocol === 'h2c' ? {} : { host } })
        assert.equal(r.status, 200)
        assert.equal(JSON.parse(r.text).status, 'ok')
        assert.equal(r.headers['cache-control'], 'no-store')
      }
      const framed = await request(protocol, `${srv.url}_edgebox/health`, { headers: protocol === 'h2c' ? {} : { host: 'a.test' } })
      if (protocol !== 'h2c') assert.equal(framed.headers['x-frame-options'], 'DENY')
    })

    test(`${protocol}: the namespace is reserved: an unknown endpoint is a 404 that says so, not a route's answer`, async () => {
      const r = await request(protocol, `${srv.url}_edgebox/nothing-here`)
      assert.equal(r.status, 404)
      assert.match(r.text, /no Edgebox endpoint \/_edgebox\/nothing-here on this site/)
      const other = await request(protocol, `${srv.url}_edgebox`)
      assert.equal(other.status, 302, '/_edgebox without the slash is an ordinary path')
    })

    test(`${protocol}: a method the endpoint does not take: 405 with Allow`, async () => {
      const r = await request(protocol, `${srv.url}_edgebox/health`, { method: 'POST', body: 'x' })
      assert.equal(r.status, 405)
      assert.equal(r.headers.allow, 'GET, HEAD')
      assert.equal((await request(protocol, `${srv.url}_edgebox/health`)).status, 200)
    })
  }

  test('health: false turns the endpoint off; paths outside /_edgebox/ and routes inside it are refused at start', async () => {
    const off = await startServer({ health: false, sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] })
    try {
      assert.equal((await request('http/1.1', `${off.url}_edgebox/health`)).status, 404)
    } finally {
      await off.close()
    }
    await assert.rejects(startServer({ health: '/health', sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] }), /health: is a path under \/_edgebox\//)
    await assert.rejects(startServer({ sites: [{ routes: [{ path: '/_edgebox/mine/', redirect: { to: '/x' } }] }] }), /sites\[0\]\.routes\[0\]\.path: \/_edgebox\/ is reserved/)
  })
})

test("the pipeline puts each route's steps and filters in its declared order, whatever order they were built in", () => {
  const ran: string[] = []
  const parts = new Map<string, RouteParts>()
  for (const name of [...ROUTE_STEPS].reverse()) parts.set(name, { step: () => void ran.push(`step:${name}`), filter: () => void ran.push(`filter:${name}`) })
  parts.set('serverTiming', { filter: () => void ran.push('filter:serverTiming') })
  const chain = routeChain(parts)
  for (const step of chain.access) step({} as never)
  for (const filter of chain.filters) filter({} as never, {})
  assert.deepEqual(ran, [
    ...ROUTE_STEPS.map((n) => `step:${n}`),
    ...RESPONSE_FILTERS.filter((n) => parts.has(n)).map((n) => `filter:${n}`),
  ])
  assert.deepEqual(ran.slice(ROUTE_STEPS.length), ['filter:jsonp', 'filter:serverTiming', 'filter:cors', 'filter:rateLimit'])
  assert.throws(() => routeChain(new Map([['mystery', {}]])), /no place for the filter module mystery/)
})

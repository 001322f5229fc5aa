import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { Agent, request as undiciRequest } from 'undici'
import { startServer } from '../helpers/server.ts'

/**
 * Issue 3, "bad input and faults": when one of two upstreams dies under
 * load, clients see no 5xx for idempotent requests (retries move them to
 * the other upstream, and passive ejection takes the dead one out).
 */

async function upstream(name: string): Promise<{ url: string; server: http.Server; served: () => number }> {
  let served = 0
  const server = http.createServer((req, res) => {
    served++
    req.resume()
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' })
    res.end(name)
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, served: () => served }
}

test('one of two upstreams dies under concurrent load: every GET still gets 200', async () => {
  const a = await upstream('a')
  const b = await upstream('b')
  const s = await startServer({ sites: [{ routes: [{ path: '/', proxy: { upstreams: [a.url, b.url] } }] }] })
  const agent = new Agent({ connections: 16 })
  const statuses = new Map<number, number>()
  const failures: string[] = []
  const stopAt = Date.now() + 1500
  try {
    const kill = setTimeout(() => {
      a.server.close()
      a.server.closeAllConnections()
    }, 500)
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (Date.now() < stopAt) {
          try {
            const r = await undiciRequest(s.url + 'item', { dispatcher: agent })
            await r.body.text()
            statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1)
          } catch (err) {
            failures.push((err as Error).message)
          }
        }
      }),
    )
    clearTimeout(kill)
    assert.deepEqual(failures, [])
    assert.deepEqual([...statuses.keys()], [200], JSON.stringify(Object.fromEntries(statuses)))
    assert.ok(a.served() > 0 && b.served() > 0, 'both served before the failure')
    assert.ok((statuses.get(200) ?? 0) > 100, 'a real load')
  } finally {
    await agent.close()
    await s.close()
    b.server.closeAllConnections()
    await new Promise((r) => b.server.close(r))
  }
})

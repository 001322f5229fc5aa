import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'

/** The `lab` handler: demo origins behind a real proxy + cache route (what lab/www/lab/cdn.html drives). */

let srv: TestServer
const P = '/lab/demo/'

before(async () => {
  srv = await startServer({ sites: [{ routes: [{ path: P, lab: {} }] }] })
})
after(() => srv.close())

const url = (p: string) => new URL(P + p, srv.url).href
const json = (body: string) => JSON.parse(body) as Record<string, unknown>

test('state lists the demo origins, their health and the purge token', async () => {
  const r = await request('http/1.1', url('state'))
  assert.equal(r.status, 200)
  assert.equal(r.headers['cache-control'], 'no-store')
  const s = json(r.body.toString()) as { cdn: string; purgeToken: string; origins: { name: string; url: string; up: boolean; healthy: boolean }[] }
  assert.equal(s.cdn, `${P}cdn/`)
  assert.ok(s.purgeToken.length >= 16)
  assert.deepEqual(s.origins.map((o) => [o.name, o.up, o.healthy]), [['a', true, true], ['b', true, true]])
  for (const o of s.origins) assert.match(o.url, /^http:\/\/127\.0\.0\.1:\d+$/)
})

test('objects go through the shared cache: miss, then hit with the same body', async () => {
  const first = await request('http/1.1', url('cdn/obj/e2e?cc=public%2C%20max-age%3D30'))
  assert.equal(first.status, 200)
  assert.equal(first.headers['cache-control'], 'public, max-age=30')
  assert.match(String(first.headers.etag), /^"e2e-v1"$/)
  assert.equal(first.headers['cache-status'], 'edgebox-lab; fwd=miss; fwd-status=200; stored; ttl=30')
  const second = await request('http/1.1', url('cdn/obj/e2e?cc=public%2C%20max-age%3D30'))
  assert.match(String(second.headers['cache-status']), /^edgebox-lab; hit; ttl=(29|30)$/)
  assert.equal(second.body.toString(), first.body.toString())
})

test('a stopped origin refuses connections: requests move to the other, and it comes back when started', async () => {
  const stopped = json((await request('http/1.1', url('origins/a/stop'), { method: 'POST' })).body.toString()) as { origins: { up: boolean }[] }
  assert.equal(stopped.origins[0]!.up, false)
  const origins = []
  for (let i = 0; i < 4; i++) {
    const r = await request('http/1.1', url('cdn/nostore'))
    assert.equal(r.status, 200)
    origins.push(r.headers['x-origin'])
  }
  assert.deepEqual(origins, ['b', 'b', 'b', 'b'])
  await request('http/1.1', url('origins/a/start'), { method: 'POST' })
  const t0 = Date.now()
  let back = false
  while (!back && Date.now() - t0 < 8000) {
    await new Promise((r) => setTimeout(r, 200))
    const s = json((await request('http/1.1', url('state'))).body.toString()) as { origins: { healthy: boolean }[] }
    back = s.origins[0]!.healthy
  }
  assert.ok(back, 'origin a is healthy again')
  const seen = new Set()
  for (let i = 0; i < 4; i++) seen.add((await request('http/1.1', url('cdn/nostore'))).headers['x-origin'])
  assert.deepEqual([...seen].sort(), ['a', 'b'])
})

test('changing an object makes the next revalidation fetch the new version', async () => {
  const cc = '?cc=no-cache'
  const v1 = json((await request('http/1.1', url(`cdn/obj/chg${cc}`))).body.toString())
  const again = await request('http/1.1', url(`cdn/obj/chg${cc}`))
  assert.match(String(again.headers['cache-status']), /fwd=stale; fwd-status=304/)
  const changed = await request('http/1.1', url('objects/chg/change'), { method: 'POST' })
  assert.equal(json(changed.body.toString()).version, 2)
  const v2 = await request('http/1.1', url(`cdn/obj/chg${cc}`))
  assert.match(String(v2.headers['cache-status']), /fwd=stale; fwd-status=200/)
  assert.equal(json(v2.body.toString()).version, (v1.version as number) + 1)
})

test('bad input: an unknown endpoint is 404, a wrong method 405 with Allow, an invalid cc 400', async () => {
  assert.equal((await request('http/1.1', url('nothing'))).status, 404)
  assert.equal((await request('http/1.1', url('origins/z/stop'), { method: 'POST' })).status, 404)
  const wrong = await request('http/1.1', url('origins/a/stop'))
  assert.equal(wrong.status, 405)
  assert.equal(wrong.headers.allow, 'POST')
  const bad = await request('http/1.1', url('cdn/obj/x?cc=%3Cscript%3E'))
  assert.equal(bad.status, 400)
  assert.match(bad.body.toString(), /cc: letters, digits/)
  assert.equal((await request('http/1.1', url('cdn/obj/Bad_Name'))).status, 404)
})

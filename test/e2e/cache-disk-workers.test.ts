import assert from 'node:assert/strict'
import { readdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { tempDir } from '../helpers/server.ts'
import { connectionTo, fresh, startCommand, type Answer, type Run } from '../helpers/workers.ts'

/**
 * A disk cache with workers (docs/cache.md, docs/scale.md), through the real
 * command: `workers: 2` and `cache: { disk: './cache' }` share one store in
 * that folder. An object stored through one worker is a hit on the other, so
 * the origin is asked once for the node; the store outlives a restart of the
 * node.
 */

const TOKEN = 'purge-token-0123456789'

/** Requests the origin got, by path. */
const asked = new Map<string, number>()
const origin = http.createServer((req, res) => {
  const n = (asked.get(req.url!) ?? 0) + 1
  asked.set(req.url!, n)
  const body = `${req.url} #${n}`
  // the slow path holds its answer so that requests to both workers overlap
  setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end(body), req.url!.startsWith('/slow') ? 300 : 0)
})
const count = (p: string) => asked.get(p) ?? 0

/** `n` connections to each worker: [worker 1's, worker 2's]. */
async function connections(url: string, n = 1): Promise<[http.Agent[], http.Agent[]]> {
  const one: http.Agent[] = []
  const two: http.Agent[] = []
  for (let i = 0; i < n; i++) {
    one.push(await connectionTo(url, 1))
    two.push(await connectionTo(url, 2))
  }
  return [one, two]
}

let run: Run
let dir: { dir: string; cleanup(): void }
const open: http.Agent[] = []

before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  dir = tempDir()
  const config = {
    workers: 2,
    listen: [{ host: '127.0.0.1', port: 0 }],
    admin: { host: '127.0.0.1', port: 0 },
    log: { access: false },
    sites: [{ routes: [{ path: '/', proxy: { upstreams: [`http://127.0.0.1:${(origin.address() as AddressInfo).port}`], cache: { disk: './cache', purge: { token: TOKEN } } } }] }],
  }
  writeFileSync(path.join(dir.dir, 'edgebox.config.json'), JSON.stringify(config))
  run = await startCommand(dir.dir)
})

after(async () => {
  for (const a of open) a.destroy()
  await run?.stop()
  origin.close()
  dir.cleanup()
})

const status = (a: Answer) => String(a.headers['cache-status'])

test('an object stored through one worker is a hit on both; the origin is asked once', async () => {
  const [[one], [two]] = await connections(run.url)
  open.push(one!, two!)
  const first = await fresh(`${run.url}page`, { agent: one })
  assert.equal(status(first), 'edgebox; fwd=miss; fwd-status=200; stored; ttl=600')
  assert.equal(first.text, '/page #1')
  for (const agent of [two, one, two]) {
    const hit = await fresh(`${run.url}page`, { agent })
    assert.match(status(hit), /^edgebox; hit; ttl=\d+$/)
    assert.equal(hit.text, '/page #1')
  }
  // and the other way round
  assert.match(status(await fresh(`${run.url}other`, { agent: two })), /fwd=miss; fwd-status=200; stored/)
  const hit = await fresh(`${run.url}other`, { agent: one })
  assert.match(status(hit), /^edgebox; hit;/)
  assert.equal(hit.text, '/other #1')
  assert.deepEqual([count('/page'), count('/other')], [1, 1])
  const files = readdirSync(path.join(dir.dir, 'cache'))
  assert.equal(files.filter((f) => f.endsWith('.entry')).length, 2)
  assert.ok(files.includes('index.sqlite'))
  // the node's metrics count the one store once, not once per worker
  const admin = /admin listener on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(run.output())?.[1]
  assert.ok(admin)
  const metrics = (await fresh(`${admin}metrics`)).text
  assert.match(metrics, /^edgebox_cache_objects\{route="sites\[0\]\.routes\[0\]"\} 2$/m)
})

test('a cold object asked of both workers at once is fetched at most once per worker, and never again once stored', async () => {
  const [ones, twos] = await connections(run.url, 3)
  open.push(...ones, ...twos)
  const all = [...ones, ...twos]
  const answers = await Promise.all(all.map((agent) => fresh(`${run.url}slow`, { agent })))
  for (const a of answers) assert.equal(a.status, 200)
  assert.ok(count('/slow') >= 1 && count('/slow') <= 2, `asked ${count('/slow')} times by two workers`)
  const fetched = count('/slow')
  const again = await Promise.all(all.map((agent) => fresh(`${run.url}slow`, { agent })))
  for (const a of again) assert.match(status(a), /^edgebox; hit;/)
  assert.equal(count('/slow'), fetched, 'no fetch once stored')
})

test('a PURGE through one worker is a miss on the other', async () => {
  const [[one], [two]] = await connections(run.url)
  open.push(one!, two!)
  assert.match(status(await fresh(`${run.url}purged`, { agent: one })), /stored/)
  assert.match(status(await fresh(`${run.url}purged`, { agent: two })), /^edgebox; hit;/)
  const p = await fresh(`${run.url}purged`, { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}` }, agent: one })
  assert.deepEqual(JSON.parse(p.text), { purged: 1, what: 'url /purged' })
  const next = await fresh(`${run.url}purged`, { agent: two })
  assert.match(status(next), /fwd=miss/)
  assert.equal(next.text, '/purged #2')
})

test('after a restart of the node, both workers hit what was stored before', async () => {
  assert.equal(await run.stop(), 0)
  run = await startCommand(dir.dir)
  const [[one], [two]] = await connections(run.url)
  open.push(one!, two!)
  for (const agent of [one, two]) {
    const hit = await fresh(`${run.url}page`, { agent })
    assert.match(status(hit), /^edgebox; hit;/)
    assert.equal(hit.text, '/page #1')
  }
  assert.equal(count('/page'), 1)
})

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { readdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { tempDir } from '../helpers/server.ts'
import { connectionTo, fresh, startCommand, workerOf, type Run } from '../helpers/workers.ts'

/**
 * Workers (docs/scale.md), through the real command: `workers: 2` runs a
 * primary and two workers on one port. What the workers share is shared:
 * realtime channels, purges of their memory caches, rate-limit buckets. A
 * worker killed under load is started again while the other serves; a
 * reload under load refuses no connection; SIGTERM stops them all.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const KEY = 'publish-key-0123456789'
const TOKEN = 'purge-token-0123456789'

let originAsked = 0
/** Health probes the origin got, and whether it says it is healthy. */
let probes = 0
let originHealthy = true
const origin = http.createServer((req, res) => {
  if (req.url === '/health') {
    probes++
    return res.writeHead(originHealthy ? 200 : 503).end()
  }
  originAsked++
  res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end(`origin #${originAsked}`)
})

function config(originUrl: string, extra: Record<string, unknown> = {}) {
  return {
    workers: 2,
    listen: [{ host: '127.0.0.1', port: 0 }],
    log: { access: false },
    admin: { host: '127.0.0.1', port: 0 },
    ...extra,
    sites: [
      {
        routes: [
          { path: '/live/', realtime: { channels: { 'room:*': { history: { size: 100 } } }, publishKey: KEY } },
          { path: '/cached/', proxy: { upstreams: [originUrl], cache: { purge: { token: TOKEN } } } },
          { path: '/limited/', redirect: { to: '/elsewhere' }, rateLimit: { requests: 6, per: '1m' } },
          { path: '/disk/', proxy: { upstreams: [originUrl], cache: { disk: './cache' } } },
          { path: '/checked/', proxy: { upstreams: [originUrl], health: { active: { path: '/health', interval: '200ms', timeout: '150ms', rise: 1, fall: 1 } } } },
          { path: '/', static: { root: '.' } },
        ],
      },
    ],
  }
}

let run: Run
let dir: { dir: string; cleanup(): void }

before(async () => {
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  dir = tempDir()
  writeFileSync(path.join(dir.dir, 'index.html'), '<p>hello</p>')
  writeFileSync(path.join(dir.dir, 'edgebox.config.json'), JSON.stringify(config(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`)))
  run = await startCommand(dir.dir)
})

after(async () => {
  await run?.stop()
  origin.close()
  dir.cleanup()
})

describe('two workers on one port', () => {
  test('both answer: each accepts connections on the one port', async () => {
    const seen = new Set<number | undefined>()
    for (let i = 0; i < 100 && seen.size < 2; i++) seen.add(await workerOf(run.url))
    assert.deepEqual([...seen].sort(), [1, 2])
  })

  test('a message published through either worker reaches a subscriber on the other, in one order', async () => {
    const ws = new WebSocket(`${run.url.replace('http', 'ws')}live/ws`, ['edgebox.v1'])
    const got: Array<{ t: string; o?: number; d?: unknown }> = []
    ws.on('message', (d) => got.push(JSON.parse(d.toString())))
    await new Promise<void>((r, j) => ws.once('open', () => r()).once('error', j))
    ws.send(JSON.stringify({ t: 'sub', ch: 'room:a' }))
    const deadline = Date.now() + 5_000
    while (!got.some((m) => m.t === 'sub') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    // published through worker 1 and worker 2 in turn: whichever the subscriber is on, half of them cross over
    const through = [await connectionTo(run.url, 1), await connectionTo(run.url, 2)]
    for (let i = 1; i <= 6; i++) {
      const r = await fresh(`${run.url}live/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ ch: 'room:a', d: i }), agent: through[i % 2]! })
      assert.equal(r.status, 200, r.text)
    }
    for (const a of through) a.destroy()
    while (got.filter((m) => m.t === 'msg').length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    ws.close()
    const msgs = got.filter((m) => m.t === 'msg')
    assert.deepEqual(
      msgs.map((m) => [m.o, m.d]),
      [1, 2, 3, 4, 5, 6].map((i) => [i, i]),
    )
  })

  test("a PURGE through one worker empties the other worker's memory cache too", async () => {
    const one = await connectionTo(run.url, 1)
    const two = await connectionTo(run.url, 2)
    try {
      // each worker stores its own copy
      for (const agent of [one, two]) {
        assert.match(String((await fresh(`${run.url}cached/page`, { agent })).headers['cache-status']), /fwd=miss/)
        assert.match(String((await fresh(`${run.url}cached/page`, { agent })).headers['cache-status']), /hit/)
      }
      const p = await fresh(`${run.url}cached/page`, { method: 'PURGE', headers: { authorization: `Bearer ${TOKEN}` }, agent: one })
      assert.deepEqual(JSON.parse(p.text), { purged: 1, what: 'url /cached/page' })
      // worker 2 hears of it through the primary
      const deadline = Date.now() + 3_000
      let status = ''
      do status = String((await fresh(`${run.url}cached/page`, { agent: two })).headers['cache-status'])
      while (/hit/.test(status) && Date.now() < deadline && (await new Promise((r) => setTimeout(r, 20, true))))
      assert.match(status, /fwd=miss/, "worker 2's copy went")
    } finally {
      one.destroy()
      two.destroy()
    }
  })

  test("the admin listener's /metrics counts the answers of both workers", async () => {
    const admin = /admin listener on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(run.output())?.[1]
    assert.ok(admin, 'worker 1 runs the admin listener')
    const served = async () => {
      const text = (await fresh(`${admin}metrics`)).text
      const line = text.split('\n').find((l) => l.startsWith('edgebox_http_requests_total{') && l.includes('route="sites[0].routes[5]"') && l.includes('method="GET"') && l.includes('code="2xx"'))
      return line ? Number(line.split(' ').pop()) : 0
    }
    const before = await served()
    const one = await connectionTo(run.url, 1)
    const two = await connectionTo(run.url, 2)
    for (let i = 0; i < 5; i++) assert.equal((await fresh(`${run.url}index.html`, { agent: one })).status, 200)
    for (let i = 0; i < 3; i++) assert.equal((await fresh(`${run.url}index.html`, { agent: two })).status, 200)
    one.destroy()
    two.destroy()
    assert.equal(await served(), before + 8, 'five answered by worker 1, three by worker 2')
    const text = (await fresh(`${admin}metrics`)).text
    assert.match(text, /^edgebox_config_reloads_total\{result="ok"\} 0$/m, 'one count for the node, not one per worker')
  })

  test("an upstream's health checks run once for both workers, and both follow them", async () => {
    const before = probes
    const started = Date.now()
    await new Promise((r) => setTimeout(r, 2_000))
    const expected = (Date.now() - started) / 200
    assert.ok(probes - before <= expected * 1.3 + 1, `${probes - before} probes in ${Date.now() - started} ms at one every 200 ms: one prober, not two`)
    assert.ok(probes - before >= expected * 0.5, `probing (${probes - before})`)
    const through = [await connectionTo(run.url, 1), await connectionTo(run.url, 2)]
    try {
      for (const agent of through) assert.equal((await fresh(`${run.url}checked/x`, { agent })).status, 200)
      originHealthy = false
      const deadline = Date.now() + 3_000
      const statuses = async () => Promise.all(through.map(async (agent) => (await fresh(`${run.url}checked/x`, { agent })).status))
      let now = await statuses()
      while (now.some((st) => st !== 503) && Date.now() < deadline) now = await statuses()
      assert.deepEqual(now, [503, 503], 'both workers take the upstream out')
      originHealthy = true
      while (now.some((st) => st !== 200) && Date.now() < deadline + 3_000) now = await statuses()
      assert.deepEqual(now, [200, 200], 'and back in')
    } finally {
      originHealthy = true
      for (const a of through) a.destroy()
    }
  })

  test('a disk cache: both workers share one store, in the configured folder itself', async () => {
    const through = [await connectionTo(run.url, 1), await connectionTo(run.url, 2)]
    const asked = originAsked
    try {
      assert.match(String((await fresh(`${run.url}disk/page`, { agent: through[0] })).headers['cache-status']), /fwd=miss; fwd-status=200; stored/)
      for (const agent of through) assert.match(String((await fresh(`${run.url}disk/page`, { agent })).headers['cache-status']), /^edgebox; hit/)
    } finally {
      for (const a of through) a.destroy()
    }
    assert.equal(originAsked - asked, 1, 'stored by worker 1, a hit on worker 2')
    const files = readdirSync(path.join(dir.dir, 'cache'))
    assert.equal(files.filter((f) => f.endsWith('.entry')).length, 1, 'one entry')
    assert.ok(files.includes('index.sqlite'), 'the shared index')
    assert.deepEqual(
      files.filter((f) => f.startsWith('worker-')),
      [],
      'no folder per worker',
    )
  })

  test('a rate limit counts the requests of both workers in one bucket', async () => {
    const through = [await connectionTo(run.url, 1), await connectionTo(run.url, 2)]
    const statuses = []
    for (let i = 0; i < 8; i++) statuses.push((await fresh(`${run.url}limited/x`, { agent: through[i % 2]! })).status)
    for (const a of through) a.destroy()
    assert.deepEqual(statuses, [302, 302, 302, 302, 302, 302, 429, 429], 'six a minute, whichever worker counts')
  })
})

/** Requests to `url` one after another, each on a connection of its own, until stopped: how many got a 200, and what the others got. */
function requestLoop(url: string): { stop(): Promise<{ ok: number; failures: string[] }> } {
  let ok = 0
  const failures: string[] = []
  let stopped = false
  const running = (async () => {
    while (!stopped) {
      try {
        const r = await fresh(url)
        if (r.status === 200) ok++
        else failures.push(String(r.status))
      } catch (err) {
        failures.push((err as Error).message)
      }
    }
  })()
  return {
    async stop() {
      stopped = true
      await running
      return { ok, failures }
    },
  }
}

describe('the workers under faults and signals', () => {
  test('a worker killed with SIGKILL under load is started again; the other serves meanwhile', async () => {
    const pids = execFileSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number)
    assert.equal(pids.length, 2, 'two workers')
    const load = requestLoop(run.url)
    await new Promise((r) => setTimeout(r, 200))
    process.kill(pids[1]!, 'SIGKILL')
    await new Promise((r) => setTimeout(r, 1_500))
    const { ok, failures } = await load.stop()
    assert.ok(failures.length <= 1, `at most the one request in flight on the killed worker fails (${failures.length} of ${ok + failures.length})`)
    assert.ok(ok > 20)
    const now = execFileSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number)
    assert.equal(now.length, 2, 'two workers again')
    assert.ok(!now.includes(pids[1]!), 'the killed one was replaced')
    // the new worker answers once it has started
    const seen = new Set<number | undefined>()
    const deadline = Date.now() + 15_000
    while (seen.size < 2 && Date.now() < deadline) seen.add(await workerOf(run.url))
    assert.deepEqual([...seen].sort(), [1, 2])
  })

  test('a reload (SIGHUP) under load refuses no connection, and every worker takes the new configuration', async () => {
    const file = path.join(dir.dir, 'edgebox.config.json')
    const next = config(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`)
    next.sites[0]!.routes.unshift({ path: '/added/', redirect: { to: '/new' } } as never)
    writeFileSync(file, JSON.stringify(next))
    const load = requestLoop(run.url)
    await new Promise((r) => setTimeout(r, 150))
    process.kill(run.child.pid!, 'SIGHUP')
    const deadline = Date.now() + 5_000
    let both = false
    while (!both && Date.now() < deadline) {
      const answers = []
      for (let i = 0; i < 4; i++) answers.push((await fresh(`${run.url}added/x`)).status)
      both = answers.every((s) => s === 302)
    }
    const { ok, failures } = await load.stop()
    assert.equal(both, true, 'both workers answer the added route')
    assert.deepEqual(failures, [])
    assert.ok(ok > 20)
  })

  test('SIGTERM stops the primary and both workers, exit code 0', async () => {
    const pids = execFileSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number)
    assert.equal(await run.stop(), 0)
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`)
  })
})

test('a configuration the workers refuse stops the primary with the error, exit code 1', async () => {
  const t = tempDir()
  try {
    writeFileSync(path.join(t.dir, 'edgebox.config.json'), JSON.stringify({ workers: 2, listen: [{ host: '127.0.0.1', port: 0 }], sites: [{ routes: [{ path: '/', static: { root: './missing' } }] }] }))
    const child = spawn(process.execPath, [BIN, '--config', 'edgebox.config.json'], { cwd: t.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((r) => child.once('exit', r))
    assert.notEqual(code, 0)
    assert.match(out, /sites\[0\]\.routes\[0\]\.static\.root: directory \.\/missing does not exist/)
  } finally {
    t.cleanup()
  }
})

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freePort } from '../helpers/pebble.ts'
import { connectionTo, fresh, startCommand, type Run } from '../helpers/workers.ts'

/**
 * The dashboard with workers (docs/admin.md, docs/scale.md): worker 1 runs
 * the admin listener, and its overview, series and recent errors are the
 * node's, not its own: the other worker sends it each second's figures.
 */

let run: Run
let dir: string
let site: string
let admin = ''

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-workers-dashboard-'))
  writeFileSync(path.join(dir, 'index.html'), '<p>hello</p>')
  const dead = await freePort()
  writeFileSync(
    path.join(dir, 'edgebox.config.json'),
    JSON.stringify({
      workers: 2,
      listen: [{ host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      log: { access: false },
      sites: [{ routes: [{ path: '/down/', proxy: { upstreams: [`http://127.0.0.1:${dead}`] } }, { path: '/', static: { root: '.' } }] }],
    }),
  )
  run = await startCommand(dir)
  site = run.url
  const end = Date.now() + 20_000
  while (!(admin = /admin listener on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(run.output())?.[1] ?? '') && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
  assert.ok(admin, `worker 1 runs the admin listener:\n${run.output()}`)
})

after(async () => {
  await run?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const api = async (p: string) => JSON.parse((await fresh(`${admin}api/v1/${p}`)).text) as Record<string, unknown>

test("worker 1's overview, series and recent errors count the other worker's answers too", { timeout: 30_000 }, async () => {
  const before = (await api('overview')).totals as { requests: number; errors: number }
  const asked = { n: 0 }
  const one = await connectionTo(site, 1, asked)
  const two = await connectionTo(site, 2, asked)
  for (let i = 0; i < 4; i++) assert.equal((await fresh(`${site}index.html`, { agent: one })).status, 200)
  for (let i = 0; i < 6; i++) assert.equal((await fresh(`${site}index.html`, { agent: two })).status, 200)
  assert.equal((await fresh(`${site}down/x`, { agent: two })).status, 502, 'a server error, on worker 2')
  // worker 2 says what it has open each second
  let open: Record<string, number> = {}
  for (let i = 0; i < 15 && !(open['http/1.1']! >= 2); i++) {
    await new Promise((r) => setTimeout(r, 200))
    open = (await api('overview')).connections as Record<string, number>
  }
  assert.ok(open['http/1.1']! >= 2, `both kept-alive connections are counted (${JSON.stringify(open)})`)
  one.destroy()
  two.destroy()
  const made = asked.n + 4 + 6 + 1
  // worker 2's second reaches worker 1 when it closes: within a couple of seconds
  const end = Date.now() + 5_000
  let totals = before
  while (Date.now() < end) {
    totals = (await api('overview')).totals as typeof before
    if (totals.requests - before.requests >= made && totals.errors - before.errors >= 1) break
    await new Promise((r) => setTimeout(r, 200))
  }
  assert.equal(totals.requests - before.requests, made, 'every answer of both workers, once')
  assert.equal(totals.errors - before.errors, 1)
  const errors = (await api('errors')).errors as Array<{ path: string; status: number }>
  assert.ok(
    errors.some((e) => e.path === '/down/x' && e.status === 502),
    "worker 2's server error is in worker 1's list",
  )
  // the series closes a second at a time: both workers' answers are in it within a couple of seconds
  let counted = 0
  for (let i = 0; i < 25 && counted < made; i++) {
    const series = (await api('series?window=1h')).series as { requests: number[] }
    counted = series.requests.reduce((a, b) => a + b, 0)
    if (counted < made) await new Promise((r) => setTimeout(r, 200))
  }
  assert.equal(counted, made, "the one-second series has both workers' answers")
})

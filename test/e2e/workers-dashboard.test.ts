import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { freePort } from '../helpers/pebble.ts'

/**
 * The dashboard with workers (docs/admin.md, docs/scale.md): worker 1 runs
 * the admin listener, and its overview, series and recent errors are the
 * node's, not its own: the other worker sends it each second's figures.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')

let child: ChildProcess
let dir: string
let site: string
let admin: string
let output = ''

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
  child = spawn(process.execPath, [BIN, '--config', 'edgebox.config.json'], { cwd: dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const end = Date.now() + 20_000
  while (Date.now() < end) {
    site = /listening on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1] ?? ''
    admin = /admin listener on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1] ?? ''
    if (site && admin) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`not started within 20 s:\n${output}`)
})

after(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }
  rmSync(dir, { recursive: true, force: true })
})

/** One request on a connection of its own (either worker may take it). */
function get(url: string, agent: http.Agent | false = false): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 5_000 }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode!, text }))
    })
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 5 s`)))
    req.on('error', reject)
  })
}

/** A kept-alive connection that worker `index` accepted; the health requests it took are counted in `asked`. */
async function connectionTo(index: number, asked: { n: number }): Promise<http.Agent> {
  for (let i = 0; i < 100; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    asked.n++
    if ((JSON.parse((await get(`${site}_edgebox/health`, agent)).text) as { worker: number }).worker === index) return agent
    agent.destroy()
  }
  throw new Error(`no connection reached worker ${index}`)
}

const api = async (p: string) => JSON.parse((await get(`${admin}api/v1/${p}`)).text) as Record<string, unknown>

test("worker 1's overview, series and recent errors count the other worker's answers too", { timeout: 30_000 }, async () => {
  const before = (await api('overview')).totals as { requests: number; errors: number }
  const asked = { n: 0 }
  const one = await connectionTo(1, asked)
  const two = await connectionTo(2, asked)
  for (let i = 0; i < 4; i++) assert.equal((await get(`${site}index.html`, one)).status, 200)
  for (let i = 0; i < 6; i++) assert.equal((await get(`${site}index.html`, two)).status, 200)
  assert.equal((await get(`${site}down/x`, two)).status, 502, 'a server error, on worker 2')
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

import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openFds, request, startServer, type TestServer } from '../helpers/server.ts'
import type { ChildMessage } from '../helpers/realtime-idle-clients.ts'

/**
 * 10,000 idle WebSocket connections on one realtime route (docs/realtime.md):
 * a child process opens them (each subscribed to one channel); then one
 * broadcast reaches all of them, the server still answers HTTP promptly,
 * and its memory per connection stays under a generous bound. The server
 * runs in this process, so its memory is this process's RSS. Bounded to
 * 60 s; skipped when the open-files limit cannot hold the connections
 * (this process holds the server's sockets, the child the clients').
 */

const COUNT = 10_000
const KEY = 'idle-test-publish-key-0123456789'
const CHANNEL = 'idle:all'
/** RSS delta per connection: about 17 KB measured here (no forced GC; ~8 KB after one, bench/realtime.sh); the bound is generous. */
const MAX_BYTES_PER_CONN = 64 * 1024
const CHILD = fileURLToPath(new URL('../helpers/realtime-idle-clients.ts', import.meta.url))

/** The soft open-files limit (Linux /proc), or undefined where it cannot be read. */
function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (!m) return undefined
    return m[1] === 'unlimited' ? Infinity : Number(m[1])
  } catch {
    return undefined
  }
}

const limit = openFilesLimit()
const need = COUNT + 1000
const skip = limit === undefined ? 'cannot read the open-files limit (/proc/self/limits): Linux only' : limit < need ? `the open-files limit is ${limit}; ${COUNT} connections need at least ${need} (ulimit -n ${need})` : false

let srv: TestServer
before(async () => {
  if (skip) return
  srv = await startServer({
    // limits.maxConnections (default 10,000 per listener) counts WebSocket connections too: with
    // exactly 10,000 of them open, the default would refuse the HTTP requests this test makes.
    limits: { maxConnections: COUNT + 100 },
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'idle:*': {} }, publishKey: KEY } }] }],
  })
})
after(() => srv?.close())

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The next message of the given type from the child, or an error if it fails, exits or `ms` pass. */
function next<T extends ChildMessage['type']>(child: ChildProcess, type: T, ms: number): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const done = (fn: () => void) => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      fn()
    }
    const timer = setTimeout(() => done(() => reject(new Error(`no '${type}' from the client process within ${ms} ms`))), ms)
    const onMessage = (m: ChildMessage) => {
      if (m.type === type) done(() => resolve(m as Extract<ChildMessage, { type: T }>))
      else if (m.type === 'error') done(() => reject(new Error(`client process: ${m.message} (${m.subscribed} subscribed)`)))
    }
    const onExit = (code: number | null) => done(() => reject(new Error(`client process exited (${code}) before '${type}'`)))
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

function exited(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve(null)
    }, ms)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

test(`${COUNT} idle WebSocket connections: one broadcast reaches all, HTTP still answers, memory per connection bounded`, { skip, timeout: 60_000 }, async (t) => {
  const fdsBefore = openFds()
  await sleep(200)
  const before = process.memoryUsage()
  const wsUrl = srv.url.replace(/^http/, 'ws') + 'live/ws'
  const child = fork(CHILD, [wsUrl, String(COUNT), CHANNEL, '50000'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    const open = await next(child, 'open', 40_000)
    assert.equal(open.count, COUNT)
    t.diagnostic(`${open.count} connections open and subscribed in ${open.ms} ms (source addresses ${open.sources.join(', ')})`)
    assert.ok(openFds() >= fdsBefore + COUNT, `the server holds ${openFds() - fdsBefore} more descriptors, want >= ${COUNT}`)

    // Memory, after a settle delay: RSS of this process (the server) per connection.
    await sleep(1000)
    const now = process.memoryUsage()
    const perConn = (now.rss - before.rss) / COUNT
    t.diagnostic(`server memory per idle connection: RSS ${(perConn / 1024).toFixed(1)} KB (${(before.rss / 2 ** 20).toFixed(0)} -> ${(now.rss / 2 ** 20).toFixed(0)} MB), heap used ${((now.heapUsed - before.heapUsed) / COUNT / 1024).toFixed(1)} KB (no forced GC)`)
    assert.ok(perConn < MAX_BYTES_PER_CONN, `RSS per connection ${Math.round(perConn)} B, want < ${MAX_BYTES_PER_CONN}`)

    // The server still answers HTTP promptly with 10,000 connections held.
    const t0 = performance.now()
    const poll = await request('http/1.1', srv.url + `live/poll?ch=${CHANNEL}`)
    const pollMs = performance.now() - t0
    assert.equal(poll.status, 200)
    assert.equal((JSON.parse(poll.text) as Array<{ t: string }>)[0]?.t, 'sub')
    t.diagnostic(`a short poll answered in ${pollMs.toFixed(1)} ms`)
    assert.ok(pollMs < 2000, `short poll took ${pollMs.toFixed(0)} ms`)

    // One broadcast reaches every connection.
    const got = next(child, 'received', 15_000)
    const t1 = performance.now()
    const pub = await request('http/1.1', srv.url + 'live/api/publish', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ ch: CHANNEL, d: { hello: 'everyone' } }) })
    assert.equal(pub.status, 200, pub.text)
    const publishMs = performance.now() - t1
    const received = await got
    assert.equal(received.count, COUNT)
    t.diagnostic(`one broadcast reached all ${received.count} connections ${(performance.now() - t1).toFixed(0)} ms after the publish was sent (publish answered in ${publishMs.toFixed(0)} ms; first to last delivery ${received.ms} ms)`)

    child.send({ type: 'close' })
    assert.equal(await exited(child, 10_000), 0, 'the client process exits by itself')
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited(child, 5000)
    }
  }

  // Every server-side socket goes once the clients are gone (within 10 s).
  let fds = openFds()
  for (let i = 0; i < 200 && fds > fdsBefore; i++) {
    await sleep(50)
    fds = openFds()
  }
  t.diagnostic(`open descriptors: ${fdsBefore} before, ${fds} after the client process exited`)
  assert.ok(fds <= fdsBefore, `${fds - fdsBefore} descriptors still open after the clients left`)
})

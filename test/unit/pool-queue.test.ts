import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { Pool } from 'undici'
import { DISCARD, Exchange, PoolQueue, QueueTimeoutError } from '../../src/modules/proxy/exchange.ts'

/** The queue timeout of a pool (HAProxy's `timeout queue`), against a real undici Pool and upstream. */

test('PoolQueue: a deadline only for requests that find every connection taken', () => {
  const q = new PoolQueue(2, 300)
  assert.equal(q.enter(), 0)
  assert.equal(q.enter(), 0)
  assert.equal(q.enter(), 300)
  q.leave()
  q.leave()
  assert.equal(q.enter(), 0)
})

test('a request queued past the timeout is refused; the pooled connection is kept and serves the next request', async () => {
  const connections = new Set<unknown>()
  const held = { release: null as (() => void) | null }
  const server = http.createServer((req, res) => {
    connections.add(req.socket)
    if (req.url === '/hold') {
      held.release = () => res.end('held')
      return
    }
    res.end('ok')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 })
  const queue = new PoolQueue(1, 100)
  try {
    let done = 0
    const holding = Exchange.start(pool, { method: 'GET', path: '/hold' }, () => done++, queue)
    const waiting = Exchange.start(pool, { method: 'GET', path: '/waiting' }, () => done++, queue)
    await assert.rejects(waiting.head, (err: unknown) => err instanceof QueueTimeoutError && err.waited === 100)
    assert.equal(done, 1, 'the refused request left the queue count')
    while (!held.release) await new Promise((r) => setTimeout(r, 10))
    held.release()
    const head = await holding.head
    assert.equal(head.status, 200)
    head.body.attach(DISCARD)
    // the refused request reaches the front and is dropped; the next one gets the same connection
    const next = Exchange.start(pool, { method: 'GET', path: '/next' }, undefined, queue)
    const nextHead = await next.head
    assert.equal(nextHead.status, 200)
    nextHead.body.attach(DISCARD)
    assert.equal(connections.size, 1)
  } finally {
    await pool.destroy()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { request, startServer, tempDir } from '../helpers/server.ts'

/**
 * `rum.alerts` wired into a running Edgebox: an error a page reports is
 * stored, and the webhook hears of its new group once, signed; the query
 * API's stats show the delivery, and those of the SDK injection.
 */

const SECRET = 'a-webhook-secret-of-some-length'
const TOKEN = 'b'.repeat(40)

test('a new error group reaches the webhook once, signed; the query API counts it', async (t) => {
  const got: Array<{ body: string; signature: string | undefined }> = []
  let heard: () => void = () => {}
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      got.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['edgebox-signature'] as string | undefined })
      res.writeHead(204).end()
      heard()
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.after(() => receiver.close())
  const { dir, cleanup } = tempDir()
  t.after(cleanup)
  mkdirSync(path.join(dir, 'www'))
  writeFileSync(path.join(dir, 'www', 'index.html'), '<!doctype html><title>t</title>')
  const box = await startServer({
    dataDir: path.join(dir, 'data'),
    rum: { api: { port: 0, token: TOKEN }, alerts: { webhook: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: SECRET } },
    sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(dir, 'www') } }] }],
  })
  t.after(() => box.close())

  const batch = (pv: string) =>
    JSON.stringify({
      v: 1,
      pv,
      page: '/checkout',
      release: 'r1',
      events: [{ t: 'error', at: 10, kind: 'error', message: 'TypeError: price is undefined', stack: 'TypeError: price is undefined\n    at total (https://shop.example/app.js:1:20)', count: 1 }],
    })
  const first = new Promise<void>((resolve) => (heard = resolve))
  const post = (pv: string) => request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batch(pv) })
  assert.equal((await post('pvAlert1')).status, 204)
  await first
  // the same group again: stored, no second alert
  assert.equal((await post('pvAlert2')).status, 204)
  // the queue is written every 100 ms: give the second row time to be stored and looked at
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(got.length, 1, JSON.stringify(got))

  const alert = JSON.parse(got[0]!.body) as Record<string, unknown>
  assert.equal(alert.type, 'new')
  assert.equal(alert.message, 'TypeError: price is undefined')
  assert.equal(alert.release, 'r1')
  assert.equal(alert.page, '/checkout')
  const m = /^t=(\d+),sha256=([0-9a-f]{64})$/.exec(got[0]!.signature ?? '')
  assert.ok(m, got[0]!.signature)
  assert.equal(m[2], createHmac('sha256', SECRET).update(`${m[1]}.${got[0]!.body}`).digest('hex'))

  const stats = await fetch(`${box.box.rumApi!.url}stats`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(stats.status, 200)
  const s = (await stats.json()) as { alerts: { sent: number; failed: number }; inject: { injected: number; skipped: Record<string, number> }; accepted: number }
  assert.equal(s.alerts.sent, 1)
  assert.equal(s.alerts.failed, 0)
  assert.equal(typeof s.inject.injected, 'number')
  assert.deepEqual(Object.keys(s.inject.skipped).sort(), ['csp', 'encoding', 'no-head', 'no-transform'])
  assert.equal(s.accepted, 2)
})

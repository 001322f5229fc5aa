import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { openWs, type Env, type WsClient } from '../helpers/realtime-clients.ts'
import { request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * WebSocket fan-out through the hub's per-channel list (src/realtime/hub.ts):
 * subscribers that join, fresh or resuming from a position, while a burst
 * is being published each get every message once and in order; the bytes
 * on the wire are one RFC 6455 text frame per message around the envelope.
 */

const KEY = 'fanout-publish-key-0123456789'
let srv: TestServer
let P: string

before(async () => {
  srv = await startServer({
    log: { access: false },
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'f:*': { history: { size: 1000 } } }, publishKey: KEY } }] }],
  })
  P = srv.url + 'live/'
})
after(() => srv.close())

async function publish(ch: string, from: number, to: number): Promise<Env[]> {
  const r = await request('http/1.1', `${P}api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(Array.from({ length: to - from + 1 }, (_, i) => ({ ch, d: from + i }))),
  })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Env[]
}

async function subscribe(ch: string, at?: { e: string; o: number }): Promise<WsClient> {
  const c = await openWs(`${P.replace(/^http/, 'ws')}ws`)
  c.ws.send(JSON.stringify(at ? { t: 'sub', ch, e: at.e, o: at.o } : { t: 'sub', ch }))
  return c
}

test('subscribers joining during a burst, fresh or from a position, get every message once and in order', { timeout: 30_000 }, async () => {
  const ch = 'f:burst'
  const early = await Promise.all(Array.from({ length: 20 }, () => subscribe(ch)))
  await Promise.all(early.map((c) => c.next((e) => e.t === 'sub')))
  const [first] = await publish(ch, 1, 10)
  const epoch = first!.e!
  // Subscriptions asked between the publishes, without waiting for them: their history reads and the live messages race.
  const joining: Array<Promise<WsClient>> = []
  for (let i = 11; i <= 300; i += 10) {
    if (i <= 150) joining.push(subscribe(ch), subscribe(ch, { e: epoch, o: i - 11 }), subscribe(ch, { e: epoch, o: Math.floor(i / 2) }))
    await publish(ch, i, i + 9)
  }
  const late = await Promise.all(joining)
  const all = [...early, ...late]
  await Promise.all(all.map((c) => c.wait((got) => got.some((e) => e.t === 'msg' && e.o === 300), 10_000)))
  for (const [k, c] of all.entries()) {
    const start = c.got[0]!
    assert.equal(start.t, 'sub', `subscriber ${k} starts with sub: ${JSON.stringify(start)}`)
    assert.equal(start.e, epoch)
    const offsets = c.got.slice(1).map((e) => (e.t === 'msg' && e.e === epoch && e.d === e.o ? e.o : `unexpected ${JSON.stringify(e)}`))
    assert.deepEqual(offsets, Array.from({ length: 300 - start.o! }, (_, i) => start.o! + 1 + i), `subscriber ${k}, from ${start.o}`)
  }
  for (const c of all) c.ws.close()
})

test('on the wire: one unmasked text frame per message, its payload the envelope', { timeout: 30_000 }, async () => {
  const ch = 'f:wire'
  const sock = net.connect(srv.port, '127.0.0.1')
  sock.on('error', () => {})
  const chunks: Buffer[] = []
  sock.on('data', (d: Buffer) => chunks.push(d))
  await new Promise((r) => sock.once('connect', r))
  const key = crypto.randomBytes(16).toString('base64')
  sock.write(`GET /live/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: edgebox.v1\r\n\r\n`)
  const bytes = () => Buffer.concat(chunks)
  const until = async (pred: () => boolean, what: string) => {
    const end = Date.now() + 5000
    while (!pred()) {
      if (Date.now() > end) throw new Error(`${what}: ${JSON.stringify(bytes().toString('latin1'))}`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  await until(() => bytes().includes('\r\n\r\n'), 'the 101 answer')
  const head = bytes().subarray(0, bytes().indexOf('\r\n\r\n') + 4)
  assert.match(head.toString(), /^HTTP\/1\.1 101 /)
  // A masked client frame (RFC 6455 §5.3) with the subscription.
  const sub = Buffer.from(JSON.stringify({ t: 'sub', ch }))
  const mask = crypto.randomBytes(4)
  sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | sub.length]), mask, Buffer.from(sub.map((b, i) => b ^ mask[i & 3]!))]))
  await until(() => bytes().includes('"t":"sub"'), 'the sub envelope')
  const afterSub = bytes().length
  const acks = await publish(ch, 1, 3)
  const e = acks[0]!.e!
  const frames = [1, 2, 3].map((o) => {
    const json = Buffer.from(JSON.stringify({ t: 'msg', ch, e, o, d: o }))
    return Buffer.concat([Buffer.from([0x81, json.length]), json]) // FIN, opcode 1, unmasked, 7-bit length (§5.2)
  })
  const want = Buffer.concat(frames)
  await until(() => bytes().length >= afterSub + want.length, 'three message frames')
  assert.deepEqual(bytes().subarray(afterSub), want)
  sock.destroy()
})

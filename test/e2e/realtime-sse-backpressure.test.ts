import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import type http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import type { EventEmitter } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { PROTOCOLS, request, startServer, type Protocol, type TestServer } from '../helpers/server.ts'

/**
 * An SSE client that stops reading while messages keep coming
 * (src/core/respond.ts, the relay's backpressure): every event is written
 * while the response is blocked, and the response waits for one 'drain'
 * with one listener, however many writes returned false. A listener per
 * write would pile up on the response (and Node would print
 * MaxListenersExceededWarning past ten). The server's response is found
 * through Node's diagnostics channels; when the client reads again, every
 * message arrives and the listener is gone.
 */

const KEY = 'sse-backpressure-key-0123456789'
/** 20 messages of 8 KiB per publish request: within the publish body bound (256 KiB). */
const BATCH = 20
const DATA = 'x'.repeat(8 * 1024)

let srv: TestServer
before(async () => {
  srv = await startServer({
    // room for everything this test publishes: the slow-consumer cut is not what is tested here
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'c:*': {} }, publishKey: KEY, maxBuffered: '256m' } }] }],
  })
})
after(() => srv?.close())

/** The server's response object for the request whose path carries `marker` (found when Node announces the request). */
function serverResponse(marker: string): () => EventEmitter | undefined {
  let found: EventEmitter | undefined
  let stream: http2.ServerHttp2Stream | undefined
  const h1 = (m: unknown) => {
    const { request: req, response } = m as { request: http.IncomingMessage; response: http.ServerResponse }
    if (req.url?.includes(marker)) found = response
  }
  const h2 = (m: unknown) => {
    const msg = m as { stream: http2.ServerHttp2Stream; headers: http2.IncomingHttpHeaders }
    if (String(msg.headers[':path']).includes(marker)) stream = msg.stream
  }
  dc.subscribe('http.server.request.start', h1)
  dc.subscribe('http2.server.stream.start', h2)
  after(() => {
    dc.unsubscribe('http.server.request.start', h1)
    dc.unsubscribe('http2.server.stream.start', h2)
  })
  // over HTTP/2 the response's events are its stream's (src/server/h2-exchange.ts)
  return () => found ?? stream
}

/** An SSE stream whose client can stop and start reading; `text` is what it has read. */
function slowSse(protocol: Protocol, marker: string): { ready: Promise<void>; text(): string; pause(): void; resume(): void; close(): void } {
  let text = ''
  let onSub: () => void = () => {}
  const ready = new Promise<void>((r) => (onSub = r))
  const path = `/live/sse?ch=c:slow&m=${marker}`
  const onData = (c: Buffer) => {
    text += c.toString('latin1')
    if (text.includes('"t":"sub"')) onSub()
  }
  if (protocol === 'h2c') {
    const session = http2.connect(srv.url)
    session.on('error', () => {})
    const stream = session.request({ ':path': path })
    stream.on('data', onData)
    stream.on('error', () => {})
    return { ready, text: () => text, pause: () => stream.pause(), resume: () => stream.resume(), close: () => session.destroy() }
  }
  // a raw connection: pausing it stops reading the socket itself
  const socket = net.connect(srv.port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  socket.on('data', onData)
  return { ready, text: () => text, pause: () => socket.pause(), resume: () => socket.resume(), close: () => socket.destroy() }
}

async function publish(batch: unknown[]): Promise<void> {
  const r = await request('http/1.1', `${srv.url}live/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(batch) })
  assert.equal(r.status, 200, r.text)
}

async function until(pred: () => boolean, what: () => string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what()} (waited ${ms} ms)`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('an SSE client that stops reading', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: one 'drain' listener at most on the response, however many events wait; no MaxListenersExceededWarning; everything arrives once it reads again`, async () => {
      const warnings: Error[] = []
      const onWarning = (w: Error) => warnings.push(w)
      process.on('warning', onWarning)
      const marker = `slow-${protocol.replace(/\W/g, '')}`
      const response = serverResponse(marker)
      const client = slowSse(protocol, marker)
      try {
        await client.ready
        client.pause()
        const res = await (async () => {
          await until(() => response() !== undefined, () => 'the server response was not found')
          return response()!
        })()
        const batch = Array.from({ length: BATCH }, () => ({ ch: 'c:slow', d: DATA }))
        // Fill everything between the server and the client (socket buffers, the HTTP/2 window) until a write is refused...
        for (let i = 0; res.listenerCount('drain') === 0; i++) {
          assert.ok(i < 500, 'the response never blocked')
          await publish(batch)
        }
        // ...then many more writes while it stays blocked.
        for (let i = 0; i < 5; i++) await publish(batch)
        await new Promise((r) => setImmediate(r)) // warnings are emitted on a later tick
        assert.equal(res.listenerCount('drain'), 1, 'one pending drain listener, not one per refused write')
        assert.deepEqual(
          warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
          [],
        )

        await publish([{ ch: 'c:slow', d: 'final' }])
        client.resume()
        await until(() => client.text().includes('"d":"final"'), () => `the last message did not arrive after the client read again (${client.text().length} bytes read)`)
        assert.equal(res.listenerCount('drain'), 0, 'the listener is gone once the response drained')
      } finally {
        process.off('warning', onWarning)
        client.close()
      }
    })
  }
})

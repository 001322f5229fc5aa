import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import http2 from 'node:http2'
import { test } from 'node:test'
import { trackResets } from '../../src/server/h2-resets.ts'

/** A session and streams as trackResets sees them: events, the peer, and a stream's rstCode once closed. */
function fakeSession() {
  return Object.assign(new EventEmitter(), { socket: { remoteAddress: '192.0.2.7' } }) as unknown as http2.ServerHttp2Session
}
function fakeStream() {
  return Object.assign(new EventEmitter(), { rstCode: undefined as number | undefined })
}

test('the session bookkeeping adds no stream listener of its own, one close listener per stream, and counts resets', () => {
  const session = fakeSession()
  const counts = { opened: 0, closed: 0 }
  const streams = trackResets(session, 'h2', { opened: () => counts.opened++, closed: () => counts.closed++ })
  assert.equal(session.listenerCount('stream'), 0, "the listener's own 'stream' listener calls opened()")
  assert.deepEqual({ ...streams.conn, onClose: null }, { client: '192.0.2.7', proto: 'h2', resets: 0, peak: 0, closed: false, onClose: null })
  const a = fakeStream()
  const b = fakeStream()
  streams.opened(a as unknown as http2.ServerHttp2Stream)
  streams.opened(b as unknown as http2.ServerHttp2Stream)
  assert.equal(a.listenerCount('close'), 1)
  assert.equal(counts.opened, 2)
  a.rstCode = http2.constants.NGHTTP2_NO_ERROR
  a.emit('close')
  b.rstCode = http2.constants.NGHTTP2_CANCEL
  b.emit('close')
  assert.equal(counts.closed, 2)
  assert.equal(streams.conn.resets, 1, 'a stream closed with NO_ERROR is not a reset')
  assert.equal(streams.conn.peak, 1)
  session.emit('close')
  assert.equal(streams.conn.closed, true)
})

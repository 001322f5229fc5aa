import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import type http2 from 'node:http2'
import { test } from 'node:test'
import { enforceSessionTimeouts } from '../../src/server/h2-timeouts.ts'

test("the session timeouts read the connection's own socket when given it, not the session's socket proxy", () => {
  let proxyReads = 0
  const session = Object.assign(new EventEmitter(), { closed: false, destroyed: false, close() {}, destroy() {} })
  Object.defineProperty(session, 'socket', {
    get() {
      proxyReads++
      return { bytesRead: 0 }
    },
  })
  const connection = { reads: 0, get bytesRead() {
    this.reads++
    return 100
  } }
  const streams = enforceSessionTimeouts(session as unknown as http2.ServerHttp2Session, { keepAliveTimeout: 60_000, headersTimeout: 60_000 }, connection)
  for (let i = 0; i < 5; i++) {
    streams.opened()
    streams.closed()
  }
  assert.equal(proxyReads, 0)
  assert.equal(connection.reads, 5, 'the byte count is taken each time the session goes idle')
  session.emit('close')
})

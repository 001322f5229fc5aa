import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rawAnswer } from '../../src/http/raw-answer.ts'

test('rawAnswer: status line, Connection: close, the given fields, then a plain-text body framed by Content-Length', () => {
  assert.equal(
    rawAnswer(405, { Allow: 'GET, HEAD' }, 'no\n'),
    'HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nAllow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nno\n',
  )
})

test('rawAnswer: no body means Content-Length: 0 and no Content-Type', () => {
  assert.equal(rawAnswer(400), 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  assert.equal(rawAnswer(503, { 'Retry-After': 5 }), 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n')
})

test('rawAnswer: Content-Length counts UTF-8 bytes, as socket.end() writes them', () => {
  const answer = rawAnswer(502, {}, 'café\n')
  assert.match(answer, /\r\nContent-Length: 6\r\n\r\ncafé\n$/)
  const bytes = Buffer.from(answer)
  assert.equal(bytes.length - (bytes.indexOf('\r\n\r\n') + 4), 6)
})

test('rawAnswer: a Content-Type among the fields (any case) replaces the plain-text default', () => {
  assert.equal(rawAnswer(200, { 'content-type': 'application/json' }, '{}'), 'HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}')
})

test('rawAnswer: a status Node has no reason phrase for keeps the space before the empty reason (RFC 9112 §4)', () => {
  assert.equal(rawAnswer(599), 'HTTP/1.1 599 \r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
})

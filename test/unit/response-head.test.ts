import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HEAD_END, parseResponseHead } from '../../src/http/response-head.ts'

test('parseResponseHead: status, status line as received, fields in order with trimmed values', () => {
  assert.deepEqual(parseResponseHead('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection:Upgrade\r\nX-Empty:\r\nX-Pad: \t a b \t'), {
    status: 101,
    statusLine: 'HTTP/1.1 101 Switching Protocols',
    fields: [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['X-Empty', ''],
      ['X-Pad', 'a b'],
    ],
  })
  assert.deepEqual(parseResponseHead('HTTP/1.0 403'), { status: 403, statusLine: 'HTTP/1.0 403', fields: [] })
  assert.deepEqual(parseResponseHead('HTTP/1.1 200 '), { status: 200, statusLine: 'HTTP/1.1 200 ', fields: [] })
})

test('parseResponseHead: anything malformed is null', () => {
  for (const bad of [
    '',
    'garbage',
    'HTTP/1.1 abc',
    'HTTP/1.1 99 Low',
    'HTTP/1.1 600 High',
    'HTTP/1.1 2000 OK',
    'HTTP/2 200 OK',
    'HTTP/1.1 200 OK\r\nno colon',
    'HTTP/1.1 200 OK\r\n: no name',
    'HTTP/1.1 200 OK\r\nBad Name: x',
    'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded', // obs-fold (RFC 9112 §5.2)
    'HTTP/1.1 200 OK\r\nX-A: a\0b',
    'HTTP/1.1 200 OK\r\nX-A: a\rb',
    'HTTP/1.1 200 OK\r\n\r\nX-A: 1', // a blank line inside the head
  ]) {
    assert.equal(parseResponseHead(bad), null, JSON.stringify(bad))
  }
})

test('HEAD_END is the blank line after the fields', () => {
  const bytes = Buffer.from('HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\nrest')
  const end = bytes.indexOf(HEAD_END)
  assert.equal(parseResponseHead(bytes.toString('latin1', 0, end))?.fields[0]?.[1], '1')
  assert.equal(bytes.subarray(end + HEAD_END.length).toString(), 'rest')
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientErrorResponse, lineEndingProblem, methodTokenAt, type ParseError } from '../../src/server/client-error.ts'

/** A parse error as llhttp reports it: the packet and where parsing stopped. */
function parseError(code: string, packet: string, bytesParsed: number, reason = ''): ParseError {
  return Object.assign(new Error(`Parse Error: ${reason}`), { code, rawPacket: Buffer.from(packet, 'latin1'), bytesParsed, reason })
}

test('the method token is read where the parser stopped, not at the start of the packet', () => {
  const packet = 'GET / HTTP/1.1\r\nHost: a\r\n\r\nFROB / HTTP/1.1\r\n\r\n'
  assert.equal(methodTokenAt(Buffer.from(packet), 28), 'FROB')
  assert.equal(methodTokenAt(Buffer.from(packet), 27), 'FROB')
  assert.equal(methodTokenAt(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n'), 28), null)
  assert.equal(methodTokenAt(Buffer.from('\x01\x02 / HTTP/1.1\r\n'), 0), null)
  // a token cut at the end of the packet: its end is unknown
  assert.equal(methodTokenAt(Buffer.from('FR'), 1), null)
})

test('a bare LF or a CR without LF where the parser stopped', () => {
  assert.equal(lineEndingProblem(Buffer.from('GET / HTTP/1.1\nHost: a\n\n'), 15), 'bare LF line ending')
  assert.equal(lineEndingProblem(Buffer.from('GET / HTTP/1.1\r\nHost: a\n\n'), 23), 'bare LF line ending')
  assert.equal(lineEndingProblem(Buffer.from('GET / HTTP/1.1\rHost: a\r\n\r\n'), 15), 'CR without LF')
  assert.equal(lineEndingProblem(Buffer.from('GET / HTTP/1.1 \r\n\r\n'), 14), null)
  assert.equal(lineEndingProblem(Buffer.from('GET / HTTP/1.x\r\n\r\n'), 13), null)
  // a LF that starts the packet may end the previous packet's CR
  assert.equal(lineEndingProblem(Buffer.from('\nHost: a'), 0), null)
})

test('a bare LF in a chunk size of a request body is a 400 naming it', () => {
  const packet = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n'
  const r = clientErrorResponse(parseError('HPE_CR_EXPECTED', packet, 58, 'Missing expected CR after chunk size'))
  assert.equal(r?.status, 400)
  assert.equal(r?.reason, 'bare LF line ending: HTTP/1.1 lines end with CRLF (RFC 9112 §2.2)')
})

test('other parse errors name what the parser expected', () => {
  const r = clientErrorResponse(parseError('HPE_INVALID_CONSTANT', 'GET / HTTX/1.1\r\n\r\n', 9, 'Expected HTTP/, RTSP/ or ICE/'))
  assert.equal(r?.status, 400)
  assert.equal(r?.reason, 'malformed request: expected HTTP/, RTSP/ or ICE/ (HPE_INVALID_CONSTANT)')
  assert.match(r!.bytes, /^HTTP\/1\.1 400 Bad Request\r\nConnection: close\r\n/)
})

test('a head over the limit: 414 when the limit is reached in the request line (its target), else 431', () => {
  const longTarget = `GET /_edgebox/rum/beacon.gif?d=${'A'.repeat(20_000)}`
  assert.equal(clientErrorResponse(parseError('HPE_HEADER_OVERFLOW', longTarget, 16_385))?.status, 414)
  assert.match(clientErrorResponse(parseError('HPE_HEADER_OVERFLOW', longTarget, 16_385))!.bytes, /^HTTP\/1\.1 414 URI Too Long\r\n/)
  // the request line ended; a field is too long
  assert.equal(clientErrorResponse(parseError('HPE_HEADER_OVERFLOW', `GET / HTTP/1.1\r\nX-Big: ${'y'.repeat(20_000)}`, 16_385))?.status, 431)
  // a later packet of the head, which does not start with a request line: 431, as before
  assert.equal(clientErrorResponse(parseError('HPE_HEADER_OVERFLOW', 'y'.repeat(20_000), 16_385))?.status, 431)
})

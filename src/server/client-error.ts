import { STATUS_CODES } from 'node:http'

/**
 * Requests that Node's parser (llhttp) refuses before any handler runs get a
 * precise status instead of a bare 400, and the connection is closed: after a
 * parse error the byte stream can no longer be trusted (RFC 9112 §2.2).
 */
export function clientErrorResponse(err: NodeJS.ErrnoException & { rawPacket?: Buffer }): { status: number; bytes: string } | null {
  let status: number
  let reason: string
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return null
    case 'HPE_HEADER_OVERFLOW':
      status = 431
      reason = 'request header fields too large'
      break
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      status = 408
      reason = 'the request head did not arrive in time'
      break
    case 'HPE_INVALID_VERSION':
      status = 505
      reason = 'only HTTP/1.x and HTTP/2 are supported'
      break
    case 'HPE_INVALID_METHOD': {
      // A well-formed method token this server does not know: 501 (RFC 9110 §9.1).
      // Garbage where a method should be: 400.
      const token = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) /.exec(err.rawPacket?.toString('latin1') ?? '')
      status = token ? 501 : 400
      reason = token ? `method ${token[1]} is not implemented` : 'malformed request line'
      break
    }
    case 'HPE_PAUSED_H2_UPGRADE':
      status = 505
      reason = 'HTTP/2 is not enabled on this listener'
      break
    default:
      status = 400
      reason = `malformed request (${err.code ?? 'parse error'})`
  }
  const body = `${status} ${STATUS_CODES[status]}: ${reason}\n`
  return {
    status,
    bytes: `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  }
}

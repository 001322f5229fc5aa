import { STATUS_CODES } from 'node:http'
import { rawAnswer } from '../http/raw-answer.ts'

/** What Node's HTTP/1 parser (llhttp) reports with a parse error. */
export type ParseError = NodeJS.ErrnoException & {
  /** The chunk being parsed when the error happened (not necessarily the start of the bad request). */
  rawPacket?: Buffer
  /** Where in `rawPacket` the parser stopped: at, or just past, the byte it refused. */
  bytesParsed?: number
  reason?: string
}

export interface ClientErrorResponse {
  status: number
  /** What was wrong, as the body says it. */
  reason: string
  bytes: string
}

/**
 * Requests that Node's parser (llhttp) refuses before any handler runs get a
 * precise status instead of a bare 400, and the connection is closed: after a
 * parse error the byte stream can no longer be trusted (RFC 9112 §2.2).
 */
export function clientErrorResponse(err: ParseError): ClientErrorResponse | null {
  let status: number
  let reason: string
  const judged = err.code?.startsWith('HPE_') && err.code !== 'HPE_HEADER_OVERFLOW' && err.code !== 'HPE_PAUSED_H2_UPGRADE'
  const ending = judged && err.rawPacket ? lineEndingProblem(err.rawPacket, err.bytesParsed ?? 0) : null
  switch (ending ? 'line ending' : err.code) {
    case 'line ending':
      // RFC 9112 §2.2 lets a server reject a bare LF; Edgebox does, with a
      // reason (llhttp in strict mode reports it as whatever it expected next,
      // often a bad version, which would send the client looking elsewhere).
      status = 400
      reason = `${ending}: HTTP/1.1 lines end with CRLF (RFC 9112 §2.2)`
      break
    case 'ECONNRESET':
    case 'EPIPE':
      return null
    case 'HPE_HEADER_OVERFLOW':
      // the limit reached in the request line itself: its target is too long (RFC 9112 §3: 414)
      if (err.rawPacket && inRequestLine(err.rawPacket, err.bytesParsed ?? err.rawPacket.length)) {
        status = 414
        reason = 'the request target is longer than this server reads (send less in the URL, or POST it)'
      } else {
        status = 431
        reason = 'request header fields too large'
      }
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
      // Garbage where a method should be: 400. The packet may hold earlier,
      // valid pipelined requests: the token is read where the parser stopped.
      const token = err.rawPacket ? methodTokenAt(err.rawPacket, err.bytesParsed ?? 0) : null
      status = token ? 501 : 400
      reason = token ? `method ${token} is not implemented` : 'malformed request line (it does not start with a method token and a space)'
      break
    }
    case 'HPE_PAUSED_H2_UPGRADE':
      status = 505
      reason = 'HTTP/2 is not enabled on this listener'
      break
    default:
      status = 400
      reason = err.reason ? `malformed request: ${err.reason[0]!.toLowerCase()}${err.reason.slice(1)} (${err.code})` : `malformed request (${err.code ?? 'parse error'})`
  }
  const body = `${status} ${STATUS_CODES[status]}: ${reason}\n`
  return {
    status,
    reason,
    bytes: rawAnswer(status, {}, body),
  }
}

/**
 * A line ending other than CRLF where the parser stopped: llhttp reports the
 * position at, or just past, the byte it refused.
 */
export function lineEndingProblem(raw: Buffer, pos: number): 'bare LF line ending' | 'CR without LF' | null {
  for (const i of [pos - 1, pos]) {
    if (i < 0 || i >= raw.length) continue
    // (a LF that starts the packet may end a CR of the previous one: not judged)
    if (raw[i] === 0x0a && i > 0 && raw[i - 1] !== 0x0d) return 'bare LF line ending'
    if (raw[i] === 0x0d && i + 1 < raw.length && raw[i + 1] !== 0x0a) return 'CR without LF'
  }
  return null
}

/** tchar (RFC 9110 §5.6.2): what a method token is made of. */
function isTchar(b: number | undefined): boolean {
  if (b === undefined) return false
  if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) return true
  return "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b))
}

/**
 * The method token of the request line the parser refused, if the line
 * starts with one followed by a space (RFC 9112 §3): the token around
 * `pos`, which must begin the packet or a line. Null for anything else.
 */
export function methodTokenAt(raw: Buffer, pos: number): string | null {
  let start = Math.min(Math.max(pos, 0), raw.length)
  while (start > 0 && isTchar(raw[start - 1])) start--
  if (start > 0 && raw[start - 1] !== 0x0a) return null
  let end = start
  while (end < raw.length && isTchar(raw[end])) end++
  if (end === start || raw[end] !== 0x20) return null
  return raw.toString('latin1', start, end)
}

/** The HTTP/1 socket as Node's server leaves it: the response being written, the request being parsed. */
type ServerSocket = {
  writable: boolean
  destroyed: boolean
  destroy(): void
  end(data?: string): void
  _httpMessage?: PendingResponse | null
  parser?: { incoming?: object | null } | null
}
type PendingResponse = {
  headersSent: boolean
  writableEnded: boolean
  writableFinished: boolean
  req?: object
  once(event: 'finish', fn: () => void): void
}

const answered = new WeakSet<object>()

/**
 * Writes the error answer for a parse error once every response still owed
 * on the connection has gone out, then closes. Pipelined requests that were
 * complete before the bad bytes are answered first, in order (RFC 9112 §9.3.2):
 * Node hands the socket to each queued response in turn as the previous one
 * finishes, so waiting on `_httpMessage` until none is left covers them all.
 *
 * When the bad bytes are in the body of a request already handed to the
 * pipeline, that request is the malformed one: if its own response has
 * started, it is let finish and the connection closes without a second
 * answer; otherwise the error answer takes its place.
 */
export function refuseAfterPending(socket: ServerSocket, response: ClientErrorResponse | null): void {
  // llhttp keeps reporting the same error for every later chunk
  if (answered.has(socket)) return
  answered.add(socket)
  const incoming = socket.parser?.incoming as { complete?: boolean } | null | undefined
  const broken = incoming && incoming.complete === false ? incoming : null
  let brokenAnswered = false
  const next = (): void => {
    if (socket.destroyed) return
    const pending = socket._httpMessage
    if (pending && !pending.writableFinished) {
      const own = broken !== null && pending.req === broken
      if (!own || pending.headersSent || pending.writableEnded) {
        if (own) brokenAnswered = true
        pending.once('finish', next)
        return
      }
    }
    if (brokenAnswered) socket.end()
    else if (response && socket.writable && !pending?.headersSent) socket.end(response.bytes)
    else socket.destroy()
  }
  next()
}

/**
 * Whether the parser stopped inside a request line: the packet starts with a
 * method token and a space, and has no line feed before where it stopped.
 */
function inRequestLine(packet: Buffer, stoppedAt: number): boolean {
  const head = packet.subarray(0, Math.min(packet.length, Math.max(stoppedAt, 0)))
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S/.test(head.subarray(0, 64).toString('latin1')) && !head.includes(10)
}

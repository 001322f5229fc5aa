import { STATUS_CODES } from 'node:http'
import { headerKey } from './header-map.ts'

/**
 * A complete HTTP/1.1 response written by hand, for the places that answer on
 * a raw socket instead of through Node's response object: refused upgrades and
 * CONNECTs, gateway errors of tunnels, requests the parser refused, plain HTTP
 * on a TLS port. The connection is always closed after it (`Connection:
 * close`, RFC 9112 §9.6), so the body is framed by Content-Length and nothing
 * that follows on the socket is ever read as a next request.
 *
 * `fields` are Edgebox's own (names and values it chose, never copied from a
 * request): they are written as given, between `Connection: close` and the
 * body's fields. A non-empty body is plain text in UTF-8 unless `fields` names
 * its Content-Type. Returns the bytes as a string for `socket.end()` (UTF-8, its
 * default encoding, which is what Content-Length counts).
 */
export function rawAnswer(status: number, fields: Readonly<Record<string, string | number>> = {}, body = ''): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n`
  for (const [name, value] of Object.entries(fields)) head += `${name}: ${value}\r\n`
  if (body !== '' && headerKey(fields, 'content-type') === undefined) head += 'Content-Type: text/plain; charset=utf-8\r\n'
  return `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

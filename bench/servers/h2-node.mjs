// Bare Node HTTP/2-over-TLS servers for bench/tls.sh, run with the same Node binary as Edgebox (the pinned Node 24):
// http2.createSecureServer with the given certificate and the 1 KiB index.html held in memory, answered on every
// stream with stream.respond (the head object built once) + stream.end. No framework, no logging, no file system
// work per request.
// - Without HEADFILE: `node-h2`, the ceiling for any Node h2 server: allowHTTP1 false (h2 only, chosen by ALPN),
//   3 fields (+ date), Node's defaults otherwise (TLS 1.2 and 1.3, a random ticket key per process).
// - With HEADFILE: `h2-same-head`, the comparator of issue 14: exactly Edgebox's response head for GET /index.html,
//   as `curl -D` printed it (the status line and `date` are skipped: Node adds `date` per response, as Edgebox
//   does), the ALPN list Edgebox offers (h2, http/1.1: allowHTTP1 true) and its TLS 1.2 cipher list (env EB_CIPHERS;
//   honorCipherOrder, TLSv1.2 minimum). Node's HPACK and field validation make every field cost, so the ceiling for
//   Edgebox's h2 path is a bare server sending the same fields, not the 3-field one.
// - With HEADFILE and --work: `h2-same-work`, h2-same-head plus what Edgebox must do per request with its default
//   configuration: `server-timing` computed per request (`edge;dur=` the time since the stream arrived, any further
//   metrics as captured) and, after each answer, Edgebox's JSON access line (proto "h2") through the same destination
//   and batching (bench/servers/access-line.mjs), on stdout.
// - With HEADFILE and --stored-date: `h2-same-head-hit`, the head of a cache hit, whose `date` is the stored
//   response's (RFC 9111 section 4), not the time of sending: the captured `date` is sent as it is, in its place.
// usage: node h2-node.mjs PORT CERT KEY FILE [HEADFILE [--work] [--stored-date]]
import http2 from 'node:http2'
import fs from 'node:fs'
import { accessLog, hostOf } from './access-line.mjs'

const [portArg, certFile, keyFile, bodyFile, headFile] = process.argv.slice(2)
const work = process.argv.includes('--work')
const storedDate = process.argv.includes('--stored-date')
const body = fs.readFileSync(bodyFile)
let headers = { ':status': 200, 'content-type': 'text/html; charset=utf-8', 'content-length': body.length }
if (headFile) {
  headers = { ':status': 200 }
  for (const line of fs.readFileSync(headFile, 'latin1').split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i <= 0 || line.startsWith('HTTP/')) continue
    const name = line.slice(0, i).trim().toLowerCase()
    if (name === 'date' && !storedDate) continue
    headers[name] = line.slice(i + 1).trim()
  }
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  allowHTTP1: Boolean(headFile),
  ...(headFile && process.env.EB_CIPHERS ? { ciphers: process.env.EB_CIPHERS, honorCipherOrder: true, minVersion: 'TLSv1.2' } : {}),
})
if (work) {
  const log = accessLog(1)
  const st = String(headers['server-timing'] ?? '')
  const tail = st.indexOf(',') < 0 ? '' : st.slice(st.indexOf(','))
  const client = Symbol('client')
  server.on('session', (session) => { session[client] = session.socket.remoteAddress })   // once per connection
  server.on('stream', (stream, h) => {
    const start = performance.now()
    stream.on('error', () => {})
    headers['server-timing'] = 'edge;dur=' + Math.round((performance.now() - start) * 100) / 100 + tail
    stream.respond(headers)
    stream.end(body)
    log.line(h[':method'], hostOf(h[':authority']), h[':path'], 200, body.length, start, 'HIT', 'h2', stream.session?.[client])
  })
  process.on('SIGTERM', log.flush)
} else {
  server.on('stream', (stream) => {
    stream.on('error', () => {})
    stream.respond(headers)
    stream.end(body)
  })
}
server.on('sessionError', () => {})
server.listen(Number(portArg), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })

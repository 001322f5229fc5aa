// Bare Node HTTP/2-over-TLS server for bench/tls.sh that answers with exactly Edgebox's response head: the
// comparator `h2-same-head` of issue 14. Node's HPACK and field validation make every field cost, so the ceiling
// for Edgebox's h2 path is a bare server sending the same fields, not the 3-field one (h2-node.mjs).
// http2.createSecureServer with the certificate, the ALPN list (h2, http/1.1: allowHTTP1 true) and the TLS 1.2
// cipher list Edgebox uses (env EB_CIPHERS; honorCipherOrder, TLSv1.2 minimum), the 1 KiB body held in memory,
// answered on every stream with stream.respond (the head object built once) + stream.end. HEADFILE holds
// Edgebox's head as `curl -D` printed it for GET /index.html: the status line and `date` are skipped (Node adds
// `date` per response, as Edgebox does), every other field is sent with its value.
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node h2-same-head.mjs PORT CERT KEY FILE HEADFILE
import http2 from 'node:http2'
import fs from 'node:fs'

const [portArg, certFile, keyFile, bodyFile, headFile] = process.argv.slice(2)
const body = fs.readFileSync(bodyFile)
const headers = { ':status': 200 }
for (const line of fs.readFileSync(headFile, 'latin1').split(/\r?\n/)) {
  const i = line.indexOf(':')
  if (i <= 0 || line.startsWith('HTTP/')) continue
  const name = line.slice(0, i).trim().toLowerCase()
  if (name === 'date') continue
  headers[name] = line.slice(i + 1).trim()
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  allowHTTP1: true,
  ...(process.env.EB_CIPHERS ? { ciphers: process.env.EB_CIPHERS, honorCipherOrder: true, minVersion: 'TLSv1.2' } : {}),
})
server.on('stream', (stream) => {
  stream.on('error', () => {})
  stream.respond(headers)
  stream.end(body)
})
server.on('sessionError', () => {})
server.listen(Number(portArg), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })

// Bare Node HTTP/2-over-TLS reference server for bench/tls.sh: the "ceiling" for a Node h2 server.
// http2.createSecureServer with allowHTTP1 false (h2 only, chosen by ALPN), the given certificate, and the
// 1 KiB index.html held in memory, answered on every stream. No framework, no logging, no file system work per
// request. Node's defaults otherwise: TLS 1.2 and 1.3, session tickets on (a random ticket key per process).
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node h2-node.mjs PORT CERT KEY FILE
import http2 from 'node:http2'
import fs from 'node:fs'

const [portArg, certFile, keyFile, bodyFile] = process.argv.slice(2)
const body = fs.readFileSync(bodyFile)
const headers = { ':status': 200, 'content-type': 'text/html; charset=utf-8', 'content-length': body.length }

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
  allowHTTP1: false,
})
server.on('stream', (stream) => {
  stream.on('error', () => {})
  stream.respond(headers)
  stream.end(body)
})
server.on('sessionError', () => {})
server.listen(Number(portArg), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })

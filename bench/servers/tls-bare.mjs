// Bare Node HTTPS server for bench/tls.sh's handshake tests: the comparator `tls-bare` of issue 14, what a TLS
// handshake costs Node itself. https.createServer with what Edgebox's TLS listener sets up for a handshake:
//   the certificate (one secure context, also returned by SNICallback as Edgebox's certificate selection does),
//   the ALPN list (h2, http/1.1), TLS 1.2 minimum, the TLS 1.2 cipher list (env EB_CIPHERS) with honorCipherOrder,
//   sessionTimeout 3600 s, and the resumption of src/tls/sessions.ts: 48 bytes of ticket keys derived with HKDF-SHA256
//   from a random 32-byte secret (setTicketKeys), and a TLS 1.2 session-ID cache (newSession / resumeSession, at most
//   10,000 sessions) that leaves out TLS 1.3 sessions, which resume from their tickets.
// Every request gets the 1 KiB index.html from memory (openssl s_time -www /index.html reads it to the end).
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// For bench/profiles/tls-handshake.sh's `variant` runs, each V_* variable changes one thing (unset: as above):
//   V_SESS=0   no newSession / resumeSession listeners (no TLS 1.2 session-ID cache: Node then neither parses the
//              ClientHello for a session ID nor hands each new TLS 1.3 ticket's session to JavaScript)
//   V_SNI=0    no SNICallback (OpenSSL's certificate callback then does not call into JavaScript)
//   V_PEEK=1   Edgebox's own refusePlainHttp and routeByAlpn (src/server/tls-accept.ts) on the server, as its listener
//              installs them: the first byte of each connection read in JavaScript before the TLS server sees it
// usage: node tls-bare.mjs PORT CERT KEY FILE
import https from 'node:https'
import tls from 'node:tls'
import fs from 'node:fs'
import { hkdfSync, randomBytes } from 'node:crypto'

const [portArg, certFile, keyFile, bodyFile] = process.argv.slice(2)
const body = fs.readFileSync(bodyFile)
const head = { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length }
const base = process.env.EB_CIPHERS ? { minVersion: 'TLSv1.2', ciphers: process.env.EB_CIPHERS, honorCipherOrder: true } : {}
const cert = fs.readFileSync(certFile)
const key = fs.readFileSync(keyFile)
const context = tls.createSecureContext({ ...base, cert, key })

const server = https.createServer({
  ...base,
  cert,
  key,
  ALPNProtocols: ['h2', 'http/1.1'],
  ...(process.env.V_SNI === '0' ? {} : { SNICallback: (_name, done) => done(null, context) }),
  sessionTimeout: 3600,
}, (req, res) => {
  res.writeHead(200, head)
  res.end(req.method === 'HEAD' ? undefined : body)
})

// tickets: the keys of the current rotation window, as sessions.ts derives them
const secret = randomBytes(32)
const window = Math.floor(Date.now() / (12 * 3600_000))
server.setTicketKeys(Buffer.from(hkdfSync('sha256', secret, Buffer.from('edgebox tls ticket keys'), Buffer.from(`window ${window}`), 48)))

// TLS 1.2 session IDs; a TLS 1.3 session (SSL_SESSION ASN.1: SEQUENCE { INTEGER 1, INTEGER 0x0304, ... }) is not kept
const sessionVersion = (der) => {
  if (der[0] !== 0x30 || der.length < 8) return 0
  let i = 2
  if (der[1] & 0x80) i += der[1] & 0x7f
  if (der[i] !== 0x02 || der[i + 1] !== 0x01) return 0
  i += 3
  if (der[i] !== 0x02 || der[i + 1] !== 0x02) return 0
  return (der[i + 2] << 8) | der[i + 3]
}
if (process.env.V_SESS !== '0') {
  const cache = new Map()
  server.on('newSession', (id, data, done) => {
    if (sessionVersion(data) !== 0x0304) {
      cache.set(id.toString('base64url'), data)
      if (cache.size > 10_000) cache.delete(cache.keys().next().value)
    }
    done()
  })
  server.on('resumeSession', (id, done) => done(null, cache.get(id.toString('base64url')) ?? null))
}
if (process.env.V_PEEK === '1') {
  const { refusePlainHttp, routeByAlpn } = await import(new URL('../../src/server/tls-accept.ts', import.meta.url).href)
  routeByAlpn(server, undefined, true)
  refusePlainHttp(server, 60_000, { host: '127.0.0.1', port: Number(portArg) }, new Set(), {})
}
server.on('tlsClientError', () => {})
server.listen(Number(portArg), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); process.exit(0) })

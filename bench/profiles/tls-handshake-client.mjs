// A fixed count of TLS connections, one after another, as `openssl s_time -www /index.html` makes them: each does a
// handshake, sends "GET /index.html HTTP/1.0" and reads the answer to its end (bench/profiles/tls-handshake.md).
// usage: node tls-handshake-client.mjs PORT COUNT new|reuse [SERVERNAME]
//   new:   a full handshake every time
//   reuse: every connection offers the session of the first one (as s_time -reuse does); exits 1 when one is not resumed
//   SERVERNAME: sent as SNI (by default none, as s_time connecting to 127.0.0.1)
// No ALPN, s_time's key exchange groups, TLS 1.3 unless EB_TLS12=1. Prints "connections=N resumed=R bytes_per_conn=B".
import tls from 'node:tls'

const [portArg, countArg, mode, servername] = process.argv.slice(2)
const port = Number(portArg)
const count = Number(countArg)
const request = Buffer.from('GET /index.html HTTP/1.0\r\n\r\n')
// the key exchange groups openssl s_time (OpenSSL 3.0) offers, X25519 first: Node's own default would offer X25519MLKEM768
const groups = { ecdhCurve: 'X25519:P-256:X448:P-521:P-384' }
const version = process.env.EB_TLS12 ? { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } : {}

function connectOnce(session) {
  return new Promise((resolve, reject) => {
    let bytes = 0
    let ticket
    let reused = false
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, session, ...(servername ? { servername } : {}), ...groups, ...version })
    socket.on('session', (s) => { ticket = s })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      socket.write(request)
    })
    socket.on('data', (chunk) => { bytes += chunk.length })
    socket.on('error', reject)
    socket.on('close', () => resolve({ bytes, reused, ticket }))
  })
}

let first
let resumed = 0
let bytes = 0
for (let i = 0; i < count; i++) {
  const r = await connectOnce(mode === 'reuse' ? first?.ticket : undefined)
  if (i === 0) first = r
  if (r.reused) resumed++
  bytes += r.bytes
}
console.log(`connections=${count} resumed=${resumed} bytes_per_conn=${Math.round(bytes / count)}`)
if (mode === 'reuse' && resumed < count - 1) process.exitCode = 1
if (mode === 'new' && resumed > 0) process.exitCode = 1

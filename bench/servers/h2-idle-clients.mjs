// Client for bench/tls.sh's memory test: opens N HTTP/2 connections (TLS, ALPN h2) to a server, 20 at a time; on
// each, one GET of URL (read to the end, status 200 required), as a browser's connection that has loaded a page and
// stays open; prints "ready K" (K connections open and idle), then keeps them open with no stream until it gets
// SIGTERM or HOLD seconds pass. The script reads the server's RSS before and after.
// usage: node h2-idle-clients.mjs URL N [HOLD]
import http2 from 'node:http2'

const [url, nArg, holdArg] = process.argv.slice(2)
const n = Number(nArg)
const sessions = []
let failed = 0
let closed = 0
const open = () => new Promise((resolve) => {
  const s = http2.connect(url, { rejectUnauthorized: false })
  s.on('error', () => { failed++; resolve() })
  s.once('remoteSettings', () => {
    const req = s.request({ ':path': new URL(url).pathname })
    let status = 0
    req.on('response', (h) => { status = h[':status'] })
    req.on('error', () => { failed++; resolve() })
    req.on('end', () => { if (status !== 200) failed++; resolve() })
    req.resume()
    req.end()
  })
  s.on('close', () => closed++)
  sessions.push(s)
})
// a few at a time: a server sees ordinary connection openings, not one burst of N handshakes
for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, open))
console.log(`ready ${n - failed - closed}${failed ? ` (${failed} failed)` : ''}${closed ? ` (${closed} closed by the server)` : ''}`)
const end = () => { for (const s of sessions) s.destroy(); process.exit(0) }
setTimeout(end, Number(holdArg ?? 60) * 1000)
process.on('SIGTERM', end)

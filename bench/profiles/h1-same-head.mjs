// A bare node:http server that sends exactly the response heads Edgebox sends on the HTTP/1.1 paths of
// bench/profiles/h1-static.md and h1-cache-hit.md (the same field names, case, order and values, Server-Timing
// measured per request), and nothing else: what those answers cost in Node alone, the ceiling for Edgebox.
//   GET /index.html   the static 200 of `edgebox bench/.peers/www` (12 fields + Date), or its 304 for If-None-Match
//   GET /obj          the cache hit of a proxy route with cache (14 fields; Age from the time stored, Date stored)
// With --log: after each answer, the JSON access line of raw-node-log (bench/servers/raw-node.mjs --log), batched
// the same way through pino.destination on stdout.
// usage: node h1-same-head.mjs PORT WWWDIR [--log]
import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'

const port = Number(process.argv[2])
const www = process.argv[3]
const logOn = process.argv.includes('--log')
const htmlPath = path.join(www, 'index.html')
const body = fs.readFileSync(htmlPath)
const wire = body.toString('latin1')
const st = fs.statSync(htmlPath)
// Edgebox's ETag (src/modules/static/files.ts etagOf) and Last-Modified (whole seconds)
const etag = `"${st.size.toString(36)}-${Math.round(st.mtimeMs * 1000).toString(36)}"`
const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString()
const stored = Date.now()
const storedDate = new Date(stored).toUTCString()

let logLine = null
let flushLog = () => {}
if (logOn) {
  const dest = pino.destination({ dest: 1, sync: false, mkdir: true })
  let batch = ''
  const flushBatch = () => {
    if (batch === '') return
    dest.write(batch)
    batch = ''
  }
  setInterval(flushBatch, 1000).unref()
  const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/
  const jsonString = (s) => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`)
  const hostOf = (h) => {
    if (!h) return ''
    if (h[0] === '[') return h.slice(0, h.indexOf(']') + 1)
    const i = h.indexOf(':')
    return i < 0 ? h : h.slice(0, i)
  }
  logLine = (req, status, bytes, start, cache) => {
    const ms = performance.now() - start
    batch += `{"time":${Date.now()},"msg":"request","method":${jsonString(req.method)},"host":${jsonString(hostOf(req.headers.host))},"path":${jsonString(req.url)},"status":${status},"bytes":${bytes},"ms":${Math.round(ms * 1000) / 1000},"cache":"${cache}","proto":"http/1.1","client":"${req.socket.remoteAddress ?? ''}"}\n`
    if (batch.length >= 32 * 1024) flushBatch()
  }
  flushLog = () => {
    flushBatch()
    try { dest.flushSync() } catch { /* nothing buffered */ }
  }
}

const timing = (start) => 'edge;dur=' + Math.round((performance.now() - start) * 100) / 100

const server = http.createServer((req, res) => {
  const start = performance.now()
  if (req.url === '/obj') {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
      'cache-control': 'public, max-age=3600',
      date: storedDate,
      via: '1.1 edgebox',
      age: String(Math.floor((Date.now() - stored) / 1000)),
      'cache-status': 'edgebox; hit; ttl=3600',
      'Content-Length': body.length,
      'Server-Timing': timing(start),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'strict-origin-when-cross-origin',
      'x-frame-options': 'SAMEORIGIN',
      'content-security-policy': "frame-ancestors 'self'",
    })
    res.end(wire, 'latin1')
  } else if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { ETag: etag, 'Last-Modified': lastModified, 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding', 'Server-Timing': timing(start) })
    res.end()
    if (logLine !== null) logLine(req, 304, 0, start, 'HIT')
    return
  } else {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      ETag: etag,
      'Last-Modified': lastModified,
      'Cache-Control': 'no-cache',
      'Accept-Ranges': 'bytes',
      Vary: 'Accept-Encoding',
      'Content-Length': body.length,
      'Server-Timing': timing(start),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'strict-origin-when-cross-origin',
      'x-frame-options': 'SAMEORIGIN',
      'content-security-policy': "frame-ancestors 'self'",
    })
    res.end(wire, 'latin1')
  }
  if (logLine !== null) logLine(req, 200, body.length, start, 'HIT')
})
server.keepAliveTimeout = 5000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); flushLog(); process.exit(0) })

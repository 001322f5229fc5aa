// Raw node:http reference server for bench/run.sh: the "ceiling" Edgebox is compared with.
// No framework, no logging, no per-request file system work for the small file:
//   GET /big.bin     fs.createReadStream (highWaterMark 1 MiB) piped to the response; one "bytes=a-b" / "bytes=a-" /
//                    "bytes=-n" range -> 206, unsatisfiable -> 416
//   anything else    the 1 KiB index.html held in memory, with a strong ETag; If-None-Match equal to it -> 304
// With --log (raw-node-log): after each answer, the JSON access-log line Edgebox writes (src/core/log.ts writeJson:
// the same fields in the same order, strings escaped only when needed), batched like Edgebox's createAccessLog (one
// write per ~32 KiB and at least once a second, flushed on SIGTERM) through the same destination (pino.destination,
// i.e. sonic-boom, async) on stdout (fd 1), as Edgebox writes its access log; --log=FILE writes to FILE instead.
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node raw-node.mjs PORT WWWDIR [--log[=FILE]]
import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'

const port = Number(process.argv[2])
const www = process.argv[3]
const logArg = process.argv.slice(4).find((a) => a === '--log' || a.startsWith('--log='))
const htmlPath = path.join(www, 'index.html')
const bigPath = path.join(www, 'big.bin')

const body = fs.readFileSync(htmlPath)
const st = fs.statSync(htmlPath)
const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`
const lastModified = st.mtime.toUTCString()
const bigSize = fs.existsSync(bigPath) ? fs.statSync(bigPath).size : 0
const HWM = 1024 * 1024

const htmlHeaders = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Length': body.length,
  ETag: etag,
  'Last-Modified': lastModified,
  'Cache-Control': 'no-cache',
}
const notModifiedHeaders = { ETag: etag, 'Last-Modified': lastModified, 'Cache-Control': 'no-cache' }

// the access log, as src/core/log.ts createAccessLog builds it (JSON format)
let logLine = null
let flushLog = () => {}
if (logArg) {
  const dest = pino.destination({ dest: logArg === '--log' ? 1 : logArg.slice(6), sync: false, mkdir: true })
  const batchChars = 32 * 1024
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
    if (batch.length >= batchChars) flushBatch()
  }
  flushLog = () => {
    flushBatch()
    try { dest.flushSync() } catch { /* nothing buffered */ }
  }
}

function serveBig(req, res) {
  let start = 0
  let end = bigSize - 1
  let status = 200
  const m = req.headers.range && /^bytes=(\d*)-(\d*)$/.exec(req.headers.range)
  if (m && (m[1] !== '' || m[2] !== '')) {
    if (m[1] === '') start = Math.max(0, bigSize - Number(m[2]))
    else {
      start = Number(m[1])
      if (m[2] !== '') end = Math.min(Number(m[2]), bigSize - 1)
    }
    if (start >= bigSize || start > end) {
      res.writeHead(416, { 'Content-Range': `bytes */${bigSize}` })
      res.end()
      return
    }
    status = 206
  }
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start + 1, 'Accept-Ranges': 'bytes' }
  if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${bigSize}`
  res.writeHead(status, headers)
  if (req.method === 'HEAD') { res.end(); return }
  const stream = fs.createReadStream(bigPath, { start, end, highWaterMark: HWM })
  stream.on('error', () => res.destroy())
  stream.pipe(res)
}

const server = http.createServer((req, res) => {
  const start = logLine === null ? 0 : performance.now()
  if (req.url === '/big.bin') {
    serveBig(req, res)
    if (logLine !== null) logLine(req, res.statusCode, res.getHeader('content-length') ?? 0, start, 'MISS')
    return
  }
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, notModifiedHeaders)
    res.end()
    if (logLine !== null) logLine(req, 304, 0, start, 'HIT')
    return
  }
  res.writeHead(200, htmlHeaders)
  const head = req.method === 'HEAD'
  res.end(head ? undefined : body)
  if (logLine !== null) logLine(req, 200, head ? 0 : body.length, start, 'HIT')
})
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); flushLog(); process.exit(0) })

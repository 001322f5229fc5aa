// Raw node:http reference server for bench/run.sh: the "ceiling" Edgebox is compared with.
// No framework, no logging, no per-request file system work for the small file:
//   GET /big.bin     fs.createReadStream (highWaterMark 1 MiB) piped to the response; one "bytes=a-b" / "bytes=a-" /
//                    "bytes=-n" range -> 206, unsatisfiable -> 416
//   anything else    the 1 KiB index.html held in memory, with a strong ETag; If-None-Match equal to it -> 304
// With --log (raw-node-log): after each answer, the JSON access-log line Edgebox writes (src/core/log.ts writeJson:
// the same fields in the same order), batched like Edgebox's createAccessLog through the same destination
// (pino.destination, async): bench/servers/access-line.mjs; on stdout (fd 1), as Edgebox writes its access log;
// --log=FILE writes to FILE instead.
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node raw-node.mjs PORT WWWDIR [--log[=FILE]]
import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import { accessLog, hostOf } from './access-line.mjs'

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

// the access log, as src/core/log.ts createAccessLog builds it (JSON format): bench/servers/access-line.mjs
let logLine = null
let flushLog = () => {}
if (logArg) {
  const log = accessLog(logArg === '--log' ? 1 : logArg.slice(6))
  logLine = (req, status, bytes, start, cache) =>
    log.line(req.method, hostOf(req.headers.host), req.url, status, bytes, start, cache, 'http/1.1', req.socket.remoteAddress)
  flushLog = log.flush
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

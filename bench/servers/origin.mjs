// Origin for bench/proxy.sh: a bare node:http server run with the project's pinned Node.
// The body is the 1 KiB index.html the static benchmark uses, read once and answered from memory.
//   GET /obj       200, 1 KiB, Cache-Control: public, max-age=3600  (cacheable: what the caching proxies store)
//   GET /nostore   200, the same 1 KiB, Cache-Control: no-store     (never stored: the uncached test)
//   GET /__hits    the number of /obj and /nostore requests answered so far (to see whether a proxy hit its cache)
// usage: node origin.mjs PORT BODYFILE
import http from 'node:http'
import fs from 'node:fs'

const port = Number(process.argv[2])
const body = fs.readFileSync(process.argv[3])
const common = { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }
const cacheable = { ...common, 'Cache-Control': 'public, max-age=3600' }
const nostore = { ...common, 'Cache-Control': 'no-store' }
let hits = 0

const server = http.createServer((req, res) => {
  if (req.url === '/__hits') { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end(String(hits)); return }
  hits++
  res.writeHead(200, req.url === '/nostore' ? nostore : cacheable)
  res.end(req.method === 'HEAD' ? undefined : body)
})
server.keepAliveTimeout = 65_000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); process.exit(0) })

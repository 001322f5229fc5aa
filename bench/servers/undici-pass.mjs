// A bare pass-through proxy written for bench/proxy.sh: the floor of what a Node proxy built on undici costs.
// node:http server + one undici Pool (the undici Edgebox itself depends on, from the project's node_modules)
// + pipe of the body; header processing is the minimum: the request headers minus the hop-by-hop ones go up,
// the response status and headers minus the hop-by-hop ones come back. No cache, no log, no retries.
// usage: node undici-pass.mjs PORT ORIGIN_PORT
import http from 'node:http'
import { Pool } from 'undici'

const pool = new Pool(`http://127.0.0.1:${process.argv[3]}`, { connections: 256, keepAliveTimeout: 4_000 })
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'])

function strip(raw) {  // raw: [name, value, name, value, ...]
  const out = []
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1])
  return out
}

const server = http.createServer((req, res) => {
  pool.request({ method: req.method, path: req.url, headers: strip(req.rawHeaders), body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then(({ statusCode, headers, body }) => {
      const h = {}
      for (const k in headers) if (!HOP.has(k)) h[k] = headers[k]
      res.writeHead(statusCode, h)
      body.pipe(res)
    })
    .catch(() => { if (!res.headersSent) res.writeHead(502); res.end() })
})
server.listen(Number(process.argv[2]), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); process.exit(0) })

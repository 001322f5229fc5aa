// node-http-proxy (npm "http-proxy", installed into bench/.peers by bench/proxy.sh) as a plain reverse proxy:
// no cache, a keep-alive agent to the origin, errors -> 502. Run with the project's pinned Node.
// usage: node http-proxy.mjs PORT ORIGIN_PORT
import http from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(new URL('../.peers/package.json', import.meta.url))
const httpProxy = require('http-proxy')

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${process.argv[3]}`, agent })
proxy.on('error', (_err, _req, res) => {
  if (res.writeHead && !res.headersSent) res.writeHead(502)
  res.end()
})
const server = http.createServer((req, res) => proxy.web(req, res))
server.listen(Number(process.argv[2]), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); process.exit(0) })

// socket.io 4.8 broadcast server for bench/realtime.sh (npm "socket.io", installed into bench/.peers by the script).
// Connection-state recovery ON (its defaults: missed packets kept 2 minutes, every broadcast packet gets an offset),
// default transports and options (per-message deflate off, the 4.x default). A publisher POSTs the payload (raw text)
// to /publish and the server calls `io.emit('m', payload)`: one event to every connected socket; 204 once emitted.
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node socketio-fanout.mjs PORT
import http from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(new URL('../.peers/package.json', import.meta.url))
const { Server } = require('socket.io')

const port = Number(process.argv[2])
const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'text/plain' })
    res.end(`${io.engine.clientsCount} clients\n`)
    return
  }
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    io.emit('m', Buffer.concat(chunks).toString())
    res.writeHead(204)
    res.end()
  })
})
const io = new Server(server, { serveClient: false, connectionStateRecovery: {} })

server.listen(port, '127.0.0.1', 4096)
process.on('SIGTERM', () => process.exit(0))

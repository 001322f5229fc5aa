// Bare `ws` broadcast server for bench/realtime.sh (the project's own ws, the same library Edgebox's hub uses).
// Subscribers connect with a WebSocket to any path; a publisher POSTs the payload (raw text, e.g. 64 bytes) to
// /publish and every connected client gets it as one text frame; the answer is 204 once it has been handed to every
// socket. No channels, no history, no JSON: the floor of a Node WebSocket broadcast.
//   send  the plain loop: `for (const c of wss.clients) c.send(payload)`; ws frames the message once per client
//   once  the frame is encoded once per broadcast and the same bytes written to every socket (ws internals:
//         Sender.frame + the client's socket), for information: what "encode once" saves
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node ws-fanout.mjs send|once PORT
import http from 'node:http'
import { Sender, WebSocketServer } from 'ws'

const mode = process.argv[2]
const port = Number(process.argv[3])
if (mode !== 'send' && mode !== 'once') throw new Error('usage: node ws-fanout.mjs send|once PORT')

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'text/plain' })
    res.end(`${wss.clients.size} clients\n`)
    return
  }
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    broadcast(Buffer.concat(chunks).toString())
    res.writeHead(204)
    res.end()
  })
})
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: true })
wss.on('connection', (ws) => ws.on('error', () => {}))

const broadcast =
  mode === 'send'
    ? (msg) => {
        for (const c of wss.clients) c.send(msg)
      }
    : (msg) => {
        const frame = Buffer.concat(Sender.frame(Buffer.from(msg), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }))
        for (const c of wss.clients) if (c.readyState === 1) c._socket.write(frame)
      }

server.listen(port, '127.0.0.1', 4096)
process.on('SIGTERM', () => process.exit(0))

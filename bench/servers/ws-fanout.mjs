// Bare `ws` broadcast server for bench/realtime.sh (the project's own ws, the same library Edgebox's hub uses).
// Subscribers connect with a WebSocket to any path; a publisher POSTs the payload (raw text, e.g. 64 bytes) to
// /publish and every connected client gets it as one text frame; the answer is 204 once it has been handed to every
// socket. No channels, no history, no JSON: the floor of a Node WebSocket broadcast.
//   send  the plain loop: `for (const c of wss.clients) c.send(payload)`; ws frames the message once per client
//   once  the frame is encoded once per broadcast and the same bytes written to every socket (ws internals:
//         Sender.frame + the client's socket), for information: what "encode once" saves
//   once-mixed  `once`, in a process that also writes, once per broadcast, to four other kinds of Writable (a file
//         stream, a PassThrough, a gzip stream, a Writable of its own), as a server with a log file, compression and
//         file streams does: Node's shared stream functions then see more than four object shapes and their property
//         loads turn megamorphic (bench/profiles/realtime-fanout.md), for information
// Run it with the same Node binary as Edgebox (the project's pinned Node 24).
// usage: node ws-fanout.mjs send|once|once-mixed PORT
import fs from 'node:fs'
import http from 'node:http'
import { PassThrough, Writable } from 'node:stream'
import zlib from 'node:zlib'
import { Sender, WebSocketServer } from 'ws'

const mode = process.argv[2]
const port = Number(process.argv[3])
if (mode !== 'send' && mode !== 'once' && mode !== 'once-mixed') throw new Error('usage: node ws-fanout.mjs send|once|once-mixed PORT')

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
        if (others) for (const w of others) w.write(msg)
      }
const others =
  mode === 'once-mixed'
    ? [fs.createWriteStream('/dev/null'), new PassThrough().resume(), zlib.createGzip().resume(), new Writable({ write: (_c, _e, cb) => cb() })]
    : null

server.listen(port, '127.0.0.1', 4096)
process.on('SIGTERM', () => process.exit(0))

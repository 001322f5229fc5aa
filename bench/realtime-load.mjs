// Load generator for bench/realtime.sh (run pinned to the generator's core; loopback only; bounded in time).
//
//   fanout: opens N subscribers (WebSocket, or for Edgebox also SSE or long polling), then publishes broadcasts of a
//           64-byte payload at a FIXED rate over HTTP (one message per POST, keep-alive): WARM s not measured, then
//           DUR s measured. Every subscriber counts what it gets, per client, in order. The server's CPU (user+sys of
//           every process in its process group, /proc/PID/stat fields 14+15, as bench/lib.sh grp_cpu) is read when
//           the measured series starts and again once every measured broadcast has reached every subscriber (or the
//           drain timeout passed): cpu_s_per_M = server CPU-seconds / (deliveries / 1e6). Latency (fanout_ms) per
//           broadcast: from its publish request being sent until the last subscriber has it. The generator's own
//           limits are reported beside it: client_cpu (its CPU per second of the run; client_cpu_pub while
//           publishing), delivery_share (deliveries counted by the end of the series / those of the broadcasts sent
//           at least --lag-grace (250) ms before it, at most 1),
//           client_loop_ms_p99 (its event loop's delay), client_runq / srv_runq (time waiting for a core).
//   idle:   opens N idle WebSocket subscribers and reads the server's memory before and after, each time after a
//           settle delay and two full garbage collections, through the server's inspector (node --inspect):
//           process.memoryUsage() there, so RSS and heap used come from the server itself.
//
// Targets (servers in bench/servers/ and Edgebox):
//   edgebox  Edgebox realtime route: WebSocket `<prefix>ws` (subprotocol edgebox.v1, {"t":"sub","ch":...}),
//            SSE `<prefix>sse?ch=`, long polling `<prefix>poll?ch=...&wait=1`; publisher POST <prefix>api/publish
//            with the publish key, body {"ch":...,"d":"<64 bytes>"}
//   ws       bench/servers/ws-fanout.mjs (send or once): plain WebSocket, publisher POST /publish (raw payload)
//   sio      bench/servers/socketio-fanout.mjs: the Engine.IO v4 / Socket.IO v5 framing spoken directly over the
//            WebSocket ("40" connect, "2" -> "3" pong, '42["m","<payload>",<offset>]' events), publisher POST /publish
// WebSocket subscribers are this file's own raw-socket client (RawWs below), not the ws library: see there why.
//
// usage: node realtime-load.mjs fanout --target edgebox|ws|sio [--transport ws|sse|poll] --port P --pgid PGID
//                               [--n 1000] [--rate 100] [--dur 10] [--warm 2] [--ch fan:x] [--prefix /rt/] [--key K]
//        (--procs K: the N subscribers spread over K child processes, see `subs` below)
//        (--pub-port P: the publisher's port, by default --port: the subscribers on one server and the publisher on
//         another, e.g. two Edgebox nodes sharing their channels through Redis, bench/realtime-redis.sh)
//        node realtime-load.mjs idle   --target edgebox|ws|sio --port P --pgid PGID --inspect IPORT [--n 5000] [--settle 3]
// fanout's --on-measure CMD / --off-measure CMD: shell commands run (and waited for) right before the measured series
// and once it has reached every subscriber, e.g. `callgrind_control -i on|off PID` to count only the measured window
// (bench/profiles/realtime-callgrind.sh).
// The last line on stdout is one JSON object with the results; progress goes to stderr.
import { execSync, fork } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: 'string' },
    transport: { type: 'string', default: 'ws' },
    port: { type: 'string' },
    'pub-port': { type: 'string' },
    pgid: { type: 'string' },
    n: { type: 'string' },
    rate: { type: 'string', default: '100' },
    dur: { type: 'string', default: '10' },
    warm: { type: 'string', default: '2' },
    ch: { type: 'string', default: 'fan:1' },
    prefix: { type: 'string', default: '/rt/' },
    key: { type: 'string', default: '' },
    inspect: { type: 'string' },
    settle: { type: 'string', default: '3' },
    'srv-cpu': { type: 'string', default: '0' },
    'drain-timeout': { type: 'string', default: '10' },
    'lag-grace': { type: 'string', default: '250' },
    max: { type: 'string', default: '300' },
    procs: { type: 'string', default: '1' },
    'on-measure': { type: 'string' },
    'off-measure': { type: 'string' },
  },
})
const mode = positionals[0]
const target = o.target
const transport = o.transport
const port = Number(o.port)
const pubPort = Number(o['pub-port'] ?? o.port)
const pgid = Number(o.pgid)
const PAYLOAD = 64
const HZ = Number(process.env.CLK_TCK || 100)
const base = `http://127.0.0.1:${port}`
const log = (...a) => process.stderr.write(`[load ${target}${transport !== 'ws' ? '/' + transport : ''}] ${a.join(' ')}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** Milliseconds of the system's monotonic clock: the same clock in every process of the generator. */
const clockMs = () => Number(process.hrtime.bigint()) / 1e6

// The whole run is bounded: past --max seconds, print a failure line and exit.
setTimeout(() => {
  if (mode === 'subs') process.stderr.write(`subscriber process: time limit ${o.max} s reached\n`)
  else console.log(JSON.stringify({ target, transport, error: `time limit ${o.max} s reached` }))
  process.exit(2)
}, Number(o.max) * 1000).unref()

/** user+sys CPU seconds of every process in the process group (bench/lib.sh grp_cpu). */
function grpCpu(g) {
  let t = 0
  for (const d of fs.readdirSync('/proc')) {
    if (d.charCodeAt(0) > 57) continue
    let s
    try {
      s = fs.readFileSync(`/proc/${d}/stat`, 'latin1')
    } catch {
      continue
    }
    const a = s.slice(s.lastIndexOf(') ') + 2).split(' ') // a[0] = state (field 3), a[2] = pgrp (5), a[11] utime (14), a[12] stime (15)
    if (Number(a[2]) === g) t += Number(a[11]) + Number(a[12])
  }
  return t / HZ
}
/** steal ticks of cpu N (/proc/stat) */
function steal(n) {
  const line = fs.readFileSync('/proc/stat', 'latin1').split('\n').find((l) => l.startsWith(`cpu${n} `))
  return line ? Number(line.trim().split(/\s+/)[8]) / HZ : 0
}
/** seconds the main thread of PID spent runnable but waiting for a core (/proc/PID/schedstat, 2nd field, ns): time
 * other jobs on the machine took from it */
function runq(pid) {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'latin1').split(' ')[1]) / 1e9
  } catch {
    return 0
  }
}
function rssOf(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))
  return m ? Number(m[1]) * 1024 : 0
}

/** Decimal digits starting at i, in a Buffer or a string. */
function digitsB(b, i, end = b.length) {
  let n = 0
  for (let c; i < end && (c = b[i]) >= 48 && c <= 57; i++) n = n * 10 + c - 48
  return n
}
function digitsS(s, i) {
  let n = 0
  for (let c; i < s.length && (c = s.charCodeAt(i)) >= 48 && c <= 57; i++) n = n * 10 + c - 48
  return n
}
const O_KEY = Buffer.from('"o":')
const MSG = Buffer.from('{"t":"msg"')
const SUB = Buffer.from('{"t":"sub"')
const GAP = Buffer.from('{"t":"gap"')
const SUB_FRAME_TEXT = JSON.stringify({ t: 'sub', ch: o.ch })

function payload(seq) {
  const head = `${seq}:`
  return head + 'x'.repeat(PAYLOAD - head.length)
}

// ---------------------------------------------------------------------------------------------------------------
// subscribers
let N = 0
let got, last // per client: messages received in order, last sequence number (offset for Edgebox)
let perSeq, sentAt // per broadcast: subscribers that have it, when its publish was sent
let warmN = 0, totalN = 0
let dups = 0, skips = 0, delivered = 0, measured = 0, completed = 0
let unexpectedClose = 0, clientErrors = 0, gapEnvelopes = 0, httpErrors = 0
const closeCodes = {}
let lat = new Float64Array(0), latN = 0 // per measured broadcast: ms from its publish until every subscriber had it
let stopping = false
let onComplete = null, completeTarget = 0

function onSeq(i, s) {
  if (s <= last[i]) return void dups++
  if (s !== last[i] + 1) skips++
  last[i] = s
  got[i]++
  delivered++
  if (s > warmN) measured++
  if (s < perSeq.length && ++perSeq[s] === N) seqDone(s, clockMs())
}

/** Broadcast S has reached every subscriber, the last one at AT (clockMs). A child process reports it instead. */
let seqDone = (s, at) => {
  completed++
  if (s > warmN && latN < lat.length) lat[latN++] = at - sentAt[s]
  if (onComplete && completed >= completeTarget) onComplete()
}

// Subscribers speak WebSocket (RFC 6455) themselves over node:net, so the generator stays cheap at 100,000 deliveries
// a second: every socket reads into ONE shared buffer (net.connect's `onread`: no Buffer, no stream event per read),
// frames are parsed in place, and a message is reduced to the one number the counters need (its sequence number or
// offset, read digit by digit from the bytes); nothing is allocated per message unless a frame spans two reads.
// The `ws` client library costs about 3 times as much per message and made the generator, not the server, the limit.
const RBUF = Buffer.allocUnsafe(1 << 16) // onread callbacks run synchronously: one buffer serves every socket
const wsPath = target === 'edgebox' ? `${o.prefix}ws` : target === 'sio' ? '/socket.io/?EIO=4&transport=websocket' : '/'

/** A masked client frame (RFC 6455 §5.2, §5.3): FIN, OPCODE, a fresh random masking key. Only for the few frames a
 * subscriber sends (its subscription, pongs), never per delivery. */
function clientFrame(opcode, payload) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload)
  if (p.length > 125) throw new Error('client frames here are short')
  const f = Buffer.allocUnsafe(6 + p.length)
  f[0] = 0x80 | opcode
  f[1] = 0x80 | p.length
  crypto.randomFillSync(f, 2, 4)
  for (let k = 0; k < p.length; k++) f[6 + k] = p[k] ^ f[2 + (k & 3)]
  return f
}

class RawWs {
  constructor(i, resolve, reject) {
    this.i = i
    this.ready = false
    this.open = false // past the 101 answer
    this.closed = false
    this.rest = null // bytes of a frame (or of the handshake answer) that did not fit in the last read
    this.resolve = resolve
    this.reject = reject
    const key = crypto.randomBytes(16).toString('base64')
    this.accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
    this.sock = net.connect({ host: '127.0.0.1', port, noDelay: true, onread: { buffer: RBUF, callback: (n, b) => this.onRead(n, b) } })
    this.sock.on('connect', () =>
      this.sock.write(
        `GET ${wsPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${target === 'edgebox' ? 'Sec-WebSocket-Protocol: edgebox.v1\r\n' : ''}\r\n`,
      ),
    )
    this.sock.on('error', (err) => {
      clientErrors++
      this.fail(err)
    })
    this.sock.on('close', () => {
      if (this.closed) return
      this.closed = true
      if (stopping) return
      unexpectedClose++
      closeCodes[1006] = (closeCodes[1006] ?? 0) + 1
      this.fail(new Error('closed (1006) before it was ready'))
    })
  }
  fail(err) {
    if (!this.ready) {
      this.ready = true // settles once
      this.reject(err)
    }
  }
  ok() {
    if (!this.ready) {
      this.ready = true
      this.resolve()
    }
  }
  send(text) {
    this.sock.write(clientFrame(1, text))
  }
  terminate() {
    this.closed = true
    this.sock.destroy()
  }
  onRead(n, b) {
    let end = n, p = 0
    if (this.rest !== null) {
      b = Buffer.concat([this.rest, b.subarray(0, n)]) // rare: a frame cut by the read
      end = b.length
      this.rest = null
    }
    if (!this.open) {
      const h = b.indexOf('\r\n\r\n', 0, 'latin1')
      if (h === -1 || h >= end) {
        this.rest = Buffer.from(b.subarray(0, end))
        return
      }
      const head = b.latin1Slice(0, h)
      if (!head.startsWith('HTTP/1.1 101') || !head.toLowerCase().includes(`sec-websocket-accept: ${this.accept.toLowerCase()}`)) {
        httpErrors++
        this.fail(new Error(`no WebSocket upgrade: ${head.slice(0, 200)}`))
        return void this.sock.destroy()
      }
      this.open = true
      p = h + 4
      if (target === 'edgebox') this.send(SUB_FRAME_TEXT)
      else if (target === 'ws') this.ok()
    }
    while (end - p >= 2) {
      const b0 = b[p], b1 = b[p + 1]
      let len = b1 & 0x7f, hl = 2
      if (len === 126) {
        if (end - p < 4) break
        len = (b[p + 2] << 8) | b[p + 3]
        hl = 4
      } else if (len === 127) {
        if (end - p < 10) break
        len = b.readUIntBE(p + 4, 6)
        hl = 10
      }
      if (b1 & 0x80) {
        clientErrors++ // a server must not mask (RFC 6455 §5.1)
        return void this.terminate()
      }
      if (end - p < hl + len) break
      const s = p + hl, e = s + len
      p = e
      const op = b0 & 0x0f
      if (op === 1 || op === 2) {
        if ((b0 & 0x80) === 0) {
          clientErrors++ // these servers never fragment a message this short
          continue
        }
        this.onMessage(b, s, e)
      } else if (op === 9) this.sock.write(clientFrame(10, b.subarray(s, e))) // ping -> pong (§5.5.3)
      else if (op === 8) {
        const code = len >= 2 ? (b[s] << 8) | b[s + 1] : 1005
        this.closed = true
        if (!stopping) {
          unexpectedClose++
          closeCodes[code] = (closeCodes[code] ?? 0) + 1
          this.fail(new Error(`closed ${code} before it was ready`))
        }
        return void this.sock.destroy()
      }
    }
    if (p < end) this.rest = Buffer.from(b.subarray(p, end))
  }
  onMessage(b, s, e) {
    if (target === 'ws') return onSeq(this.i, digitsB(b, s, e)) // the payload starts with "SEQ:"
    if (target === 'edgebox') {
      if (startsWith(b, s, e, MSG)) {
        const k = b.indexOf(O_KEY, s)
        return onSeq(this.i, digitsB(b, k + 4, e))
      }
      if (startsWith(b, s, e, SUB)) return this.ok()
      if (startsWith(b, s, e, GAP)) return void gapEnvelopes++
      if (!this.ready) this.fail(new Error(`unexpected first envelope ${b.toString('utf8', s, Math.min(e, s + 200))}`))
      return
    }
    // Engine.IO v4 / Socket.IO v5 framing
    const t = b[s]
    if (t === 52 /* 4 message */) {
      if (b[s + 1] === 50 /* 42 event */) onSeq(this.i, digitsB(b, s + 8, e)) // 42["m","SEQ:...
      else if (b[s + 1] === 48 /* 40 connected */) this.ok()
    } else if (t === 50 /* 2 ping */) this.send('3')
    else if (t === 48 /* 0 open */) this.send('40')
  }
}

function startsWith(b, s, e, pre) {
  if (e - s < pre.length) return false
  for (let k = 0; k < pre.length; k++) if (b[s + k] !== pre[k]) return false
  return true
}

function wsClient(i, conns) {
  return new Promise((resolve, reject) => conns.push(new RawWs(i, resolve, reject)))
}

function sseClient(i, conns) {
  return new Promise((resolve, reject) => {
    let ready = false
    const req = http.get(`${base}${o.prefix}sse?ch=${o.ch}`, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE status ${res.statusCode}`))
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (chunk) => {
        buf += chunk
        let k
        while ((k = buf.indexOf('\n\n')) !== -1) {
          const ev = buf.slice(0, k)
          buf = buf.slice(k + 2)
          const di = ev.indexOf('data: ')
          if (di === -1) continue
          if (ev.startsWith('{"t":"msg"', di + 6)) onSeq(i, digitsS(ev, ev.indexOf('"o":', di) + 4))
          else if (ev.startsWith('{"t":"sub"', di + 6)) {
            ready = true
            resolve()
          } else if (ev.startsWith('{"t":"gap"', di + 6)) gapEnvelopes++
        }
      })
      res.on('close', () => {
        if (stopping) return
        unexpectedClose++
        if (!ready) reject(new Error('SSE stream ended before it was ready'))
      })
    })
    conns.push(req)
    req.on('error', (err) => {
      if (stopping) return
      clientErrors++
      if (!ready) reject(err)
    })
  })
}

const pollAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
function pollClient(i) {
  return new Promise((resolve, reject) => {
    let ready = false
    const poll = (pos) => {
      if (stopping) return
      const req = http.get(`${base}${o.prefix}poll?ch=${o.ch}${pos ? '@' + pos : ''}&wait=1&client=c${i}`, { agent: pollAgent }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (body += c))
        res.on('end', () => {
          if (res.statusCode !== 200) {
            httpErrors++
            if (!ready) return reject(new Error(`poll status ${res.statusCode}: ${body.slice(0, 200)}`))
            return void setTimeout(() => poll(pos), 100)
          }
          for (const env of JSON.parse(body)) {
            if (env.t === 'msg') onSeq(i, env.o)
            else if (env.t === 'gap') gapEnvelopes++
            if (env.t === 'msg' || env.t === 'sub' || env.t === 'gap') pos = `${env.e}/${env.o}`
          }
          if (!ready && pos) {
            ready = true
            resolve()
          }
          poll(pos)
        })
      })
      req.on('error', (err) => {
        if (stopping) return
        clientErrors++
        if (!ready) reject(err)
        else setTimeout(() => poll(pos), 100)
      })
    }
    poll(undefined)
  })
}

async function openAll(n, open, conc = 100) {
  for (let i = 0; i < n; i += conc) await Promise.all(Array.from({ length: Math.min(conc, n - i) }, (_, k) => open(i + k)))
}

// ---------------------------------------------------------------------------------------------------------------
// publisher: one broadcast per POST, all on one keep-alive connection so that they reach the server in order, and
// PIPELINED (RFC 9112 §9.3.2): each request is written when its time comes, whether or not the answers to the earlier
// ones are in, so the load is offered at the fixed rate (open loop). With one request at a time (an http.Agent with
// maxSockets 1) the next POST waited for the answer to the last one, and that answer for the generator's own event
// loop, busy reading the broadcast it had just set off: the server sat idle while the generator read, the generator
// while the server wrote, and neither core was full when the deliveries lagged. Answers come back in request order
// (RFC 9112 §9.3.2) and are matched to their broadcast by that order; the connection is opened again if the server
// closed it while idle (its keep-alive timeout).
let pubSent = 0, pubOk = 0, pubBad = 0, pubLatSum = 0
const pubBadSamples = []
const pubPath = target === 'edgebox' ? `${o.prefix}api/publish` : '/publish'
const pubHead =
  `POST ${pubPath} HTTP/1.1\r\nHost: 127.0.0.1:${pubPort}\r\nContent-Type: ${target === 'edgebox' ? 'application/json' : 'text/plain'}\r\n` +
  (target === 'edgebox' ? `Authorization: Bearer ${o.key}\r\n` : '')
const pubBadNote = (m) => void (pubBad++, pubBadSamples.length < 3 && pubBadSamples.push(m))
let pub = null // { sock, pending }: the publishing connection
function pubConnect() {
  const sock = net.connect({ host: '127.0.0.1', port: pubPort, noDelay: true })
  const pending = [] // broadcasts written on this connection, not answered yet, in order
  let buf = ''
  sock.setEncoding('latin1')
  sock.on('data', (d) => {
    buf += d
    for (;;) {
      const h = buf.indexOf('\r\n\r\n')
      if (h === -1) return
      const head = buf.slice(0, h)
      const status = Number(head.slice(9, 12))
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
      if (!m && /\r\ntransfer-encoding:/i.test(head)) {
        pubBadNote(`unsupported answer (chunked): ${head.slice(0, 200)}`)
        return void sock.destroy()
      }
      const len = m ? Number(m[1]) : 0 // 204 and bodiless answers: no Content-Length
      if (buf.length < h + 4 + len) return
      const body = buf.slice(h + 4, h + 4 + len)
      buf = buf.slice(h + 4 + len)
      const seq = pending.shift()
      if (seq === undefined) {
        pubBadNote(`answer without a request: ${head.slice(0, 100)}`)
        continue
      }
      pubLatSum += clockMs() - sentAt[seq]
      if (!(status >= 200 && status < 300)) {
        pubBadNote(`${status} ${body.slice(0, 200)}`)
        continue
      }
      if (target === 'edgebox') {
        const a = JSON.parse(Buffer.from(body, 'latin1').toString())
        if (a.o !== seq) {
          pubBadNote(`offset ${a.o} for broadcast ${seq} (channel not fresh?)`)
          continue
        }
      }
      pubOk++
    }
  })
  sock.on('error', (err) => {
    if (!stopping && pending.length > 0) pubBadNote(`${err.message} (${pending.length} publish requests unanswered)`)
    pending.length = 0
  })
  sock.on('close', () => {
    if (pub?.sock === sock) pub = null
    if (!stopping && pending.length > 0) pubBadNote(`connection closed with ${pending.length} publish requests unanswered`)
    pending.length = 0
  })
  return { sock, pending }
}
function publishOne(seq) {
  const body = target === 'edgebox' ? JSON.stringify({ ch: o.ch, d: payload(seq) }) : payload(seq)
  pub ??= pubConnect()
  sentAt[seq] = clockMs()
  pubSent++
  pub.pending.push(seq)
  pub.sock.write(`${pubHead}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

/** Publishes broadcasts from..from+count-1 on a fixed schedule; resolves when the last one is sent. */
async function series(from, count, rate) {
  const t0 = performance.now()
  const iv = 1000 / rate
  for (let k = 0; k < count; k++) {
    const wait = t0 + k * iv - performance.now()
    if (wait >= 1) await sleep(wait)
    publishOne(from + k)
  }
  return (performance.now() - t0) / 1000
}

function untilCompleted(n, ms) {
  if (completed >= n) return Promise.resolve(true)
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      onComplete = null
      resolve(false)
    }, ms)
    completeTarget = n
    onComplete = () => {
      clearTimeout(t)
      onComplete = null
      resolve(true)
    }
  })
}

/** percentile P of a SORTED typed array */
const pct = (s, p) => (s.length === 0 ? null : +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2))

/** The broadcast counts of a fanout run, from --rate, --dur and --warm (the same in every process). */
function setup(n) {
  N = n
  const rate = Number(o.rate), dur = Number(o.dur), warm = Number(o.warm)
  warmN = Math.round(warm * rate)
  const measN = Math.max(1, Math.round(dur * rate))
  totalN = warmN + measN
  got = new Int32Array(N)
  last = new Int32Array(N)
  perSeq = new Uint32Array(totalN + 1)
  sentAt = new Float64Array(totalN + 1)
  lat = new Float64Array(measN)
  return { rate, measN }
}

/** Opens this process's N subscribers; answers the connections. */
async function openSubscribers() {
  const conns = []
  const open = transport === 'sse' ? (i) => sseClient(i, conns) : transport === 'poll' ? (i) => pollClient(i) : (i) => wsClient(i, conns)
  await openAll(N, open)
  return conns
}

/** This process's delivery counts at the end of a run. */
function tally() {
  let lost = 0, clientsShort = 0
  for (let i = 0; i < N; i++) {
    const miss = totalN - got[i]
    if (miss > 0) {
      lost += miss
      clientsShort++
    }
  }
  return { measured, lost, clientsShort, dups, skips, gapEnvelopes, unexpectedClose, clientErrors, httpErrors, closeCodes }
}

const cpuS = (u) => (u.user + u.system) / 1e6

/**
 * --procs K: the subscribers spread over K child processes (`subs` mode, forked with this file's own arguments and
 * --n set to each one's share), so that no generator process is the limit where the generator has several cores
 * (GEN_CPU a list in bench/realtime.sh). Each child counts its own subscribers and reports over IPC when a broadcast
 * has reached all of them, stamped with the system's monotonic clock; the parent publishes, takes the latest of the
 * K stamps as the broadcast's completion, and sums the children's counts and CPU at the end.
 */
async function startChildren(procs) {
  const kids = []
  const doneBy = new Uint16Array(totalN + 1), lastAt = new Float64Array(totalN + 1)
  const ready = []
  for (let k = 0; k < procs; k++) {
    const count = Math.floor(N / procs) + (k < N % procs ? 1 : 0)
    const kid = fork(fileURLToPath(import.meta.url), ['subs', ...process.argv.slice(3), '--n', String(count)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const waiting = new Map() // reply type -> resolve
    kid.ask = (t) => new Promise((resolve) => (waiting.set(t, resolve), kid.send({ t })))
    ready.push(
      new Promise((resolve, reject) => {
        kid.on('message', (m) => {
          if (m.t === 'done') {
            if (m.at > lastAt[m.s]) lastAt[m.s] = m.at
            if (++doneBy[m.s] === procs) seqDone(m.s, lastAt[m.s])
          } else if (m.t === 'ready') resolve()
          else if (m.t === 'error') reject(new Error(`subscriber process ${k}: ${m.message}`))
          else waiting.get(m.t)?.(m)
        })
        kid.on('exit', (code) => {
          if (!stopping) reject(new Error(`subscriber process ${k} exited (${code})`))
        })
      }),
    )
    kids.push(kid)
  }
  await Promise.all(ready)
  return kids
}

/** A child process of --procs: its share of the subscribers, driven by the parent over IPC. */
async function subs() {
  setup(Number(o.n))
  // the parent gone (it printed its result, or failed): nothing left to report to
  process.on('disconnect', () => process.exit(0))
  const send = (m) => void (process.connected && process.send(m))
  seqDone = (s) => send({ t: 'done', s, at: clockMs() })
  let conns
  try {
    conns = await openSubscribers()
  } catch (err) {
    send({ t: 'error', message: String(err?.message ?? err) })
    return void setTimeout(() => process.exit(1), 100)
  }
  let u0 = process.cpuUsage(), q0 = runq(process.pid)
  process.on('message', (m) => {
    if (m.t === 'mark') {
      u0 = process.cpuUsage()
      q0 = runq(process.pid)
      send({ t: 'mark' })
    } else if (m.t === 'pubEnd') send({ t: 'pubEnd', measured, cpu: cpuS(process.cpuUsage(u0)) })
    else if (m.t === 'report') {
      const u = process.cpuUsage(u0)
      send({ t: 'report', ...tally(), cpu: cpuS(u), sys: u.system / 1e6, runq: runq(process.pid) - q0 })
    } else if (m.t === 'stop') {
      stopping = true
      for (const c of conns) (c.terminate ?? c.destroy).call(c)
      setTimeout(() => process.exit(0), 100)
    }
  })
  send({ t: 'ready' })
}

async function fanout() {
  const { rate, measN } = setup(Number(o.n ?? 1000))
  const procs = Math.max(1, Math.min(Number(o.procs), N))
  const t0 = performance.now()
  const conns = procs === 1 ? await openSubscribers() : []
  const kids = procs === 1 ? [] : await startChildren(procs)
  const connectMs = Math.round(performance.now() - t0)
  log(`${N} subscribers ready in ${connectMs} ms${procs > 1 ? ` (${procs} processes)` : ''}`)
  await sleep(500)
  // warm-up (not measured): the same rate, then wait until it has been delivered
  if (warmN > 0) {
    await series(1, warmN, rate)
    if (!(await untilCompleted(warmN, Number(o['drain-timeout']) * 1000))) log(`warm-up not fully delivered: ${completed}/${warmN} broadcasts reached everyone`)
    await sleep(300)
  }
  // measured series
  if (o['on-measure']) execSync(o['on-measure'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 })
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  await Promise.all(kids.map((k) => k.ask('mark')))
  const c0 = grpCpu(pgid), s0 = steal(o['srv-cpu']), q0 = runq(pgid), g0 = runq(process.pid), u0 = process.cpuUsage(), w0 = performance.now()
  const pubSecs = await series(warmN + 1, measN, rate)
  const pubCpu = process.cpuUsage(u0), pubEnd = clockMs()
  const atPubEnd = await Promise.all(kids.map((k) => k.ask('pubEnd')))
  const measuredAtPubEnd = procs === 1 ? measured : atPubEnd.reduce((a, r) => a + r.measured, 0)
  // broadcasts sent at least --lag-grace ms before the series ended: those every subscriber should have by then
  let dueN = 0
  for (let k = warmN + 1; k <= totalN; k++) if (sentAt[k] <= pubEnd - Number(o['lag-grace'])) dueN++
  const drained = await untilCompleted(totalN, Number(o['drain-timeout']) * 1000)
  const w1 = performance.now(), c1 = grpCpu(pgid), s1 = steal(o['srv-cpu']), q1 = runq(pgid), g1 = runq(process.pid), u1 = process.cpuUsage(u0)
  loop.disable()
  if (o['off-measure']) execSync(o['off-measure'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 })
  const secs = (w1 - w0) / 1000
  const lats = lat.subarray(0, latN).sort()
  const srvCpu = c1 - c0
  const expected = measN * N
  // the counts: this process's, or the sum of the children's
  const reports = procs === 1 ? [{ ...tally(), cpu: 0, sys: 0, runq: 0 }] : await Promise.all(kids.map((k) => k.ask('report')))
  const sum = (k) => reports.reduce((a, r) => a + r[k], 0)
  const codes = {}
  for (const r of reports) for (const [c, n] of Object.entries(r.closeCodes)) codes[c] = (codes[c] ?? 0) + n
  const meas = sum('measured')
  stopping = true
  // the generator's CPU: every process's (client_cpu), and the busiest one's share of its core (client_cpu_proc_max)
  const ownCpu = cpuS(u1), kidCpu = reports.map((r) => r.cpu)
  const pubKidCpu = atPubEnd.map((r) => r.cpu)
  const res = {
    target, transport, clients: N, procs, rate, broadcasts: measN, warm_broadcasts: warmN,
    payload_bytes: PAYLOAD, connect_ms: connectMs,
    seconds: +secs.toFixed(3), publish_seconds: +pubSecs.toFixed(3), achieved_rate: +(measN / pubSecs).toFixed(1),
    expected, delivered: meas, lost: sum('lost'), clients_short: sum('clientsShort'), dups: sum('dups'), out_of_order: sum('skips'), gap_envelopes: sum('gapEnvelopes'),
    drained, srv_cpu_s: +srvCpu.toFixed(2), srv_cpu: +(srvCpu / secs).toFixed(3),
    cpu_s_per_M: meas > 0 ? +(srvCpu / (meas / 1e6)).toFixed(3) : null,
    // the cores the offered load (N x rate deliveries a second) takes at the CPU per delivery of this run: above 1 for
    // the server (or above the generator's cores for it), no run can keep up, whatever the server does
    srv_cores_needed: meas > 0 ? +((srvCpu / meas) * N * rate).toFixed(2) : null,
    client_cpu_s_per_M: meas > 0 ? +((ownCpu + sum('cpu')) / (meas / 1e6)).toFixed(3) : null,
    client_cores_needed: meas > 0 ? +(((ownCpu + sum('cpu')) / meas) * N * rate).toFixed(2) : null,
    steal: +((s1 - s0) / secs).toFixed(3), client_cpu: +((ownCpu + sum('cpu')) / secs).toFixed(3),
    client_cpu_proc_max: +(Math.max(ownCpu, ...kidCpu) / secs).toFixed(3),
    // the generator's own limits: its CPU while the broadcasts were being sent, the deliveries it had counted by the
    // end of the series over those offered in it (N x broadcasts sent), and its event loop's delay
    srv_runq: +((q1 - q0) / secs).toFixed(3), client_runq: +((g1 - g0 + sum('runq')) / secs).toFixed(3),
    client_sys_share: +((u1.system / 1e6 + sum('sys')) / (ownCpu + sum('cpu'))).toFixed(3),
    client_cpu_pub: +((cpuS(pubCpu) + pubKidCpu.reduce((a, c) => a + c, 0)) / pubSecs).toFixed(3),
    client_cpu_pub_proc_max: +(Math.max(cpuS(pubCpu), ...pubKidCpu) / pubSecs).toFixed(3),
    delivery_share: +Math.min(1, measuredAtPubEnd / (N * Math.max(1, dueN))).toFixed(4),
    client_loop_ms_p99: +(loop.percentile(99) / 1e6).toFixed(2), client_loop_ms_max: +(loop.max / 1e6).toFixed(2),
    fanout_ms_p50: pct(lats, 50), fanout_ms_p99: pct(lats, 99), fanout_ms_max: lats.length ? +lats[lats.length - 1].toFixed(2) : null,
    publish_ok: pubOk, publish_bad: pubBad, publish_ms_avg: pubOk ? +(pubLatSum / (pubOk + pubBad)).toFixed(2) : null,
    unexpected_close: sum('unexpectedClose'), close_codes: codes, client_errors: sum('clientErrors'), http_errors: sum('httpErrors'),
    srv_rss_mb: +(rssOf(pgid) / 1048576).toFixed(1),
  }
  if (pubBadSamples.length) res.publish_errors = pubBadSamples
  console.log(JSON.stringify(res))
  for (const c of conns) (c.terminate ?? c.destroy).call(c)
  for (const k of kids) k.send({ t: 'stop' })
  pollAgent.destroy()
  pub?.sock.destroy()
  setTimeout(() => process.exit(0), 300)
}

// ---------------------------------------------------------------------------------------------------------------
// idle memory, read through the server's inspector
async function inspector(iport) {
  let list
  for (let i = 0; i < 50 && !list; i++) {
    list = await fetch(`http://127.0.0.1:${iport}/json/list`).then((r) => r.json(), () => undefined)
    if (!list) await sleep(100)
  }
  if (!list?.[0]) throw new Error(`no inspector on port ${iport}`)
  const ws = new WebSocket(list[0].webSocketDebuggerUrl, { perMessageDeflate: false })
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)))
  let id = 0
  const waiting = new Map()
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString())
    if (m.id !== undefined && waiting.has(m.id)) {
      waiting.get(m.id)(m)
      waiting.delete(m.id)
    }
  })
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const k = ++id
      waiting.set(k, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)))
      ws.send(JSON.stringify({ id: k, method, params }))
    })
  return {
    async memory() {
      await call('HeapProfiler.collectGarbage')
      await call('HeapProfiler.collectGarbage')
      await sleep(300)
      const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
      return JSON.parse(r.result.value)
    },
    close: () => ws.terminate(),
  }
}

async function idle() {
  N = Number(o.n ?? 5000)
  got = new Int32Array(N)
  last = new Int32Array(N)
  perSeq = new Uint32Array(1)
  const insp = await inspector(Number(o.inspect))
  // warm the server's connection path first (JIT code, pools), so the delta is the connections' own memory
  const warmConns = []
  await openAll(200, (i) => wsClient(i, warmConns))
  stopping = true
  for (const c of warmConns) c.terminate()
  await sleep(1000)
  stopping = false
  const before = await insp.memory()
  const conns = []
  const t0 = performance.now()
  await openAll(N, (i) => wsClient(i, conns))
  const connectMs = Math.round(performance.now() - t0)
  log(`${N} idle subscribers ready in ${connectMs} ms; settling ${o.settle} s`)
  await sleep(Number(o.settle) * 1000)
  const rssNoGc = rssOf(pgid)
  const after = await insp.memory()
  const per = (k) => Math.round((after[k] - before[k]) / N)
  const res = {
    target, clients: N, connect_ms: connectMs,
    rss_before_mb: +(before.rss / 1048576).toFixed(1), rss_after_mb: +(after.rss / 1048576).toFixed(1),
    rss_per_conn: per('rss'), heap_used_per_conn: per('heapUsed'), external_per_conn: per('external'),
    rss_nogc_per_conn: Math.round((rssNoGc - before.rss) / N),
    heap_used_before_mb: +(before.heapUsed / 1048576).toFixed(1), heap_used_after_mb: +(after.heapUsed / 1048576).toFixed(1),
    unexpected_close: unexpectedClose, close_codes: closeCodes, client_errors: clientErrors,
  }
  console.log(JSON.stringify(res))
  stopping = true
  for (const c of conns) c.terminate()
  insp.close()
  setTimeout(() => process.exit(0), 200)
}

;(mode === 'fanout' ? fanout() : mode === 'subs' ? subs() : mode === 'idle' ? idle() : Promise.reject(new Error('usage: realtime-load.mjs fanout|idle ...'))).catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  if (mode !== 'subs') console.log(JSON.stringify({ target, transport, error: String(err?.message ?? err) }))
  process.exit(1)
})

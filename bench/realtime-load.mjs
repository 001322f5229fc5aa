// Load generator for bench/realtime.sh (run pinned to the generator's core; loopback only; bounded in time).
//
//   fanout: opens N subscribers (WebSocket, or for Edgebox also SSE or long polling), then publishes broadcasts of a
//           64-byte payload at a FIXED rate over HTTP (one message per POST, keep-alive): WARM s not measured, then
//           DUR s measured. Every subscriber counts what it gets, per client, in order. The server's CPU (user+sys of
//           every process in its process group, /proc/PID/stat fields 14+15, as bench/lib.sh grp_cpu) is read when
//           the measured series starts and again once every measured broadcast has reached every subscriber (or the
//           drain timeout passed): cpu_s_per_M = server CPU-seconds / (deliveries / 1e6).
//   idle:   opens N idle WebSocket subscribers and reads the server's memory before and after, each time after a
//           settle delay and two full garbage collections, through the server's inspector (node --inspect):
//           process.memoryUsage() there, so RSS and heap used come from the server itself.
//
// Targets (servers in bench/servers/ and Edgebox):
//   edgebox  Edgebox realtime route: WebSocket `<prefix>ws` (subprotocol edgebox.v1, {"t":"sub","ch":...}),
//            SSE `<prefix>sse?ch=`, long polling `<prefix>poll?ch=...&wait=1`; publisher POST <prefix>api/publish
//            with the publish key, body {"ch":...,"d":"<64 bytes>"}
//   ws       bench/servers/ws-fanout.mjs (send or once): plain WebSocket, publisher POST /publish (raw payload)
//   sio      bench/servers/socketio-fanout.mjs: the Engine.IO v4 / Socket.IO v5 framing spoken directly over a ws
//            client ("40" connect, "2" -> "3" pong, '42["m","<payload>",<offset>]' events), publisher POST /publish
//
// usage: node realtime-load.mjs fanout --target edgebox|ws|sio [--transport ws|sse|poll] --port P --pgid PGID
//                               [--n 1000] [--rate 100] [--dur 10] [--warm 2] [--ch fan:x] [--prefix /rt/] [--key K]
//        node realtime-load.mjs idle   --target edgebox|ws|sio --port P --pgid PGID --inspect IPORT [--n 5000] [--settle 3]
// The last line on stdout is one JSON object with the results; progress goes to stderr.
import fs from 'node:fs'
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: 'string' },
    transport: { type: 'string', default: 'ws' },
    port: { type: 'string' },
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
    max: { type: 'string', default: '300' },
  },
})
const mode = positionals[0]
const target = o.target
const transport = o.transport
const port = Number(o.port)
const pgid = Number(o.pgid)
const PAYLOAD = 64
const HZ = Number(process.env.CLK_TCK || 100)
const base = `http://127.0.0.1:${port}`
const wsUrl = target === 'edgebox' ? `ws://127.0.0.1:${port}${o.prefix}ws` : target === 'sio' ? `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket` : `ws://127.0.0.1:${port}/`
const log = (...a) => process.stderr.write(`[load ${target}${transport !== 'ws' ? '/' + transport : ''}] ${a.join(' ')}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// The whole run is bounded: past --max seconds, print a failure line and exit.
setTimeout(() => {
  console.log(JSON.stringify({ target, transport, error: `time limit ${o.max} s reached` }))
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
function rssOf(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))
  return m ? Number(m[1]) * 1024 : 0
}

/** Decimal digits starting at i, in a Buffer or a string. */
function digitsB(b, i) {
  let n = 0
  for (let c; i < b.length && (c = b[i]) >= 48 && c <= 57; i++) n = n * 10 + c - 48
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
const lat = []
let stopping = false
let onComplete = null, completeTarget = 0

function onSeq(i, s) {
  if (s <= last[i]) return void dups++
  if (s !== last[i] + 1) skips++
  last[i] = s
  got[i]++
  delivered++
  if (s > warmN) measured++
  if (s < perSeq.length && ++perSeq[s] === N) {
    completed++
    if (s > warmN) lat.push(performance.now() - sentAt[s])
    if (onComplete && completed >= completeTarget) onComplete()
  }
}

function wsClient(i, conns) {
  return new Promise((resolve, reject) => {
    let ready = false
    const ws = target === 'edgebox' ? new WebSocket(wsUrl, 'edgebox.v1', { perMessageDeflate: false, skipUTF8Validation: true }) : new WebSocket(wsUrl, { perMessageDeflate: false, skipUTF8Validation: true })
    conns.push(ws)
    const ok = () => {
      ready = true
      resolve()
    }
    ws.on('error', (err) => {
      clientErrors++
      if (!ready) reject(err)
    })
    ws.on('close', (code) => {
      if (stopping) return
      unexpectedClose++
      closeCodes[code] = (closeCodes[code] ?? 0) + 1
      if (!ready) reject(new Error(`closed ${code} before it was ready`))
    })
    if (target === 'edgebox') {
      ws.on('open', () => ws.send(JSON.stringify({ t: 'sub', ch: o.ch })))
      ws.on('message', (d) => {
        if (d.compare(MSG, 0, MSG.length, 0, MSG.length) === 0) {
          const k = d.indexOf(O_KEY)
          return onSeq(i, digitsB(d, k + 4))
        }
        if (d.compare(SUB, 0, SUB.length, 0, SUB.length) === 0) return ok()
        if (!ready) reject(new Error(`unexpected first envelope ${d.toString().slice(0, 200)}`))
      })
    } else if (target === 'ws') {
      ws.on('open', ok)
      ws.on('message', (d) => onSeq(i, digitsB(d, 0)))
    } else {
      ws.on('message', (d) => {
        const t = d[0]
        if (t === 52 /* 4 */) {
          if (d[1] === 50 /* 42 event */) onSeq(i, digitsB(d, 8)) // 42["m","SEQ:...
          else if (d[1] === 48 /* 40 connected */) ok()
        } else if (t === 50 /* 2 ping */) ws.send('3')
        else if (t === 48 /* 0 open */) ws.send('40')
      })
    }
  })
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
// publisher: one broadcast per POST on one keep-alive connection (so they arrive in order), at a fixed rate: requests
// are sent on schedule and queue in the agent if the server falls behind (the load is offered, not closed-loop)
const pubAgent = new http.Agent({ keepAlive: true, maxSockets: 1 }) // one connection: broadcasts stay in order
let pubSent = 0, pubOk = 0, pubBad = 0, pubLatSum = 0
const pubBadSamples = []
function publishOne(seq) {
  const body = target === 'edgebox' ? JSON.stringify({ ch: o.ch, d: payload(seq) }) : payload(seq)
  const path = target === 'edgebox' ? `${o.prefix}api/publish` : '/publish'
  const headers = { 'content-type': target === 'edgebox' ? 'application/json' : 'text/plain', 'content-length': Buffer.byteLength(body) }
  if (target === 'edgebox') headers.authorization = `Bearer ${o.key}`
  sentAt[seq] = performance.now()
  pubSent++
  const req = http.request(`${base}${path}`, { method: 'POST', agent: pubAgent, headers }, (res) => {
    let text = ''
    res.setEncoding('utf8')
    res.on('data', (c) => (text += c))
    res.on('end', () => {
      pubLatSum += performance.now() - sentAt[seq]
      if (res.statusCode >= 300) return void (pubBad++, pubBadSamples.length < 3 && pubBadSamples.push(`${res.statusCode} ${text.slice(0, 200)}`))
      if (target === 'edgebox') {
        const a = JSON.parse(text)
        if (a.o !== seq) return void (pubBad++, pubBadSamples.length < 3 && pubBadSamples.push(`offset ${a.o} for broadcast ${seq} (channel not fresh?)`))
      }
      pubOk++
    })
  })
  req.on('error', (err) => {
    pubBad++
    if (pubBadSamples.length < 3) pubBadSamples.push(err.message)
  })
  req.end(body)
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

const pct = (a, p) => {
  if (a.length === 0) return null
  const s = [...a].sort((x, y) => x - y)
  return +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2)
}

async function fanout() {
  N = Number(o.n ?? 1000)
  const rate = Number(o.rate), dur = Number(o.dur), warm = Number(o.warm)
  warmN = Math.round(warm * rate)
  const measN = Math.max(1, Math.round(dur * rate))
  totalN = warmN + measN
  got = new Int32Array(N)
  last = new Int32Array(N)
  perSeq = new Uint32Array(totalN + 1)
  sentAt = new Float64Array(totalN + 1)
  const conns = []
  const t0 = performance.now()
  const open = transport === 'sse' ? (i) => sseClient(i, conns) : transport === 'poll' ? (i) => pollClient(i) : (i) => wsClient(i, conns)
  await openAll(N, open)
  const connectMs = Math.round(performance.now() - t0)
  log(`${N} subscribers ready in ${connectMs} ms`)
  await sleep(500)
  // warm-up (not measured): the same rate, then wait until it has been delivered
  if (warmN > 0) {
    await series(1, warmN, rate)
    if (!(await untilCompleted(warmN, Number(o['drain-timeout']) * 1000))) log(`warm-up not fully delivered: ${completed}/${warmN} broadcasts reached everyone`)
    await sleep(300)
  }
  // measured series
  const c0 = grpCpu(pgid), s0 = steal(o['srv-cpu']), u0 = process.cpuUsage(), w0 = performance.now()
  const pubSecs = await series(warmN + 1, measN, rate)
  const drained = await untilCompleted(totalN, Number(o['drain-timeout']) * 1000)
  const w1 = performance.now(), c1 = grpCpu(pgid), s1 = steal(o['srv-cpu']), u1 = process.cpuUsage(u0)
  const secs = (w1 - w0) / 1000
  const srvCpu = c1 - c0
  const expected = measN * N
  let lost = 0, clientsShort = 0
  for (let i = 0; i < N; i++) {
    const miss = totalN - got[i]
    if (miss > 0) {
      lost += miss
      clientsShort++
    }
  }
  stopping = true
  const res = {
    target, transport, clients: N, rate, broadcasts: measN, warm_broadcasts: warmN,
    payload_bytes: PAYLOAD, connect_ms: connectMs,
    seconds: +secs.toFixed(3), publish_seconds: +pubSecs.toFixed(3), achieved_rate: +(measN / pubSecs).toFixed(1),
    expected, delivered: measured, lost, clients_short: clientsShort, dups, out_of_order: skips, gap_envelopes: gapEnvelopes,
    drained, srv_cpu_s: +srvCpu.toFixed(2), srv_cpu: +(srvCpu / secs).toFixed(3),
    cpu_s_per_M: measured > 0 ? +(srvCpu / (measured / 1e6)).toFixed(3) : null,
    steal: +((s1 - s0) / secs).toFixed(3), client_cpu: +((u1.user + u1.system) / 1e6 / secs).toFixed(3),
    fanout_ms_p50: pct(lat, 50), fanout_ms_p99: pct(lat, 99), fanout_ms_max: lat.length ? +Math.max(...lat).toFixed(2) : null,
    publish_ok: pubOk, publish_bad: pubBad, publish_ms_avg: pubOk ? +(pubLatSum / (pubOk + pubBad)).toFixed(2) : null,
    unexpected_close: unexpectedClose, close_codes: closeCodes, client_errors: clientErrors, http_errors: httpErrors,
    srv_rss_mb: +(rssOf(pgid) / 1048576).toFixed(1),
  }
  if (pubBadSamples.length) res.publish_errors = pubBadSamples
  console.log(JSON.stringify(res))
  for (const c of conns) (c.terminate ?? c.destroy).call(c)
  pollAgent.destroy()
  pubAgent.destroy()
  setTimeout(() => process.exit(0), 200)
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

;(mode === 'fanout' ? fanout() : mode === 'idle' ? idle() : Promise.reject(new Error('usage: realtime-load.mjs fanout|idle ...'))).catch((err) => {
  console.log(JSON.stringify({ target, transport, error: String(err?.message ?? err) }))
  process.exit(1)
})

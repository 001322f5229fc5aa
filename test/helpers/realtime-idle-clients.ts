/**
 * Child process for test/e2e/realtime-idle.test.ts: opens COUNT WebSocket
 * connections to a realtime route, subscribes each to CHANNEL and reports
 * over IPC when all are subscribed; then counts the `msg` envelopes that
 * arrive (one broadcast should reach every connection) and reports when
 * each connection has one.
 *
 * Connections are made from 127.0.0.1 with the kernel choosing the port at
 * connect time (it can reuse ports left in TIME_WAIT by earlier runs, since
 * the server's port differs). Should the ephemeral ports to the server run
 * out (EADDRNOTAVAIL), further connections come from 127.0.0.2-4, when this
 * host has them. (Binding every connection to a source address up front is
 * slower: bind() cannot reuse TIME_WAIT ports.)
 *
 * It always exits by itself: on `{ type: 'close' }` from the parent (each
 * connection is closed with a close handshake, those still open after 3 s
 * are cut), when the parent goes away (IPC disconnect), or after DEADLINE ms
 * at the latest.
 *
 * usage (forked): realtime-idle-clients.ts WS_URL COUNT CHANNEL [DEADLINE_MS]
 * messages to the parent: { type: 'open', count, ms, sources }, { type: 'received', count, ms },
 * { type: 'error', message, subscribed }
 */
import net from 'node:net'
import WebSocket from 'ws'

export type ChildMessage =
  | { type: 'open'; count: number; ms: number; sources: string[] }
  | { type: 'received'; count: number; ms: number }
  | { type: 'error'; message: string; subscribed: number }

const [url = '', countArg = '0', channel = 'idle:1', deadlineArg = '55000'] = process.argv.slice(2)
const count = Number(countArg)
const conns = new Set<WebSocket>()
let subscribed = 0
let received = 0
let firstMsgAt = 0
let failed = false
let closing = false

const tell = (m: ChildMessage) => process.send?.(m)

/** Cuts whatever is still open and exits. */
function finish(code: number): void {
  for (const c of conns) c.terminate()
  process.exit(code)
}
setTimeout(() => finish(3), Number(deadlineArg)).unref()
process.on('disconnect', () => finish(0))
process.on('message', (m: { type?: string }) => {
  if (m?.type !== 'close' || closing) return
  closing = true
  for (const c of conns) c.close(1000, 'test over')
  setTimeout(() => finish(0), 3000).unref()
})

function fail(message: string): void {
  if (failed) return
  failed = true
  tell({ type: 'error', message, subscribed })
  setTimeout(() => finish(1), 100)
}

/** Source addresses in use: 127.0.0.1 (no bind), then the extra ones once ports run out. */
const used: string[] = ['127.0.0.1']
let extra: Promise<string[]> | undefined
/** Extra loopback addresses this host accepts, tried against a listener of this process (not the server under test). */
function extraSources(): Promise<string[]> {
  extra ??= (async () => {
    const probe = net.createServer((s) => s.destroy())
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as net.AddressInfo).port
    const ok: string[] = []
    for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const usable = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: a })
        s.once('connect', () => {
          s.destroy()
          resolve(true)
        })
        s.once('error', () => resolve(false))
      })
      if (usable) ok.push(a)
    }
    await new Promise((resolve) => probe.close(resolve))
    return ok
  })()
  return extra
}

async function open(i: number): Promise<void> {
  let from: string | undefined
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect(i, from)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if ((code !== 'EADDRNOTAVAIL' && code !== 'EADDRINUSE') || attempt >= 3) throw err
      const more = await extraSources()
      if (attempt >= more.length) throw err
      from = more[(i + attempt) % more.length]!
      if (!used.includes(from)) used.push(from)
    }
  }
}

function connect(i: number, localAddress: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'edgebox.v1', localAddress ? { perMessageDeflate: false, localAddress } : { perMessageDeflate: false })
    conns.add(ws)
    let ready = false
    ws.on('error', (err) => {
      if (!ready) reject(err)
      else if (!closing) fail(`connection ${i}: ${err.message}`)
    })
    ws.on('close', (code) => {
      conns.delete(ws)
      if (closing) {
        if (conns.size === 0) finish(0)
        return
      }
      if (!ready) reject(Object.assign(new Error(`connection ${i} closed (${code}) before it was subscribed`), { code: 'ECLOSED' }))
      else fail(`connection ${i} closed by the server (${code})`)
    })
    ws.on('open', () => ws.send(JSON.stringify({ t: 'sub', ch: channel })))
    ws.on('message', (data) => {
      const env = JSON.parse(data.toString()) as { t: string }
      if (env.t === 'sub' && !ready) {
        ready = true
        subscribed++
        resolve()
      } else if (env.t === 'msg') {
        if (received === 0) firstMsgAt = performance.now()
        if (++received === count) tell({ type: 'received', count: received, ms: Math.round(performance.now() - firstMsgAt) })
      }
    })
  })
}

const t0 = performance.now()
try {
  const batch = 250
  for (let i = 0; i < count; i += batch) await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, k) => open(i + k)))
  tell({ type: 'open', count: subscribed, ms: Math.round(performance.now() - t0), sources: used })
} catch (err) {
  fail((err as Error).message)
}

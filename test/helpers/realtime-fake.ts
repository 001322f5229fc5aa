import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

/**
 * A small realtime hub for the client's tests: it speaks the wire protocol of
 * docs/realtime.md (envelopes; WebSocket, SSE, long and short polling,
 * POST publish) over node:http and ws on 127.0.0.1, keeps every message
 * (no history bound) with one epoch per channel, and lets a test break it on
 * purpose: refuse a transport, kill the connections, stop answering pings or
 * sending keep-alives, swallow acks, or inject raw envelopes.
 */

export interface Pos {
  e: string
  o: number
}
export interface StoredMessage {
  ch: string
  e: string
  o: number
  d: unknown
  id?: string
}
type Env = Record<string, unknown>

export interface FakeModes {
  /** WebSocket upgrades: accepted, or answered `400 Bad Request` (a proxy refusing Upgrade). */
  ws: 'ok' | 'refuse'
  /** `P sse`: a stream, or `503`. */
  sse: 'ok' | 'fail'
  /** `P poll`: answered, or `503`. */
  poll: 'ok' | 'fail'
  /** Everything refused (upgrades 400, requests 503): the hub is down. */
  down: boolean
  /** Answer `{t:'ping'}` with `pong`. */
  pong: boolean
  /** ms between `: keep-alive` comments on SSE streams (0: none). */
  keepAlive: number
  /** ms a long poll is held when there is nothing new. */
  pollHold: number
  /** Store the next N publishes but send no ack (as if the connection dropped before it). */
  swallowAcks: number
}

export interface FakeHub {
  /** The route prefix P: http://127.0.0.1:<port>/live/ */
  readonly url: string
  readonly modes: FakeModes
  /** Every HTTP request and upgrade, in order: `ws`, `sse`, `poll`, `publish` with its URL. */
  readonly requests: Array<{ kind: string; url: URL }>
  /** Every envelope received on WebSocket connections and in POST publish bodies. */
  readonly received: Env[]
  /** Publishes from the back end: stored and fanned out. */
  publish(ch: string, d: unknown): StoredMessage
  /** The channel's stored messages. */
  messages(ch: string): StoredMessage[]
  /** Starts a new epoch for `ch`, as a hub that lost its history would. */
  newEpoch(ch: string): void
  /** Sends a raw envelope to every WebSocket connection and SSE stream. */
  inject(env: Env): void
  /** Ends every WebSocket connection (no close frame), SSE stream and held poll. */
  kill(): void
  /** Open WebSocket connections and SSE streams. */
  readonly live: { ws: number; sse: number }
  close(): Promise<void>
}

const PREFIX = '/live/'

/** Files served outside P (for browser tests): path -> content type and body. */
export type FakePages = Record<string, { type: string; body: string }>

export async function startFakeHub(modes: Partial<FakeModes> = {}, pages: FakePages = {}): Promise<FakeHub> {
  const m: FakeModes = { ws: 'ok', sse: 'ok', poll: 'ok', down: false, pong: true, keepAlive: 0, pollHold: 1000, swallowAcks: 0, ...modes }
  const channels = new Map<string, { epoch: string; generation: number; messages: StoredMessage[] }>()
  const requests: Array<{ kind: string; url: URL }> = []
  const received: Env[] = []
  const wsSubs = new Map<WebSocket, Set<string>>()
  const streams = new Set<{ res: http.ServerResponse; pos: Map<string, Pos>; timer: NodeJS.Timeout | undefined }>()
  const held = new Set<{ res: http.ServerResponse; pos: Map<string, Pos | undefined>; timer: NodeJS.Timeout }>()
  const sockets = new Set<Socket>()

  function channel(ch: string) {
    let c = channels.get(ch)
    if (!c) channels.set(ch, (c = { epoch: `ep-${ch.replace(/[^a-z0-9]/gi, '')}-1`, generation: 1, messages: [] }))
    return c
  }
  const current = (ch: string): Pos => {
    const c = channel(ch)
    return { e: c.epoch, o: c.messages.at(-1)?.o ?? 0 }
  }
  const msgEnv = (x: StoredMessage): Env => ({ t: 'msg', ch: x.ch, e: x.e, o: x.o, d: x.d, ...(x.id ? { id: x.id } : {}) })

  /** What a subscription from `pos` gets first: `sub` and the messages after it, or `gap`. */
  function resume(ch: string, pos: Pos | undefined, withSub: boolean): { envs: Env[]; pos: Pos } {
    const c = channel(ch)
    const now = current(ch)
    if (!pos) return { envs: withSub ? [{ t: 'sub', ch, ...now }] : [], pos: now }
    if (pos.e !== c.epoch || pos.o > now.o) return { envs: [{ t: 'gap', ch, ...now }], pos: now }
    const after = c.messages.filter((x) => x.o > pos.o).map(msgEnv)
    return { envs: [...(withSub ? [{ t: 'sub', ch, ...pos }] : []), ...after], pos: now }
  }

  function store(ch: string, d: unknown, id?: string): { message: StoredMessage; duplicate: boolean } {
    const c = channel(ch)
    const dup = id !== undefined ? c.messages.find((x) => x.id === id) : undefined
    if (dup) return { message: dup, duplicate: true }
    const message: StoredMessage = { ch, e: c.epoch, o: (c.messages.at(-1)?.o ?? 0) + 1, d, ...(id ? { id } : {}) }
    c.messages.push(message)
    fanOut(message)
    return { message, duplicate: false }
  }

  function fanOut(x: StoredMessage): void {
    for (const [ws, subs] of wsSubs) if (subs.has(x.ch)) ws.send(JSON.stringify(msgEnv(x)))
    for (const s of streams) {
      if (!s.pos.has(x.ch)) continue
      s.pos.set(x.ch, { e: x.e, o: x.o })
      sseWrite(s, msgEnv(x))
    }
    for (const h of [...held]) if (h.pos.has(x.ch)) answerPoll(h)
  }

  function sseWrite(s: { res: http.ServerResponse; pos: Map<string, Pos> }, env: Env): void {
    // The composite id: every channel's position (docs/realtime.md, SSE).
    const id = [...s.pos].map(([ch, p]) => `${ch}@${p.e}/${p.o}`).join(',')
    s.res.write(`id: ${id}\ndata: ${JSON.stringify(env)}\n\n`)
  }

  function answerPoll(h: { res: http.ServerResponse; pos: Map<string, Pos | undefined>; timer: NodeJS.Timeout }): void {
    held.delete(h)
    clearTimeout(h.timer)
    const envs = [...h.pos].flatMap(([ch, p]) => resume(ch, p, !p).envs)
    json(h.res, 200, envs)
  }

  function publishEnv(env: Env): Env | undefined {
    received.push(env)
    if (env.t !== 'pub' || typeof env.ch !== 'string') return { t: 'err', code: 'bad-request', msg: 'not a pub' }
    if (env.ch.startsWith('forbidden')) return { t: 'err', code: 'forbidden', msg: 'no publishing here', ch: env.ch, ref: env.id }
    const { message } = store(env.ch, env.d, typeof env.id === 'string' ? env.id : undefined)
    if (m.swallowAcks > 0) {
      m.swallowAcks--
      return undefined
    }
    return { t: 'ack', ref: env.id, ch: message.ch, e: message.e, o: message.o }
  }

  function json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body))
  }

  /** `ch` parameters: `name` or `name@epoch/offset`. */
  function positions(url: URL): Map<string, Pos | undefined> {
    const out = new Map<string, Pos | undefined>()
    for (const v of url.searchParams.getAll('ch')) {
      const at = v.indexOf('@')
      if (at < 0) out.set(v, undefined)
      else {
        const slash = v.lastIndexOf('/')
        out.set(v.slice(0, at), { e: v.slice(at + 1, slash), o: Number(v.slice(slash + 1)) })
      }
    }
    return out
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    const page = pages[url.pathname]
    if (page) return void res.writeHead(200, { 'content-type': page.type, 'cache-control': 'no-store' }).end(page.body)
    const kind = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) : url.pathname
    requests.push({ kind, url })
    if (m.down) return json(res, 503, [])
    if (kind === 'sse' && req.method === 'GET') {
      if (m.sse === 'fail') return void res.writeHead(503).end('no streams today')
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
      res.write('retry: 1000\n\n')
      const s = { res, pos: new Map<string, Pos>(), timer: undefined as NodeJS.Timeout | undefined }
      const first: Env[] = []
      for (const [ch, p] of positions(url)) {
        const r = resume(ch, p, true)
        s.pos.set(ch, r.pos)
        first.push(...r.envs)
      }
      for (const env of first) sseWrite(s, env)
      if (m.keepAlive > 0) s.timer = setInterval(() => m.keepAlive > 0 && res.write(': keep-alive\n\n'), m.keepAlive)
      streams.add(s)
      res.on('close', () => {
        clearInterval(s.timer)
        streams.delete(s)
      })
      return
    }
    if (kind === 'poll' && req.method === 'GET') {
      if (m.poll === 'fail') return void res.writeHead(503).end()
      const pos = positions(url)
      const envs = [...pos].flatMap(([ch, p]) => resume(ch, p, !p).envs)
      if (envs.length > 0 || url.searchParams.get('wait') !== '1') return json(res, 200, envs)
      const h = { res, pos, timer: setTimeout(() => answerPoll(h), m.pollHold) }
      held.add(h)
      res.on('close', () => {
        clearTimeout(h.timer)
        held.delete(h)
      })
      return
    }
    if (kind === 'publish' && req.method === 'POST') {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Env | Env[]
        const answers = (Array.isArray(body) ? body : [body]).map(publishEnv).filter((x) => x !== undefined)
        json(res, 200, answers)
      })
      return
    }
    res.writeHead(404).end()
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('edgebox.v1') ? 'edgebox.v1' : false) })
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    requests.push({ kind: 'ws', url })
    if (m.down || m.ws === 'refuse' || url.pathname !== `${PREFIX}ws`) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const subs = new Set<string>()
      wsSubs.set(ws, subs)
      ws.on('close', () => wsSubs.delete(ws))
      ws.on('message', (raw) => {
        const env = JSON.parse(raw.toString()) as Env
        if (env.t === 'pub') {
          const answer = publishEnv(env)
          if (answer) ws.send(JSON.stringify(answer))
          return
        }
        received.push(env)
        if (env.t === 'ping') {
          if (m.pong) ws.send(JSON.stringify({ t: 'pong' }))
        } else if (env.t === 'sub' && typeof env.ch === 'string') {
          const pos = typeof env.e === 'string' && typeof env.o === 'number' ? { e: env.e, o: env.o } : undefined
          subs.add(env.ch)
          for (const out of resume(env.ch, pos, true).envs) ws.send(JSON.stringify(out))
        } else if (env.t === 'unsub' && typeof env.ch === 'string') {
          subs.delete(env.ch)
        }
      })
    })
  })

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port

  function kill(): void {
    for (const ws of wsSubs.keys()) ws.terminate()
    for (const s of streams) s.res.destroy()
    for (const h of held) h.res.destroy()
  }

  return {
    url: `http://127.0.0.1:${port}${PREFIX}`,
    modes: m,
    requests,
    received,
    publish: (ch, d) => store(ch, d).message,
    messages: (ch) => [...channel(ch).messages],
    newEpoch(ch) {
      const c = channel(ch)
      c.generation++
      c.epoch = `ep-${ch.replace(/[^a-z0-9]/gi, '')}-${c.generation}`
      c.messages = []
    },
    inject(env) {
      for (const ws of wsSubs.keys()) ws.send(JSON.stringify(env))
      for (const s of streams) s.res.write(`data: ${JSON.stringify(env)}\n\n`)
    },
    kill,
    get live() {
      return { ws: wsSubs.size, sse: streams.size }
    },
    async close() {
      kill()
      wss.close()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

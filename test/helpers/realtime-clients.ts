import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import WebSocket from 'ws'
import { request, type Protocol } from './server.ts'

/**
 * Test clients for the realtime hub's streaming transports (docs/realtime.md):
 * an SSE stream read event by event over HTTP/1.1 or h2c, and a WebSocket
 * with the `edgebox.v1` subprotocol whose frames are collected as envelopes.
 * Every wait is bounded; a handshake the hub refuses rejects with its status.
 */

export type Env = { t: string; ch?: string; e?: string; o?: number; d?: unknown; id?: string; ref?: string; code?: string; msg?: string }

export type SseEvent = { id?: string; data?: string; retry?: string; comment?: string }

/** A refused request or handshake, with the HTTP status it was answered. */
export class Refused extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(`${status}: ${message}`)
    this.status = status
  }
}

/** Resolves once `pred()` holds, waking on `subscribe`'s signal or every 50 ms; rejects after `ms` naming `what`. */
async function waitFor(pred: () => boolean, subscribe: (wake: () => void) => void, what: () => string, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what()} (waited ${ms} ms)`)
    await new Promise<void>((r) => {
      subscribe(r)
      setTimeout(r, 50)
    })
  }
}

export interface SseStream {
  readonly ready: Promise<void>
  readonly events: SseEvent[]
  readonly status: number
  readonly headers: Record<string, unknown>
  /** Resolves once `count` events (comments and retry included) have arrived. */
  until(count: number, ms?: number): Promise<void>
  /** Resolves once `pred` holds for the envelopes received so far. */
  wait(pred: (data: Env[]) => boolean, ms?: number): Promise<void>
  /** The envelopes (`data:` lines), parsed. */
  data(): Env[]
  close(): void
}

/** An SSE stream read event by event, over HTTP/1.1 or h2c. */
export function openSse(protocol: Protocol, url: string, headers: Record<string, string> = {}): SseStream {
  const events: SseEvent[] = []
  const waiters: Array<() => void> = []
  let buf = ''
  let status = 0
  let resHeaders: Record<string, unknown> = {}
  const onData = (chunk: Buffer) => {
    buf += chunk.toString()
    let i
    while ((i = buf.indexOf('\n\n')) !== -1) {
      const block = buf.slice(0, i)
      buf = buf.slice(i + 2)
      const ev: SseEvent = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) ev.comment = line.slice(1).trim()
        else {
          const c = line.indexOf(':')
          const k = line.slice(0, c) as 'id' | 'data' | 'retry'
          ev[k] = line.slice(c + 1).trimStart()
        }
      }
      events.push(ev)
      for (const w of waiters.splice(0)) w()
    }
  }
  let close: () => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    if (protocol === 'h2c') {
      const u = new URL(url)
      const session = http2.connect(u.origin)
      session.on('error', reject)
      const stream = session.request({ ':path': u.pathname + u.search, ...headers })
      stream.on('response', (h) => {
        status = Number(h[':status'])
        resHeaders = h
        resolve()
      })
      stream.on('data', onData)
      stream.on('error', () => {})
      close = () => session.destroy()
    } else {
      const req = http.get(url, { headers, agent: false }, (res) => {
        status = res.statusCode!
        resHeaders = res.headers
        res.on('data', onData)
        res.on('error', () => {})
        resolve()
      })
      req.on('error', reject)
      close = () => req.destroy()
    }
  })
  const data = () => events.filter((e) => e.data !== undefined).map((e) => JSON.parse(e.data!) as Env)
  return {
    ready,
    events,
    get status() {
      return status
    },
    get headers() {
      return resHeaders
    },
    until: (count, ms = 3000) => waitFor(() => events.length >= count, (w) => waiters.push(w), () => `only ${events.length} of ${count} SSE events: ${JSON.stringify(events)}`, ms),
    wait: (pred, ms = 3000) => waitFor(() => pred(data()), (w) => waiters.push(w), () => `no such SSE envelopes: ${JSON.stringify(data())}`, ms),
    data,
    close: () => close(),
  }
}

export interface WsClient {
  readonly ws: WebSocket
  /** Every envelope received, in order. */
  readonly got: Env[]
  /** The first envelope matching `pred` (waiting for it). */
  next(pred: (e: Env) => boolean, ms?: number): Promise<Env>
  /** Resolves once `pred` holds for the envelopes received so far. */
  wait(pred: (got: Env[]) => boolean, ms?: number): Promise<void>
  readonly closed: Promise<{ code: number; reason: string }>
}

/** A WebSocket to `url` (ws://...), open; rejects with Refused when the handshake is answered otherwise than 101. */
export function openWs(url: string, protocols: string[] = ['edgebox.v1'], opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
  const ws = new WebSocket(url, protocols, opts)
  const got: Env[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (d) => {
    got.push(JSON.parse(d.toString()) as Env)
    for (const w of waiters.splice(0)) w()
  })
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })))
  ws.on('error', () => {})
  const wait = (pred: (got: Env[]) => boolean, ms = 3000) => waitFor(() => pred(got), (w) => waiters.push(w), () => `no such frames: ${JSON.stringify(got)}`, ms)
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('WebSocket did not open')), 3000)
    ws.once('open', () => {
      clearTimeout(t)
      resolve({
        ws,
        got,
        closed,
        wait,
        async next(pred, ms = 3000) {
          await wait((g) => g.some(pred), ms)
          return got.find(pred)!
        },
      })
    })
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(t)
      res.resume()
      reject(new Refused(res.statusCode!, `the WebSocket handshake was answered ${res.statusCode}`))
    })
  })
}

/** Publishes `data` to channel `ch` through a hub's back-end API (`<hub>api/publish`, the publish key); each message's position, in order. */
export async function publishAll(hub: string, key: string, ch: string, data: readonly unknown[]): Promise<Array<{ e: string; o: number }>> {
  const r = await request('http/1.1', `${hub}api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(data.map((d) => ({ ch, d }))),
  })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Array<{ e: string; o: number }>
}

/** Resolves once `pred()` holds, checking every 20 ms; rejects after `ms` naming `what` (a function: read when it fails). */
export async function until(pred: () => boolean, what: string | (() => string), ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

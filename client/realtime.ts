/**
 * The Edgebox realtime client: one API over the hub's four transports
 * (WebSocket, Server-Sent Events, long polling, short polling), speaking the
 * wire protocol of docs/realtime.md.
 *
 *   const rt = connect('https://example.test/live/')
 *   const stop = rt.subscribe('chat:lobby', (data, { position }) => show(data))
 *   const { e, o } = await rt.publish('chat:lobby', { text: 'hi' })
 *
 * What it guarantees to the application: per channel, every message once and
 * in order, across reconnects and transport changes (it keeps the position of
 * the last message it delivered and resumes from there), or a `gap` event
 * when the hub's history no longer reaches back that far; and every publish
 * stored once (each carries a client-generated id the hub de-duplicates on,
 * reused when it is sent again after a reconnect).
 *
 * This file has no imports and no `node:` APIs: it runs as it is in Node 24
 * (global fetch and WebSocket) and in browsers, and client/build.ts turns it
 * into dist/client/realtime.js, lab/www/assets/edgebox-realtime.mjs and a
 * plain script (window.EdgeboxRealtime). It is one file so that the script
 * build needs no bundler.
 */

// ---------------------------------------------------------------------------
// Public types

export type TransportName = 'websocket' | 'sse' | 'long-poll' | 'poll'

/** Every transport, best first: the default order. */
export const TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'long-poll', 'poll']

/** The WebSocket subprotocol of the hub. */
export const PROTOCOL = 'edgebox.v1'

/** A place in a channel: after the message with epoch `e` and offset `o` (offset 0: before the first). */
export interface Position {
  readonly e: string
  readonly o: number
}

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed'

export interface StateEvent {
  readonly state: ConnectionState
  /** connecting, connected: the transport in use; reconnecting: the one tried next. */
  readonly transport?: TransportName | undefined
  /** reconnecting: 1 for the first retry after a loss, then 2, 3, ... while attempts keep failing. */
  readonly attempt?: number | undefined
  /** reconnecting: ms before the retry, drawn from [0, min(backoff.max, backoff.base * 2^(attempt-1))). */
  readonly delay?: number | undefined
}

/**
 * The hub no longer has the messages after `from` (history bound, or a new
 * epoch): the subscription goes on after `to`. Messages between the two may
 * have been lost; an application that keeps state built from the channel
 * reloads it here (re-fetch it from its back end) and keeps the messages
 * that follow. `restarted`: `to` is in another epoch than `from` (the hub
 * lost the channel's history, e.g. Edgebox restarted with the memory
 * engine); the messages of the new epoch then follow from `to.o + 1`, its
 * oldest one still held.
 */
export interface GapEvent {
  readonly channel: string
  /** The position the client had: the old epoch and the last offset it delivered (undefined: none yet). */
  readonly from: Position | undefined
  /** Where the subscription goes on: the next message delivered is at offset `to.o + 1` in epoch `to.e`. */
  readonly to: Position
  readonly restarted: boolean
}

export interface PresenceEvent {
  readonly type: 'join' | 'leave'
  readonly channel: string
  readonly who: string
}

export interface ClientEvents {
  state: StateEvent
  gap: GapEvent
  presence: PresenceEvent
  /**
   * A refused request (`code` from the hub: unknown-channel, forbidden,
   * bad-request, too-large, rate), a transport that failed (`transport`,
   * `timeout`, `heartbeat`), an invalid envelope (`protocol`) or a message
   * listener that threw (`listener`). Errors of a publish reject its promise
   * instead.
   */
  error: RealtimeError
}

export interface MessageMeta {
  readonly channel: string
  /** This message's position: persist it to resume later with `fromPosition`. */
  readonly position: Position
  /** The publisher's id, when it gave one. */
  readonly id?: string | undefined
}

export type MessageHandler = (data: unknown, meta: MessageMeta) => void

export interface SubscribeOptions {
  /**
   * Resume after this position (the last one the application has). Applies
   * when the channel is not subscribed yet; a second subscription to a
   * channel shares the first one's position.
   */
  readonly fromPosition?: Position | undefined
}

export interface BackoffOptions {
  /** ms; the ceiling of the first retry's delay (default 500). */
  readonly base?: number
  /** ms; the largest ceiling (default 30 000). */
  readonly max?: number
}

export interface ConnectOptions {
  /** Transports to use, best first (default: all four, in the order of TRANSPORTS). */
  readonly transports?: readonly TransportName[]
  /** A JWT for channels that need one, or a function called before each connection (to refresh it). */
  readonly token?: string | (() => string | Promise<string>) | undefined
  readonly backoff?: BackoffOptions
  /** Consecutive failures of a transport after which the next one is tried (default 2). */
  readonly fallbackAfter?: number
  /** ms a transport may take to open, and an HTTP request to be answered (default 10 000). */
  readonly openTimeout?: number
  /** ms a connection must stay up before its failures are forgotten (default 10 000). */
  readonly stableAfter?: number
  /** ms between attempts to move back up to a better transport; 0: never (default 60 000). */
  readonly upgradeInterval?: number
  /** WebSocket: ms between client pings (default 20 000). */
  readonly pingInterval?: number
  /** WebSocket: ms of silence after a ping that mean the connection is dead (default 10 000). */
  readonly pongTimeout?: number
  /** SSE read with fetch: ms without a byte (the hub sends `: keep-alive` every 15 s) that mean the stream is dead (default 37 500). */
  readonly sseIdleTimeout?: number
  /** Long polling: how long the hub holds a poll (its `pollTimeout`, default 25 000); the client gives up openTimeout after that. */
  readonly pollTimeout?: number
  /** Short polling: ms between polls (default 2 000). */
  readonly pollInterval?: number
  /**
   * How to read SSE: `eventsource` (the browser's EventSource), `fetch` (a
   * streamed fetch parsed here; the only way in Node, and the only one that
   * sees keep-alive comments, so the only one with dead-stream detection) or
   * `auto` (default: EventSource where there is one).
   */
  readonly sse?: 'auto' | 'eventsource' | 'fetch'
}

export interface RealtimeClient {
  /** Calls `onMessage` for every message of `channel`; returns the function that stops it. */
  subscribe(channel: string, onMessage: MessageHandler, opts?: SubscribeOptions): () => void
  /** Publishes; resolves with the message's position once the hub has stored it (queued while disconnected). */
  publish(channel: string, data: unknown): Promise<Position>
  /** The position of the last message delivered on `channel` (or where its subscription started). */
  position(channel: string): Position | undefined
  readonly state: ConnectionState
  /** The transport in use or being tried. */
  readonly transport: TransportName | undefined
  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void
  /** Closes the connection for good; pending publishes are rejected with code `closed`. */
  close(): void
}

/** An error with a stable code (see ClientEvents.error), and the channel or publish id it concerns. */
export class RealtimeError extends Error {
  readonly code: string
  readonly channel: string | undefined
  readonly ref: string | undefined
  readonly transport: TransportName | undefined
  constructor(code: string, message: string, extra: { channel?: string | undefined; ref?: string | undefined; transport?: TransportName | undefined } = {}) {
    super(message)
    this.name = 'RealtimeError'
    this.code = code
    this.channel = extra.channel
    this.ref = extra.ref
    this.transport = extra.transport
  }
}

// ---------------------------------------------------------------------------
// The envelope (docs/realtime.md, "The envelope")

/** Server to client. */
export type ServerEnvelope =
  | { t: 'msg'; ch: string; e: string; o: number; d: unknown; id?: string }
  | { t: 'sub' | 'gap'; ch: string; e: string; o: number }
  | { t: 'ack'; ref: string; ch: string; e: string; o: number }
  | { t: 'join' | 'leave'; ch: string; who: string }
  | { t: 'err'; code: string; msg: string; ch?: string; ref?: string }
  | { t: 'pong' }

/** Client to server. */
export type ClientEnvelope =
  | { t: 'sub'; ch: string; e?: string; o?: number }
  | { t: 'unsub'; ch: string }
  | { t: 'pub'; ch: string; d: unknown; id: string }
  | { t: 'ping' }

type PubEnvelope = Extract<ClientEnvelope, { t: 'pub' }>

const CHANNEL = /^[A-Za-z0-9:_.-]{1,128}$/

function isString(v: unknown): v is string {
  return typeof v === 'string'
}
function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Whether `v` is a well-formed server envelope (unknown `t` values are not). */
export function isServerEnvelope(v: unknown): v is ServerEnvelope {
  if (typeof v !== 'object' || v === null) return false
  const x = v as Record<string, unknown>
  switch (x.t) {
    case 'msg':
      return isString(x.ch) && isString(x.e) && isOffset(x.o) && 'd' in x && (x.id === undefined || isString(x.id))
    case 'sub':
    case 'gap':
      return isString(x.ch) && isString(x.e) && isOffset(x.o)
    case 'ack':
      return isString(x.ref) && isString(x.ch) && isString(x.e) && isOffset(x.o)
    case 'join':
    case 'leave':
      return isString(x.ch) && isString(x.who)
    case 'err':
      return isString(x.code) && (x.msg === undefined || isString(x.msg)) && (x.ch === undefined || isString(x.ch)) && (x.ref === undefined || isString(x.ref))
    case 'pong':
      return true
    default:
      return false
  }
}

/** The envelopes in a decoded JSON value: one envelope, or an array of them (HTTP answers). */
function envelopes(value: unknown): { ok: ServerEnvelope[]; bad: number } {
  const list = Array.isArray(value) ? value : [value]
  const ok = list.filter(isServerEnvelope)
  return { ok, bad: list.length - ok.length }
}

/** Positions handed out are frozen: an application holding one cannot move the client's. */
function position(e: string, o: number): Position {
  return Object.freeze({ e, o })
}

function subEnvelope(ch: string, pos: Position | undefined): ClientEnvelope {
  return pos ? { t: 'sub', ch, e: pos.e, o: pos.o } : { t: 'sub', ch }
}

// ---------------------------------------------------------------------------
// Pure helpers

/**
 * Exponential backoff with full jitter ("Exponential Backoff And Jitter",
 * AWS Architecture Blog, 2015): uniform in [0, min(max, base * 2^attempt)).
 * Full jitter spreads the reconnects of many clients after an outage.
 */
export function backoffDelay(attempt: number, opts: { base: number; max: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.max, opts.base * 2 ** Math.min(Math.max(attempt, 0), 30))
  return Math.floor(random() * ceiling)
}

/** A `ch` URL parameter: the name, with `@<epoch>/<offset>` when resuming. */
export function channelParam(ch: string, pos: Position | undefined): string {
  return pos ? `${ch}@${pos.e}/${pos.o}` : ch
}

export interface SseEvent {
  readonly type: string
  readonly data: string
  readonly id: string | undefined
}

/**
 * A text/event-stream parser, for reading SSE with fetch where there is no
 * EventSource (Node). Follows WHATWG HTML "Interpreting an event stream":
 * lines end with CRLF, LF or CR (a CRLF may be split across chunks); a blank
 * line dispatches the event; `data` lines are joined with LF; one space
 * after the colon is dropped; lines starting with `:` are comments (the
 * hub's keep-alives); an event without data is not dispatched.
 */
export class SseParser {
  #buffer = ''
  #data: string[] = []
  #type = ''
  #lastId: string | undefined
  #afterCR = false
  #started = false

  /** Feeds decoded text; returns the events it completes. */
  push(text: string): SseEvent[] {
    if (!this.#started && text.length > 0) {
      this.#started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    // The LF of a CRLF whose CR ended the previous chunk.
    if (this.#afterCR && text.startsWith('\n')) text = text.slice(1)
    this.#afterCR = false
    const buf = this.#buffer + text
    const events: SseEvent[] = []
    let start = 0
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      this.#line(buf.slice(start, i), events)
      if (c === 13) {
        if (i + 1 === buf.length) this.#afterCR = true
        else if (buf.charCodeAt(i + 1) === 10) i++
      }
      start = i + 1
    }
    this.#buffer = buf.slice(start)
    return events
  }

  #line(line: string, events: SseEvent[]): void {
    if (line === '') {
      if (this.#data.length > 0) events.push({ type: this.#type || 'message', data: this.#data.join('\n'), id: this.#lastId })
      this.#data = []
      this.#type = ''
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#type = value
    else if (field === 'id' && !value.includes('\0')) this.#lastId = value
    // `retry` is ignored: the client's own backoff decides when to reconnect.
  }
}

function randomId(): string {
  const c = globalThis.crypto
  // randomUUID exists only in secure contexts in browsers; getRandomValues everywhere.
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  const bytes = new Uint8Array(16)
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(bytes)
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function asError(err: unknown, transport: TransportName): RealtimeError {
  if (err instanceof RealtimeError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new RealtimeError('transport', `${transport}: ${message}`, { transport })
}

// ---------------------------------------------------------------------------
// Settings

interface Settings {
  readonly transports: readonly TransportName[]
  readonly token: ConnectOptions['token']
  readonly backoff: { base: number; max: number }
  readonly fallbackAfter: number
  readonly openTimeout: number
  readonly stableAfter: number
  readonly upgradeInterval: number
  readonly pingInterval: number
  readonly pongTimeout: number
  readonly sseIdleTimeout: number
  readonly pollTimeout: number
  readonly pollInterval: number
  readonly sse: 'auto' | 'eventsource' | 'fetch'
}

function resolveSettings(opts: ConnectOptions): Settings {
  const transports = opts.transports ?? TRANSPORTS
  if (transports.length === 0 || transports.some((t) => !TRANSPORTS.includes(t))) {
    throw new TypeError(`transports: a non-empty list of ${TRANSPORTS.join(', ')}`)
  }
  const ms = (name: string, v: number | undefined, dflt: number, min = 1): number => {
    const x = v ?? dflt
    if (!Number.isFinite(x) || x < min) throw new TypeError(`${name}: a number of ms >= ${min}`)
    return x
  }
  const settings: Settings = {
    transports: [...transports],
    token: opts.token,
    backoff: { base: ms('backoff.base', opts.backoff?.base, 500), max: ms('backoff.max', opts.backoff?.max, 30_000) },
    fallbackAfter: ms('fallbackAfter', opts.fallbackAfter, 2),
    openTimeout: ms('openTimeout', opts.openTimeout, 10_000),
    stableAfter: ms('stableAfter', opts.stableAfter, 10_000),
    upgradeInterval: ms('upgradeInterval', opts.upgradeInterval, 60_000, 0),
    pingInterval: ms('pingInterval', opts.pingInterval, 20_000),
    pongTimeout: ms('pongTimeout', opts.pongTimeout, 10_000),
    sseIdleTimeout: ms('sseIdleTimeout', opts.sseIdleTimeout, 37_500),
    pollTimeout: ms('pollTimeout', opts.pollTimeout, 25_000),
    pollInterval: ms('pollInterval', opts.pollInterval, 2_000),
    sse: opts.sse ?? 'auto',
  }
  return Object.freeze(settings)
}

/** The route prefix P as an http(s) URL ending in `/` (a ws(s) URL is accepted too; relative URLs resolve against the page). */
function prefixUrl(url: string | URL): URL {
  const page = (globalThis as { location?: { href: string } }).location?.href
  const u = new URL(url, page)
  if (u.protocol === 'ws:') u.protocol = 'http:'
  else if (u.protocol === 'wss:') u.protocol = 'https:'
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`connect: an http(s) or ws(s) URL, not ${u.protocol}`)
  if (!u.pathname.endsWith('/')) u.pathname += '/'
  u.search = ''
  u.hash = ''
  return u
}

// ---------------------------------------------------------------------------
// Links: one live connection over one transport
//
// A link reports to the client through its context: opened() once, when the
// transport is established; envelope() for every server envelope; failed()
// at most once, when it dies (never after close()). None is called before
// the factory has returned.

type ChannelList = ReadonlyArray<readonly [string, Position | undefined]>

interface LinkContext {
  readonly transport: TransportName
  readonly prefix: URL
  readonly token: string | undefined
  readonly clientId: string
  readonly settings: Settings
  /** The subscribed channels with their positions, as of now. */
  channels(): ChannelList
  opened(): void
  envelope(env: ServerEnvelope): void
  failed(err: RealtimeError): void
  /** Something worth reporting that does not end the link. */
  warn(err: RealtimeError): void
}

interface Link {
  /** A channel was added (or re-added) at this position. */
  subscribe(ch: string, pos: Position | undefined): void
  unsubscribe(ch: string): void
  /** Sends publishes; their acks (or errs) come back as envelopes. */
  publish(pubs: readonly PubEnvelope[]): void
  close(): void
}

function endpoint(ctx: LinkContext, path: string): URL {
  return new URL(path, ctx.prefix)
}

/** fetch() headers: the token goes in Authorization where a header can be sent. */
function headers(ctx: LinkContext, extra: Record<string, string> = {}): Record<string, string> {
  return ctx.token ? { ...extra, authorization: `Bearer ${ctx.token}` } : extra
}

function addChannels(url: URL, channels: ChannelList): void {
  for (const [ch, pos] of channels) url.searchParams.append('ch', channelParam(ch, pos))
}

/** Feeds JSON text to the context; counts what is not an envelope as a protocol error. */
function feed(ctx: LinkContext, text: string, isLive: () => boolean): void {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    ctx.warn(new RealtimeError('protocol', `${ctx.transport}: data that is not JSON`, { transport: ctx.transport }))
    return
  }
  const { ok, bad } = envelopes(value)
  if (bad > 0) ctx.warn(new RealtimeError('protocol', `${ctx.transport}: ${bad} invalid envelope(s) ignored`, { transport: ctx.transport }))
  for (const env of ok) {
    if (!isLive()) return
    ctx.envelope(env)
  }
}

/** The error for a refused HTTP request; `err` envelopes in its body (unknown-channel, forbidden, ...) are passed on first. */
function refusal(ctx: LinkContext, status: number, text: string, what: string): RealtimeError {
  try {
    for (const env of envelopes(JSON.parse(text)).ok) if (env.t === 'err') ctx.envelope(env)
  } catch {
    // not JSON: the status says it all
  }
  return new RealtimeError('transport', `${what}: HTTP ${status}`, { transport: ctx.transport })
}

/**
 * One HTTP exchange, the body read whole, within `ms` (and abortable through
 * `signal`). Built on AbortController and setTimeout alone (no
 * AbortSignal.any/timeout) for older browsers.
 */
async function exchange(ctx: LinkContext, url: URL, init: RequestInit, ms: number, signal?: AbortSignal): Promise<{ status: number; ok: boolean; text: string }> {
  const abort = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    abort.abort()
  }, ms)
  const onAbort = (): void => abort.abort()
  if (signal?.aborted) abort.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const res = await fetch(url, { ...init, cache: 'no-store', signal: abort.signal })
    return { status: res.status, ok: res.ok, text: await res.text() }
  } catch (err) {
    throw timedOut ? new RealtimeError('timeout', `${ctx.transport}: no answer within ${ms} ms`, { transport: ctx.transport }) : err
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

/** WebSocket `P ws`, subprotocol edgebox.v1: envelopes as text frames. */
function webSocketLink(ctx: LinkContext): Link {
  const url = endpoint(ctx, 'ws')
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  // Browsers cannot set headers on a WebSocket handshake: the token goes in the query.
  if (ctx.token) url.searchParams.set('token', ctx.token)
  const ws = new WebSocket(url, PROTOCOL)
  ws.binaryType = 'arraybuffer'
  let closed = false
  let pinger: ReturnType<typeof setInterval> | undefined
  let deadline: ReturnType<typeof setTimeout> | undefined

  const send = (env: ClientEnvelope): void => {
    if (!closed && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(env))
  }
  function close(): void {
    if (closed) return
    closed = true
    clearInterval(pinger)
    clearTimeout(deadline)
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null
    try {
      ws.close(1000)
    } catch {
      // already closing
    }
  }
  function fail(err: RealtimeError): void {
    if (closed) return
    close()
    ctx.failed(err)
  }

  ws.onopen = () => {
    // Resume every subscription from the position the client delivered last.
    for (const [ch, pos] of ctx.channels()) send(subEnvelope(ch, pos))
    // Heartbeat: a TCP connection that died silently (a sleeping laptop, a NAT
    // that forgot us) reports nothing, so ping, and call the connection dead
    // when nothing at all, pong or otherwise, comes back within pongTimeout.
    pinger = setInterval(() => {
      send({ t: 'ping' })
      deadline ??= setTimeout(
        () => fail(new RealtimeError('heartbeat', `websocket: no answer to a ping within ${ctx.settings.pongTimeout} ms`, { transport: 'websocket' })),
        ctx.settings.pongTimeout,
      )
    }, ctx.settings.pingInterval)
    ctx.opened()
  }
  ws.onmessage = (ev: MessageEvent) => {
    clearTimeout(deadline)
    deadline = undefined
    const text = typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data as ArrayBuffer)
    feed(ctx, text, () => !closed)
  }
  // 1006 (no close frame: refused upgrade, missed server heartbeat), 1013 (slow consumer), 1009, 1007 ...
  ws.onclose = (ev: CloseEvent) =>
    fail(new RealtimeError('transport', `websocket: closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`, { transport: 'websocket' }))
  ws.onerror = () => {} // a close event follows

  return {
    subscribe: (ch, pos) => send(subEnvelope(ch, pos)),
    unsubscribe: (ch) => send({ t: 'unsub', ch }),
    publish: (pubs) => {
      for (const p of pubs) send(p)
    },
    close,
  }
}

/**
 * `POST P publish` for the HTTP transports: one request at a time, carrying
 * every publish queued meanwhile (so they reach the hub in order); the
 * answer's ack/err envelopes go to the context.
 */
function httpPublisher(ctx: LinkContext, fail: (err: RealtimeError) => void): { publish(pubs: readonly PubEnvelope[]): void; close(): void } {
  const queue: PubEnvelope[] = []
  let busy = false
  let closed = false
  async function pump(): Promise<void> {
    busy = true
    try {
      while (queue.length > 0 && !closed) {
        const batch = queue.splice(0, queue.length)
        const body = JSON.stringify(batch.length === 1 ? batch[0] : batch)
        const res = await exchange(ctx, endpoint(ctx, 'publish'), { method: 'POST', headers: headers(ctx, { 'content-type': 'application/json' }), body }, ctx.settings.openTimeout)
        if (closed) return
        let answer: ServerEnvelope[] = []
        try {
          answer = envelopes(JSON.parse(res.text)).ok
        } catch {
          // not JSON
        }
        if (answer.length === 0 && !res.ok) throw new RealtimeError('transport', `publish: HTTP ${res.status}`, { transport: ctx.transport })
        for (const env of answer) if (!closed) ctx.envelope(env)
      }
    } catch (err) {
      if (!closed) fail(asError(err, ctx.transport))
    } finally {
      busy = false
    }
  }
  return {
    publish(pubs) {
      queue.push(...pubs)
      if (!busy) void pump()
    },
    close() {
      closed = true
    },
  }
}

interface StreamHandlers {
  open(): void
  data(text: string): void
  fail(err: RealtimeError): void
}

/** Reads `P sse` with the browser's EventSource; returns the function that stops it. */
function eventSourceStream(ctx: LinkContext, url: URL, h: StreamHandlers): () => void {
  // EventSource cannot send headers: the token goes in the query.
  if (ctx.token) url.searchParams.set('token', ctx.token)
  const source = new EventSource(url)
  let stopped = false
  const stop = (): void => {
    stopped = true
    source.onopen = source.onmessage = source.onerror = null
    source.close()
  }
  source.onopen = () => h.open()
  source.onmessage = (ev: MessageEvent) => h.data(String(ev.data))
  // EventSource would reconnect by itself (sending Last-Event-ID), but the
  // client owns reconnection: backoff, fallback, and a channel list that may
  // have changed. So any error ends this stream.
  source.onerror = () => {
    if (stopped) return
    stop()
    h.fail(new RealtimeError('transport', 'sse: the connection failed', { transport: 'sse' }))
  }
  return stop
}

/** Reads `P sse` with fetch, parsing text/event-stream here; returns the function that stops it. */
function fetchEventStream(ctx: LinkContext, url: URL, h: StreamHandlers): () => void {
  const abort = new AbortController()
  let stopped = false
  let idle: ReturnType<typeof setTimeout> | undefined
  const stop = (): void => {
    stopped = true
    clearTimeout(idle)
    abort.abort()
  }
  const finish = (err: RealtimeError): void => {
    if (stopped) return
    stop()
    h.fail(err)
  }
  // Dead-stream detection: the hub writes at least a `: keep-alive` comment
  // every 15 s; nothing for sseIdleTimeout (2.5 times that) means the
  // connection is gone even if TCP has not noticed.
  const arm = (): void => {
    clearTimeout(idle)
    idle = setTimeout(() => finish(new RealtimeError('heartbeat', `sse: no data for ${ctx.settings.sseIdleTimeout} ms`, { transport: 'sse' })), ctx.settings.sseIdleTimeout)
  }
  async function read(): Promise<void> {
    const opening = setTimeout(
      () => finish(new RealtimeError('timeout', `sse: no answer within ${ctx.settings.openTimeout} ms`, { transport: 'sse' })),
      ctx.settings.openTimeout,
    )
    let res: Response
    try {
      res = await fetch(url, { headers: headers(ctx, { accept: 'text/event-stream' }), cache: 'no-store', signal: abort.signal })
    } finally {
      clearTimeout(opening)
    }
    if (stopped) return
    const type = res.headers.get('content-type') ?? ''
    if (!res.ok || !res.body || !type.startsWith('text/event-stream')) {
      const text = await res.text().catch(() => '')
      throw res.ok ? new RealtimeError('transport', `sse: not an event stream (${type || 'no content-type'})`, { transport: 'sse' }) : refusal(ctx, res.status, text, 'sse')
    }
    h.open()
    arm()
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    const parser = new SseParser()
    for (;;) {
      const { value, done } = await reader.read()
      if (stopped) return
      if (done) throw new RealtimeError('transport', 'sse: the stream ended', { transport: 'sse' })
      arm()
      for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
        if (ev.type === 'message') h.data(ev.data)
        if (stopped) return
      }
    }
  }
  read().catch((err: unknown) => finish(asError(err, 'sse')))
  return stop
}

/**
 * What the SSE and polling links share: an HTTP publisher, closing once (with
 * the link's own teardown), failing once, opening once, and restarts
 * coalesced so that several subscribes in a row restart the link once.
 */
function httpLinkLife(ctx: LinkContext, teardown: () => void, start: () => void) {
  let closed = false
  let opened = false
  let restart: ReturnType<typeof setTimeout> | undefined
  const publisher = httpPublisher(ctx, (err) => life.fail(err))
  const life = {
    publisher,
    get closed(): boolean {
      return closed
    },
    close(): void {
      closed = true
      clearTimeout(restart)
      teardown()
      publisher.close()
    },
    fail(err: RealtimeError): void {
      if (closed) return
      life.close()
      ctx.failed(err)
    },
    markOpen(): void {
      if (!opened && !closed) {
        opened = true
        ctx.opened()
      }
    },
    scheduleRestart(): void {
      if (closed || restart) return
      restart = setTimeout(() => {
        restart = undefined
        start()
      }, 0)
    },
  }
  queueMicrotask(start)
  return life
}

/** The Link an HTTP link's life gives: restarts on subscription changes, publishes over HTTP. */
function httpLink(life: ReturnType<typeof httpLinkLife>): Link {
  return { subscribe: life.scheduleRestart, unsubscribe: life.scheduleRestart, publish: (pubs) => life.publisher.publish(pubs), close: life.close }
}

/**
 * SSE `GET P sse?ch=name@e/o&ch=...`: one stream carries every channel. The
 * channel list is in the URL, so a change of subscriptions restarts the
 * stream with the current positions (the positions, not Last-Event-ID, say
 * where each channel resumes).
 */
function sseLink(ctx: LinkContext): Link {
  const useEventSource = ctx.settings.sse === 'eventsource' || (ctx.settings.sse === 'auto' && typeof globalThis.EventSource === 'function')
  let stream: (() => void) | undefined
  const life = httpLinkLife(ctx, () => stream?.(), start)

  function start(): void {
    if (life.closed) return
    stream?.()
    stream = undefined
    const channels = ctx.channels()
    // Nothing to stream yet: the link is up (publishing works) until a subscribe.
    if (channels.length === 0) return life.markOpen()
    const url = endpoint(ctx, 'sse')
    addChannels(url, channels)
    let live = true
    const h: StreamHandlers = {
      open: life.markOpen,
      data: (text) => feed(ctx, text, () => live && !life.closed),
      fail: (err) => {
        if (live) life.fail(err)
      },
    }
    let stop: () => void
    try {
      stop = useEventSource ? eventSourceStream(ctx, url, h) : fetchEventStream(ctx, url, h)
    } catch (err) {
      return life.fail(asError(err, 'sse')) // no EventSource here, or a URL it refuses
    }
    stream = () => {
      live = false
      stop()
    }
  }
  return httpLink(life)
}

/**
 * Polling `GET P poll?ch=name@e/o&...`, answered with a JSON array of
 * envelopes; each poll carries the positions the client has, so nothing is
 * lost between polls. Long polling adds `wait=1&client=<id>` and is held by
 * the hub until something arrives (or pollTimeout); its first poll, and the
 * first after a change of subscriptions, is sent without `wait` so the link
 * opens (and new channels get their `sub`) at once.
 */
function pollLink(ctx: LinkContext, long: boolean): Link {
  let generation = 0
  let abort: AbortController | undefined
  let wake: (() => void) | undefined
  const life = httpLinkLife(
    ctx,
    () => {
      abort?.abort()
      wake?.()
    },
    start,
  )

  function start(): void {
    if (life.closed) return
    generation++
    abort?.abort()
    wake?.()
    void loop(generation)
  }
  async function loop(gen: number): Promise<void> {
    let eager = true
    try {
      while (gen === generation && !life.closed) {
        const channels = ctx.channels()
        if (channels.length === 0) return life.markOpen() // idle until a subscribe
        const hold = long && !eager
        const url = endpoint(ctx, 'poll')
        addChannels(url, channels)
        if (hold) url.searchParams.set('wait', '1')
        if (long) url.searchParams.set('client', ctx.clientId)
        abort = new AbortController()
        const limit = hold ? ctx.settings.pollTimeout + ctx.settings.openTimeout : ctx.settings.openTimeout
        const res = await exchange(ctx, url, { headers: headers(ctx, { accept: 'application/json' }) }, limit, abort.signal)
        if (life.closed) return
        if (!res.ok) throw refusal(ctx, res.status, res.text, ctx.transport)
        life.markOpen()
        // Even when a restart overtook this poll, its answer is good: the
        // client drops what it has already delivered.
        feed(ctx, res.text, () => !life.closed)
        eager = false
        if (!long && gen === generation && !life.closed) {
          let mine: (() => void) | undefined
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, ctx.settings.pollInterval)
            wake = mine = () => {
              clearTimeout(timer)
              resolve()
            }
          })
          if (wake === mine) wake = undefined
        }
      }
    } catch (err) {
      // A poll aborted by a restart is not a failure.
      if (gen === generation) life.fail(asError(err, ctx.transport))
    }
  }
  return httpLink(life)
}

const LINKS: Record<TransportName, (ctx: LinkContext) => Link> = {
  websocket: webSocketLink,
  sse: sseLink,
  'long-poll': (ctx) => pollLink(ctx, true),
  poll: (ctx) => pollLink(ctx, false),
}

// ---------------------------------------------------------------------------
// The client: subscriptions, positions, publishes, and the connection life cycle

interface ChannelState {
  readonly listeners: Set<{ readonly fn: MessageHandler }>
  /** The last position delivered (or where the subscription started): where to resume. */
  pos: Position | undefined
}

interface Pending {
  readonly env: PubEnvelope
  /** Sent on the current link; cleared when the link goes, so it is sent again (same id) on the next. */
  sent: boolean
  readonly resolve: (pos: Position) => void
  readonly reject: (err: RealtimeError) => void
}

type Listener = (event: never) => void

class Client implements RealtimeClient {
  readonly #prefix: URL
  readonly #settings: Settings
  readonly #clientId = randomId()
  readonly #channels = new Map<string, ChannelState>()
  readonly #pending = new Map<string, Pending>()
  readonly #listeners = new Map<keyof ClientEvents, Set<Listener>>()

  #state: ConnectionState = 'connecting'
  #transport: TransportName | undefined
  /** The link in use (open or opening), and a better one being tried while it runs. */
  #link: Link | undefined
  #linkOpen = false
  #probe: Link | undefined
  #probeIndex = 0
  /** settings.transports[#index] is the transport in use or tried next. */
  #index = 0
  /** Consecutive failures of that transport: fallbackAfter of them move down the list. */
  #failures = 0
  /** Consecutive failures overall: the backoff exponent. */
  #attempt = 0
  /** The link has stayed up stableAfter ms: its loss is not a failure of the transport. */
  #stable = false
  #timers = new Map<'open' | 'stable' | 'retry' | 'upgrade' | 'probe', ReturnType<typeof setTimeout>>()
  /** Removes the browser's online/offline listeners (none in Node). */
  #unwatchNetwork: (() => void) | undefined

  constructor(url: string | URL, opts: ConnectOptions) {
    this.#prefix = prefixUrl(url)
    this.#settings = resolveSettings(opts)
    this.#transport = this.#settings.transports[0]
    this.#watchNetwork()
    // Start after the caller's synchronous code, so listeners and subscriptions
    // made right after connect() are there for the first connection.
    queueMicrotask(() => {
      if (this.#state === 'closed') return
      this.#setState({ state: 'connecting', transport: this.#transport })
      void this.#connect()
    })
  }

  get state(): ConnectionState {
    return this.#state
  }
  get transport(): TransportName | undefined {
    return this.#transport
  }

  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void {
    let set = this.#listeners.get(type)
    if (!set) this.#listeners.set(type, (set = new Set()))
    const fn = listener as Listener
    set.add(fn)
    return () => void set.delete(fn)
  }

  subscribe(channel: string, onMessage: MessageHandler, opts: SubscribeOptions = {}): () => void {
    if (!CHANNEL.test(channel)) throw new TypeError(`subscribe: invalid channel name ${JSON.stringify(channel)}`)
    if (typeof onMessage !== 'function') throw new TypeError('subscribe: onMessage must be a function')
    if (this.#state === 'closed') throw new RealtimeError('closed', 'subscribe: the client is closed')
    let st = this.#channels.get(channel)
    if (!st) {
      const from = opts.fromPosition
      if (from !== undefined && (!isString(from.e) || !isOffset(from.o))) throw new TypeError('subscribe: fromPosition is { e: string, o: integer >= 0 }')
      st = { listeners: new Set(), pos: from && position(from.e, from.o) }
      this.#channels.set(channel, st)
      for (const link of this.#links()) link.subscribe(channel, st.pos)
    }
    const entry = { fn: onMessage }
    st.listeners.add(entry)
    const state = st
    return () => {
      if (!state.listeners.delete(entry) || state.listeners.size > 0) return
      if (this.#channels.get(channel) !== state) return
      this.#channels.delete(channel)
      for (const link of this.#links()) link.unsubscribe(channel)
    }
  }

  publish(channel: string, data: unknown): Promise<Position> {
    if (!CHANNEL.test(channel)) return Promise.reject(new TypeError(`publish: invalid channel name ${JSON.stringify(channel)}`))
    if (data === undefined) return Promise.reject(new TypeError('publish: data must be a JSON value'))
    if (this.#state === 'closed') return Promise.reject(new RealtimeError('closed', 'publish: the client is closed', { channel }))
    // The id makes the publish exactly-once: sent again after a reconnect, it is
    // recognised by the hub, which answers with the original's position.
    const env: PubEnvelope = { t: 'pub', ch: channel, d: data, id: randomId() }
    return new Promise<Position>((resolve, reject) => {
      this.#pending.set(env.id, { env, sent: false, resolve, reject })
      this.#flush()
    })
  }

  position(channel: string): Position | undefined {
    return this.#channels.get(channel)?.pos
  }

  close(): void {
    if (this.#state === 'closed') return
    this.#unwatchNetwork?.()
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    this.#link?.close()
    this.#probe?.close()
    this.#link = this.#probe = undefined
    this.#linkOpen = false
    for (const p of this.#pending.values()) p.reject(new RealtimeError('closed', 'the client was closed', { channel: p.env.ch, ref: p.env.id }))
    this.#pending.clear()
    this.#setState({ state: 'closed', transport: undefined })
  }

  // --- events

  #emit<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]): void {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        ;(fn as (e: ClientEvents[K]) => void)(event)
      } catch (err) {
        // A throwing event listener must not break the client; report it once (not from error listeners).
        if (type !== 'error') this.#emit('error', new RealtimeError('listener', `a ${type} listener threw: ${err instanceof Error ? err.message : String(err)}`))
      }
    }
  }

  #setState(event: StateEvent): void {
    this.#state = event.state
    this.#transport = event.transport
    this.#emit('state', event)
  }

  /**
   * Browsers say when the network goes and comes back. Going offline ends the
   * link at once (a dead WebSocket would otherwise wait for the heartbeat), and
   * is not held against the transport; coming back retries at once instead of
   * waiting out the backoff delay.
   */
  #watchNetwork(): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void; navigator?: { onLine?: boolean } }
    if (typeof g.addEventListener !== 'function' || typeof g.removeEventListener !== 'function' || typeof g.navigator?.onLine !== 'boolean') return
    const offline = () => {
      const link = this.#link
      if (!link || this.#state === 'closed') return
      this.#stable = true // the network, not the transport: no fallback
      this.#linkFailed(link, new RealtimeError('transport', 'the browser went offline', { transport: this.#transport }))
    }
    const online = () => {
      if (this.#state !== 'reconnecting') return
      this.#attempt = 0
      this.#timer('retry', 0, () => void this.#connect())
    }
    g.addEventListener('offline', offline)
    g.addEventListener('online', online)
    this.#unwatchNetwork = () => {
      g.removeEventListener?.('offline', offline)
      g.removeEventListener?.('online', online)
    }
  }

  #timer(name: 'open' | 'stable' | 'retry' | 'upgrade' | 'probe', ms: number | undefined, fn?: () => void): void {
    clearTimeout(this.#timers.get(name))
    this.#timers.delete(name)
    if (ms !== undefined && fn) this.#timers.set(name, setTimeout(fn, ms))
  }

  #links(): Link[] {
    return [this.#link, this.#probe].filter((l): l is Link => l !== undefined)
  }

  // --- the connection life cycle

  async #token(): Promise<string | undefined> {
    const t = this.#settings.token
    return typeof t === 'function' ? await t() : t
  }

  /** Opens a link over settings.transports[#index]. */
  async #connect(): Promise<void> {
    const name = this.#settings.transports[this.#index]!
    this.#transport = name
    let token: string | undefined
    try {
      token = await this.#token()
    } catch (err) {
      if (this.#state !== 'closed') this.#retry(new RealtimeError('token', `token: ${err instanceof Error ? err.message : String(err)}`, { transport: name }))
      return
    }
    if (this.#state === 'closed' || this.#link) return
    let link: Link
    try {
      link = this.#createLink(name, token)
    } catch (err) {
      // e.g. no WebSocket or EventSource in this runtime, or a URL it refuses
      return this.#retry(asError(err, name))
    }
    this.#link = link
    this.#linkOpen = false
    this.#timer('open', this.#settings.openTimeout, () =>
      this.#linkFailed(link, new RealtimeError('timeout', `${name}: not open within ${this.#settings.openTimeout} ms`, { transport: name })),
    )
  }

  #createLink(name: TransportName, token: string | undefined): Link {
    // `link` is assigned before any hook can run: links call none synchronously.
    let link: Link | undefined
    const ctx: LinkContext = {
      transport: name,
      prefix: this.#prefix,
      token,
      clientId: this.#clientId,
      settings: this.#settings,
      channels: () => [...this.#channels].map(([ch, st]) => [ch, st.pos] as const),
      opened: () => link && this.#linkOpened(link, name),
      envelope: (env) => {
        if (link && (link === this.#link || link === this.#probe)) this.#onEnvelope(env)
      },
      failed: (err) => link && this.#linkFailed(link, err),
      warn: (err) => this.#emit('error', err),
    }
    link = LINKS[name](ctx)
    return link
  }

  #linkOpened(link: Link, name: TransportName): void {
    if (link === this.#probe) {
      // A better transport works: move to it. Its subscriptions started from
      // the positions of when it was opened; what the old link delivered since
      // is dropped as a repeat.
      this.#timer('probe', undefined)
      this.#probe = undefined
      this.#link?.close()
      this.#link = link
      this.#index = this.#probeIndex
      this.#failures = 0
      for (const p of this.#pending.values()) p.sent = false
    } else if (link !== this.#link) {
      return
    }
    this.#timer('open', undefined)
    this.#linkOpen = true
    this.#stable = false
    this.#timer('stable', this.#settings.stableAfter, () => {
      this.#stable = true
      this.#attempt = 0
      this.#failures = 0
    })
    this.#setState({ state: 'connected', transport: name })
    this.#flush()
    this.#scheduleUpgrade()
  }

  #linkFailed(link: Link, err: RealtimeError): void {
    if (link === this.#probe) {
      link.close()
      this.#probe = undefined
      this.#timer('probe', undefined)
      void this.#tryUpgrade(this.#probeIndex + 1)
      return
    }
    if (link !== this.#link) return
    link.close()
    this.#link = undefined
    this.#linkOpen = false
    this.#probe?.close()
    this.#probe = undefined
    for (const name of ['open', 'stable', 'upgrade', 'probe'] as const) this.#timer(name, undefined)
    this.#retry(err)
  }

  /** After a failure or a loss: count it, maybe fall back, and schedule the next attempt. */
  #retry(err: RealtimeError): void {
    // Publishes sent on the lost link may not have reached the hub: send them
    // again (same ids) on the next one.
    for (const p of this.#pending.values()) p.sent = false
    this.#emit('error', err)
    if (this.#state === 'closed') return
    if (!this.#stable) {
      this.#failures++
      if (this.#failures >= this.#settings.fallbackAfter) {
        // This transport keeps failing (a proxy refusing Upgrade, buffering
        // SSE, ...): try the next, wrapping round to the best after the last.
        this.#index = (this.#index + 1) % this.#settings.transports.length
        this.#failures = 0
      }
    }
    this.#stable = false
    const delay = backoffDelay(this.#attempt, this.#settings.backoff)
    this.#attempt++
    this.#setState({ state: 'reconnecting', transport: this.#settings.transports[this.#index], attempt: this.#attempt, delay })
    // A browser that knows it is offline would only fail again: wait for its online event.
    if ((globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false && this.#unwatchNetwork) return
    this.#timer('retry', delay, () => void this.#connect())
  }

  #scheduleUpgrade(): void {
    this.#timer('upgrade', undefined)
    if (this.#index === 0 || this.#settings.upgradeInterval === 0) return
    this.#timer('upgrade', this.#settings.upgradeInterval, () => void this.#tryUpgrade(0))
  }

  /**
   * Tries the transports better than the current one, best first, one at a
   * time, alongside the running link; the first that opens replaces it
   * (#linkOpened). When none does, tries again after upgradeInterval.
   */
  async #tryUpgrade(from: number): Promise<void> {
    if (!this.#linkOpen || this.#probe) return
    if (from >= this.#index) return this.#scheduleUpgrade()
    const name = this.#settings.transports[from]!
    let probe: Link
    try {
      const token = await this.#token()
      if (!this.#linkOpen || this.#probe) return
      probe = this.#createLink(name, token)
    } catch {
      return void this.#tryUpgrade(from + 1)
    }
    this.#probe = probe
    this.#probeIndex = from
    this.#timer('probe', this.#settings.openTimeout, () =>
      this.#linkFailed(probe, new RealtimeError('timeout', `${name}: not open within ${this.#settings.openTimeout} ms`, { transport: name })),
    )
  }

  /** Sends the publishes not yet sent on the current link. */
  #flush(): void {
    if (!this.#link || !this.#linkOpen) return
    const batch: PubEnvelope[] = []
    for (const p of this.#pending.values()) {
      if (p.sent) continue
      p.sent = true
      batch.push(p.env)
    }
    if (batch.length > 0) this.#link.publish(batch)
  }

  // --- envelopes from the hub

  #onEnvelope(env: ServerEnvelope): void {
    switch (env.t) {
      case 'msg':
        return this.#deliver(env)
      case 'sub': {
        // Where the subscription starts. A resumed subscription keeps the
        // client's position (the two agree, or a probe's stream started a
        // little behind); a new one, or a new epoch, takes the hub's.
        const st = this.#channels.get(env.ch)
        if (st && (!st.pos || st.pos.e !== env.e)) st.pos = position(env.e, env.o)
        return
      }
      case 'gap': {
        const st = this.#channels.get(env.ch)
        if (!st) return
        const from = st.pos
        // Ignore a repeated gap (the same answer seen on two links).
        if (from && from.e === env.e && from.o >= env.o) return
        st.pos = position(env.e, env.o)
        return this.#emit('gap', { channel: env.ch, from, to: st.pos, restarted: from !== undefined && from.e !== env.e })
      }
      case 'ack': {
        const p = this.#pending.get(env.ref)
        if (!p) return // a repeated ack (a publish sent twice)
        this.#pending.delete(env.ref)
        return p.resolve(position(env.e, env.o))
      }
      case 'err':
        return this.#onErr(env)
      case 'join':
      case 'leave':
        return this.#emit('presence', { type: env.t, channel: env.ch, who: env.who })
      case 'pong':
        return // liveness is the link's business
    }
  }

  /**
   * Exactly once and in order: per channel, a message at or before the last
   * position delivered in the same epoch is a repeat (a resume that
   * overlapped, or the same message on two links during an upgrade).
   */
  #deliver(m: Extract<ServerEnvelope, { t: 'msg' }>): void {
    const st = this.#channels.get(m.ch)
    if (!st) return // unsubscribed meanwhile
    if (st.pos && st.pos.e === m.e && m.o <= st.pos.o) return
    st.pos = position(m.e, m.o)
    const meta: MessageMeta = Object.freeze({ channel: m.ch, position: st.pos, id: m.id })
    for (const { fn } of [...st.listeners]) {
      try {
        fn(m.d, meta)
      } catch (err) {
        this.#emit('error', new RealtimeError('listener', `a ${m.ch} message listener threw: ${err instanceof Error ? err.message : String(err)}`, { channel: m.ch }))
      }
    }
  }

  #onErr(env: Extract<ServerEnvelope, { t: 'err' }>): void {
    const err = new RealtimeError(env.code, env.msg ?? env.code, { channel: env.ch, ref: env.ref })
    if (env.ref !== undefined) {
      const p = this.#pending.get(env.ref)
      if (p) {
        this.#pending.delete(env.ref)
        return p.reject(err)
      }
    } else if (env.ch !== undefined && (env.code === 'unknown-channel' || env.code === 'forbidden')) {
      // The hub refuses this subscription: drop it, or every reconnect would
      // ask again (and an SSE stream naming it would keep being refused).
      if (this.#channels.delete(env.ch)) for (const link of this.#links()) link.unsubscribe(env.ch)
    }
    this.#emit('error', err)
  }
}

/**
 * Connects to the realtime hub whose route prefix is `url` (`https://host/live/`,
 * or `/live/` in a page). Returns at once; the connection is made in the
 * background, and subscriptions and publishes made before it is up are sent
 * when it is.
 */
export function connect(url: string | URL, opts: ConnectOptions = {}): RealtimeClient {
  return new Client(url, opts)
}

import assert from 'node:assert/strict'
import http2 from 'node:http2'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import { openSse, openWs, Refused, type Env } from '../helpers/realtime-clients.ts'
import { meterServerWrites, type Meter, type Meters } from '../helpers/realtime-meter.ts'
import { PROTOCOLS, request, startServer, type Protocol, type TestServer } from '../helpers/server.ts'

/**
 * The contract every realtime transport keeps (docs/realtime.md), run as the
 * same scenarios over WebSocket, SSE, long polling and short polling (the
 * HTTP transports over HTTP/1.1 and h2c) against a real Edgebox:
 *
 * - ordering: messages arrive in the order the hub stored them (offsets 1, 2, 3, ...), each once;
 * - resume: subscribing after offset N delivers exactly N+1, N+2, ... and then live messages;
 * - gap: a position the history no longer reaches gets `gap` with the current position, then what follows; a position
 *   from another epoch gets `gap` just before the oldest message of the current epoch, then every message held from there;
 * - auth: a token channel refuses a client without a token (403) or with a bad one (401), and serves a good one;
 * - backpressure: a subscriber that does not read cannot make the server buffer without bound. WebSocket and
 *   SSE are cut once `maxBuffered` unsent bytes wait (WebSocket with close 1013); a poll is one answer, and
 *   nothing more is written to a client until it asks again. Asserted with byte counts of what the server
 *   wrote and left unsent (test/helpers/realtime-meter.ts), not with timing.
 *
 * A refusal is the transport's own: an HTTP status for SSE and polls; for
 * WebSocket the handshake's status (a bad token) or an `err` envelope
 * (`forbidden` is 403, `unknown-channel` 404, `bad-request` 400).
 */

const KEY = 'contract-publish-key-0123456789'
const SECRET = 'a-shared-secret-of-at-least-32-characters!'
const MAX_BUFFERED = 64 * 1024
/** The data of each message in the backpressure floods. */
const PAYLOAD = 'z'.repeat(1000)
/** More than the bytes one flood message takes as an SSE event or a WebSocket frame (envelope, `id:` line, chunk framing). */
const ONE_MESSAGE = 2048
let srv: TestServer
let P: string
let meters: Meters

before(async () => {
  meters = meterServerWrites()
  srv = await startServer({
    sites: [
      {
        routes: [
          {
            path: '/live/',
            realtime: {
              channels: { 'c:*': { history: { size: 1000 } }, 'small:*': { history: { size: 3 } }, 'private:*': { subscribe: 'token', publish: 'token' } },
              publishKey: KEY,
              auth: { secret: SECRET },
              pollTimeout: '500ms',
              maxBuffered: MAX_BUFFERED,
            },
          },
        ],
      },
    ],
  })
  P = srv.url + 'live/'
})
after(async () => {
  meters.stop()
  await srv.close()
})

type Position = { e: string; o: number }

let n = 0
/** A channel of its own for each test. */
const fresh = (prefix: string) => `${prefix}:t${++n}-${Date.now() % 100000}`
const at = (ch: string, p?: Position) => (p ? `${ch}@${p.e}/${p.o}` : ch)

/** Publishes through the back-end API (one request, in order); answers the acks. */
async function backend(ch: string, data: unknown[]): Promise<Env[]> {
  const r = await request('http/1.1', P + 'api/publish', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify(data.map((d) => ({ ch, d }))) })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Env[]
}

/** Publishes as a client (POST publish); answers the ack. */
async function publish(ch: string, d: unknown): Promise<Env> {
  const r = await request('http/1.1', P + 'publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ t: 'pub', ch, d }) })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Env
}

const token = (claims: Record<string, unknown>, secret = SECRET) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret))

/** `p`, or a rejection naming `what` after `ms`. */
function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

/** Resolves once `pred()` holds, checking every 10 ms (at most 5 s). */
async function until(pred: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within 5000 ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A subscription to one channel, on one transport. */
interface Feed {
  /** Every envelope received, in order. */
  readonly got: Env[]
  /** Resolves once `pred` holds for what was received (polls poll meanwhile). */
  wait(pred: (got: Env[]) => boolean): Promise<void>
  close(): void
}

/** A connection that got its first answer or event, then reads nothing more. */
interface Slow {
  readonly meter: Meter
  /** The position the channel was at when the connection was made. */
  readonly position: Position
  stop(): void
}

interface Transport {
  readonly name: string
  /** Subscribes (after `after`, with `token`); resolves once the first answer or envelope for the channel is in, rejects with Refused. */
  open(ch: string, opts?: { after?: Position | undefined; token?: string | undefined }): Promise<Feed>
  openSlow(ch: string): Promise<Slow>
  /** What the transport documents for a subscriber that does not read. */
  readonly slow: 'cut at maxBuffered' | 'one answer'
}

const ERR_STATUS: Record<string, number> = { forbidden: 403, 'unknown-channel': 404, 'bad-request': 400 }
const messages = (got: Env[]) => got.filter((e) => e.t === 'msg')
/** What a subscriber learns, without the `sub` confirmation (polls send none for a channel asked with a position). */
const news = (got: Env[]) => got.filter((e) => e.t !== 'sub').map((e) => (e.t === 'msg' ? { t: e.t, ch: e.ch, e: e.e, o: e.o, d: e.d } : { t: e.t, ch: e.ch, e: e.e, o: e.o }))

/** The channel's current position, from a short poll. */
async function positionOf(ch: string): Promise<Position> {
  const [sub] = JSON.parse((await request('http/1.1', `${P}poll?ch=${ch}`)).text) as Env[]
  return { e: sub!.e!, o: sub!.o! }
}

/** A request on its own connection whose server side is metered: raw HTTP/1.1, or an h2c stream. */
async function meteredRequest(protocol: Protocol, path: string): Promise<{ meter: Meter; received: () => string; pause(): void; stop(): void }> {
  let text = ''
  if (protocol === 'h2c') {
    const session = http2.connect(srv.url)
    session.on('error', () => {})
    const id = `m${++n}`
    const stream = session.request({ ':path': path, 'x-meter': id })
    stream.on('data', (d: Buffer) => (text += d.toString()))
    stream.on('error', () => {})
    return { meter: await meters.stream(id), received: () => text, pause: () => stream.pause(), stop: () => session.destroy() }
  }
  const sock = net.connect(srv.port, '127.0.0.1')
  sock.on('error', () => {})
  await new Promise((r) => sock.once('connect', r))
  const meter = await meters.socket(sock.localPort!)
  sock.on('data', (d: Buffer) => (text += d.toString()))
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  return { meter, received: () => text, pause: () => sock.pause(), stop: () => sock.destroy() }
}

const websocket: Transport = {
  name: 'WebSocket',
  slow: 'cut at maxBuffered',
  async open(ch, { after, token } = {}) {
    const c = await openWs(`${P.replace(/^http/, 'ws')}ws${token ? `?token=${token}` : ''}`)
    c.ws.send(JSON.stringify(after ? { t: 'sub', ch, e: after.e, o: after.o } : { t: 'sub', ch }))
    const first = await c.next((f) => f.ch === ch && ['sub', 'gap', 'err'].includes(f.t))
    if (first.t === 'err') {
      c.ws.close()
      throw new Refused(ERR_STATUS[first.code!] ?? 0, first.msg ?? '')
    }
    return { got: c.got, wait: (pred) => c.wait(pred), close: () => c.ws.close() }
  },
  async openSlow(ch) {
    const position = await positionOf(ch)
    const c = await openWs(`${P.replace(/^http/, 'ws')}ws`)
    const sock = (c.ws as unknown as { _socket: net.Socket })._socket
    const meter = await meters.socket(sock.localPort!)
    c.ws.send(JSON.stringify({ t: 'sub', ch }))
    await c.next((f) => f.t === 'sub')
    sock.pause()
    return { meter, position, stop: () => c.ws.terminate() }
  },
}

function sse(protocol: Protocol): Transport {
  return {
    name: `SSE over ${protocol}`,
    slow: 'cut at maxBuffered',
    async open(ch, { after, token } = {}) {
      const s = openSse(protocol, `${P}sse?ch=${at(ch, after)}${token ? `&token=${token}` : ''}`)
      await s.ready
      if (s.status !== 200) {
        s.close()
        throw new Refused(s.status, 'the stream was refused')
      }
      await s.wait((d) => d.some((e) => e.ch === ch))
      return {
        get got() {
          return s.data()
        },
        wait: (pred) => s.wait(pred),
        close: () => s.close(),
      }
    },
    async openSlow(ch) {
      const position = await positionOf(ch)
      const r = await meteredRequest(protocol, `/live/sse?ch=${ch}`)
      await until(() => r.received().includes('"t":"sub"'), 'the sub event')
      r.pause()
      return { meter: r.meter, position, stop: r.stop }
    },
  }
}

function polling(protocol: Protocol, long: boolean): Transport {
  return {
    name: `${long ? 'long' : 'short'} polling over ${protocol}`,
    slow: 'one answer',
    async open(ch, { after, token } = {}) {
      const got: Env[] = []
      let position = after
      let closed = false
      const client = `k${++n}`
      const poll = async () => {
        // A long poll is held only when there is a position to wait after; the first poll of a new subscription answers `sub` at once.
        const r = await request(protocol, `${P}poll?ch=${at(ch, position)}${long && position ? `&wait=1&client=${client}` : ''}${token ? `&token=${token}` : ''}`)
        if (r.status !== 200) throw new Refused(r.status, r.text)
        const answer = JSON.parse(r.text) as Env[]
        for (const env of answer) {
          got.push(env)
          if (env.ch === ch && env.e !== undefined && env.o !== undefined) position = { e: env.e, o: env.o }
        }
        return answer.length
      }
      await poll()
      return {
        got,
        async wait(pred) {
          const end = Date.now() + 5000
          while (!pred(got)) {
            if (closed || Date.now() > end) throw new Error(`no such envelopes within 5000 ms: ${JSON.stringify(got)}`)
            // Short polling asks again after a short interval, as its clients do; a long poll is held by the hub.
            if ((await poll()) === 0 && !long) await new Promise((r) => setTimeout(r, 20))
          }
        },
        close: () => (closed = true),
      }
    },
    async openSlow(ch) {
      const position = await positionOf(ch)
      const r = await meteredRequest(protocol, `/live/poll?ch=${at(ch, position)}${long ? '&wait=1&client=slow' : ''}`)
      r.pause()
      return { meter: r.meter, position, stop: r.stop }
    },
  }
}

const transports: Transport[] = [websocket, ...PROTOCOLS.map(sse), ...PROTOCOLS.map((p) => polling(p, true)), ...PROTOCOLS.map((p) => polling(p, false))]

for (const t of transports) {
  describe(`transport contract: ${t.name}`, () => {
    test('ordering: every message once, in the order the hub stored it, whatever path published it', async () => {
      const ch = fresh('c')
      const feed = await t.open(ch)
      const arrived = feed.wait((got) => messages(got).length >= 30)
      const sent = [...Array.from({ length: 10 }, (_, i) => `batch ${i}`), ...Array.from({ length: 10 }, (_, i) => `at once ${i}`), ...Array.from({ length: 10 }, (_, i) => `in turn ${i}`)]
      const acks: Env[] = []
      acks.push(...(await backend(ch, sent.slice(0, 10))))
      acks.push(...(await Promise.all(sent.slice(10, 20).map((d) => publish(ch, d))))) // concurrent: the hub picks their order
      for (const d of sent.slice(20)) acks.push(await publish(ch, d))
      await arrived
      const stored = new Map(acks.map((a, i) => [a.o!, sent[i]]))
      assert.deepEqual([...stored.keys()].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1), 'offsets 1..30 without holes')
      assert.deepEqual(
        messages(feed.got).map((m) => [m.o, m.d]),
        Array.from({ length: 30 }, (_, i) => [i + 1, stored.get(i + 1)]),
      )
      feed.close()
    })

    test('resume: after offset N, exactly N+1.. (what was missed, then live), nothing twice', async () => {
      const ch = fresh('c')
      const first = await t.open(ch)
      const three = first.wait((got) => messages(got).length >= 3)
      for (let i = 1; i <= 3; i++) await publish(ch, i)
      await three
      const e = messages(first.got)[2]!.e!
      first.close()
      await backend(ch, [4, 5, 6]) // missed while away
      const back = await t.open(ch, { after: { e, o: 3 } })
      const seven = back.wait((got) => messages(got).some((m) => m.o === 7))
      await publish(ch, 7) // live, after the resume
      await seven
      assert.deepEqual(news(back.got), [4, 5, 6, 7].map((o) => ({ t: 'msg', ch, e, o, d: o })))
      const subs = back.got.filter((f) => f.t === 'sub')
      assert.ok(subs.length === 0 || (subs.length === 1 && subs[0]!.o === 3 && subs[0]!.e === e), `a sub, if any, confirms the position: ${JSON.stringify(subs)}`)
      back.close()
    })

    test('gap: a position the history no longer holds gets gap with the current position; another epoch gets gap before its oldest message, then the history', async () => {
      const ch = fresh('small') // history: 3 messages
      const first = await t.open(ch)
      const e = first.got.find((f) => f.t === 'sub')!.e!
      first.close()
      await backend(ch, [1, 2, 3, 4, 5, 6])
      const held = await t.open(ch, { after: { e, o: 3 } })
      await held.wait((got) => messages(got).some((m) => m.o === 6))
      assert.deepEqual(news(held.got), [4, 5, 6].map((o) => ({ t: 'msg', ch, e, o, d: o })), 'offset 4 is still held: no gap')
      held.close()

      const behind = await t.open(ch, { after: { e, o: 2 } })
      await behind.wait((got) => got.some((f) => f.t === 'gap'))
      const next = behind.wait((got) => messages(got).length > 0)
      await publish(ch, 7)
      await next
      assert.deepEqual(news(behind.got), [
        { t: 'gap', ch, e, o: 6 },
        { t: 'msg', ch, e, o: 7, d: 7 },
      ])
      behind.close()

      // Another epoch (the channel's history was lost, e.g. a restart): gap just before the oldest message
      // the current epoch holds (5: the history keeps 3), then those messages, not a jump to the end.
      const otherEpoch = await t.open(ch, { after: { e: 'zzzz', o: 7 } })
      await otherEpoch.wait((got) => messages(got).some((m) => m.o === 7))
      assert.deepEqual(news(otherEpoch.got), [{ t: 'gap', ch, e, o: 4 }, ...[5, 6, 7].map((o) => ({ t: 'msg', ch, e, o, d: o }))])
      otherEpoch.close()
    })

    test('auth: a token channel refuses no token (403), a bad token (401) and a token for other channels (403); a good token is served', async () => {
      const ch = fresh('private')
      await assert.rejects(t.open(ch), { status: 403 }, 'no token')
      await assert.rejects(t.open(ch, { token: await token({ edgebox: { sub: [ch] } }, 'another-secret-of-at-least-32-characters!!') }), { status: 401 }, 'a bad signature')
      await assert.rejects(t.open(ch, { token: 'garbage' }), { status: 401 }, 'not a token')
      await assert.rejects(t.open(ch, { token: await token({ edgebox: { sub: ['private:other'] } }) }), { status: 403 }, 'a token for another channel')
      const good = await t.open(ch, { token: await token({ sub: 'alice', edgebox: { sub: ['private:*'] } }) })
      assert.equal(good.got.find((f) => f.t === 'sub')?.ch, ch)
      const arrived = good.wait((got) => messages(got).length > 0)
      await backend(ch, ['for token holders'])
      await arrived
      assert.deepEqual(messages(good.got).map((m) => m.d), ['for token holders'])
      good.close()
    })

    test(`backpressure: a subscriber that does not read (${t.slow})`, async () => {
      const ch = fresh('c')
      const slow = await t.openSlow(ch)
      const m = slow.meter
      if (t.slow === 'cut at maxBuffered') {
        const reader = await t.open(ch)
        // WebSocket checks the unsent bytes before each message: at most maxBuffered, then one frame (and the close frame).
        // SSE counts the bytes written once its buffer is past the high-water mark (where writes return false): at most
        // the mark and one event, then maxBuffered and one event.
        const bound = t === websocket ? MAX_BUFFERED + ONE_MESSAGE : m.highWaterMark + MAX_BUFFERED + 2 * ONE_MESSAGE
        // Publish until the server cuts the connection, in requests of 20 messages (22 KB: no burst fills a buffer
        // by itself): kernel buffers take the first few MB, then the server's own.
        let published = 0
        while (!m.closed && closeCode(m) === undefined) {
          assert.ok(published < 100_000, `still connected after ${published} messages; ${m.peak} bytes unsent at most`)
          await backend(ch, Array.from({ length: 20 }, () => PAYLOAD))
          published += 20
          assert.ok(m.peak <= bound, `${m.peak} bytes unsent after ${published} messages: beyond ${bound}`)
        }
        await within(m.close, 'the server closing the connection')
        assert.ok(m.peak > MAX_BUFFERED, `cut with ${m.peak} bytes unsent: only beyond maxBuffered (${MAX_BUFFERED})`)
        assert.ok(m.peak <= bound, `${m.peak} bytes unsent at most, within ${bound} (with the close frame)`)
        if (t === websocket) assert.equal(closeCode(m), 1013, 'a close frame with 1013 (slow consumer) was sent')
        // A subscriber that reads is not cut by the same flood: it has every message.
        await reader.wait((got) => messages(got).length >= published)
        assert.deepEqual(messages(reader.got).map((x) => x.o), Array.from({ length: published }, (_, i) => i + 1))
        reader.close()
      } else {
        // The poll's answer (at once for a short poll; with the first burst for a long one) is all the server writes.
        await backend(ch, Array.from({ length: 200 }, () => PAYLOAD))
        await until(() => m.written > 0, 'the answer')
        const answer = m.written
        for (let i = 0; i < 10; i++) await backend(ch, Array.from({ length: 200 }, () => PAYLOAD))
        assert.equal(m.written, answer, 'nothing written after the answer')
        assert.ok(m.peak <= answer, `${m.peak} bytes unsent at most: one answer (${answer})`)
        // Asking again from far behind: one `gap`, not the 2,200 messages published since (the history keeps 1,000).
        const back = await request('http/1.1', `${P}poll?ch=${at(ch, slow.position)}`)
        assert.deepEqual(JSON.parse(back.text), [{ t: 'gap', ch, e: slow.position.e, o: 2200 }])
      }
      slow.stop()
      // The server goes on.
      const feed = await t.open(fresh('c'))
      assert.equal(feed.got.filter((f) => f.t === 'sub').length, 1)
      feed.close()
    })
  })
}

/** The status code of the WebSocket close frame (RFC 6455 §5.5.1: opcode 0x8, unmasked, the code first) the server wrote last, if it did. */
function closeCode(m: Meter): number | undefined {
  const bytes = Buffer.concat(m.tail)
  for (let i = bytes.length - 4; i >= 0; i--) {
    if (bytes[i] === 0x88 && i + 2 + bytes[i + 1]! === bytes.length && bytes[i + 1]! >= 2) return bytes.readUInt16BE(i + 2)
  }
  return undefined
}

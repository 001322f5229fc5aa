import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { openSse, openWs as openWsAt, type Env } from '../helpers/realtime-clients.ts'
import { PROTOCOLS, request, startServer, type Protocol, type TestServer } from '../helpers/server.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'

/**
 * The realtime hub over its four transports (docs/realtime.md), on
 * real sockets: HTTP transports over HTTP/1.1 and h2c, WebSocket over
 * HTTP/1.1. Every wait is bounded. What every transport keeps alike
 * (ordering, resume, gap, tokens, slow consumers) is the contract suite,
 * test/contracts/transports.test.ts; this file has what is particular to
 * each transport and to publishing. The servers run on manual clocks:
 * long-poll holds, keep-alives, heartbeats and token expiry happen when a
 * test moves time.
 */

const KEY = 'publish-key-0123456789'
let srv: TestServer
let P: string
const clock = new ManualClock()
/** Long polls held now: their timers are the ones due in pollTimeout (400 ms; keep-alives are 200, heartbeats 300 at most). */
const heldPolls = () => clock.dueIn().filter((d) => d === 400).length

before(async () => {
  srv = await startServer(
    {
      sites: [
        {
          origins: ['https://app.example.test'],
          routes: [
            {
              path: '/live/',
              realtime: {
                channels: { 'chat:*': {}, 'news': { publish: 'backend' } },
                publishKey: KEY,
                keepAlive: '200ms',
                retry: '1500ms',
                pollTimeout: '400ms',
                heartbeat: '300ms',
                maxMessageSize: 1024,
              },
            },
          ],
        },
      ],
    },
    undefined,
    { clock },
  )
  P = srv.url + 'live/'
})
after(() => srv.close())

const json = (s: string | Buffer) => JSON.parse(s.toString()) as Env[] & Env

function publish(protocol: Protocol, body: unknown) {
  return request(protocol, P + 'publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

function backend(body: unknown, key = KEY) {
  return request('http/1.1', P + 'api/publish', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) })
}

/** A channel of its own for each test. */
let n = 0
const fresh = (prefix = 'chat') => `${prefix}:t${++n}-${Date.now() % 100000}`

/** A WebSocket to the route's `ws` endpoint with the edgebox.v1 subprotocol. */
const openWs = (opts: WebSocket.ClientOptions = {}) => openWsAt(P.replace(/^http/, 'ws') + 'ws', ['edgebox.v1'], opts)

for (const protocol of PROTOCOLS) {
  describe(`HTTP transports over ${protocol}`, () => {
    test('short polling: sub with the position, then the messages after it; exactly-once publishing by id', async () => {
      const ch = fresh()
      const first = json((await request(protocol, `${P}poll?ch=${ch}`)).body)
      assert.equal(first.length, 1)
      assert.deepEqual({ ...first[0], e: 'E' }, { t: 'sub', ch, e: 'E', o: 0 })
      const e = first[0]!.e!
      const a1 = await publish(protocol, { t: 'pub', ch, d: { text: 'one' }, id: 'p1' })
      assert.equal(a1.status, 200)
      assert.deepEqual(json(a1.body), { t: 'ack', ref: 'p1', ch, e, o: 1 })
      const again = json((await publish(protocol, { t: 'pub', ch, d: { text: 'one' }, id: 'p1' })).body)
      assert.equal(again.o, 1, 'a retried publish is not published twice')
      await publish(protocol, { t: 'pub', ch, d: 'two' })
      const r = await request(protocol, `${P}poll?ch=${ch}@${e}/0`)
      assert.equal(r.headers['content-type'], 'application/json')
      assert.equal(r.headers['cache-control'], 'no-store')
      assert.deepEqual(json(r.body), [
        { t: 'msg', ch, e, o: 1, d: { text: 'one' }, id: 'p1' },
        { t: 'msg', ch, e, o: 2, d: 'two' },
      ])
      assert.deepEqual(json((await request(protocol, `${P}poll?ch=${ch}@${e}/2`)).body), [], 'nothing new')
    })

    test('long polling: held until a message arrives, then answered with it; empty after the timeout', async () => {
      const ch = fresh()
      const e = json((await request(protocol, `${P}poll?ch=${ch}`)).body)[0]!.e!
      const held = request(protocol, `${P}poll?ch=${ch}@${e}/0&wait=1&client=c1`)
      await waitFor('the poll held', () => heldPolls() === 1)
      await publish(protocol, { ch, d: 'late' })
      const r = await held
      assert.deepEqual(json(r.body), [{ t: 'msg', ch, e, o: 1, d: 'late' }])
      assert.equal(heldPolls(), 0, 'answering released the hold')
      const empty = request(protocol, `${P}poll?ch=${ch}@${e}/1&wait=1&client=c1`)
      await waitFor('the second poll held', () => heldPolls() === 1)
      clock.advance(399)
      assert.equal(heldPolls(), 0)
      assert.ok(clock.dueIn().includes(1), 'still held 1 ms before pollTimeout')
      clock.advance(1)
      assert.deepEqual(json((await empty).body), [], 'answered empty at pollTimeout (400 ms)')
    })

    test('SSE: sub events, messages with composite ids, retry, keep-alive comments; Last-Event-ID resumes every channel', async () => {
      const a = fresh()
      const b = fresh()
      const ea = json((await request(protocol, `${P}poll?ch=${a}`)).body)[0]!.e!
      await publish(protocol, { ch: a, d: 'a1' })
      const s = openSse(protocol, `${P}sse?ch=${a}@${ea}/0&ch=${b}`)
      await s.ready
      assert.equal(s.status, 200)
      assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8')
      assert.equal(s.headers['cache-control'], 'no-store')
      await s.until(4)
      assert.equal(s.events[0]!.retry, '1500')
      const data = s.data()
      assert.deepEqual(data.slice(0, 2).map((d) => [d.t, d.o]), [['sub', 0], ['msg', 1]])
      const eb = data[2]!.e!
      assert.equal(data[2]!.t, 'sub')
      await publish(protocol, { ch: b, d: 'b1' })
      await s.until(5)
      const last = s.events.filter((ev) => ev.id !== undefined).at(-1)!
      assert.equal(last.id, `${a}@${ea}/1,${b}@${eb}/1`)
      assert.ok(!s.events.some((ev) => ev.comment === 'keep-alive'), 'no keep-alive before time passes')
      clock.advance(200)
      await s.until(6)
      assert.equal(s.events[5]!.comment, 'keep-alive', 'a keep-alive comment every 200 ms')
      s.close()

      // missed while away: one message on each channel
      await publish(protocol, { ch: a, d: 'a2' })
      await publish(protocol, { ch: b, d: 'b2' })
      const again = openSse(protocol, `${P}sse?ch=${a}&ch=${b}`, { 'last-event-id': last.id! })
      await again.ready
      await again.until(5)
      const got = again.data().filter((d) => d.t === 'msg').map((d) => `${d.ch === a ? 'a' : 'b'}:${d.d}`)
      assert.deepEqual(got.sort(), ['a:a2', 'b:b2'], 'exactly what was missed, nothing twice')
      again.close()
    })

    test('the back-end API: key required; batches; back-end-only channels refuse clients', async () => {
      assert.equal((await backend({ ch: 'news', d: 1 }, 'wrong-key-wrong-key')).status, 401)
      const r = await backend([{ ch: 'news', d: 'x' }, { ch: 'nope', d: 'y' }])
      assert.equal(r.status, 200)
      const answers = json(r.body)
      assert.equal(answers[0]!.t, 'ack')
      assert.deepEqual([answers[1]!.t, answers[1]!.code], ['err', 'unknown-channel'])
      const refused = await publish(protocol, { ch: 'news', d: 'from a browser' })
      assert.equal(refused.status, 403)
      assert.equal(json(refused.body).code, 'forbidden')
    })

    test('bad input: unknown or malformed channels, no channel, non-JSON bodies, oversized messages', async () => {
      assert.equal((await request(protocol, `${P}poll?ch=nope`)).status, 404)
      assert.equal((await request(protocol, `${P}poll?ch=${encodeURIComponent('bad name')}`)).status, 400)
      assert.equal((await request(protocol, `${P}poll`)).status, 400)
      assert.equal((await request(protocol, `${P}poll?ch=chat:x@e/notanumber`)).status, 400)
      const notJson = await request(protocol, P + 'publish', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' })
      assert.equal(notJson.status, 415)
      const broken = await request(protocol, P + 'publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"ch":' })
      assert.equal(broken.status, 400)
      const big = await publish(protocol, { ch: fresh(), d: 'x'.repeat(2000) })
      assert.equal(big.status, 413)
      assert.equal(json(big.body).code, 'too-large')
      assert.equal((await request(protocol, `${P}elsewhere`)).status, 404)
      assert.equal((await request(protocol, `${P}poll?ch=${fresh()}`)).status, 200, 'and the next good request is served')
    })

    test('cross-origin pages: a listed origin gets CORS headers, another is refused', async () => {
      const ok = await request(protocol, `${P}poll?ch=${fresh()}`, { headers: { origin: 'https://app.example.test' } })
      assert.equal(ok.status, 200)
      assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.test')
      assert.equal(ok.headers.vary, 'Origin')
      const no = await request(protocol, `${P}sse?ch=${fresh()}`, { headers: { origin: 'https://evil.example' } })
      assert.equal(no.status, 403)
      const pre = await request(protocol, `${P}publish`, { method: 'OPTIONS', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
      assert.equal(pre.status, 204)
      assert.equal(pre.headers['access-control-allow-headers'], 'Content-Type, Last-Event-ID')
    })
  })
}

describe('long-poll limits', () => {
  test('at most maxPollsPerClient held polls per client id (429 beyond); a client that leaves frees its place', async () => {
    const ch = fresh()
    const url = `${P}poll?ch=${ch}&wait=1&client=busy`
    const e = json((await request('http/1.1', `${P}poll?ch=${ch}`)).body)[0]!.e!
    const held = `${P}poll?ch=${ch}@${e}/0&wait=1&client=busy`
    const sockets: net.Socket[] = []
    for (let i = 0; i < 2; i++) {
      const s = net.connect(srv.port, '127.0.0.1')
      s.write(`GET ${new URL(held).pathname}${new URL(held).search} HTTP/1.1\r\nHost: x\r\n\r\n`)
      sockets.push(s)
    }
    await waitFor('two polls held', () => heldPolls() === 2)
    const third = await request('http/1.1', held)
    assert.equal(third.status, 429)
    assert.equal(third.headers['retry-after'], '1')
    for (const s of sockets) s.destroy()
    await waitFor('the holds released', () => heldPolls() === 0)
    const ok = await request('http/1.1', url)
    assert.equal(ok.status, 200)
  })
})

describe('WebSocket', () => {
  test('subprotocol edgebox.v1; sub, pub with ack, ping/pong; the message reaches every subscriber once', async () => {
    const ch = fresh()
    const a = await openWs()
    const b = await openWs()
    assert.equal(a.ws.protocol, 'edgebox.v1')
    a.ws.send(JSON.stringify({ t: 'sub', ch }))
    b.ws.send(JSON.stringify({ t: 'sub', ch }))
    await a.next((f) => f.t === 'sub')
    await b.next((f) => f.t === 'sub')
    a.ws.send(JSON.stringify({ t: 'pub', ch, d: 'hello', id: 'w-1' }))
    a.ws.send(JSON.stringify({ t: 'pub', ch, d: 'hello', id: 'w-1' })) // a retry
    const ack = await a.next((f) => f.t === 'ack')
    assert.deepEqual([ack.ref, ack.o], ['w-1', 1])
    const m = await b.next((f) => f.t === 'msg')
    assert.deepEqual([m.d, m.id, m.o], ['hello', 'w-1', 1])
    a.ws.send('{"t":"ping"}')
    await a.next((f) => f.t === 'pong')
    // Both publishes answered, then a round trip on b: anything sent to b for them came before its pong.
    await a.wait((got) => got.filter((f) => f.t === 'ack').length === 2)
    b.ws.send('{"t":"ping"}')
    await b.next((f) => f.t === 'pong')
    assert.equal(b.got.filter((f) => f.t === 'msg').length, 1, 'delivered once')
    a.ws.close()
    b.ws.close()
  })

  test('refusals as err envelopes: unknown channel, back-end-only channel, unknown envelope type', async () => {
    const c = await openWs()
    c.ws.send(JSON.stringify({ t: 'sub', ch: 'nope' }))
    assert.equal((await c.next((f) => f.t === 'err')).code, 'unknown-channel')
    c.ws.send(JSON.stringify({ t: 'pub', ch: 'news', d: 1, id: 'r1' }))
    const forbidden = await c.next((f) => f.t === 'err' && f.ref === 'r1')
    assert.equal(forbidden.code, 'forbidden')
    c.ws.send(JSON.stringify({ t: 'dance' }))
    await c.next((f) => f.t === 'err' && f.code === 'bad-request')
    c.ws.close()
  })

  test('a frame that is not JSON closes with 1007; an oversized one with 1009', async () => {
    const a = await openWs()
    a.ws.send('not json')
    assert.equal((await a.closed).code, 1007)
    const b = await openWs()
    b.ws.send(JSON.stringify({ t: 'pub', ch: 'chat:x', d: 'y'.repeat(4000) }))
    assert.equal((await b.closed).code, 1009)
    const next = await openWs()
    next.ws.send('{"t":"ping"}')
    await next.next((f) => f.t === 'pong')
    next.ws.close()
  })

  test('handshakes: wrong version 426, bad key 400, foreign origin 403, plain GET 400', async () => {
    const hs = (headers: string) => new Promise<string>((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1', () => s.write(`GET /live/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`))
      let out = ''
      s.on('data', (d) => (out += d))
      s.on('close', () => resolve(out))
      s.on('error', () => resolve(out))
      setTimeout(() => s.destroy(), 1000)
    })
    const v8 = await hs('Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')
    assert.match(v8, /^HTTP\/1\.1 426 /)
    assert.match(v8, /Sec-WebSocket-Version: 13/)
    assert.match(await hs('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n'), /^HTTP\/1\.1 400 /)
    assert.match(await hs('Sec-WebSocket-Version: 13\r\n'), /^HTTP\/1\.1 400 /, 'no key at all')
    assert.match(await hs('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\n'), /^HTTP\/1\.1 403 /)
    const listed = await hs('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example.test\r\n')
    assert.match(listed, /^HTTP\/1\.1 101 /)
    assert.equal((await request('http/1.1', `${P}ws`)).status, 400)
  })

  test('a connection that stops answering pings is dropped at the next heartbeat (300 ms); one that answers stays', async () => {
    const silent = await openWs({ autoPong: false })
    const live = await openWs()
    const pinged = new Promise((r) => live.ws.once('ping', r))
    clock.advance(300) // one heartbeat: both pinged
    await pinged
    // live answered the ping before this envelope: its pong has arrived when the envelope's answer comes back
    live.ws.send('{"t":"ping"}')
    await live.next((f) => f.t === 'pong')
    let dropped = false
    void silent.closed.then(() => (dropped = true))
    clock.advance(300) // the next one drops whoever did not answer
    await waitFor('the silent connection dropped', () => dropped)
    assert.equal((await silent.closed).code, 1006, 'terminated, not closed cleanly')
    live.ws.send('{"t":"ping"}')
    await live.wait((got) => got.filter((f) => f.t === 'pong').length === 2)
    assert.equal(live.ws.readyState, WebSocket.OPEN, 'a connection that answers pings stays')
    live.ws.close()
  })
})

describe('tokens and presence', () => {
  const SECRET = 'a-shared-secret-of-at-least-32-characters!'
  let s: TestServer
  let Q: string
  // a manual clock near the real time: token expiry is checked against the real time by the token library, then timed by the clock
  const tclock = new ManualClock(Math.floor(Date.now() / 1000) * 1000)
  before(async () => {
    s = await startServer(
      {
        sites: [
          {
            routes: [
              {
                path: '/rt/',
                realtime: {
                  channels: { 'open:*': {}, 'private:*': { subscribe: 'token', publish: 'token' }, 'room:*': { presence: true } },
                  auth: { secret: SECRET, issuer: 'https://auth.example.test' },
                  // the expiry test moves the clock a minute at once: no heartbeat in between, whose pong could not come back in time
                  heartbeat: '1h',
                },
              },
              { path: '/plain/', realtime: { channels: { 'x:*': {} } } },
            ],
          },
        ],
      },
      undefined,
      { clock: tclock },
    )
    Q = s.url + 'rt/'
  })
  after(() => s.close())

  const token = (claims: Record<string, unknown>, opts: { exp?: string | number; secret?: string; issuer?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(opts.issuer ?? 'https://auth.example.test')
      .setExpirationTime(opts.exp ?? '1h')
      .sign(new TextEncoder().encode(opts.secret ?? SECRET))

  test('token channels need a token that lists them; bad, expired or foreign tokens get 401', async () => {
    assert.equal((await request('http/1.1', `${Q}poll?ch=private:a`)).status, 403)
    const alice = await token({ sub: 'alice', edgebox: { sub: ['private:*'], pub: ['private:a'] } })
    assert.equal((await request('http/1.1', `${Q}poll?ch=private:a&token=${alice}`)).status, 200)
    const other = await token({ sub: 'bob', edgebox: { sub: ['private:b'] } })
    assert.equal((await request('http/1.1', `${Q}poll?ch=private:a&token=${other}`)).status, 403)
    const pub = await request('http/1.1', `${Q}publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` }, body: JSON.stringify({ ch: 'private:a', d: 1 }) })
    assert.equal(pub.status, 200)
    const pubB = await request('http/1.1', `${Q}publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` }, body: JSON.stringify({ ch: 'private:b', d: 1 }) })
    assert.equal(pubB.status, 403, 'subscribing is not publishing')
    const expired = await token({ sub: 'alice', edgebox: { sub: ['private:*'] } }, { exp: Math.floor(Date.now() / 1000) - 60 })
    const r1 = await request('http/1.1', `${Q}poll?ch=private:a&token=${expired}`)
    assert.equal(r1.status, 401)
    assert.match(r1.text, /expired/)
    const forged = await token({ sub: 'mallory', edgebox: { sub: ['private:*'] } }, { secret: 'another-secret-of-at-least-32-characters!!' })
    assert.match((await request('http/1.1', `${Q}poll?ch=private:a&token=${forged}`)).text, /signature/)
    assert.equal((await request('http/1.1', `${Q}poll?ch=private:a&token=${await token({ edgebox: { sub: ['private:*'] } }, { issuer: 'https://elsewhere' })}`)).status, 401)
    assert.equal((await request('http/1.1', `${Q}poll?ch=private:a&token=garbage`)).status, 401)
    assert.equal((await request('http/1.1', `${s.url}plain/poll?ch=x:1&token=${alice}`)).status, 401, 'a route without auth takes no tokens')
  })

  test('WebSocket: a token is checked per channel and ends the session when it expires', async () => {
    const url = Q.replace(/^http/, 'ws') + 'ws'
    const short = await token({ sub: 'carol', edgebox: { sub: ['private:*'] } }, { exp: tclock.now() / 1000 + 60 })
    const w = new WebSocket(`${url}?token=${short}`, ['edgebox.v1'])
    const frames: Env[] = []
    w.on('message', (d) => frames.push(JSON.parse(d.toString()) as Env))
    const closed = new Promise<{ code: number; reason: string }>((r) => w.on('close', (code, reason) => r({ code, reason: reason.toString() })))
    await new Promise((r) => w.once('open', r))
    w.send(JSON.stringify({ t: 'sub', ch: 'private:c' }))
    w.send(JSON.stringify({ t: 'pub', ch: 'private:c', d: 1, id: 'nope' }))
    tclock.advance(59_999)
    w.send('{"t":"ping"}')
    await waitFor('a pong: still open 1 ms before the token expires', () => frames.some((f) => f.t === 'pong'))
    let end: { code: number; reason: string } | undefined
    void closed.then((c) => (end = c))
    tclock.advance(1)
    await waitFor('the session closed at expiry', () => end !== undefined)
    assert.deepEqual(end, { code: 1008, reason: 'token expired' })
    assert.equal(frames.find((f) => f.t === 'sub')?.ch, 'private:c')
    assert.equal(frames.find((f) => f.t === 'err' && f.ref === 'nope')?.code, 'forbidden', 'the token allows subscribing, not publishing')
  })

  test('presence: who is subscribed, with join and leave as connections come and go', async () => {
    const url = Q.replace(/^http/, 'ws') + 'ws'
    const connect = async (user: string) => {
      const w = new WebSocket(`${url}?token=${await token({ sub: user })}`, ['edgebox.v1'])
      const frames: Env[] = []
      w.on('message', (d) => frames.push(JSON.parse(d.toString()) as Env))
      await new Promise((r) => w.once('open', r))
      return { w, frames }
    }
    const wait = async (pred: () => boolean) => {
      const end = Date.now() + 3000
      while (!pred()) {
        if (Date.now() > end) throw new Error('timed out')
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    const alice = await connect('alice')
    alice.w.send(JSON.stringify({ t: 'sub', ch: 'room:1' }))
    await wait(() => alice.frames.some((f) => f.t === 'sub'))
    const bob = await connect('bob')
    bob.w.send(JSON.stringify({ t: 'sub', ch: 'room:1' }))
    await wait(() => alice.frames.some((f) => f.t === 'join' && (f as { who?: string }).who === 'bob'))
    const members = JSON.parse((await request('http/1.1', `${Q}presence?ch=room:1`)).text) as { members: string[] }
    assert.deepEqual(members.members.sort(), ['alice', 'bob'])
    bob.w.close()
    await wait(() => alice.frames.some((f) => f.t === 'leave' && (f as { who?: string }).who === 'bob'))
    assert.equal((await request('http/1.1', `${Q}presence?ch=open:1`)).status, 400, 'no presence on this channel')
    alice.w.close()
  })
})

test('tokens signed with a key from a JWKS URL (ES256), fetched by the hub', async () => {
  const { generateKeyPair, exportJWK } = await import('jose')
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
  let fetched = 0
  const jwks = http.createServer((_req, res) => {
    fetched++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r))
  const s = await startServer({
    sites: [{ routes: [{ path: '/rt/', realtime: { channels: { 'vip:*': { subscribe: 'token' } }, auth: { jwksUrl: `http://127.0.0.1:${(jwks.address() as net.AddressInfo).port}/.well-known/jwks.json`, audience: 'edgebox' } } }] }],
  })
  try {
    const sign = (aud: string) => new SignJWT({ sub: 'dana', edgebox: { sub: ['vip:*'] } }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setAudience(aud).setExpirationTime('5m').sign(privateKey)
    const ok = await request('http/1.1', `${s.url}rt/poll?ch=vip:1`, { headers: { authorization: `Bearer ${await sign('edgebox')}` } })
    assert.equal(ok.status, 200)
    assert.equal(fetched, 1, 'the key set was fetched from the URL')
    assert.equal((await request('http/1.1', `${s.url}rt/poll?ch=vip:1`, { headers: { authorization: `Bearer ${await sign('someone-else')}` } })).status, 401, 'wrong audience')
    const hs = await token2(s.url)
    assert.equal(hs, 401, 'an HS256 token is not accepted where keys come from a JWKS')
  } finally {
    await s.close()
    await new Promise((r) => jwks.close(r))
  }

  async function token2(base: string): Promise<number> {
    const t = await new SignJWT({ edgebox: { sub: ['vip:*'] } }).setProtectedHeader({ alg: 'HS256' }).setAudience('edgebox').sign(new TextEncoder().encode('x'.repeat(40)))
    return (await request('http/1.1', `${base}rt/poll?ch=vip:1&token=${t}`)).status
  }
})

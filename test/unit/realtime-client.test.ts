import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import {
  backoffDelay,
  connect,
  RealtimeError,
  SseParser,
  type ConnectOptions,
  type GapEvent,
  type Position,
  type RealtimeClient,
  type StateEvent,
  type TransportName,
} from '../../client/realtime.ts'
import { startFakeHub, type FakeHub, type FakeModes } from '../helpers/realtime-fake.ts'

/**
 * The realtime client (client/realtime.ts) against a fake hub on 127.0.0.1
 * (test/helpers/realtime-fake.ts) that speaks docs/realtime.md's protocol.
 * Short timers keep it quick; every wait is bounded.
 */

const FAST: ConnectOptions = {
  backoff: { base: 20, max: 200 },
  openTimeout: 3000,
  stableAfter: 300,
  upgradeInterval: 0,
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitFor<T>(what: string, fn: () => T | undefined | false | null, ms = 8000): Promise<T> {
  const t0 = Date.now()
  for (;;) {
    const v = fn()
    if (v) return v
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

async function within<T>(p: Promise<T>, what: string, ms = 8000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

interface Setup {
  hub: FakeHub
  client: RealtimeClient
  states: StateEvent[]
  errors: RealtimeError[]
  /** Messages delivered per channel: [data, offset]. */
  got: Map<string, Array<[unknown, number]>>
  sub(ch: string, from?: Position): () => void
  connected(transport: TransportName): Promise<void>
}

async function setup(t: TestContext, modes: Partial<FakeModes> = {}, opts: ConnectOptions = {}): Promise<Setup> {
  const hub = await startFakeHub(modes)
  const client = connect(hub.url, { ...FAST, ...opts })
  t.after(async () => {
    client.close()
    await hub.close()
  })
  const states: StateEvent[] = []
  const errors: RealtimeError[] = []
  client.on('state', (s) => states.push(s))
  client.on('error', (e) => errors.push(e))
  const got = new Map<string, Array<[unknown, number]>>()
  return {
    hub,
    client,
    states,
    errors,
    got,
    sub(ch, from) {
      const list: Array<[unknown, number]> = []
      got.set(ch, list)
      return client.subscribe(ch, (d, meta) => list.push([d, meta.position.o]), { fromPosition: from })
    },
    async connected(transport) {
      await waitFor(`connected over ${transport}`, () => client.state === 'connected' && client.transport === transport)
    },
  }
}

const offsets = (list: Array<[unknown, number]> | undefined) => (list ?? []).map(([, o]) => o)

test('delivers messages in order over WebSocket, with their positions', async (t) => {
  const s = await setup(t)
  s.sub('chat:a')
  await s.connected('websocket')
  await waitFor('the sub frame', () => s.hub.received.some((e) => e.t === 'sub' && e.ch === 'chat:a'))
  await waitFor('the starting position', () => s.client.position('chat:a'))
  for (let i = 1; i <= 5; i++) s.hub.publish('chat:a', { n: i })
  await waitFor('5 messages', () => s.got.get('chat:a')!.length === 5)
  assert.deepEqual(s.got.get('chat:a'), [1, 2, 3, 4, 5].map((n) => [{ n }, n]))
  assert.deepEqual(s.client.position('chat:a'), { e: 'ep-chata-1', o: 5 })
  assert.deepEqual(s.states.map((x) => [x.state, x.transport]), [['connecting', 'websocket'], ['connected', 'websocket']])
})

test('a repeated or older offset is dropped: each message is delivered once', async (t) => {
  const s = await setup(t)
  s.sub('chat:a')
  await s.connected('websocket')
  await waitFor('the starting position', () => s.client.position('chat:a'))
  for (let i = 1; i <= 3; i++) s.hub.publish('chat:a', `m${i}`)
  await waitFor('3 messages', () => s.got.get('chat:a')!.length === 3)
  // The same offsets again (as a resume that overlaps would send them), then a new one.
  s.hub.inject({ t: 'msg', ch: 'chat:a', e: 'ep-chata-1', o: 3, d: 'm3 again' })
  s.hub.inject({ t: 'msg', ch: 'chat:a', e: 'ep-chata-1', o: 1, d: 'm1 again' })
  s.hub.inject({ t: 'msg', ch: 'chat:a', e: 'ep-chata-1', o: 2, d: 'm2 again' })
  s.hub.publish('chat:a', 'm4')
  await waitFor('the 4th message', () => s.got.get('chat:a')!.length >= 4)
  await sleep(50)
  assert.deepEqual(s.got.get('chat:a'), [['m1', 1], ['m2', 2], ['m3', 3], ['m4', 4]])
})

for (const transport of ['websocket', 'sse', 'long-poll', 'poll'] as const) {
  test(`${transport}: after the connection is killed, every subscription resumes from its last delivered position`, async (t) => {
    const s = await setup(t, { pollHold: 300 }, { transports: [transport], pollInterval: 50 })
    s.sub('chat:a')
    s.sub('chat:b')
    await s.connected(transport)
    await waitFor('starting positions', () => s.client.position('chat:a') && s.client.position('chat:b'))
    for (let i = 1; i <= 3; i++) s.hub.publish('chat:a', `a${i}`)
    for (let i = 1; i <= 2; i++) s.hub.publish('chat:b', `b${i}`)
    await waitFor('a1-a3, b1-b2', () => s.got.get('chat:a')!.length === 3 && s.got.get('chat:b')!.length === 2)
    const before = s.hub.requests.length
    s.hub.kill()
    // Published while the client is cut off or reconnecting: it must get them once, in order.
    s.hub.publish('chat:a', 'a4')
    s.hub.publish('chat:a', 'a5')
    s.hub.publish('chat:b', 'b3')
    await waitFor('a4, a5, b3', () => s.got.get('chat:a')!.length === 5 && s.got.get('chat:b')!.length === 3)
    await sleep(100)
    assert.deepEqual(offsets(s.got.get('chat:a')), [1, 2, 3, 4, 5])
    assert.deepEqual(offsets(s.got.get('chat:b')), [1, 2, 3])
    assert.deepEqual(s.got.get('chat:a')!.map(([d]) => d), ['a1', 'a2', 'a3', 'a4', 'a5'])
    // The positions the client sent back after the kill.
    if (transport === 'websocket') {
      assert.ok(s.hub.received.some((e) => e.t === 'sub' && e.ch === 'chat:a' && e.e === 'ep-chata-1' && e.o === 3), 'sub chat:a from 3')
      assert.ok(s.hub.received.some((e) => e.t === 'sub' && e.ch === 'chat:b' && e.e === 'ep-chatb-1' && e.o === 2), 'sub chat:b from 2')
      assert.ok(s.hub.requests.filter((r) => r.kind === 'ws').length >= 2, 'a new WebSocket connection')
    } else {
      const kind = transport === 'sse' ? 'sse' : 'poll'
      const after = s.hub.requests.slice(before).filter((r) => r.kind === kind)
      assert.ok(
        after.some((r) => {
          const ch = r.url.searchParams.getAll('ch')
          return ch.includes('chat:a@ep-chata-1/3') && ch.includes('chat:b@ep-chatb-1/2')
        }),
        `a ${kind} request with ch=chat:a@ep-chata-1/3&ch=chat:b@ep-chatb-1/2 among ${after.map((r) => r.url.search).join(' ')}`,
      )
    }
  })
}

test('falls back from WebSocket to SSE when the upgrade is refused with 400', async (t) => {
  const s = await setup(t, { ws: 'refuse' })
  s.sub('news')
  await s.connected('sse')
  // fallbackAfter (2) refused upgrades, then SSE.
  assert.equal(s.hub.requests.filter((r) => r.kind === 'ws').length, 2)
  assert.deepEqual(
    s.states.map((x) => [x.state, x.transport]),
    [['connecting', 'websocket'], ['reconnecting', 'websocket'], ['reconnecting', 'sse'], ['connected', 'sse']],
  )
  await waitFor('the starting position', () => s.client.position('news'))
  s.hub.publish('news', 'n1')
  s.hub.publish('news', 'n2')
  await waitFor('2 messages', () => s.got.get('news')!.length === 2)
  assert.deepEqual(s.got.get('news'), [['n1', 1], ['n2', 2]])
  // Publishing goes over POST P publish on an HTTP transport.
  const ack = await within(s.client.publish('news', 'from the client'), 'the ack')
  assert.deepEqual(ack, { e: 'ep-news-1', o: 3 })
  assert.ok(s.hub.requests.some((r) => r.kind === 'publish'))
  await waitFor('its own message back', () => s.got.get('news')!.length === 3)
})

test('falls back to long polling when SSE fails too', async (t) => {
  const s = await setup(t, { ws: 'refuse', sse: 'fail', pollHold: 300 })
  s.sub('news')
  await s.connected('long-poll')
  assert.equal(s.hub.requests.filter((r) => r.kind === 'sse').length, 2)
  await waitFor('the starting position', () => s.client.position('news'))
  s.hub.publish('news', 'n1')
  await waitFor('n1', () => s.got.get('news')!.length === 1)
  const ack = await within(s.client.publish('news', 'n2'), 'the ack')
  assert.deepEqual(ack, { e: 'ep-news-1', o: 2 })
  await waitFor('n2', () => s.got.get('news')!.length === 2)
  assert.deepEqual(s.got.get('news'), [['n1', 1], ['n2', 2]])
  // Held polls say who they are (maxPollsPerClient) and where the client is.
  const held = s.hub.requests.filter((r) => r.kind === 'poll' && r.url.searchParams.get('wait') === '1')
  assert.ok(held.length > 0)
  assert.ok(held.every((r) => (r.url.searchParams.get('client') ?? '').length >= 16))
  assert.ok(held.every((r) => /^news@ep-news-1\/\d+$/.test(r.url.searchParams.get('ch') ?? '')))
})

test('a publish made while disconnected is queued, then sent once connected and acked once', async (t) => {
  const s = await setup(t, { down: true })
  const acked: Position[] = []
  const p = s.client.publish('chat:a', { text: 'queued' })
  void p.then((pos) => acked.push(pos))
  await waitFor('two failed attempts', () => s.states.filter((x) => x.state === 'reconnecting').length >= 2)
  assert.equal(acked.length, 0)
  assert.equal(s.hub.messages('chat:a').length, 0)
  s.hub.modes.down = false
  const pos = await within(p, 'the ack')
  assert.deepEqual(pos, { e: 'ep-chata-1', o: 1 })
  await sleep(100)
  assert.deepEqual(acked, [pos])
  assert.equal(s.hub.messages('chat:a').length, 1)
  assert.deepEqual(s.hub.messages('chat:a')[0]!.d, { text: 'queued' })
  const pubs = s.hub.received.filter((e) => e.t === 'pub')
  assert.equal(new Set(pubs.map((e) => e.id)).size, 1, 'every send carries the same id')
})

test('a publish whose ack was lost is sent again with the same id, and stored once', async (t) => {
  const s = await setup(t, { swallowAcks: 1 })
  await s.connected('websocket')
  const p = s.client.publish('chat:a', 'once')
  await waitFor('the first pub', () => s.hub.received.some((e) => e.t === 'pub'))
  s.hub.kill()
  const pos = await within(p, 'the ack after the reconnect')
  assert.deepEqual(pos, { e: 'ep-chata-1', o: 1 })
  const pubs = s.hub.received.filter((e) => e.t === 'pub')
  assert.equal(pubs.length, 2)
  assert.equal(pubs[0]!.id, pubs[1]!.id)
  assert.match(String(pubs[0]!.id), /^[0-9a-f-]{32,36}$/)
  assert.equal(s.hub.messages('chat:a').length, 1)
})

test('a publish the hub refuses rejects with its code; close() rejects what is pending', async (t) => {
  const s = await setup(t)
  s.sub('chat:a')
  await s.connected('websocket')
  await assert.rejects(within(s.client.publish('forbidden:x', 1), 'the err'), (err: unknown) => err instanceof RealtimeError && err.code === 'forbidden')
  s.hub.modes.down = true
  s.hub.kill()
  await waitFor('reconnecting', () => s.states.at(-1)!.state === 'reconnecting')
  const p = s.client.publish('chat:a', 'never')
  s.client.close()
  await assert.rejects(p, (err: unknown) => err instanceof RealtimeError && err.code === 'closed')
  assert.equal(s.client.state, 'closed')
  assert.equal(s.states.at(-1)!.state, 'closed')
})

test('a gap: the position is not in the history any more, the application is told and the stream goes on', async (t) => {
  const s = await setup(t)
  const gaps: GapEvent[] = []
  s.client.on('gap', (g) => gaps.push(g))
  s.hub.publish('chat:a', 'old')
  s.sub('chat:a', { e: 'an-epoch-long-gone', o: 7 })
  await s.connected('websocket')
  await waitFor('the gap', () => gaps.length === 1)
  assert.deepEqual(gaps[0], { channel: 'chat:a', from: { e: 'an-epoch-long-gone', o: 7 }, to: { e: 'ep-chata-1', o: 1 }, restarted: true })
  s.hub.publish('chat:a', 'new')
  await waitFor('the next message', () => s.got.get('chat:a')!.length === 1)
  assert.deepEqual(s.got.get('chat:a'), [['new', 2]])
})

test('unsubscribing stops delivery and tells the hub', async (t) => {
  const s = await setup(t)
  const stop = s.sub('chat:a')
  await s.connected('websocket')
  await waitFor('the starting position', () => s.client.position('chat:a'))
  s.hub.publish('chat:a', 1)
  await waitFor('1 message', () => s.got.get('chat:a')!.length === 1)
  stop()
  await waitFor('the unsub frame', () => s.hub.received.some((e) => e.t === 'unsub' && e.ch === 'chat:a'))
  s.hub.inject({ t: 'msg', ch: 'chat:a', e: 'ep-chata-1', o: 9, d: 'late' })
  s.hub.publish('chat:a', 2)
  await sleep(100)
  assert.deepEqual(s.got.get('chat:a'), [[1, 1]])
  assert.equal(s.client.position('chat:a'), undefined)
})

test('backoff: full jitter within [0, min(max, base * 2^attempt)), the ceiling doubling up to max', () => {
  const opts = { base: 100, max: 5000 }
  const ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(backoffDelay(attempt, opts, () => 0), 0)
    assert.equal(backoffDelay(attempt, opts, () => 0.999999), ceiling - 1)
  })
  assert.equal(backoffDelay(1000, opts, () => 0.5), 2500) // no overflow for long outages
  // A seeded generator (mulberry32): deterministic, yet spread over the whole range.
  let seed = 42
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const ceiling = Math.min(opts.max, opts.base * 2 ** attempt)
    const samples = Array.from({ length: 400 }, () => backoffDelay(attempt, opts, random))
    assert.ok(samples.every((d) => Number.isInteger(d) && d >= 0 && d < ceiling), `attempt ${attempt} in [0, ${ceiling})`)
    assert.ok(Math.min(...samples) < ceiling * 0.1 && Math.max(...samples) > ceiling * 0.9, `attempt ${attempt} spread over the range`)
  }
})

test('reconnecting: the delays grow within their bounds and the transports are tried in order', async (t) => {
  const backoff = { base: 20, max: 160 }
  const s = await setup(t, { down: true }, { backoff })
  s.sub('chat:a')
  await waitFor('8 retries', () => s.states.filter((x) => x.state === 'reconnecting').length >= 8)
  const retries = s.states.filter((x) => x.state === 'reconnecting').slice(0, 8)
  retries.forEach((r, i) => {
    assert.equal(r.attempt, i + 1)
    const ceiling = Math.min(backoff.max, backoff.base * 2 ** i)
    assert.ok(r.delay! >= 0 && r.delay! < ceiling, `retry ${i + 1}: ${r.delay} in [0, ${ceiling})`)
  })
  // Two failures each (fallbackAfter), then the next; after the last, round to the best again.
  assert.deepEqual(
    retries.map((r) => r.transport),
    ['websocket', 'sse', 'sse', 'long-poll', 'long-poll', 'poll', 'poll', 'websocket'],
  )
  assert.ok(s.errors.every((e) => e.code === 'transport'))
})

test('websocket heartbeat: a connection that stops answering pings is replaced', async (t) => {
  const s = await setup(t, { pong: false }, { transports: ['websocket'], pingInterval: 100, pongTimeout: 150 })
  s.sub('chat:a')
  await s.connected('websocket')
  await waitFor('a heartbeat error', () => s.errors.some((e) => e.code === 'heartbeat'))
  await waitFor('a second connection', () => s.hub.requests.filter((r) => r.kind === 'ws').length >= 2)
  await waitFor('the sub sent again', () => s.hub.received.filter((e) => e.t === 'sub').length >= 2)
  assert.ok(s.hub.received.some((e) => e.t === 'ping'))
})

test('websocket heartbeat: pings answered with pong keep the connection', async (t) => {
  const s = await setup(t, { pong: true }, { transports: ['websocket'], pingInterval: 50, pongTimeout: 1000 })
  await s.connected('websocket')
  await waitFor('5 pings', () => s.hub.received.filter((e) => e.t === 'ping').length >= 5)
  assert.equal(s.hub.requests.filter((r) => r.kind === 'ws').length, 1)
  assert.equal(s.hub.live.ws, 1)
  assert.deepEqual(s.errors, [])
})

test('sse: keep-alive comments keep the stream; silence past sseIdleTimeout replaces it', async (t) => {
  const s = await setup(t, { keepAlive: 50 }, { transports: ['sse'], sseIdleTimeout: 400 })
  s.sub('chat:a')
  await s.connected('sse')
  await sleep(900) // over twice the idle timeout, kept alive by comments alone
  assert.equal(s.hub.requests.filter((r) => r.kind === 'sse').length, 1)
  assert.deepEqual(s.errors, [])
  s.hub.modes.keepAlive = 0
  await waitFor('a heartbeat error', () => s.errors.some((e) => e.code === 'heartbeat'))
  await waitFor('a new stream', () => s.hub.requests.filter((r) => r.kind === 'sse').length >= 2)
})

test('moves back up to WebSocket once it works, without losing or repeating a message', async (t) => {
  const s = await setup(t, { ws: 'refuse' }, { upgradeInterval: 200 })
  s.sub('chat:a')
  await s.connected('sse')
  await waitFor('the starting position', () => s.client.position('chat:a'))
  s.hub.publish('chat:a', 1)
  s.hub.publish('chat:a', 2)
  await waitFor('2 messages', () => s.got.get('chat:a')!.length === 2)
  const refused = s.hub.requests.filter((r) => r.kind === 'ws').length
  await waitFor('an upgrade attempt', () => s.hub.requests.filter((r) => r.kind === 'ws').length > refused, 3000)
  assert.equal(s.client.transport, 'sse') // the refused probe changed nothing
  s.hub.modes.ws = 'ok'
  await s.connected('websocket')
  s.hub.publish('chat:a', 3)
  await waitFor('the 3rd message', () => s.got.get('chat:a')!.length === 3)
  await sleep(100)
  assert.deepEqual(s.got.get('chat:a'), [[1, 1], [2, 2], [3, 3]])
  assert.ok(s.hub.received.some((e) => e.t === 'sub' && e.ch === 'chat:a' && e.o === 2), 'the WebSocket subscription resumed after 2')
  await waitFor('the SSE stream closed', () => s.hub.live.sse === 0)
})

test('SseParser: events split anywhere, CRLF, CR, comments, multi-line data, BOM', () => {
  const stream = '\ufeffretry: 1000\r\n\r\n: keep-alive\n\nid: a@e/1\ndata: {"t":"sub"}\n\nevent: other\ndata: x\n\ndata: line1\rdata:line2\r\n\r\ndata\n\nid: b@e/2\ndata: last\n\n'
  const want = [
    { type: 'message', data: '{"t":"sub"}', id: 'a@e/1' },
    { type: 'other', data: 'x', id: 'a@e/1' },
    { type: 'message', data: 'line1\nline2', id: 'a@e/1' },
    { type: 'message', data: '', id: 'a@e/1' },
    { type: 'message', data: 'last', id: 'b@e/2' },
  ]
  // Whole, then cut at every position (a CRLF split across two chunks included).
  assert.deepEqual(new SseParser().push(stream), want)
  for (let cut = 1; cut < stream.length; cut++) {
    const p = new SseParser()
    assert.deepEqual([...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut))], want, `cut at ${cut}`)
  }
  const bytewise = new SseParser()
  assert.deepEqual([...stream].flatMap((c) => bytewise.push(c)), want)
})

test('connect() checks its arguments', () => {
  assert.throws(() => connect('ftp://x/live/'), TypeError)
  assert.throws(() => connect('http://127.0.0.1:1/live/', { transports: [] }), TypeError)
  assert.throws(() => connect('http://127.0.0.1:1/live/', { transports: ['carrier-pigeon' as TransportName] }), TypeError)
  const c = connect('http://127.0.0.1:1/live/', { transports: ['poll'] })
  try {
    assert.throws(() => c.subscribe('bad name!', () => {}), TypeError)
    assert.throws(() => c.subscribe('x'.repeat(129), () => {}), TypeError)
  } finally {
    c.close()
  }
})

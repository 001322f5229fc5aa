import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Engine, HistoryLimits, Message, Position, PresenceEvent, PublishResult, Since } from '../../src/realtime/engine.ts'
import { Hub, messageJson, type ChannelRule, type Direct } from '../../src/realtime/hub.ts'
import { MemoryEngine } from '../../src/realtime/memory-engine.ts'

/**
 * The hub's per-channel fan-out (src/realtime/hub.ts, `follow` and
 * `fanOut`): one engine listener per channel; subscribers that have caught
 * up get each message in one flat loop (direct ones as the same bytes,
 * written straight to their sockets); subscribers that join while messages
 * are published get each message once, in order, whatever the timing of
 * the history read and the live messages.
 */

const RULE: ChannelRule = { pattern: 'c:*', publish: 'clients', subscribe: 'anyone', history: { size: 100, age: 0 }, presence: false }

/** The memory engine, counting listeners, with hooks around `since` and optionally live messages delivered late (as a
 * shared engine's pub/sub may deliver them after its storage already holds them). */
class TestEngine implements Engine {
  readonly mem = new MemoryEngine()
  listens = 0
  /** Runs inside `since`, after the history was read and before it is answered. */
  duringSince: (() => void) | undefined
  /** Live messages wait here until `flush` when set. */
  late: Array<() => void> | undefined
  publishNow(ch: string, d: unknown): Message {
    return this.mem.publishNow(ch, d, { history: RULE.history }).message
  }
  publish(ch: string, data: unknown, opts: { id?: string | undefined; history: HistoryLimits }): Promise<PublishResult> {
    return this.mem.publish(ch, data, opts)
  }
  async since(ch: string, after: Position, history: HistoryLimits): Promise<Since> {
    const s = this.mem.sinceNow(ch, after, history)
    this.duringSince?.()
    await Promise.resolve()
    return s
  }
  position(ch: string): Promise<Position> {
    return this.mem.position(ch)
  }
  listen(ch: string, listener: (m: Message) => void): () => void {
    this.listens++
    const stop = this.mem.listen(ch, (m) => (this.late ? this.late.push(() => listener(m)) : listener(m)))
    return () => {
      this.listens--
      stop()
    }
  }
  flush(): void {
    for (const f of this.late?.splice(0) ?? []) f()
  }
  join(ch: string, who: string): Promise<void> {
    return this.mem.join(ch, who)
  }
  leave(ch: string, who: string): Promise<void> {
    return this.mem.leave(ch, who)
  }
  members(ch: string): Promise<string[]> {
    return this.mem.members(ch)
  }
  listenPresence(ch: string, listener: (event: PresenceEvent) => void): () => void {
    return this.mem.listenPresence(ch, listener)
  }
  close(): Promise<void> {
    return this.mem.close()
  }
}

/** A subscriber: what reached it through `send` (envelopes) and, for a direct one, what was written to its socket. */
function subscriber(opts: { direct?: boolean; frame?: (json: string, m: Message) => Buffer; limit?: number } = {}) {
  const envelopes: Array<{ t: string; e?: string; o?: number }> = []
  const writes: Buffer[] = []
  const conn = { readyState: 1 }
  const socket = {
    writableLength: 0,
    write(b: Buffer) {
      writes.push(b)
      return true
    },
  }
  const direct: Direct | undefined = opts.direct ? { socket, conn, limit: opts.limit ?? 1000, frame: opts.frame ?? ((json) => Buffer.from(json)) } : undefined
  const send = (json: string) => envelopes.push(JSON.parse(json) as { t: string; e?: string; o?: number })
  /** Every message's offset, in the order it arrived, from either path. */
  const offsets = () => [...envelopes.filter((x) => x.t === 'msg').map((x) => x.o!), ...writes.map((b) => (JSON.parse(b.toString()) as { o: number }).o)]
  return { envelopes, writes, conn, socket, direct, send, offsets }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

test('one engine listener per channel, whatever the number of subscribers; none once they all left', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const stops = []
  for (let i = 0; i < 50; i++) stops.push(await hub.follow('c:a', undefined, RULE, subscriber().send))
  stops.push(await hub.follow('c:b', undefined, RULE, subscriber().send))
  assert.equal(engine.listens, 2)
  for (const stop of stops) stop()
  assert.equal(engine.listens, 0)
})

test('caught-up direct subscribers get one frame per message, made once and written to every socket; the others get send', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  let framed = 0
  const frame = (json: string) => {
    framed++
    return Buffer.from(json)
  }
  const direct = [subscriber({ direct: true, frame }), subscriber({ direct: true, frame }), subscriber({ direct: true, frame })]
  const plain = subscriber()
  for (const s of direct) await hub.follow('c:a', undefined, RULE, s.send, undefined, s.direct)
  await hub.follow('c:a', undefined, RULE, plain.send)
  const sent = [engine.publishNow('c:a', 'x'), engine.publishNow('c:a', 'y'), engine.publishNow('c:a', 'z')]
  assert.equal(framed, 3, 'one frame per message')
  for (const s of direct) {
    assert.deepEqual(s.envelopes.map((x) => x.t), ['sub'], 'the confirmation through send, the messages on the socket')
    assert.deepEqual(s.writes.map((b) => b.toString()), sent.map(messageJson))
    s.writes.forEach((b, i) => assert.equal(b, direct[0]!.writes[i], 'the same Buffer for every socket'))
  }
  assert.deepEqual(plain.offsets(), [1, 2, 3])
})

test('a direct subscriber that is not open, or holds more than its limit, gets that message through send', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const closing = subscriber({ direct: true })
  const full = subscriber({ direct: true, limit: 100 })
  const fine = subscriber({ direct: true, limit: 100 })
  for (const s of [closing, full, fine]) await hub.follow('c:a', undefined, RULE, s.send, undefined, s.direct)
  engine.publishNow('c:a', 1)
  closing.conn.readyState = 2 // CLOSING: no data frame after a Close frame (RFC 6455 §5.5.1)
  full.socket.writableLength = 101
  fine.socket.writableLength = 100
  engine.publishNow('c:a', 2)
  full.socket.writableLength = 0
  engine.publishNow('c:a', 3)
  assert.deepEqual([closing.writes.length, closing.envelopes.filter((x) => x.t === 'msg').map((x) => x.o)], [1, [2, 3]])
  assert.deepEqual([full.writes.length, full.envelopes.filter((x) => x.t === 'msg').map((x) => x.o)], [2, [2]])
  assert.deepEqual([fine.writes.length, fine.envelopes.filter((x) => x.t === 'msg').length], [3, 0])
  assert.deepEqual(full.offsets().sort(), [1, 2, 3])
})

test('subscribing during a publish: history, held and live messages, each once and in order', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const live = subscriber({ direct: true })
  await hub.follow('c:a', undefined, RULE, live.send, undefined, live.direct)
  const { e } = await engine.position('c:a')
  for (let i = 1; i <= 5; i++) engine.publishNow('c:a', i)
  // A subscriber resuming after 2: while its history (3..5) is read, 6 and 7 are published (held, then merged).
  const late = subscriber({ direct: true })
  engine.duringSince = () => {
    engine.publishNow('c:a', 6)
    engine.publishNow('c:a', 7)
  }
  const following = hub.follow('c:a', { e, o: 2 }, RULE, late.send, undefined, late.direct)
  engine.duringSince = undefined
  await following
  engine.publishNow('c:a', 8)
  assert.deepEqual(live.offsets(), range(1, 8))
  assert.deepEqual(late.envelopes[0], { t: 'sub', ch: 'c:a', e, o: 2 })
  assert.deepEqual(late.offsets(), range(3, 8))
  assert.deepEqual(late.envelopes.filter((x) => x.t === 'msg').map((x) => x.o), [3, 4, 5, 6, 7], 'the replay through send; live ones on the socket')
  assert.deepEqual(late.writes.length, 1)
})

test('live messages that reach the hub after the history already held them: nothing twice, nothing skipped', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const first = subscriber({ direct: true })
  await hub.follow('c:a', undefined, RULE, first.send, undefined, first.direct)
  const { e } = await engine.position('c:a')
  engine.late = []
  for (let i = 1; i <= 4; i++) engine.publishNow('c:a', i) // stored, not yet delivered live
  const second = subscriber({ direct: true })
  await hub.follow('c:a', { e, o: 0 }, RULE, second.send, undefined, second.direct) // its history holds 1..4 already
  assert.deepEqual(second.offsets(), [1, 2, 3, 4])
  engine.flush() // 1..4 arrive live: new to the first, already had by the second
  engine.late = undefined
  engine.publishNow('c:a', 5)
  engine.publishNow('c:a', 6)
  assert.deepEqual(first.offsets(), range(1, 6))
  assert.deepEqual(second.offsets(), range(1, 6))
  assert.equal(second.writes.length, 2, 'on the direct path once it stood where the first one stands')
})

test('a subscriber cut during a fan-out (its own send, or another one of the same loop) gets nothing more; the rest get every message once', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const subs = Array.from({ length: 6 }, () => subscriber({ direct: true }))
  const stops: Array<() => void> = []
  // The second one is over its limit: its send cuts it (as a slow consumer), and cuts the fifth one too, whose turn
  // in the same loop has not come yet.
  let armed = false
  const cutter = (json: string) => {
    if (!armed || !json.startsWith('{"t":"msg"')) return subs[1]!.send(json)
    armed = false
    stops[1]!()
    stops[4]!()
  }
  for (const [k, s] of subs.entries()) stops.push(await hub.follow('c:a', undefined, RULE, k === 1 ? cutter : s.send, undefined, s.direct))
  subs[1]!.socket.writableLength = 5000
  armed = true
  engine.publishNow('c:a', 1)
  engine.publishNow('c:a', 2)
  for (const k of [0, 2, 3, 5]) assert.deepEqual(subs[k]!.offsets(), [1, 2], `subscriber ${k}`)
  assert.deepEqual(subs[1]!.offsets(), [])
  assert.equal(engine.listens, 1)
  assert.deepEqual(subs[4]!.offsets(), [], 'cut before its turn in the same loop: not written to')
  for (const k of [0, 2, 3, 5]) stops[k]!()
  assert.equal(engine.listens, 0)
})

test("an epoch change reaching live subscribers: gap just before the new epoch's message, then it", async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  let deliver: (m: Message) => void = () => {}
  const listen = engine.listen.bind(engine)
  engine.listen = (ch, l) => {
    deliver = l
    return listen(ch, l)
  }
  const a = subscriber({ direct: true })
  const b = subscriber()
  await hub.follow('c:a', undefined, RULE, a.send, undefined, a.direct)
  await hub.follow('c:a', undefined, RULE, b.send)
  engine.publishNow('c:a', 1)
  deliver(Object.freeze({ ch: 'c:a', e: 'newEpoch', o: 7, d: 'after', at: 0 }))
  for (const s of [a, b]) {
    const seen = [...s.envelopes.filter((x) => x.t !== 'sub').map((x) => `${x.t} ${x.e === 'newEpoch' ? 'new' : 'old'}/${x.o}`), ...s.writes.map((w) => `msg ${(JSON.parse(w.toString()) as { e: string }).e === 'newEpoch' ? 'new' : 'old'}/${(JSON.parse(w.toString()) as { o: number }).o}`)]
    assert.deepEqual(seen.sort(), ['gap new/6', 'msg new/7', 'msg old/1'])
  }
  assert.deepEqual(b.envelopes.map((x) => x.t), ['sub', 'msg', 'gap', 'msg'], 'in that order')
})

test('a send that throws (breaking the listener contract) leaves no fan stuck: stopping every follower still releases the channel', async () => {
  const engine = new TestEngine()
  const hub = new Hub([RULE], engine, { maxMessageSize: 1024 })
  const ok = subscriber({ direct: true })
  const bad = (json: string) => {
    if (json.startsWith('{"t":"msg"')) throw new Error('a broken transport')
  }
  const stops = [await hub.follow('c:a', undefined, RULE, bad), await hub.follow('c:a', undefined, RULE, ok.send, undefined, ok.direct)]
  assert.throws(() => engine.publishNow('c:a', 1), /a broken transport/)
  for (const stop of stops) stop()
  assert.equal(engine.listens, 0)
})

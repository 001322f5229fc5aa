import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Dispatcher } from 'undici'
import { collect, Exchange, tee, type BodySink } from '../../src/modules/proxy/exchange.ts'

/** The controller undici hands a dispatch handler, reduced to what Exchange uses. */
function controller(): Dispatcher.DispatchController & { aborts: Error[]; pauses: number; resumes: number } {
  let paused = false
  const c = {
    aborts: [] as Error[],
    pauses: 0,
    resumes: 0,
    get aborted() {
      return c.aborts.length > 0
    },
    get paused() {
      return paused
    },
    get reason() {
      return c.aborts[0] ?? null
    },
    abort(err: Error) {
      c.aborts.push(err)
    },
    pause() {
      paused = true
      c.pauses++
    },
    resume() {
      paused = false
      c.resumes++
    },
  }
  return c
}

function recorder(accept = true): BodySink & { got: string[]; ended: boolean; failed: Error | null } {
  const r = {
    got: [] as string[],
    ended: false,
    failed: null as Error | null,
    data(chunk: Buffer) {
      r.got.push(chunk.toString())
      return accept
    },
    end() {
      r.ended = true
    },
    error(err: Error) {
      r.failed = err
    },
  }
  return r
}

test('a body that arrives whole before anyone attaches is kept and delivered in order', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 100, {}) // informational: skipped
  x.onResponseStart(c, 200, { 'content-type': 'text/plain' })
  x.onResponseData(c, Buffer.from('ab'))
  x.onResponseData(c, Buffer.from('cd'))
  x.onResponseEnd()
  const head = await x.head
  assert.equal(head.status, 200)
  const sink = recorder()
  head.body.attach(sink)
  assert.deepEqual(sink.got, ['ab', 'cd'])
  assert.equal(sink.ended, true)
  assert.equal(c.aborts.length, 0)
})

test('a sink that cannot take more pauses the upstream until resume()', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 200, {})
  const sink = recorder(false)
  ;(await x.head).body.attach(sink)
  x.onResponseData(c, Buffer.from('1'))
  assert.equal(c.paused, true)
  x.resume()
  assert.equal(c.paused, false)
})

test('unattached chunks beyond 64 KiB pause the upstream; attaching resumes it', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 200, {})
  x.onResponseData(c, Buffer.alloc(64 * 1024))
  assert.equal(c.paused, true)
  ;(await x.head).body.attach(recorder())
  assert.equal(c.paused, false)
})

test('a failure before the head rejects it; after the head it reaches the sink', async () => {
  const early = new Exchange()
  early.onResponseError(null, new Error('refused'))
  await assert.rejects(early.head, /refused/)

  const late = new Exchange()
  const c = controller()
  late.onRequestStart(c)
  late.onResponseStart(c, 200, {})
  const sink = recorder()
  ;(await late.head).body.attach(sink)
  late.onResponseError(c, new Error('reset'))
  assert.equal(sink.failed?.message, 'reset')
  assert.equal(sink.ended, false)
})

test('abandon() before the request started drops it as soon as it starts, without aborting the connection; onDone runs once', async () => {
  let done = 0
  const x = new Exchange(() => done++)
  x.abandon()
  await assert.rejects(x.head, { name: 'AbortError' })
  assert.equal(x.wasAbandoned, true)
  const c = controller()
  // undici catches this and drops the request before writing it; abort() would destroy the connection
  assert.throws(() => x.onRequestStart(c), { name: 'AbortError' })
  assert.equal(c.aborts.length, 0)
  x.onResponseError(c, new Error('aborted'))
  x.destroy()
  assert.equal(done, 1)
})

test('destroy() after a complete body changes nothing', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 200, {})
  x.onResponseEnd()
  x.destroy()
  assert.equal(c.aborts.length, 0)
})

test('collect: a body within the limit comes back whole', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 200, {})
  x.onResponseData(c, Buffer.from('hello '))
  x.onResponseData(c, Buffer.from('world'))
  x.onResponseEnd()
  const got = await collect((await x.head).body, 100)
  assert.equal(got.body?.toString(), 'hello world')
})

test('collect: past the limit, rest replays what was read and goes on, even when the body had already ended', async () => {
  const x = new Exchange()
  const c = controller()
  x.onRequestStart(c)
  x.onResponseStart(c, 200, {})
  for (const part of ['aaaa', 'bbbb', 'cccc']) x.onResponseData(c, Buffer.from(part))
  x.onResponseEnd()
  const got = await collect((await x.head).body, 6)
  assert.equal(got.body, null)
  const sink = recorder()
  got.rest!.attach(sink)
  assert.equal(sink.got.join(''), 'aaaabbbbcccc')
  assert.equal(sink.ended, true)
})

test('tee: the observer sees every chunk and learns whether the body completed', async () => {
  for (const complete of [true, false]) {
    const x = new Exchange()
    const c = controller()
    x.onRequestStart(c)
    x.onResponseStart(c, 200, {})
    const seen: string[] = []
    let outcome: boolean | null = null
    const body = tee((await x.head).body, { data: (b) => seen.push(b.toString()), end: (ok) => (outcome = ok) })
    const sink = recorder()
    body.attach(sink)
    x.onResponseData(c, Buffer.from('xy'))
    if (complete) x.onResponseEnd()
    else x.onResponseError(c, new Error('reset'))
    body.destroy() // as the client side does on close: must not change the outcome
    assert.deepEqual(seen, ['xy'])
    assert.deepEqual(sink.got, ['xy'])
    assert.equal(outcome, complete)
  }
})

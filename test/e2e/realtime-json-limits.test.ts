import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { openWs } from '../helpers/realtime-clients.ts'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * JSON from clients nested too deep (docs/realtime.md, "Limits on client
 * JSON"): `[[[[...]]]]` or `{"a":{"a":...}}` on every path that takes JSON
 * (POST publish, api/publish, WebSocket frames) is refused before it is
 * parsed, with a message that names the problem, and the next good request
 * or connection is served. The route keeps the default maxMessageSize
 * (64 KiB), so a WebSocket frame has room for 30,000 levels.
 */

const KEY = 'publish-key-0123456789'
/** 100,000 levels of arrays are 200 KB, within the publish body limit (256 KiB here); objects 40,000 (240 KB). */
const DEEP = 100_000
let srv: TestServer
let P: string

before(async () => {
  srv = await startServer({ sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'chat:*': {} }, publishKey: KEY } }] }] })
  P = srv.url + 'live/'
})
after(() => srv.close())

const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n)
const objects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
/** A publish envelope around `data` (itself one level deeper than the data's own nesting). */
const pub = (data: string) => `{"t":"pub","ch":"chat:deep","d":${data}}`

/** `p`, or a rejection naming `what` once `ms` pass. */
function within<T>(p: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

const REFUSED = '400 Bad Request: the body is JSON nested deeper than 64 levels\n'

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    const post = (path: string, body: string, auth = false) =>
      request(protocol, P + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${KEY}` } : {}) }, body })

    test('publish: 100,000 nested arrays or 40,000 nested objects get 400 naming the depth; the next publish is served', async () => {
      for (const body of [pub(arrays(DEEP)), pub(objects(40_000)), arrays(DEEP)]) {
        const r = await post('publish', body)
        assert.equal(r.status, 400)
        assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8')
        assert.equal(r.text, REFUSED)
      }
      const ok = await post('publish', pub('{"text":"hi"}'))
      assert.equal(ok.status, 200)
      assert.equal((JSON.parse(ok.text) as { t: string }).t, 'ack')
    })

    test('publish: 64 levels in all (the envelope counts) are taken, 65 are not', async () => {
      const at = await post('publish', pub(arrays(63)))
      assert.equal(at.status, 200, at.text)
      assert.equal((JSON.parse(at.text) as { t: string }).t, 'ack')
      const over = await post('publish', pub(arrays(64)))
      assert.equal(over.status, 400)
      assert.equal(over.text, REFUSED)
    })

    test('api/publish: 100,000 nested arrays or 40,000 nested objects get 400 naming the depth; the next publish is served', async () => {
      for (const body of [`{"ch":"chat:deep","d":${arrays(DEEP)}}`, `[{"ch":"chat:deep","d":${objects(40_000)}}]`]) {
        const r = await post('api/publish', body, true)
        assert.equal(r.status, 400)
        assert.equal(r.text, REFUSED)
      }
      const ok = await post('api/publish', '{"ch":"chat:deep","d":"fine"}', true)
      assert.equal(ok.status, 200)
      assert.equal((JSON.parse(ok.text) as { t: string }).t, 'ack')
    })

    test('a body over the size bound (4 x maxMessageSize, at least 256 KiB) gets 413 before it is read, whatever its depth; the next publish is served', async () => {
      const r = await post('publish', '['.repeat(256 * 1024 + 1))
      assert.equal(r.status, 413)
      // HTTP/1.1 declares Content-Length (refused unread), h2c here does not (refused as the bytes pass the bound).
      assert.match(r.text, /^413 Payload Too Large: request body (of 262145 bytes )?is larger than the limit of 262144( bytes)?\n$/)
      assert.equal((await post('publish', pub('"fine"'))).status, 200)
    })

    test('brackets inside strings do not count', async () => {
      const r = await post('publish', pub(JSON.stringify('['.repeat(1000) + '"\\' + '{'.repeat(1000))))
      assert.equal(r.status, 200, r.text)
    })
  })
}

describe('WebSocket', () => {
  const open = () => openWs(P.replace(/^http/, 'ws') + 'ws')

  test('a frame nested 30,000 deep (arrays or objects) closes with 1007 naming the depth; a new connection is served', async () => {
    for (const frame of [pub(arrays(30_000)), pub(objects(10_000))]) {
      assert.ok(frame.length < 64 * 1024 + 1024, 'within maxPayload: the depth, not the size, is refused')
      const c = await open()
      c.ws.send(frame)
      assert.deepEqual(await within(c.closed, 'the close'), { code: 1007, reason: 'JSON nested deeper than 64 levels' })
      assert.deepEqual(c.got, [], 'nothing was published or answered')
    }
    const next = await open()
    next.ws.send(pub('"fine"'))
    await next.next((f) => f.t === 'ack')
    next.ws.close()
  })

  test('a frame of exactly 64 levels is taken', async () => {
    const c = await open()
    c.ws.send(pub(arrays(63)))
    await c.next((f) => f.t === 'ack')
    c.ws.close()
  })
})

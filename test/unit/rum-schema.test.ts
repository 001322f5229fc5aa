import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MAX_BATCH_BYTES, MAX_GIF_DATA, parseBatch, parseGifQuery, type Batch } from '../../src/rum/schema.ts'

/** The example of docs/monitoring.md, "The wire format (version 1)". */
const EXAMPLE = {
  v: 1,
  pv: 'k3J9x2Qw',
  cached: false,
  page: '/docs/intro',
  release: '2026.12.1',
  env: 'production',
  device: { w: 1280, dpr: 2, conn: '4g', saveData: false, mobile: false },
  events: [
    { t: 'vital', at: 1840, name: 'LCP', value: 1840.5, rating: 'good', attr: { element: 'img.hero', url: '/hero.avif' } },
    { t: 'nav', at: 0, type: 'navigate', protocol: 'h2', phases: { redirect: 0, dns: 12, tcp: 20, tls: 25, ttfb: 80, transfer: 15, dom: 220, load: 30 } },
    { t: 'resource', at: 900, url: '/img/slow.jpg', initiator: 'img', duration: 3200, status: 200, size: 812000, failed: false },
    { t: 'error', at: 2100, kind: 'error', message: 'x is not a function', stack: 'TypeError: x is not a function\n    at f (https://example.com/app.min.js:1:2345)', count: 1 },
    { t: 'api', at: 2500, method: 'POST', url: '/api/items', status: 500, duration: 130, outcome: 'error' },
    { t: 'route', at: 5000, pv: 'Zq81mNa0', from: '/docs/intro', to: '/docs/next' },
  ],
}

type Json = Record<string, unknown>
const clone = (): Json => JSON.parse(JSON.stringify(EXAMPLE)) as Json
const events = (b: Json): Json[] => b.events as Json[]

function refused(value: unknown): string {
  const r = parseBatch(typeof value === 'string' ? value : JSON.stringify(value))
  assert.equal(r.ok, false, `expected a refusal of ${JSON.stringify(value).slice(0, 200)}`)
  return (r as { error: string }).error
}

function accepted(value: unknown): Batch {
  const r = parseBatch(JSON.stringify(value))
  if (!r.ok) assert.fail(r.error)
  return r.batch
}

test('the documented example is a valid batch, kept as sent', () => {
  const batch = accepted(EXAMPLE)
  assert.deepEqual(batch, EXAMPLE)
})

test('cached defaults to false; release, env, device and attr are optional', () => {
  const b = clone()
  delete b.cached
  delete b.release
  delete b.env
  delete b.device
  delete events(b)[0]!.attr
  delete events(b)[1]!.protocol
  delete events(b)[3]!.stack
  const batch = accepted(b)
  assert.equal(batch.cached, false)
  assert.equal(batch.release, undefined)
  assert.equal(accepted({ ...b, device: {} }).device?.w, undefined)
  assert.equal(accepted({ ...b, events: [] }).events.length, 0)
})

test('the error names the path of the problem, on one line', () => {
  const b = clone()
  events(b)[3] = { ...events(b)[3], count: 0 }
  assert.match(refused(b), /^events\[3\]\.count: /)
  const c = clone()
  events(c)[0] = { ...events(c)[0], value: -1 }
  assert.match(refused(c), /^events\[0\]\.value: /)
  const d = clone()
  ;(events(d)[1]!.phases as Json).dns = 'x'
  assert.match(refused(d), /^events\[1\]\.phases\.dns: /)
  for (const e of [refused(b), refused(c), refused(d)]) assert.doesNotMatch(e, /\n/)
})

test('several problems: the first is named and the rest counted', () => {
  const b = clone()
  b.pv = ''
  b.v = 2
  assert.match(refused(b), /\(and 1 more problem\)$/)
})

test('version, pv and page are checked', () => {
  assert.match(refused({ ...clone(), v: 2 }), /^v: /)
  assert.match(refused({ ...clone(), v: '1' }), /^v: /)
  assert.match(refused({ ...clone(), pv: '' }), /^pv: /)
  assert.match(refused({ ...clone(), pv: 'a'.repeat(65) }), /^pv: /)
  assert.match(refused({ ...clone(), pv: 'a b' }), /^pv: /)
  assert.equal(accepted({ ...clone(), pv: 'A-z_9'.padEnd(64, 'x') }).pv.length, 64)
  assert.match(refused({ ...clone(), page: 'docs' }), /^page: /)
  assert.match(refused({ ...clone(), page: '//evil.example/x' }), /^page: /)
  assert.match(refused({ ...clone(), page: 'javascript:alert(1)' }), /^page: /)
  assert.match(refused({ ...clone(), page: '/' + 'a'.repeat(2048) }), /^page: /)
  assert.equal(accepted({ ...clone(), page: 'https://other.example/p' }).page, 'https://other.example/p')
  assert.match(refused({ ...clone(), release: 'r'.repeat(129) }), /^release: /)
  assert.match(refused({ ...clone(), env: 'e'.repeat(129) }), /^env: /)
})

test('unknown keys are refused everywhere: batch, device, event, phases', () => {
  assert.match(refused({ ...clone(), extra: 1 }), /^\(root\): unknown key "extra"/)
  assert.match(refused({ ...clone(), device: { w: 1, cpu: 8 } }), /^device: unknown key "cpu"/)
  const b = clone()
  events(b)[2] = { ...events(b)[2], secret: 'x' }
  assert.match(refused(b), /^events\[2\]: unknown key "secret"/)
  const c = clone()
  ;(events(c)[1]!.phases as Json).paint = 1
  assert.match(refused(c), /^events\[1\]\.phases: unknown key "paint"/)
})

test('device fields are typed', () => {
  assert.match(refused({ ...clone(), device: { w: 1.5 } }), /^device\.w: /)
  assert.match(refused({ ...clone(), device: { dpr: -1 } }), /^device\.dpr: /)
  assert.match(refused({ ...clone(), device: { mobile: 'yes' } }), /^device\.mobile: /)
  assert.match(refused({ ...clone(), device: { saveData: 1 } }), /^device\.saveData: /)
  assert.match(refused({ ...clone(), device: { conn: 4 } }), /^device\.conn: /)
})

test('event kinds: an unknown t is refused at events[i].t', () => {
  const b = clone()
  events(b)[4] = { ...events(b)[4], t: 'log' }
  assert.match(refused(b), /^events\[4\]\.t: /)
})

test('at is finite, 0..86_400_000', () => {
  for (const bad of [-1, 86_400_001]) {
    const b = clone()
    events(b)[0]!.at = bad
    assert.match(refused(b), /^events\[0\]\.at: /)
  }
  const b = clone()
  events(b)[0]!.at = 86_400_000
  accepted(b)
  // 1e999 is valid JSON that parses to Infinity
  const text = JSON.stringify(EXAMPLE).replace('"at":1840', '"at":1e999')
  assert.match(refused(text), /^events\[0\]\.at: /)
  const value = JSON.stringify(EXAMPLE).replace('"value":1840.5', '"value":1e999')
  assert.match(refused(value), /^events\[0\]\.value: /)
})

test('vital: name and rating enums, value >= 0, attr at most 16 keys of strings or numbers', () => {
  const vital = (over: Json) => ({ ...clone(), events: [{ ...EXAMPLE.events[0], ...over }] })
  assert.match(refused(vital({ name: 'FID' })), /^events\[0\]\.name: /)
  assert.match(refused(vital({ rating: 'bad' })), /^events\[0\]\.rating: /)
  assert.match(refused(vital({ value: -0.1 })), /^events\[0\]\.value: /)
  accepted(vital({ name: 'CLS', value: 0 }))
  const attr16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i % 2 ? i : `v${i}`]))
  accepted(vital({ attr: attr16 }))
  assert.match(refused(vital({ attr: { ...attr16, k16: 1 } })), /^events\[0\]\.attr: .*16/)
  assert.match(refused(vital({ attr: { a: true } })), /^events\[0\]\.attr\.a: /)
  assert.match(refused(vital({ attr: { a: 'x'.repeat(2049) } })), /^events\[0\]\.attr\.a: /)
})

test('nav: all eight phases, finite and non-negative', () => {
  const b = clone()
  delete (events(b)[1]!.phases as Json).load
  assert.match(refused(b), /^events\[1\]\.phases\.load: /)
  const c = clone()
  ;(events(c)[1]!.phases as Json).tls = -5
  assert.match(refused(c), /^events\[1\]\.phases\.tls: /)
})

test('resource, error, api and route fields', () => {
  const one = (i: number, over: Json) => {
    const b = clone()
    events(b)[i] = { ...events(b)[i], ...over }
    return b
  }
  assert.match(refused(one(2, { status: 1000 })), /^events\[2\]\.status: /)
  assert.match(refused(one(2, { status: 200.5 })), /^events\[2\]\.status: /)
  assert.match(refused(one(2, { size: -1 })), /^events\[2\]\.size: /)
  assert.match(refused(one(2, { failed: 'no' })), /^events\[2\]\.failed: /)
  assert.match(refused(one(2, { duration: -1 })), /^events\[2\]\.duration: /)
  accepted(one(2, { status: 0 }))
  // data: and blob: URLs arrive as their bare scheme
  accepted(one(2, { url: 'data:' }))
  accepted(one(4, { url: 'blob:' }))
  assert.match(refused(one(2, { url: '' })), /^events\[2\]\.url: /)
  assert.match(refused(one(2, { url: 'img.jpg' })), /^events\[2\]\.url: /)
  assert.match(refused({ ...clone(), page: 'data:' }), /^page: /)
  // nextHopProtocol may be empty
  accepted(one(1, { protocol: '' }))
  assert.match(refused(one(1, { protocol: 'h2 x' })), /^events\[1\]\.protocol: /)
  assert.match(refused(one(3, { kind: 'warning' })), /^events\[3\]\.kind: /)
  assert.match(refused(one(3, { message: 'm'.repeat(2049) })), /^events\[3\]\.message: /)
  accepted(one(3, { message: 'm'.repeat(2048), stack: 's'.repeat(16384) }))
  assert.match(refused(one(3, { stack: 's'.repeat(16385) })), /^events\[3\]\.stack: /)
  assert.match(refused(one(3, { count: 10_001 })), /^events\[3\]\.count: /)
  accepted(one(3, { count: 10_000, kind: 'unhandledrejection' }))
  assert.match(refused(one(4, { method: 'GE T' })), /^events\[4\]\.method: /)
  assert.match(refused(one(4, { outcome: 'timeout' })), /^events\[4\]\.outcome: /)
  accepted(one(4, { method: 'PATCH', outcome: 'network', status: 0 }))
  assert.match(refused(one(5, { pv: 'x y' })), /^events\[5\]\.pv: /)
  assert.match(refused(one(5, { to: 'next' })), /^events\[5\]\.to: /)
})

test('at most 100 events', () => {
  const ev = EXAMPLE.events[4]
  accepted({ ...clone(), events: Array(100).fill(ev) })
  assert.match(refused({ ...clone(), events: Array(101).fill(ev) }), /^events: /)
})

test('bodies over 64 KiB are refused before parsing, in UTF-8 bytes', () => {
  const b = clone()
  const fits = JSON.stringify({ ...b, events: [{ ...EXAMPLE.events[3], message: 'x' }] })
  assert.ok(fits.length < MAX_BATCH_BYTES)
  const padded = fits + ' '.repeat(MAX_BATCH_BYTES - fits.length)
  assert.equal(parseBatch(padded).ok, true)
  assert.match(refused(padded + ' '), /larger than 65536 bytes/)
  // multi-byte characters count as their UTF-8 bytes: 'é' is 2
  const wide = fits + 'é'.repeat(Math.ceil((MAX_BATCH_BYTES - fits.length) / 2) + 1)
  assert.ok(wide.length <= MAX_BATCH_BYTES)
  assert.match(refused(wide), /larger than/)
})

test('JSON nested deeper than 8 is refused before parsing', () => {
  assert.match(refused('[[[[[[[[[1]]]]]]]]]'), /nested deeper than 8/)
  // nesting inside strings does not count
  assert.doesNotMatch(refused('{"a":"[[[[[[[[[[[["}'), /nested/)
  const deepAttr = clone()
  events(deepAttr)[0]!.attr = { element: '[[[[[[[[[[{{{{{{{{{{' }
  accepted(deepAttr)
  // the example nests 4 deep (batch, events, event, attr/phases)
  accepted(EXAMPLE)
})

test('invalid JSON and non-objects are refused with a clear message', () => {
  assert.match(refused('{"v":1,'), /^invalid JSON: /)
  assert.match(refused(''), /^invalid JSON: /)
  assert.match(refused('null'), /^\(root\): /)
  assert.match(refused('[]'), /^\(root\): /)
})

test('parseGifQuery: base64url of the same JSON, at most 8 KiB', () => {
  const d = Buffer.from(JSON.stringify(EXAMPLE)).toString('base64url')
  const r = parseGifQuery(d)
  assert.ok(r.ok)
  assert.deepEqual(r.batch, EXAMPLE)
  // padding is allowed
  const padded = Buffer.from(JSON.stringify(EXAMPLE)).toString('base64')
  assert.equal(parseGifQuery(padded.replace(/\+/g, '-').replace(/\//g, '_')).ok, true)
  const big = parseGifQuery('A'.repeat(MAX_GIF_DATA + 1))
  assert.equal(big.ok, false)
  assert.match((big as { error: string }).error, /larger than 8192/)
  for (const bad of ['', 'a+b/', 'abc!', 'abcde']) assert.equal(parseGifQuery(bad).ok, false, bad)
  // bytes that are not UTF-8
  assert.match((parseGifQuery(Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')) as { error: string }).error, /UTF-8/)
  // the same schema applies
  const wrong = Buffer.from(JSON.stringify({ ...EXAMPLE, v: 2 })).toString('base64url')
  assert.match((parseGifQuery(wrong) as { error: string }).error, /^v: /)
})

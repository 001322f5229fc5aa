import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'
import { fingerprint, openSqliteRumStore, type ErrorGroup } from '../../src/rum/store.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The collector's Sentry endpoints over real sockets, with hand-made
 * envelopes (https://develop.sentry.dev/sdk/data-model/envelopes/): a good
 * envelope's error lands in the same group as the same error from the
 * Edgebox SDK; a store request is taken; a wrong or missing key is 401, a
 * bad envelope 400 (nothing of it stored), other item types are skipped, and
 * the next good envelope is stored.
 */

const PROJECT = '42'
const KEY = '0123456789abcdef0123456789abcdef'
const ENVELOPE = `_edgebox/rum/sentry/api/${PROJECT}/envelope/`
const STORE = `_edgebox/rum/sentry/api/${PROJECT}/store/`

let box: TestServer
let dataDir: string
let cleanup: () => void

before(async () => {
  let root: string
  ;({ dir: root, cleanup } = tempDir())
  dataDir = path.join(root, 'data')
  mkdirSync(path.join(root, 'www'))
  writeFileSync(path.join(root, 'www', 'index.html'), '<!doctype html><title>t</title>')
  box = await startServer({
    dataDir,
    sites: [{ rum: { sentry: { project: PROJECT, key: KEY } }, origins: ['https://partner.example'], routes: [{ path: '/', static: { root: path.join(root, 'www') } }] }],
  })
})

after(async () => {
  await box?.close()
  cleanup?.()
})

/** A Sentry browser event for `type: value`, thrown in `fn` of `file` (called from main.js: frames oldest first). */
const sentryEvent = (type: string, value: string, fn: string, file: string, extra: Record<string, unknown> = {}) => ({
  event_id: 'fc6d8c0c43fc4630ad850ee518f1b9d0',
  timestamp: 1767225600.123,
  platform: 'javascript',
  level: 'error',
  release: 'r1',
  environment: 'production',
  request: { url: 'https://shop.example/cart?coupon=SECRET1', headers: { 'User-Agent': 'Mozilla/5.0' } },
  contexts: { trace: { trace_id: '5b8efff798038103d269b633813fc60c', span_id: 'eee19b7ec3c1b174' }, browser: { name: 'Chrome', version: '140.0' } },
  breadcrumbs: [{ message: 'clicked ann@example.com' }],
  user: { ip_address: '203.0.113.9' },
  exception: {
    values: [
      {
        type,
        value,
        mechanism: { type: 'auto.browser.global_handlers.onerror', handled: false },
        stacktrace: {
          frames: [
            { filename: 'https://example.com/main.js', function: '?', lineno: 1, colno: 1, in_app: true },
            { filename: 'https://example.com/main.js', function: 'main', lineno: 5, colno: 9, in_app: true },
            { filename: file, function: fn, lineno: 90, colno: 3, in_app: true },
          ],
        },
      },
    ],
  },
  ...extra,
})

/** An envelope of items: `[header, payload, withLength]`; payloads are JSON values or raw text. */
function envelope(items: Array<[Record<string, unknown>, unknown, boolean?]>, header: Record<string, unknown> = { event_id: 'fc6d8c0c43fc4630ad850ee518f1b9d0', sent_at: '2026-01-01T00:00:00.000Z' }): string {
  const lines = [JSON.stringify(header)]
  for (const [h, payload, withLength] of items) {
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload, null, withLength ? 2 : undefined)
    lines.push(JSON.stringify(withLength ? { ...h, length: Buffer.byteLength(text) } : h), text)
  }
  return lines.join('\n') + '\n'
}

/** What @sentry/browser sends: text/plain (no preflight), the key in the query. */
const send = (where: string, body: string, key: string | null = KEY, headers: Record<string, string> = {}) =>
  request('http/1.1', `${box.url}${where}${key === null ? '' : `?sentry_version=7&sentry_key=${key}&sentry_client=sentry.javascript.browser%2F11.17.0`}`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers },
    body,
  })

const SDK_MESSAGE = 'TypeError: x is not a function'
const SDK_STACK = 'TypeError: x is not a function\n    at f (https://example.com/app.js:1:20)\n    at main (https://example.com/main.js:5:9)'

test('a good envelope is stored in the same error group as the same error from the Edgebox SDK', async () => {
  const sdk = await request('http/1.1', `${box.url}_edgebox/rum/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ v: 1, pv: 'sdk-view', page: '/cart', events: [{ t: 'error', at: 10, kind: 'error', message: SDK_MESSAGE, stack: SDK_STACK, count: 1 }] }),
  })
  assert.equal(sdk.status, 204, sdk.text)
  // an event item with a length (its payload pretty-printed, newlines inside), a session and a client report around it
  const body = envelope([
    [{ type: 'session' }, { sid: 'a', status: 'ok' }],
    [{ type: 'event', content_type: 'application/json' }, sentryEvent('TypeError', 'x is not a function', 'f', 'https://example.com/app.js'), true],
    [{ type: 'client_report' }, { timestamp: 1, discarded_events: [] }],
  ])
  const r = await send(ENVELOPE, body)
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(JSON.parse(r.text), { id: 'fc6d8c0c43fc4630ad850ee518f1b9d0' })
  // the key in X-Sentry-Auth instead of the query, and an item without a length
  const h = await send(ENVELOPE, envelope([[{ type: 'event' }, sentryEvent('TypeError', 'x is not a function', 'f', 'https://example.com/app.js', { contexts: { trace: { trace_id: '6b8efff798038103d269b633813fc60c' } } })]]), null, {
    'x-sentry-auth': `Sentry sentry_version=7, sentry_client=sentry.javascript.browser/11.17.0, sentry_key=${KEY}`,
  })
  assert.equal(h.status, 200, h.text)
})

test('a store request (one event as JSON) is stored', async () => {
  const r = await send(STORE, JSON.stringify(sentryEvent('RangeError', 'stored via /store/ for bob@example.com', 'g', 'https://example.com/store.js')))
  assert.equal(r.status, 200, r.text)
})

test('a wrong or missing key: 401 with the reason, nothing stored', async () => {
  const body = envelope([[{ type: 'event' }, sentryEvent('Error', 'must not be stored: wrong key', 'h', 'https://example.com/k.js')]])
  const wrong = await send(ENVELOPE, body, 'ffffffffffffffffffffffffffffffff')
  assert.equal(wrong.status, 401)
  assert.match(wrong.text, /not this project's/)
  const none = await send(ENVELOPE, body, null)
  assert.equal(none.status, 401)
  assert.match(none.text, /no Sentry key/)
})

test('bad envelopes: 400 (413 when too large) with the reason, nothing of them stored, and the next good one is', async () => {
  const ev = sentryEvent('Error', 'must not be stored: bad envelope', 'h', 'https://example.com/bad.js')
  const evText = JSON.stringify(ev)
  const cases: Array<[string, string, number, RegExp]> = [
    ['a bad JSON header', `{"event_id":\n${envelope([[{ type: 'event' }, ev]]).split('\n').slice(1).join('\n')}`, 400, /envelope header: invalid JSON/],
    ['a length past the end', `{}\n${JSON.stringify({ type: 'event' })}\n${evText}\n${JSON.stringify({ type: 'attachment', length: 5000 })}\nshort\n`, 400, /item 1 header: length 5000 runs past the end/],
    ['a length that is not an integer', `{}\n${JSON.stringify({ type: 'event' })}\n${evText}\n${JSON.stringify({ type: 'event', length: 1.5 })}\n${evText}\n`, 400, /length is not a non-negative integer/],
    ['a length as a string', `{}\n${JSON.stringify({ type: 'event', length: '12' })}\n${evText}\n`, 400, /length is not a non-negative integer/],
    ['an item header without type', `{}\n${JSON.stringify({ type: 'event' })}\n${evText}\n{"length":2}\n{}\n`, 400, /item 1 header: no type/],
    ['more than 100 items', `{}\n${JSON.stringify({ type: 'event' })}\n${evText}\n${'{"type":"session"}\n{}\n'.repeat(100)}`, 400, /more than 100 items/],
    ['nesting deeper than 16', `{}\n${JSON.stringify({ type: 'event' })}\n${JSON.stringify({ ...ev, extra: JSON.parse('['.repeat(20) + ']'.repeat(20)) })}\n`, 400, /deeper than 16/],
    ['an event that is not JSON', `{}\n${JSON.stringify({ type: 'event' })}\n{"exception":\n`, 400, /item 0 \(event\): invalid JSON/],
    ['a body over 200 KiB', envelope([[{ type: 'event' }, { ...ev, extra: { pad: 'a'.repeat(210 * 1024) } }]]), 413, /./],
  ]
  for (const [what, body, status, why] of cases) {
    const r = await send(ENVELOPE, body)
    assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`)
    assert.match(r.text, why, what)
  }
  const bad = await send(STORE, '[1, 2]')
  assert.equal(bad.status, 400)
  assert.match(bad.text, /expected a JSON object/)
  // and then a good one is stored
  const ok = await send(ENVELOPE, envelope([[{ type: 'event' }, sentryEvent('Error', 'after the bad ones', 'k', 'https://example.com/after.js')]]))
  assert.equal(ok.status, 200, ok.text)
})

test('other item types are skipped: 200, nothing stored', async () => {
  const r = await send(
    ENVELOPE,
    envelope([
      [{ type: 'session' }, { sid: 'b', status: 'exited' }],
      [{ type: 'client_report' }, { discarded_events: [{ reason: 'sample_rate', category: 'error', quantity: 1 }] }],
      [{ type: 'transaction' }, { type: 'transaction', transaction: '/cart', spans: [] }, true],
      [{ type: 'attachment', filename: 'a.bin' }, 'binary\nwith a newline', true],
      [{ type: 'replay_event' }, { replay_id: 'x' }],
    ]),
  )
  assert.equal(r.status, 200, r.text)
  // an event without an exception or a message is skipped too
  const empty = await send(ENVELOPE, envelope([[{ type: 'event' }, { event_id: 'ab', level: 'info' }]]))
  assert.equal(empty.status, 200, empty.text)
})

test('CORS: a partner origin posting text/plain gets its origin back; a preflight is answered; others refused', async () => {
  const body = envelope([[{ type: 'event' }, sentryEvent('TypeError', 'x is not a function', 'f', 'https://example.com/app.js', { contexts: { trace: { trace_id: '7b8efff798038103d269b633813fc60c' } } })]])
  const ok = await send(ENVELOPE, body, KEY, { origin: 'https://partner.example' })
  assert.equal(ok.status, 200, ok.text)
  assert.equal(ok.headers['access-control-allow-origin'], 'https://partner.example')
  const pre = await request('http/1.1', `${box.url}${ENVELOPE}`, { method: 'OPTIONS', headers: { origin: 'https://partner.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-sentry-auth' } })
  assert.equal(pre.status, 204)
  assert.match(String(pre.headers['access-control-allow-headers']), /X-Sentry-Auth/)
  const evil = await send(ENVELOPE, envelope([[{ type: 'event' }, sentryEvent('Error', 'must not be stored: evil', 'h', 'https://example.com/e.js')]]), KEY, { origin: 'https://evil.example' })
  assert.equal(evil.status, 403)
})

test('what is stored: the Sentry errors grouped with the SDK one, scrubbed, nothing of the refused', async () => {
  await box.close()
  const store = await openSqliteRumStore(dataDir)
  let groups: ErrorGroup[]
  try {
    groups = await store.errorGroups({ since: 0, until: Date.now() + 60_000 })
  } finally {
    await store.close()
  }
  const byMessage = new Map(groups.map((g) => [g.message, g]))
  assert.deepEqual([...byMessage.keys()].sort(), ['Error: after the bad ones', 'RangeError: stored via /store/ for [email]', SDK_MESSAGE], JSON.stringify(groups))
  const shared = byMessage.get(SDK_MESSAGE)!
  // the SDK batch, two envelopes and the partner's: four page views, one group, the SDK's own fingerprint
  assert.equal(shared.fingerprint, fingerprint(SDK_MESSAGE, SDK_STACK))
  assert.equal(shared.count, 4)
  assert.equal(shared.pageViews, 4)
  assert.equal(byMessage.get('RangeError: stored via /store/ for [email]')!.count, 1)
})

test('the option: `true` and `{}` still mean rum; a project or key of the wrong form is refused with its path', () => {
  const site = (rum: unknown) => ({ sites: [{ rum, routes: [{ path: '/', static: { root: '.' } }] }] })
  assert.equal(validateConfig(site(true)).sites[0]!.rum, true)
  assert.deepEqual(validateConfig(site({})).sites[0]!.rum, { inject: false, symbolicate: true, maxMapSize: 20 * 1024 ** 2, serveMaps: false })
  assert.equal(validateConfig(site(undefined)).sites[0]!.rum, false)
  assert.throws(() => validateConfig(site({ sentry: { project: 'abc', key: KEY } })), /sites\[0\]\.rum.*project|project id/)
  assert.throws(() => validateConfig(site({ sentry: { project: '42', key: 'XYZ' } })), /public key/)
  assert.throws(() => validateConfig(site({ sentry: { project: '42', key: KEY, secret: 'x' } })), /secret/)
})

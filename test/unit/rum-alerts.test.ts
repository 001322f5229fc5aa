import assert from 'node:assert/strict'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { pino } from 'pino'
import { rumRow } from '../helpers/rum.ts'
import { alertsFile, createAlerts, MAX_OUTBOX, retryAfterMs, signatureHeader, type Alerts } from '../../src/rum/alerts.ts'
import type { RumConfig } from '../../src/rum/config.ts'
import { fingerprint, type RumRow } from '../../src/rum/store.ts'
import { MANUAL_EPOCH, ManualClock, waitFor } from '../helpers/clock.ts'

/** Alerts of real-user monitoring: new and regressed error groups POSTed, signed, to a webhook on loopback. */

const SECRET = 'a-secret-of-24-characters'

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** How the receiver answers one request: a status and headers, or 'hang' (never answers). */
type Answer = { status: number; headers?: Record<string, string> } | 'hang'

/** A webhook receiver on 127.0.0.1: answers the scripted answers in order, then 200. */
async function receiver(answers: Answer[] = []) {
  const got: Received[] = []
  const hanging: ServerResponse[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      got.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      const a = answers.shift() ?? { status: 200 }
      if (a === 'hang') return void hanging.push(res)
      res.writeHead(a.status, a.headers).end('ok')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/rum?x=1`
  return {
    got,
    url,
    bodies: () => got.map((r) => JSON.parse(r.body) as Record<string, unknown>),
    close: async () => {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A pino logger whose records land in an array. */
function captureLog() {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    },
  })
  return { logger: pino({ level: 'info' }, sink), lines }
}

const STACK = 'TypeError: x is not a function\n    at render (https://example.com/app.min.js:1:2345)\n    at main (https://example.com/app.min.js:1:99)'

/** An error row of `message` in `release`. */
function errorRow(message: string, release: string | null, time = MANUAL_EPOCH, extra: Partial<RumRow> = {}): RumRow {
  const stack = extra.stack === undefined ? STACK : extra.stack
  return rumRow({ time, offset: 10, pv: 'pv-1', page: '/checkout', release, env: 'production', address: '203.0.113.0', kind: 'error', name: 'error', message, stack, fingerprint: fingerprint(message, stack), ...extra })
}

/** A row that is not an error, in `release`: the release is deployed. */
function vitalRow(release: string | null, time = MANUAL_EPOCH): RumRow {
  return { ...errorRow('', release, time), kind: 'vital', name: 'LCP', value: 1200, rating: 'good', message: null, stack: null, fingerprint: null }
}

type AlertsConfig = NonNullable<RumConfig['alerts']>

/** Runs `fn` with alerts on a fresh data folder, a manual clock and a receiver; closes everything after. */
async function withAlerts(
  fn: (t: { alerts: Alerts; clock: ManualClock; hook: Awaited<ReturnType<typeof receiver>>; dir: string; lines: Array<Record<string, unknown>>; reopen: () => Promise<Alerts> }) => Promise<void>,
  opts: { answers?: Answer[]; config?: Partial<AlertsConfig> } = {},
): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-alerts-'))
  const hook = await receiver(opts.answers)
  const clock = new ManualClock()
  const { logger, lines } = captureLog()
  const config: AlertsConfig = { webhook: hook.url, secret: SECRET, timeout: 5000, retries: 5, ...opts.config }
  const open = () => createAlerts({ config, dataDir: dir, log: logger, clock })
  let alerts = await open()
  try {
    await fn({
      alerts,
      clock,
      hook,
      dir,
      lines,
      reopen: async () => {
        await alerts.close()
        alerts = await open()
        return alerts
      },
    })
  } finally {
    await alerts.close()
    await hook.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Checks an `Edgebox-Signature` as a receiver would (the docs' snippet). */
function verify(header: string, body: string, secret: string): boolean {
  const m = /^t=(\d+),sha256=([0-9a-f]{64})$/.exec(header)
  if (!m) return false
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest()
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'))
}

test('a new group: one POST with the exact JSON, headers and a verifiable signature; the same group again: nothing', async () => {
  await withAlerts(async ({ alerts, hook, clock, dir }) => {
    const fp = fingerprint('x is not a function', STACK)
    clock.advance(1500)
    alerts.onStored([vitalRow('r1'), errorRow('x is not a function', 'r1', MANUAL_EPOCH + 1000), errorRow('x is not a function', 'r1', MANUAL_EPOCH + 1200, { count: 3 })])
    await alerts.flush()
    assert.equal(hook.got.length, 1)
    const req = hook.got[0]!
    assert.equal(req.method, 'POST')
    assert.equal(req.url, '/hooks/rum?x=1')
    assert.equal(req.headers['content-type'], 'application/json')
    assert.equal(req.headers['user-agent'], 'edgebox')
    assert.equal(req.headers.authorization, undefined)
    assert.deepEqual(JSON.parse(req.body), {
      type: 'new',
      fingerprint: fp,
      message: 'x is not a function',
      release: 'r1',
      env: 'production',
      page: '/checkout',
      firstSeen: '2030-01-01T00:00:01.000Z',
      count: 4,
      topFrame: 'https://example.com/app.min.js:render',
      stack: STACK,
      time: '2030-01-01T00:00:01.500Z',
    })
    // the key order is part of the format
    assert.deepEqual(Object.keys(JSON.parse(req.body) as object), ['type', 'fingerprint', 'message', 'release', 'env', 'page', 'firstSeen', 'count', 'topFrame', 'stack', 'time'])
    const sig = String(req.headers['edgebox-signature'])
    assert.match(sig, /^t=\d+,sha256=[0-9a-f]{64}$/)
    assert.equal(sig.slice(2, sig.indexOf(',')), String(Math.floor((MANUAL_EPOCH + 1500) / 1000)))
    assert.ok(verify(sig, req.body, SECRET))
    assert.equal(verify(sig, req.body.replace('r1', 'r2'), SECRET), false, 'a changed body does not verify')
    assert.equal(verify(sig, req.body, 'another-secret-of-24-chars'), false)
    assert.equal(sig, signatureHeader(SECRET, Math.floor((MANUAL_EPOCH + 1500) / 1000), req.body))

    alerts.onStored([errorRow('x is not a function', 'r1'), errorRow('x is not a function', null)])
    await alerts.flush()
    assert.equal(hook.got.length, 1, 'a known group does not alert again')
    assert.deepEqual({ ...alerts.stats }, { sent: 1, failed: 0, retried: 0, suppressed: 0, dropped: 0 })
    const st = await stat(alertsFile(dir))
    assert.equal(alertsFile(dir), path.join(dir, 'rum', 'alerts.sqlite'))
    assert.equal(st.mode & 0o777, 0o600)
  })
})

test('a new group without a release or a stack, and a webhook without a secret, with credentials in its URL', async () => {
  const hook = await receiver()
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-alerts-'))
  const clock = new ManualClock()
  const u = new URL(hook.url)
  u.username = 'hook'
  u.password = 'p@ss'
  const alerts = await createAlerts({ config: { webhook: u.href, timeout: 5000, retries: 0 }, dataDir: dir, log: pino({ level: 'silent' }), clock })
  try {
    const long = ['Error: deep', ...Array.from({ length: 30 }, (_, i) => `    at f${i} (https://example.com/a.js:${i}:1)`)].join('\n')
    alerts.onStored([errorRow('boom', null, MANUAL_EPOCH, { stack: null, fingerprint: null, env: null }), errorRow('deep', null, MANUAL_EPOCH, { stack: long, fingerprint: null })])
    await alerts.flush()
    assert.equal(hook.got.length, 2)
    const [a, b] = hook.bodies()
    assert.deepEqual(a, {
      type: 'new',
      fingerprint: fingerprint('boom', null),
      message: 'boom',
      release: null,
      env: null,
      page: '/checkout',
      firstSeen: '2030-01-01T00:00:00.000Z',
      count: 1,
      topFrame: null,
      stack: null,
      time: '2030-01-01T00:00:00.000Z',
    })
    assert.equal(b!.fingerprint, fingerprint('deep', long))
    assert.equal(b!.stack, long.split('\n').slice(0, 20).join('\n'), 'the first 20 lines of the stack')
    assert.equal(b!.topFrame, 'https://example.com/a.js:f0')
    assert.equal(hook.got[0]!.headers['edgebox-signature'], undefined)
    assert.equal(hook.got[0]!.headers.authorization, `Basic ${Buffer.from('hook:p@ss').toString('base64')}`)
  } finally {
    await alerts.close()
    await hook.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test('regression: r1 has G, r2 is deployed without it, r3 has G: one regression alert', async () => {
  await withAlerts(async ({ alerts, hook, clock }) => {
    const t0 = MANUAL_EPOCH
    alerts.onStored([errorRow('G failed', 'r1', t0)])
    clock.advance(60_000)
    alerts.onStored([vitalRow('r2', t0 + 60_000), errorRow('other', 'r2', t0 + 60_000)])
    clock.advance(60_000)
    // a page still on r1 reports G: the group is known in r1, nothing
    alerts.onStored([errorRow('G failed', 'r1', t0 + 90_000)])
    alerts.onStored([vitalRow('r3', t0 + 120_000), errorRow('G failed', 'r3', t0 + 120_000, { count: 2 }), errorRow('G failed', 'r3', t0 + 120_000)])
    await alerts.flush()
    const bodies = hook.bodies()
    assert.deepEqual(bodies.map((b) => [b.type, b.message, b.release]), [['new', 'G failed', 'r1'], ['new', 'other', 'r2'], ['regression', 'G failed', 'r3']])
    assert.deepEqual(bodies[2], {
      type: 'regression',
      fingerprint: fingerprint('G failed', STACK),
      message: 'G failed',
      release: 'r3',
      env: 'production',
      page: '/checkout',
      firstSeen: '2030-01-01T00:00:00.000Z',
      lastSeen: '2030-01-01T00:01:30.000Z',
      lastRelease: 'r1',
      count: 5,
      topFrame: 'https://example.com/app.min.js:render',
      stack: STACK,
      time: '2030-01-01T00:02:00.000Z',
    })
    assert.deepEqual(Object.keys(bodies[2]!), ['type', 'fingerprint', 'message', 'release', 'env', 'page', 'firstSeen', 'lastSeen', 'lastRelease', 'count', 'topFrame', 'stack', 'time'])

    // G in r3 again, and r4 deployed then G without a release: nothing (no release, no regression)
    alerts.onStored([errorRow('G failed', 'r3'), vitalRow('r4'), errorRow('G failed', null)])
    // r5 deployed, then G in r6: r4 and r5 went by without it, so it regressed again, once for r6
    alerts.onStored([vitalRow('r5'), errorRow('G failed', 'r6'), errorRow('G failed', 'r6')])
    await alerts.flush()
    assert.deepEqual(hook.bodies().slice(3).map((b) => [b.type, b.release, b.lastRelease]), [['regression', 'r6', 'r3']])
    assert.equal(alerts.stats.sent, 4)
  })
})

test('no regression: consecutive releases, an older release, or a release seen only without the group before', async () => {
  await withAlerts(async ({ alerts, hook }) => {
    // r0 deployed first, without G
    alerts.onStored([vitalRow('r0')])
    // r1 G, r2 G: seen continuously
    alerts.onStored([errorRow('G', 'r1')])
    alerts.onStored([errorRow('G', 'r2')])
    // r3 and r4 deployed, then G in r3: r3 follows r2 directly
    alerts.onStored([vitalRow('r3'), vitalRow('r4'), errorRow('G', 'r3')])
    // G in r0, deployed before its latest release (a page still open on an old version): nothing
    alerts.onStored([errorRow('G', 'r0')])
    // H first seen without a release, then in r4: it has no release to have gone away from
    alerts.onStored([errorRow('H', null), errorRow('H', 'r4')])
    await alerts.flush()
    assert.deepEqual(hook.bodies().map((b) => [b.type, b.message, b.release]), [['new', 'G', 'r1'], ['new', 'H', null]])
    // H has been seen in r4 now: r5 deployed, H in r6 is a regression (r5 went by without it)
    alerts.onStored([vitalRow('r5'), errorRow('H', 'r6')])
    await alerts.flush()
    assert.deepEqual(hook.bodies().slice(2).map((b) => [b.type, b.message, b.release, b.lastRelease]), [['regression', 'H', 'r6', 'r4']])
  })
})

test('503 twice then 200: delivered on the third attempt, after 1 s then 2 s on the clock', async () => {
  await withAlerts(
    async ({ alerts, hook, clock }) => {
      alerts.onStored([errorRow('flaky', 'r1')])
      await waitFor('the first attempt and its backoff timer', () => hook.got.length === 1 && clock.pending() === 1)
      assert.deepEqual(clock.dueIn(), [1000])
      clock.advance(999)
      assert.equal(hook.got.length, 1)
      clock.advance(1)
      await waitFor('the second attempt and its backoff timer', () => hook.got.length === 2 && clock.pending() === 1)
      assert.deepEqual(clock.dueIn(), [2000])
      clock.advance(2000)
      await alerts.flush()
      assert.equal(hook.got.length, 3)
      assert.equal(hook.got[2]!.body, hook.got[0]!.body, 'the same body each time')
      // each attempt signed at its own time
      assert.notEqual(hook.got[2]!.headers['edgebox-signature'], hook.got[0]!.headers['edgebox-signature'])
      assert.ok(verify(String(hook.got[2]!.headers['edgebox-signature']), hook.got[2]!.body, SECRET))
      assert.deepEqual({ ...alerts.stats }, { sent: 1, failed: 0, retried: 2, suppressed: 0, dropped: 0 })
    },
    { answers: [{ status: 503 }, { status: 503 }, { status: 200 }] },
  )
})

test('429 and 503 with Retry-After: its seconds, at most 60 s; its date; other 5xx use the backoff', async () => {
  await withAlerts(
    async ({ alerts, hook, clock }) => {
      alerts.onStored([errorRow('busy', 'r1')])
      const step = async (n: number, due: number) => {
        await waitFor(`attempt ${n} and its timer`, () => hook.got.length === n && clock.pending() === 1)
        assert.deepEqual(clock.dueIn(), [due], `after attempt ${n}`)
        clock.advance(due)
      }
      await step(1, 7000)
      await step(2, 60_000)
      await step(3, 30_000)
      await step(4, 8000) // 500: the backoff of the fourth retry; Retry-After only counts on 429 and 503
      await alerts.flush()
      assert.equal(hook.got.length, 5)
      assert.deepEqual({ ...alerts.stats }, { sent: 1, failed: 0, retried: 4, suppressed: 0, dropped: 0 })
    },
    {
      answers: [
        { status: 429, headers: { 'retry-after': '7' } },
        { status: 503, headers: { 'retry-after': '3600' } },
        { status: 503, headers: { 'retry-after': new Date(MANUAL_EPOCH + 7000 + 60_000 + 30_000).toUTCString() } },
        { status: 500, headers: { 'retry-after': '1' } },
      ],
    },
  )
  assert.equal(retryAfterMs(null, 0), null)
  assert.equal(retryAfterMs('soon', 0), null)
  assert.equal(retryAfterMs(' 5 ', 0), 5000)
  assert.equal(retryAfterMs(new Date(0).toUTCString(), 10_000), 0, 'a date in the past: at once')
})

test('400: not retried, counted as failed and logged once with the status; the next alert goes on', async () => {
  await withAlerts(
    async ({ alerts, hook, clock, lines }) => {
      alerts.onStored([errorRow('refused', 'r1'), errorRow('accepted', 'r1')])
      await alerts.flush()
      assert.equal(hook.got.length, 2)
      assert.equal(clock.pending(), 0)
      assert.deepEqual({ ...alerts.stats }, { sent: 1, failed: 1, retried: 0, suppressed: 0, dropped: 0 })
      await waitFor('the warning', () => lines.some((l) => l.level === 40))
      const warns = lines.filter((l) => l.level === 40)
      assert.equal(warns.length, 1)
      assert.equal(warns[0]!.msg, 'the webhook refused a monitoring alert; not retried')
      assert.equal(warns[0]!.status, 400)
      assert.equal(warns[0]!.type, 'new')
      assert.equal(warns[0]!.fingerprint, fingerprint('refused', STACK))
      // the origin only: a webhook's path or query often holds its token
      assert.equal(warns[0]!.webhook, new URL(hook.url).origin)
    },
    { answers: [{ status: 400 }] },
  )
})

test('a redirect is not followed: the 3xx is a failure, not retried', async () => {
  await withAlerts(
    async ({ alerts, hook }) => {
      alerts.onStored([errorRow('moved', 'r1')])
      await alerts.flush()
      assert.equal(hook.got.length, 1)
      assert.deepEqual({ ...alerts.stats }, { sent: 0, failed: 1, retried: 0, suppressed: 0, dropped: 0 })
    },
    { answers: [{ status: 308, headers: { location: '/elsewhere' } }] },
  )
})

test('network errors and timeouts are retried; when retries run out, a warning', async () => {
  // nothing listens on the port: connection refused, then one retry
  const closed = await receiver()
  const refusedUrl = closed.url
  await closed.close()
  await withAlerts(
    async ({ alerts, clock, lines }) => {
      alerts.onStored([errorRow('unreachable', 'r1')])
      await waitFor('the backoff after a refused connection', () => clock.pending() === 1)
      assert.deepEqual(clock.dueIn(), [1000])
      clock.advance(1000)
      await alerts.flush()
      assert.deepEqual({ ...alerts.stats }, { sent: 0, failed: 1, retried: 1, suppressed: 0, dropped: 0 })
      await waitFor('the warning', () => lines.some((l) => l.level === 40))
      const warn = lines.find((l) => l.level === 40)!
      assert.equal(warn.msg, 'a monitoring alert could not be delivered to the webhook; given up')
      assert.equal(warn.attempts, 2)
      assert.equal(warn.why, 'ECONNREFUSED')
    },
    { config: { webhook: refusedUrl, retries: 1 } },
  )
  await withAlerts(
    async ({ alerts, hook, lines }) => {
      alerts.onStored([errorRow('slow', 'r1')])
      await alerts.flush()
      assert.equal(hook.got.length, 1)
      assert.deepEqual({ ...alerts.stats }, { sent: 0, failed: 1, retried: 0, suppressed: 0, dropped: 0 })
      await waitFor('the warning', () => lines.some((l) => l.level === 40))
      assert.equal(lines.find((l) => l.level === 40)!.why, 'no answer within 150 ms')
    },
    { answers: ['hang'], config: { timeout: 150, retries: 0 } },
  )
})

test('at most 60 alerts a minute: the rest are suppressed, and the next alert sent says how many', async () => {
  await withAlerts(async ({ alerts, hook, clock }) => {
    alerts.onStored(Array.from({ length: 63 }, (_, i) => errorRow(`error number ${String.fromCharCode(65 + (i % 26))}${Math.floor(i / 26)}x`, 'r1')))
    await alerts.flush()
    assert.equal(hook.got.length, 60)
    assert.ok(hook.bodies().every((b) => !('suppressed' in b)))
    assert.equal(alerts.stats.suppressed, 3)
    // still within the minute: suppressed too
    clock.advance(59_999)
    alerts.onStored([errorRow('one more', 'r1')])
    await alerts.flush()
    assert.equal(hook.got.length, 60)
    assert.equal(alerts.stats.suppressed, 4)
    clock.advance(1)
    alerts.onStored([errorRow('after the minute', 'r1'), errorRow('and another', 'r1')])
    await alerts.flush()
    const [first, second] = hook.bodies().slice(60)
    assert.equal(first!.message, 'after the minute')
    assert.equal(first!.suppressed, 4)
    assert.equal(second!.message, 'and another')
    assert.ok(!('suppressed' in second!), 'carried once')
    // suppressed alerts are not raised again: the groups are known
    clock.advance(120_000)
    alerts.onStored([errorRow('one more', 'r1')])
    await alerts.flush()
    assert.equal(hook.got.length, 62)
    assert.deepEqual({ ...alerts.stats }, { sent: 62, failed: 0, retried: 0, suppressed: 4, dropped: 0 })
  })
})

test('the outbox holds at most 1,000 alerts; more are dropped and counted', async () => {
  await withAlerts(
    async ({ alerts, hook, clock, lines }) => {
      let n = 0
      for (let minute = 0; minute < 17; minute++) {
        alerts.onStored(Array.from({ length: 60 }, () => errorRow(`distinct failure ${String.fromCharCode(97 + (n % 26))}${Math.floor(n++ / 26)}q`, 'r1')))
        clock.advance(60_000)
      }
      assert.equal(n, 1020)
      assert.equal(alerts.stats.dropped, 1020 - MAX_OUTBOX)
      assert.equal(alerts.stats.suppressed, 0)
      assert.equal(hook.got.length <= 1, true)
      await waitFor('the warning', () => lines.some((l) => l.msg === 'monitoring alerts dropped: too many waiting for the webhook'))
    },
    { answers: ['hang'], config: { timeout: 60_000 } },
  )
})

test('the state survives a restart: no second new alert, regressions still found, waiting alerts sent after', async () => {
  await withAlerts(
    async ({ hook, clock, reopen, alerts: first }) => {
      first.onStored([errorRow('G', 'r1')])
      await first.flush()
      assert.equal(hook.got.length, 1)
      let alerts = await reopen()
      alerts.onStored([errorRow('G', 'r1'), vitalRow('r2')])
      await alerts.flush()
      assert.equal(hook.got.length, 1, 'G is known after the restart')
      alerts = await reopen()
      // r2 was recorded before the restart: G in r3 is a regression
      alerts.onStored([errorRow('G', 'r3'), errorRow('H', 'r3')])
      await waitFor('the first attempt (503) and its backoff', () => hook.got.length === 2 && clock.pending() === 1)
      // stopped during the backoff: both alerts wait in the file, and are sent after the next start
      alerts = await reopen()
      await alerts.flush()
      assert.deepEqual(hook.bodies().map((b) => [b.type, b.message, b.release]), [
        ['new', 'G', 'r1'],
        ['regression', 'G', 'r3'],
        ['regression', 'G', 'r3'],
        ['new', 'H', 'r3'],
      ])
      assert.deepEqual({ ...alerts.stats }, { sent: 2, failed: 0, retried: 0, suppressed: 0, dropped: 0 })
    },
    { answers: [{ status: 200 }, { status: 503 }] },
  )
})

test('a state file of a newer schema is refused, naming it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-alerts-'))
  try {
    const config: AlertsConfig = { webhook: 'http://127.0.0.1:9/', timeout: 1000, retries: 0 }
    const a = await createAlerts({ config, dataDir: dir, log: pino({ level: 'silent' }), clock: new ManualClock() })
    await a.close()
    const { DatabaseSync } = await import('node:sqlite')
    const db = new DatabaseSync(alertsFile(dir))
    db.exec('PRAGMA user_version = 99')
    db.close()
    await assert.rejects(createAlerts({ config, dataDir: dir, log: pino({ level: 'silent' }), clock: new ManualClock() }), {
      message: `the RUM alerts state ${alertsFile(dir)} has schema version 99, newer than this Edgebox knows (1); upgrade Edgebox or remove the file`,
    })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

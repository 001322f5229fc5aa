import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { IdpKeys } from '../../src/auth/idp/keys.ts'
import { ManualClock } from '../helpers/clock.ts'

/** The built-in provider's key file: made once (even by two processes at once), rotated, pruned, on the given clock. */

const log = pino({ level: 'silent' })
const HOUR = 3_600_000
const DAY = 24 * HOUR

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-keys-'))
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }))
}

const kidsOf = (k: IdpKeys) => k.generations.map((g) => g.signing.map((s) => s.kid))

test('two first starts at once end with one key file: both read the same keys', async () => {
  await withDir(async (dir) => {
    const clock = new ManualClock()
    const [a, b] = await Promise.all([IdpKeys.open(dir, { rotation: 90 * DAY, retention: 12 * HOUR, clock, log }), IdpKeys.open(dir, { rotation: 90 * DAY, retention: 12 * HOUR, clock, log })])
    assert.deepEqual(kidsOf(a), kidsOf(b))
    const file = path.join(dir, 'auth', 'idp-keys.json')
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.deepEqual(readdirSync(path.join(dir, 'auth')).filter((f) => f !== 'idp-keys.json'), [])
    const jwks = a.jwks()
    assert.deepEqual(jwks.keys.map((k) => k.alg), ['RS256', 'ES256'])
    for (const k of jwks.keys) {
      assert.equal(k.use, 'sig')
      assert.ok(k.d, 'private keys for signing')
    }
    assert.equal(a.cookieKeys().length, 1)
    assert.ok(a.cookieKeys()[0]!.length >= 43)
  })
})

test('rotation: a new generation first after `rotation`; the old one kept for `retention`, then dropped', async () => {
  await withDir(async (dir) => {
    const clock = new ManualClock()
    const keys = await IdpKeys.open(dir, { rotation: DAY, retention: 12 * HOUR, clock, log })
    const first = kidsOf(keys)[0]!
    assert.equal(await keys.refresh(), false)
    const v0 = keys.version
    clock.advance(DAY)
    assert.equal(await keys.refresh(), true)
    assert.notEqual(keys.version, v0)
    assert.equal(keys.generations.length, 2)
    assert.deepEqual(kidsOf(keys)[1], first)
    assert.notDeepEqual(kidsOf(keys)[0], first)
    // the newest signs: its keys come first, and its cookie key
    assert.equal(keys.jwks().keys[0]!.kid, kidsOf(keys)[0]![0])
    assert.equal(keys.cookieKeys()[0], keys.generations[0]!.cookie)
    clock.advance(12 * HOUR - 1)
    assert.equal(await keys.refresh(), false)
    assert.equal(keys.generations.length, 2)
    clock.advance(1)
    assert.equal(await keys.refresh(), true)
    assert.equal(keys.generations.length, 1)
    const onDisk = JSON.parse(readFileSync(keys.where, 'utf8')) as { generations: Array<{ signing: Array<{ kid: string }> }> }
    assert.deepEqual(onDisk.generations.map((g) => g.signing.map((s) => s.kid)), kidsOf(keys))
  })
})

test("a rotation another process wrote is taken, not repeated; a restart after a long stop catches up", async () => {
  await withDir(async (dir) => {
    const clock = new ManualClock()
    const opts = { rotation: DAY, retention: 12 * HOUR, clock, log }
    const a = await IdpKeys.open(dir, opts)
    const b = await IdpKeys.open(dir, opts)
    clock.advance(DAY)
    await a.refresh()
    await b.refresh()
    assert.deepEqual(kidsOf(a), kidsOf(b))
    assert.equal(a.generations.length, 2)
    // stopped for 10 days: one new generation, the others dropped
    clock.advance(10 * DAY)
    const c = await IdpKeys.open(dir, opts)
    assert.equal(c.generations.length, 2, 'the one that signed until now stays published for the retention')
    assert.deepEqual(kidsOf(c)[1], kidsOf(a)[0])
  })
})

test('a damaged key file is refused with its path, never replaced', async () => {
  await withDir(async (dir) => {
    mkdirSync(path.join(dir, 'auth'), { mode: 0o700 })
    const file = path.join(dir, 'auth', 'idp-keys.json')
    writeFileSync(file, '{"version":1,"generations":[]}', { mode: 0o600 })
    await assert.rejects(IdpKeys.open(dir, { rotation: DAY, retention: HOUR, clock: new ManualClock(), log }), (err: Error) => err.message.includes(file))
    assert.equal(readFileSync(file, 'utf8'), '{"version":1,"generations":[]}')
  })
})

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { SqliteIdpStore } from '../../src/auth/idp/store.ts'
import { ManualClock } from '../helpers/clock.ts'

/** The built-in provider's SQLite adapter: oidc-provider's Adapter contract, expiry on the given clock, the TOTP step record. */

async function withStore(fn: (store: SqliteIdpStore, clock: ManualClock, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-store-'))
  const clock = new ManualClock()
  const store = await SqliteIdpStore.open(dir, clock)
  try {
    await fn(store, clock, dir)
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

test('upsert and find, per model; an upsert replaces the payload', async () => {
  await withStore(async (store) => {
    const tokens = store.adapter('AccessToken')
    const sessions = store.adapter('Session')
    await tokens.upsert('t1', { accountId: 'alice', grantId: 'g1' }, 60)
    assert.deepEqual(await tokens.find('t1'), { accountId: 'alice', grantId: 'g1' })
    assert.equal(await sessions.find('t1'), undefined, 'another model does not see it')
    await tokens.upsert('t1', { accountId: 'bob' }, 60)
    assert.deepEqual(await tokens.find('t1'), { accountId: 'bob' })
    assert.equal(await tokens.find('nope'), undefined)
  })
})

test('findByUid and findByUserCode', async () => {
  await withStore(async (store) => {
    const sessions = store.adapter('Session')
    await sessions.upsert('s1', { uid: 'u-1', accountId: 'alice' }, 600)
    assert.deepEqual(await sessions.findByUid('u-1'), { uid: 'u-1', accountId: 'alice' })
    assert.equal(await sessions.findByUid('u-2'), undefined)
    const devices = store.adapter('DeviceCode')
    await devices.upsert('d1', { userCode: 'ABCD-EFGH' }, 600)
    assert.deepEqual(await devices.findByUserCode('ABCD-EFGH'), { userCode: 'ABCD-EFGH' })
  })
})

test('consume marks the payload with the time (seconds); destroy removes it', async () => {
  await withStore(async (store, clock) => {
    const codes = store.adapter('AuthorizationCode')
    await codes.upsert('c1', { accountId: 'alice' }, 60)
    await codes.consume('c1')
    assert.deepEqual(await codes.find('c1'), { accountId: 'alice', consumed: Math.floor(clock.now() / 1000) })
    await codes.destroy('c1')
    assert.equal(await codes.find('c1'), undefined)
  })
})

test("revokeByGrantId removes every model's rows of the grant, and only those", async () => {
  await withStore(async (store) => {
    await store.adapter('AccessToken').upsert('a1', { grantId: 'g1' }, 600)
    await store.adapter('RefreshToken').upsert('r1', { grantId: 'g1' }, 600)
    await store.adapter('AuthorizationCode').upsert('c1', { grantId: 'g1' }, 600)
    await store.adapter('AccessToken').upsert('a2', { grantId: 'g2' }, 600)
    await store.adapter('AccessToken').revokeByGrantId('g1')
    assert.equal(await store.adapter('AccessToken').find('a1'), undefined)
    assert.equal(await store.adapter('RefreshToken').find('r1'), undefined)
    assert.equal(await store.adapter('AuthorizationCode').find('c1'), undefined)
    assert.deepEqual(await store.adapter('AccessToken').find('a2'), { grantId: 'g2' })
  })
})

test('expiry follows the clock: an expired row is never returned, and the sweep deletes it; no expiresIn: kept', async () => {
  await withStore(async (store, clock) => {
    const a = store.adapter('AccessToken')
    await a.upsert('short', { n: 1 }, 60)
    await a.upsert('long', { n: 2 }, 3600)
    await a.upsert('forever', { n: 3 })
    clock.advance(60_000)
    assert.equal(await a.find('short'), undefined)
    assert.deepEqual(await a.find('long'), { n: 2 })
    assert.equal(await store.sweep(), 1)
    clock.advance(3600_000)
    assert.equal(await store.sweep(), 1)
    assert.deepEqual(await a.find('forever'), { n: 3 })
  })
})

test('a TOTP step is accepted once per user, and only after the last one used', async () => {
  await withStore(async (store) => {
    assert.equal(await store.useTotpStep('alice', 100), true)
    assert.equal(await store.useTotpStep('alice', 100), false)
    assert.equal(await store.useTotpStep('alice', 99), false)
    assert.equal(await store.useTotpStep('bob', 100), true)
    assert.equal(await store.useTotpStep('alice', 101), true)
  })
})

test('the file is private (0600 in a 0700 folder), and its state survives a reopen', async () => {
  await withStore(async (store, clock, dir) => {
    await store.adapter('Session').upsert('s1', { accountId: 'alice' }, 600)
    assert.equal(statSync(store.file).mode & 0o777, 0o600)
    assert.equal(statSync(path.join(dir, 'auth')).mode & 0o777, 0o700)
    const again = await SqliteIdpStore.open(dir, clock)
    try {
      assert.deepEqual(await again.adapter('Session').find('s1'), { accountId: 'alice' })
    } finally {
      await again.close()
    }
  })
})

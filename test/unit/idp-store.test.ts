import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { SqliteIdpStore } from '../../src/auth/idp/store.ts'
import { ManualClock } from '../helpers/clock.ts'

/**
 * What only the built-in provider's SQLite store has: its private file. What every store does (oidc-provider's Adapter
 * contract, expiry, the TOTP step record) is the contract suite's (test/contracts/idp-stores.test.ts).
 */

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

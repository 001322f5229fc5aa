import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { test } from 'node:test'
import { hashPassword, UserError, UserStore } from '../../src/auth/users.ts'
import { counterAcceptable, relyingPartyOf, verifyAuthentication, verifyRegistration } from '../../src/auth/idp/webauthn.ts'

/**
 * Passkeys in the user store (src/auth/users.ts): registering, listing,
 * removing, the signature counter's rule (W3C WebAuthn Level 3 §6.1.1), and
 * the migration of a version-1 users.sqlite (users only) to version 2 in
 * place. The ceremonies themselves are driven end to end in
 * test/e2e/idp-passkeys.test.ts.
 */

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-passkeys-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const PW = 'correct horse battery'
const key = (n: number) => new Uint8Array(Array.from({ length: 77 }, (_, i) => (i * 7 + n) & 0xff))
const newId = () => randomBytes(32).toString('base64url')
const HANDLE = randomBytes(64).toString('base64url')

test('passkeys: added, listed oldest first, counted, and found by user (any case); the user handle is reused', async () => {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    try {
      await store.add({ username: 'alice', password: PW })
      await store.add({ username: 'bob', password: PW })
      assert.deepEqual(store.passkeys('alice'), [])
      assert.equal(store.passkeyUserHandle('alice'), null)
      const a1 = newId()
      const a2 = newId()
      const first = store.addPasskey('Alice', { id: a1, userHandle: HANDLE, publicKey: key(1), counter: 0, transports: ['internal', 'hybrid', 'internal', 'Not A Transport'] }, 1_000)
      assert.deepEqual({ ...first, publicKey: [...first.publicKey] }, { id: a1, username: 'alice', userHandle: HANDLE, publicKey: [...key(1)], counter: 0, transports: ['internal', 'hybrid'], createdAt: 1_000, lastUsedAt: null })
      store.addPasskey('alice', { id: a2, userHandle: HANDLE, publicKey: key(2), counter: 7 }, 2_000)
      store.addPasskey('bob', { id: newId(), userHandle: randomBytes(64).toString('base64url'), publicKey: key(3), counter: 0 }, 3_000)
      assert.deepEqual(
        store.passkeys('ALICE').map((p) => [p.id, p.counter, p.createdAt]),
        [
          [a1, 0, 1_000],
          [a2, 7, 2_000],
        ],
      )
      assert.deepEqual(store.passkeys('alice')[1]!.transports, [])
      assert.deepEqual([...store.passkeyCounts()].toSorted(), [
        ['alice', 2],
        ['bob', 1],
      ])
      assert.equal(store.passkeyUserHandle('alice'), HANDLE)
      assert.ok(Object.isFrozen(first))
    } finally {
      store.close()
    }
  })
})

test('passkeys: refused for an unknown user, a credential ID registered already (to anyone), a malformed one', async () => {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    try {
      await store.add({ username: 'alice', password: PW })
      await store.add({ username: 'bob', password: PW })
      const id = newId()
      assert.throws(() => store.addPasskey('nobody', { id, userHandle: HANDLE, publicKey: key(1), counter: 0 }), (e: Error) => e instanceof UserError && /user nobody does not exist/.test(e.message))
      store.addPasskey('alice', { id, userHandle: HANDLE, publicKey: key(1), counter: 0 })
      // W3C WebAuthn Level 3 §7.1 ("not yet registered"): a credential ID is registered once, whoever asks
      assert.throws(() => store.addPasskey('bob', { id, userHandle: HANDLE, publicKey: key(2), counter: 0 }), (e: Error) => e instanceof UserError && /registered already/.test(e.message))
      assert.throws(() => store.addPasskey('alice', { id, userHandle: HANDLE, publicKey: key(2), counter: 0 }), UserError)
      for (const bad of ['', 'has spaces', 'a+b/c=', 'x'.repeat(1365)]) {
        assert.throws(() => store.addPasskey('alice', { id: bad, userHandle: HANDLE, publicKey: key(1), counter: 0 }), UserError, bad)
      }
      assert.throws(() => store.addPasskey('alice', { id: newId(), userHandle: HANDLE, publicKey: key(1), counter: -1 }), UserError)
      assert.throws(() => store.addPasskey('alice', { id: newId(), userHandle: HANDLE, publicKey: key(1), counter: 2 ** 32 }), UserError)
      assert.throws(() => store.addPasskey('alice', { id: newId(), userHandle: HANDLE, publicKey: new Uint8Array(0), counter: 0 }), UserError)
      assert.equal(store.passkeys('alice').length, 1)
      assert.equal(store.passkeys('bob').length, 0)
    } finally {
      store.close()
    }
  })
})

test('passkeys: the counter goes up and is stored with the time of use; backwards or standing still is refused when both are non-zero (§6.1.1)', async () => {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    try {
      await store.add({ username: 'alice', password: PW })
      await store.add({ username: 'bob', password: PW })
      const counting = newId()
      const zero = newId()
      store.addPasskey('alice', { id: counting, userHandle: HANDLE, publicKey: key(1), counter: 0 })
      store.addPasskey('alice', { id: zero, userHandle: HANDLE, publicKey: key(2), counter: 0 })
      const counterOf = (id: string) => store.passkeys('alice').find((p) => p.id === id)!

      assert.equal(store.usePasskey('alice', counting, 5, 10_000), true)
      assert.deepEqual([counterOf(counting).counter, counterOf(counting).lastUsedAt], [5, 10_000])
      assert.equal(store.usePasskey('alice', counting, 3, 11_000), false, 'backwards')
      assert.equal(store.usePasskey('alice', counting, 5, 11_000), false, 'the same count again')
      assert.deepEqual([counterOf(counting).counter, counterOf(counting).lastUsedAt], [5, 10_000], 'a refusal changes nothing')
      assert.equal(store.usePasskey('alice', counting, 6, 12_000), true)
      // an authenticator that stops counting (0) is let in; the stored count does not go down
      assert.equal(store.usePasskey('alice', counting, 0, 13_000), true)
      assert.deepEqual([counterOf(counting).counter, counterOf(counting).lastUsedAt], [6, 13_000])

      // one that never counts (synced passkeys): 0 after 0 is fine, every time
      assert.equal(store.usePasskey('alice', zero, 0, 14_000), true)
      assert.equal(store.usePasskey('alice', zero, 0, 15_000), true)
      assert.equal(counterOf(zero).lastUsedAt, 15_000)

      // another user's passkey, an unknown one, a counter out of range: refused
      assert.equal(store.usePasskey('bob', counting, 100), false)
      assert.equal(store.usePasskey('alice', newId(), 100), false)
      assert.equal(store.usePasskey('alice', counting, 2 ** 32), false)
      assert.equal(store.usePasskey('alice', counting, 1.5), false)

      // the rule itself, as verifyAuthentication applies it before the store does
      assert.equal(counterAcceptable(0, 0), true)
      assert.equal(counterAcceptable(0, 9), true)
      assert.equal(counterAcceptable(9, 0), true)
      assert.equal(counterAcceptable(9, 10), true)
      assert.equal(counterAcceptable(9, 9), false)
      assert.equal(counterAcceptable(9, 8), false)
    } finally {
      store.close()
    }
  })
})

test('passkeys: removed one by one (only the owner\'s), all at once, and with their user', async () => {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    try {
      await store.add({ username: 'alice', password: PW })
      await store.add({ username: 'bob', password: PW })
      const [a1, a2, a3, b1] = [newId(), newId(), newId(), newId()]
      for (const [i, id] of [a1, a2, a3].entries()) store.addPasskey('alice', { id, userHandle: HANDLE, publicKey: key(1), counter: 0 }, 1_000 + i)
      store.addPasskey('bob', { id: b1, userHandle: HANDLE, publicKey: key(1), counter: 0 })
      assert.equal(store.removePasskey('bob', a1), false, "not bob's")
      assert.equal(store.removePasskey('alice', a1), true)
      assert.equal(store.removePasskey('alice', a1), false, 'gone already')
      assert.deepEqual(
        store.passkeys('alice').map((p) => p.id),
        [a2, a3],
      )
      assert.equal(store.removePasskeys('alice'), 2)
      assert.equal(store.removePasskeys('alice'), 0)
      assert.equal(store.passkeyUserHandle('alice'), null)
      assert.ok(store.remove('bob'))
      assert.equal(store.passkeyCounts().size, 0, "bob's passkey went with him")
      // a new bob does not inherit them
      await store.add({ username: 'bob', password: PW })
      assert.deepEqual(store.passkeys('bob'), [])
    } finally {
      store.close()
    }
  })
})

test('migration: a version-1 users.sqlite (as the store wrote it before passkeys) becomes version 2 in place, its users, hashes and secrets intact', async () => {
  await withTemp(async (dir) => {
    // the file exactly as UserStore made it at version 1: WAL, the users table, user_version 1
    const { mkdir } = await import('node:fs/promises')
    await mkdir(path.join(dir, 'auth'), { mode: 0o700 })
    const file = path.join(dir, 'auth', 'users.sqlite')
    const old = new DatabaseSync(file)
    old.exec('PRAGMA journal_mode = WAL')
    old.exec(`CREATE TABLE IF NOT EXISTS users (
      username TEXT PRIMARY KEY NOT NULL,
      email TEXT,
      name TEXT,
      groups_json TEXT NOT NULL DEFAULT '[]',
      password_hash TEXT NOT NULL,
      totp_secret TEXT,
      created_at INTEGER NOT NULL,
      password_changed_at INTEGER NOT NULL,
      disabled INTEGER NOT NULL DEFAULT 0
    ) STRICT`)
    old.exec('PRAGMA user_version = 1')
    const hash = await hashPassword(PW)
    old
      .prepare('INSERT INTO users (username, email, name, groups_json, password_hash, totp_secret, created_at, password_changed_at, disabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)')
      .run('carol', 'carol@example.test', 'Carol', JSON.stringify(['staff']), hash, 'JBSWY3DPEHPK3PXP', 1_700_000_000_000, 1_700_000_000_001)
    old.prepare('INSERT INTO users (username, password_hash, created_at, password_changed_at, disabled) VALUES (?, ?, ?, ?, 1)').run('dan', hash, 1, 2)
    old.close()

    const store = await UserStore.open(dir)
    try {
      assert.deepEqual(store.get('carol'), { username: 'carol', email: 'carol@example.test', name: 'Carol', groups: ['staff'], totpSecret: 'JBSWY3DPEHPK3PXP', createdAt: 1_700_000_000_000, passwordChangedAt: 1_700_000_000_001, disabled: false })
      assert.equal(store.get('dan')!.disabled, true)
      assert.equal((await store.verify('carol', PW))?.username, 'carol')
      assert.deepEqual(store.passkeys('carol'), [])
      const id = newId()
      store.addPasskey('carol', { id, userHandle: HANDLE, publicKey: key(9), counter: 0 })
      assert.equal(store.passkeys('carol')[0]!.id, id)
    } finally {
      store.close()
    }
    const db = new DatabaseSync(file)
    try {
      assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, 2)
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal')
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name)
      assert.deepEqual(tables, ['passkeys', 'users'])
      assert.equal((db.prepare('SELECT password_hash FROM users WHERE username = ?').get('carol') as { password_hash: string }).password_hash, hash)
    } finally {
      db.close()
    }
    // opened again: nothing to migrate, everything still there
    const again = await UserStore.open(dir)
    try {
      assert.equal(again.passkeys('carol').length, 1)
      assert.equal(again.list().length, 2)
    } finally {
      again.close()
    }
  })
})

test('migration: a new file is made at version 2; two stores opening one version-1 file at once both end at version 2', async () => {
  await withTemp(async (dir) => {
    const fresh = await UserStore.open(dir)
    fresh.close()
    const file = path.join(dir, 'auth', 'users.sqlite')
    let db = new DatabaseSync(file)
    assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, 2)
    // back to version 1, as an older Edgebox left it
    db.exec('DROP TABLE passkeys')
    db.exec('PRAGMA user_version = 1')
    db.close()
    const [a, b] = await Promise.all([UserStore.open(dir), UserStore.open(dir)])
    try {
      await a.add({ username: 'erin', password: PW })
      b.addPasskey('erin', { id: newId(), userHandle: HANDLE, publicKey: key(4), counter: 0 })
      assert.equal(a.passkeys('erin').length, 1)
    } finally {
      a.close()
      b.close()
    }
    db = new DatabaseSync(file)
    try {
      assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, 2)
    } finally {
      db.close()
    }
  })
})

test('the relying party is the issuer\'s host name and origin; an issuer on an IP address offers no passkeys', () => {
  assert.deepEqual(relyingPartyOf('https://id.example.com/sub', 'Example'), { id: 'id.example.com', origin: 'https://id.example.com', name: 'Example', usable: true })
  assert.deepEqual(relyingPartyOf('http://id.localhost:8080', 'x'), { id: 'id.localhost', origin: 'http://id.localhost:8080', name: 'x', usable: true })
  assert.equal(relyingPartyOf('http://127.0.0.1:8080', 'x').usable, false)
  assert.equal(relyingPartyOf('http://[::1]:8080', 'x').usable, false)
})

test('answers that are not a credential are refused as malformed, before anything else', async () => {
  const rp = relyingPartyOf('https://id.example.com', 'x')
  for (const field of [null, '', 'not json', '{}', '[]', JSON.stringify({ id: 'a', rawId: 'b', type: 'public-key', response: {} })]) {
    assert.deepEqual(await verifyRegistration(rp, field, 'challenge'), { ok: false, reason: 'malformed' }, String(field))
    assert.deepEqual(await verifyAuthentication(rp, field, 'challenge', []), { ok: false, reason: 'malformed' }, String(field))
  }
})

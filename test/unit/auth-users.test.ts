import { createRequire, syncBuiltinESMExports } from 'node:module'
import assert from 'node:assert/strict'
import { randomBytes, scrypt } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { test } from 'node:test'
import { hashPassword, UserError, UserStore, validatePassword, validateUsername, verifyPassword } from '../../src/auth/users.ts'

/** The user store of the built-in identity provider: scrypt hashes, validation, and the SQLite file. */

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-users-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function withStore(fn: (store: UserStore, dir: string) => Promise<void>): Promise<void> {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    try {
      await fn(store, dir)
    } finally {
      store.close()
    }
  })
}

const PW = 'correct horse battery'

test('hashPassword: the PHC-like format, a new salt each time, and a round trip', async () => {
  const h = await hashPassword(PW)
  const m = /^scrypt\$N=32768,r=8,p=1\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(h)
  assert.ok(m, h)
  assert.equal(Buffer.from(m[1]!, 'base64url').length, 16)
  assert.equal(Buffer.from(m[2]!, 'base64url').length, 32)
  assert.notEqual(await hashPassword(PW), h)
  assert.equal(await verifyPassword(PW, h), true)
  assert.equal(await verifyPassword(PW + '!', h), false)
  assert.equal(await verifyPassword('Correct horse battery', h), false)
})

test('verifyPassword: NFKC before hashing, and malformed or oversized hashes never match', async () => {
  const h = await hashPassword('caf\u00e9 au lait, s\u2019il te pla\u00eet')
  assert.equal(await verifyPassword('cafe\u0301 au lait, s\u2019il te pla\u00eet', h), true)
  for (const bad of ['', 'scrypt', h.replace('scrypt$', 'bcrypt$'), h.replace('N=32768', 'N=1000'), h.replace('N=32768', 'N=4194304'), h.replace(/\$[^$]+$/, '$'), h + '$x', h.replace('r=8', 'r=8,r=8')]) {
    assert.equal(await verifyPassword(PW, bad), false, bad)
  }
})

test('verifyPassword reads the parameters from the string: a hash made with N=16384 still verifies', async () => {
  const salt = randomBytes(16)
  const key = await new Promise<Buffer>((resolve, reject) => scrypt(PW, salt, 32, { N: 16384, r: 8, p: 1 }, (e, k) => (e ? reject(e) : resolve(k))))
  const stored = `scrypt$N=16384,r=8,p=1$${salt.toString('base64url')}$${key.toString('base64url')}`
  assert.equal(await verifyPassword(PW, stored), true)
  assert.equal(await verifyPassword('wrong password!!', stored), false)
})

test('validateUsername and validatePassword name the problem', () => {
  assert.equal(validateUsername('alice'), null)
  assert.equal(validateUsername('Alice.Smith_2-x'), null)
  assert.equal(validateUsername('9lives'), null)
  assert.equal(validateUsername('a'.repeat(64)), null)
  assert.equal(validateUsername(''), 'the username is empty')
  assert.equal(validateUsername('a'.repeat(65)), 'the username is longer than 64 characters')
  assert.equal(validateUsername('al ice'), 'the username "al ice" may hold only letters a-z, digits, ".", "_" and "-"')
  assert.equal(validateUsername('\u00e9lise'), 'the username "\u00e9lise" may hold only letters a-z, digits, ".", "_" and "-"')
  assert.equal(validateUsername('.hidden'), 'the username ".hidden" must start with a letter or a digit')
  assert.equal(validateUsername('-x'), 'the username "-x" must start with a letter or a digit')
  // full-width letters are NFKC-normalised to ASCII
  assert.equal(validateUsername('\uff21lice'), null)

  assert.equal(validatePassword('twelve chars'), null)
  assert.equal(validatePassword('eleven char'), 'the password is shorter than 12 characters')
  // code points, not UTF-16 units: eleven emoji are 22 units but 11 characters
  assert.equal(validatePassword('\u{1F600}'.repeat(11)), 'the password is shorter than 12 characters')
  assert.equal(validatePassword('\u{1F600}'.repeat(12)), null)
  assert.equal(validatePassword('x'.repeat(1024)), null)
  assert.equal(validatePassword('x'.repeat(1025)), 'the password is longer than 1024 bytes')
  assert.equal(validatePassword('\u00e9'.repeat(513)), 'the password is longer than 1024 bytes')
})

test('UserStore: add and get, case-insensitive; list sorted; the hash never in a User', async () => {
  await withStore(async (store) => {
    const before = Date.now()
    const alice = await store.add({ username: 'Alice', password: PW, email: 'alice@example.test', name: 'Alice A.', groups: ['admins', 'ops', 'admins'] })
    assert.equal(alice.username, 'alice')
    assert.equal(alice.email, 'alice@example.test')
    assert.equal(alice.name, 'Alice A.')
    assert.deepEqual(alice.groups, ['admins', 'ops'])
    assert.equal(alice.totpSecret, null)
    assert.equal(alice.disabled, false)
    assert.ok(alice.createdAt >= before && alice.createdAt <= Date.now())
    assert.equal(alice.passwordChangedAt, alice.createdAt)
    assert.deepEqual(store.get('ALICE'), alice)
    assert.deepEqual(store.get('\uff41lice'), alice)
    assert.equal(store.get('bob'), undefined)
    assert.ok(!JSON.stringify(alice).includes('scrypt$'))

    await store.add({ username: 'carol', password: PW })
    await store.add({ username: 'Bob', password: PW })
    assert.deepEqual(
      store.list().map((u) => u.username),
      ['alice', 'bob', 'carol'],
    )
    assert.deepEqual(store.get('carol')!.groups, [])
    assert.equal(store.get('carol')!.email, null)
  })
})

test('UserStore: refusals are UserErrors naming the problem', async () => {
  await withStore(async (store) => {
    await store.add({ username: 'alice', password: PW })
    const refused = async (p: Promise<unknown> | (() => unknown), message: string | RegExp) => {
      const run = typeof p === 'function' ? Promise.resolve().then(p) : p
      await assert.rejects(run, (e: unknown) => {
        assert.ok(e instanceof UserError, String(e))
        if (typeof message === 'string') assert.equal(e.message, message)
        else assert.match(e.message, message)
        return true
      })
    }
    await refused(store.add({ username: 'ALICE', password: PW }), 'user alice exists')
    await refused(store.add({ username: 'bad name', password: PW }), /may hold only/)
    await refused(store.add({ username: 'bob', password: 'short' }), 'the password is shorter than 12 characters')
    await refused(store.add({ username: 'bob', password: PW, email: 'no-at-sign' }), 'the email address "no-at-sign" is not of the form name@domain')
    await refused(store.add({ username: 'bob', password: PW, email: 'a@b@c' }), /is not of the form name@domain/)
    await refused(store.add({ username: 'bob', password: PW, email: 'a b@c.test' }), /contains spaces/)
    await refused(store.add({ username: 'bob', password: PW, email: `${'a'.repeat(250)}@c.test` }), 'the email address is longer than 254 characters')
    await refused(store.add({ username: 'bob', password: PW, groups: ['a,b'] }), /contains a comma/)
    await refused(store.add({ username: 'bob', password: PW, groups: ['a b'] }), /whitespace/)
    await refused(store.add({ username: 'bob', password: PW, groups: [''] }), 'a group name is empty')
    await refused(store.add({ username: 'bob', password: PW, groups: ['g'.repeat(65)] }), /longer than 64 characters/)
    await refused(store.setPassword('nobody', PW), 'user nobody does not exist')
    await refused(store.setPassword('alice', 'short'), 'the password is shorter than 12 characters')
    await refused(() => store.setGroups('nobody', []), 'user nobody does not exist')
    await refused(() => store.setTotpSecret('nobody', 'JBSWY3DPEHPK3PXP'), 'user nobody does not exist')
    assert.equal(store.get('bob'), undefined)
  })
})

test('UserStore: setPassword, setGroups, setTotpSecret, remove, verify', async () => {
  await withStore(async (store) => {
    const alice = await store.add({ username: 'alice', password: PW, groups: ['a'] })
    assert.equal((await store.verify('Alice', PW))?.username, 'alice')
    assert.equal(await store.verify('alice', 'wrong password here'), null)
    assert.equal(await store.verify('nobody', PW), null)
    assert.equal(await store.verify('not a valid name', PW), null)

    await new Promise((r) => setTimeout(r, 5))
    await store.setPassword('ALICE', 'a brand new password')
    assert.equal(await store.verify('alice', PW), null)
    assert.equal((await store.verify('alice', 'a brand new password'))?.username, 'alice')
    assert.ok(store.get('alice')!.passwordChangedAt > alice.passwordChangedAt)
    assert.equal(store.get('alice')!.createdAt, alice.createdAt)

    store.setGroups('alice', ['x', 'y'])
    assert.deepEqual(store.get('alice')!.groups, ['x', 'y'])
    store.setGroups('alice', [])
    assert.deepEqual(store.get('alice')!.groups, [])

    store.setTotpSecret('alice', 'JBSWY3DPEHPK3PXP')
    assert.equal(store.get('alice')!.totpSecret, 'JBSWY3DPEHPK3PXP')
    store.setTotpSecret('alice', null)
    assert.equal(store.get('alice')!.totpSecret, null)

    assert.equal(store.remove('ALICE'), true)
    assert.equal(store.remove('alice'), false)
    assert.equal(store.get('alice'), undefined)
    assert.equal(await store.verify('alice', 'a brand new password'), null)
  })
})

test('UserStore: an unknown user costs a hash too (no fast path that tells names apart)', async () => {
  await withStore(async (store) => {
    await store.add({ username: 'alice', password: PW })
    // count the scrypt calls each check makes (users.ts reads node:crypto's live export)
    const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')
    const real = crypto.scrypt
    let calls = 0
    crypto.scrypt = ((...args: Parameters<typeof real>) => {
      calls++
      return (real as (...a: unknown[]) => void)(...args)
    }) as typeof real
    syncBuiltinESMExports()
    try {
      await store.verify('alice', 'wrong password here')
      const known = calls
      await store.verify('nobody', 'wrong password here')
      assert.equal(known, 1)
      assert.equal(calls - known, 1)
    } finally {
      crypto.scrypt = real
      syncBuiltinESMExports()
    }
  })
})

test('UserStore: the data survives a reopen; the folder is 0700 and the file 0600', async () => {
  await withTemp(async (dir) => {
    const data = path.join(dir, 'data')
    const a = await UserStore.open(data)
    await a.add({ username: 'alice', password: PW, email: 'alice@example.test', groups: ['g'] })
    a.close()
    a.close()
    const b = await UserStore.open(data)
    try {
      assert.equal(b.file, path.join(data, 'auth', 'users.sqlite'))
      assert.equal(b.get('alice')!.email, 'alice@example.test')
      assert.deepEqual(b.get('alice')!.groups, ['g'])
      assert.equal((await b.verify('alice', PW))?.username, 'alice')
    } finally {
      b.close()
    }
    assert.equal((await stat(path.join(data, 'auth'))).mode & 0o777, 0o700)
    assert.equal((await stat(path.join(data, 'auth', 'users.sqlite'))).mode & 0o777, 0o600)
    const db = new DatabaseSync(path.join(data, 'auth', 'users.sqlite'))
    try {
      assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, 2)
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal')
      const row = db.prepare('SELECT password_hash FROM users').get() as { password_hash: string }
      assert.match(row.password_hash, /^scrypt\$N=32768,r=8,p=1\$/)
    } finally {
      db.close()
    }
  })
})

test('UserStore: a file from a newer Edgebox (higher user_version) is refused, naming the file and the versions', async () => {
  await withTemp(async (dir) => {
    const store = await UserStore.open(dir)
    store.close()
    const file = path.join(dir, 'auth', 'users.sqlite')
    const db = new DatabaseSync(file)
    db.exec('PRAGMA user_version = 7')
    db.close()
    await assert.rejects(UserStore.open(dir), (e: Error) => {
      assert.ok(!(e instanceof UserError))
      assert.ok(e.message.includes(file), e.message)
      assert.match(e.message, /user_version 7/)
      assert.match(e.message, /\(2\)/)
      return true
    })
  })
})

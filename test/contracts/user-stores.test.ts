import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, describe, test } from 'node:test'
import { PgUserDirectory } from '../../src/auth/pg-users.ts'
import { SqliteUserDirectory, UserError, type Passkey, type UserDirectory } from '../../src/auth/users.ts'
import { postgresPerFile } from '../helpers/postgres.ts'

/**
 * The built-in provider's users and passkeys (docs/idp.md, docs/scale.md):
 * every UserDirectory answers the same, the SQLite file of one node and the
 * PostgreSQL the nodes share (each PostgreSQL store on a database of its
 * own), with the same refusals in the same words. Then two PostgreSQL
 * stores over one database, as two nodes.
 */

const PASSWORD = 'a password long enough'
const T0 = 1_900_000_000_000

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const { database, connect } = postgresPerFile('users')

/** A store, and how a test disables a user (no method does: an administrator's edit of the store). */
interface Made {
  readonly users: UserDirectory
  disable(username: string): Promise<void>
}

const stores: Array<{ name: string; make: () => Promise<Made> }> = [
  {
    name: 'SqliteUserDirectory',
    make: async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-users-contract-'))
      dirs.push(dir)
      const users = await SqliteUserDirectory.open(dir)
      return {
        users,
        async disable(username) {
          const db = new DatabaseSync(users.file)
          db.prepare('UPDATE users SET disabled = 1 WHERE username = ?').run(username)
          db.close()
        },
      }
    },
  },
  {
    name: 'PgUserDirectory',
    make: async () => {
      const pg = await connect(await database())
      return {
        users: await PgUserDirectory.open(pg),
        async disable(username) {
          await pg.pool.query('UPDATE idp_users SET disabled = true WHERE username = $1', [username])
        },
      }
    },
  },
]

/** Rejects with a UserError of exactly `message`. */
const refused = (message: string) => (err: unknown) => {
  assert.ok(err instanceof UserError, `a UserError, not ${String(err)}`)
  assert.equal(err.message, message)
  return true
}

const key = (id: string, over: Partial<{ userHandle: string; publicKey: Uint8Array; counter: number; transports: string[] }> = {}) => ({
  id,
  userHandle: 'aGFuZGxl',
  publicKey: new Uint8Array([0xa5, 1, 2, 3, 0]),
  counter: 0,
  ...over,
})

const plainPasskey = (p: Passkey) => ({ ...p, publicKey: [...p.publicKey], transports: [...p.transports] })

for (const { name, make } of stores) {
  describe(`user store contract: ${name}`, () => {
    async function withUsers(fn: (users: UserDirectory, made: Made) => Promise<void>): Promise<void> {
      const made = await make()
      try {
        await fn(made.users, made)
      } finally {
        await made.users.close()
      }
    }

    test('add, then get in any case: every field as given, normalised, frozen; never the hash', async () => {
      await withUsers(async (users) => {
        const before = Date.now()
        const added = await users.add({ username: 'Ａlice', password: PASSWORD, email: 'alice@example.com', name: 'Alice Liddell', groups: ['staff', 'ops', 'staff'] })
        const expected = { username: 'alice', email: 'alice@example.com', name: 'Alice Liddell', groups: ['staff', 'ops'], totpSecret: null, disabled: false }
        assert.deepEqual({ ...added, groups: [...added.groups], createdAt: 0, passwordChangedAt: 0 }, { ...expected, createdAt: 0, passwordChangedAt: 0 })
        assert.ok(added.createdAt >= before && added.createdAt <= Date.now())
        assert.equal(added.passwordChangedAt, added.createdAt)
        const got = (await users.get('ALICE'))!
        assert.deepEqual(got, added)
        assert.ok(Object.isFrozen(got) && Object.isFrozen(got.groups))
        assert.equal('passwordHash' in got || 'password_hash' in got, false)
        const bare = await users.add({ username: 'bob', password: PASSWORD, email: '', name: null })
        assert.deepEqual([bare.email, bare.name, [...bare.groups]], [null, null, []])
        assert.equal(await users.get('carol'), undefined)
      })
    })

    test('refusals of add, each in its words: a name taken (in any case), a bad username, email, name or group, a weak password', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await assert.rejects(users.add({ username: 'alice', password: PASSWORD }), refused('user alice exists'))
        await assert.rejects(users.add({ username: 'ALICE', password: PASSWORD }), refused('user alice exists'))
        await assert.rejects(users.add({ username: '-x', password: PASSWORD }), refused('the username "-x" must start with a letter or a digit'))
        await assert.rejects(users.add({ username: 'a b', password: PASSWORD }), refused('the username "a b" may hold only letters a-z, digits, ".", "_" and "-"'))
        await assert.rejects(users.add({ username: '', password: PASSWORD }), refused('the username is empty'))
        await assert.rejects(users.add({ username: 'carol', password: PASSWORD, email: 'carol' }), refused('the email address "carol" is not of the form name@domain'))
        await assert.rejects(users.add({ username: 'carol', password: PASSWORD, name: 'a\u0007b' }), refused('the name "a\\u0007b" contains control characters'))
        await assert.rejects(users.add({ username: 'carol', password: PASSWORD, groups: ['a,b'] }), refused('the group name "a,b" contains a comma, whitespace or a control character'))
        await assert.rejects(users.add({ username: 'carol', password: 'short' }), refused('the password is shorter than 12 characters'))
        assert.equal(await users.get('carol'), undefined, 'nothing refused was stored')
        // two adds of one name at once: one user, and the other told it exists
        const both = await Promise.allSettled([users.add({ username: 'dave', password: PASSWORD }), users.add({ username: 'dave', password: PASSWORD })])
        assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1)
        assert.ok(refused('user dave exists')((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))
      })
    })

    test('list: every user sorted by username in code point order (- . 0-9 _ a-z)', async () => {
      await withUsers(async (users) => {
        for (const n of ['ab', 'a_c', 'a-b', 'a.b', 'a0', 'b']) await users.add({ username: n, password: PASSWORD })
        assert.deepEqual((await users.list()).map((u) => u.username), ['a-b', 'a.b', 'a0', 'a_c', 'ab', 'b'])
      })
    })

    test('verify: the right password gives the user; a wrong one, an unknown user, a disabled one or an absurdly long password give null', async () => {
      await withUsers(async (users, made) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.add({ username: 'bob', password: PASSWORD })
        assert.equal((await users.verify('Alice', PASSWORD))!.username, 'alice')
        // NFKC: the same password typed as full-width characters
        assert.equal((await users.verify('alice', 'ａ password long enough'))!.username, 'alice')
        assert.equal(await users.verify('alice', 'a password long enougH'), null)
        assert.equal(await users.verify('zed', PASSWORD), null)
        assert.equal(await users.verify('alice', 'x'.repeat(5000)), null)
        await made.disable('bob')
        assert.equal(await users.verify('bob', PASSWORD), null)
        assert.equal((await users.get('bob'))!.disabled, true)
      })
    })

    test('setPassword, setGroups, setTotpSecret change one thing each; an unknown user or a bad value is refused in its words', async () => {
      await withUsers(async (users) => {
        const added = await users.add({ username: 'alice', password: PASSWORD, groups: ['a'] })
        await new Promise((r) => setTimeout(r, 5))
        await users.setPassword('ALICE', 'another password entirely')
        assert.equal(await users.verify('alice', PASSWORD), null)
        assert.ok(await users.verify('alice', 'another password entirely'))
        const changed = (await users.get('alice'))!
        assert.ok(changed.passwordChangedAt > added.passwordChangedAt)
        assert.equal(changed.createdAt, added.createdAt)
        await assert.rejects(users.setPassword('alice', 'short'), refused('the password is shorter than 12 characters'))
        await assert.rejects(users.setPassword('zed', PASSWORD), refused('user zed does not exist'))

        await users.setGroups('alice', ['x', 'y', 'x'])
        assert.deepEqual([...(await users.get('alice'))!.groups], ['x', 'y'])
        await users.setGroups('alice', [])
        assert.deepEqual([...(await users.get('alice'))!.groups], [])
        await assert.rejects(users.setGroups('alice', ['bad group']), refused('the group name "bad group" contains a comma, whitespace or a control character'))
        await assert.rejects(users.setGroups('zed', ['x']), refused('user zed does not exist'))

        await users.setTotpSecret('alice', 'JBSWY3DPEHPK3PXP')
        assert.equal((await users.get('alice'))!.totpSecret, 'JBSWY3DPEHPK3PXP')
        await users.setTotpSecret('alice', null)
        assert.equal((await users.get('alice'))!.totpSecret, null)
        await assert.rejects(users.setTotpSecret('alice', ''), refused('a TOTP secret is 1-1024 characters'))
        await assert.rejects(users.setTotpSecret('zed', 'JBSWY3DPEHPK3PXP'), refused('user zed does not exist'))
        assert.ok(await users.verify('alice', 'another password entirely'), 'the rest of the user untouched')
      })
    })

    test('remove: true once, then false; the passkeys go with the user', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.addPasskey('alice', key('cred-1'), T0)
        assert.equal(await users.remove('ALICE'), true)
        assert.equal(await users.get('alice'), undefined)
        assert.equal(await users.remove('alice'), false)
        assert.deepEqual(await users.passkeys('alice'), [])
        assert.deepEqual(await users.passkeyCounts(), new Map())
        // the same name again is a new user, without the old one's passkeys
        await users.add({ username: 'alice', password: PASSWORD })
        assert.deepEqual(await users.passkeys('alice'), [])
        await users.addPasskey('alice', key('cred-1'), T0)
      })
    })

    test('passkeys: added, listed oldest first, counted; the user handle is the first one’s', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.add({ username: 'bob', password: PASSWORD })
        const first = await users.addPasskey('Alice', key('cred-b', { userHandle: 'Zmlyc3Q', counter: 7, transports: ['usb', 'nfc', 'usb', 'Bad Name'] }), T0 + 10)
        assert.deepEqual(plainPasskey(first), { id: 'cred-b', username: 'alice', userHandle: 'Zmlyc3Q', publicKey: [0xa5, 1, 2, 3, 0], counter: 7, transports: ['usb', 'nfc'], createdAt: T0 + 10, lastUsedAt: null })
        assert.ok(first.publicKey instanceof Uint8Array && Object.isFrozen(first))
        await users.addPasskey('alice', key('cred-a', { userHandle: 'c2Vjb25k' }), T0 + 20)
        await users.addPasskey('alice', key('cred-0', { userHandle: 'c2Vjb25k' }), T0 + 20)
        await users.addPasskey('bob', key('cred-z'), T0)
        assert.deepEqual((await users.passkeys('ALICE')).map((p) => p.id), ['cred-b', 'cred-0', 'cred-a'])
        assert.deepEqual((await users.passkeys('alice')).map(plainPasskey)[0], plainPasskey(first))
        assert.deepEqual(await users.passkeyCounts(), new Map([['alice', 3], ['bob', 1]]))
        assert.equal(await users.passkeyUserHandle('alice'), 'Zmlyc3Q')
        assert.equal(await users.passkeyUserHandle('carol'), null)
      })
    })

    test('passkeys: refusals in their words (unknown user, registered already to anyone, malformed, too many)', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.add({ username: 'bob', password: PASSWORD })
        await users.addPasskey('alice', key('cred-1'), T0)
        await assert.rejects(users.addPasskey('alice', key('cred-1'), T0), refused('this passkey is registered already'))
        await assert.rejects(users.addPasskey('bob', key('cred-1'), T0), refused('this passkey is registered already'))
        await assert.rejects(users.addPasskey('zed', key('cred-2'), T0), refused('user zed does not exist'))
        await assert.rejects(users.addPasskey('alice', key('not base64url!'), T0), refused('a credential ID is 1-1023 bytes, in base64url'))
        await assert.rejects(users.addPasskey('alice', key('cred-3', { userHandle: '' }), T0), refused('a user handle is 1-64 bytes, in base64url'))
        await assert.rejects(users.addPasskey('alice', key('cred-3', { publicKey: new Uint8Array() }), T0), refused('a passkey public key is 1-4096 bytes'))
        await assert.rejects(users.addPasskey('alice', key('cred-3', { counter: -1 }), T0), refused('a signature counter is a 32-bit unsigned integer'))
        for (let i = 2; i <= 32; i++) await users.addPasskey('alice', key(`cred-${i}`), T0 + i)
        await assert.rejects(users.addPasskey('alice', key('cred-33'), T0), refused('user alice has 32 passkeys already, the most one may have'))
        assert.deepEqual(await users.passkeyCounts(), new Map([['alice', 32]]))
      })
    })

    test('usePasskey: the counter must go up when both are non-zero, is never lowered, and is stored with the time; only the owner’s', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.add({ username: 'bob', password: PASSWORD })
        await users.addPasskey('alice', key('cred-1', { counter: 5 }), T0)
        const counter = async () => (await users.passkeys('alice'))[0]!
        assert.equal(await users.usePasskey('alice', 'cred-1', 5, T0 + 1), false, 'standing still')
        assert.equal(await users.usePasskey('alice', 'cred-1', 4, T0 + 1), false, 'backwards')
        assert.equal(await users.usePasskey('bob', 'cred-1', 9, T0 + 1), false, 'not his')
        assert.equal(await users.usePasskey('alice', 'nope', 9, T0 + 1), false)
        assert.equal(await users.usePasskey('alice', 'cred-1', 2 ** 32, T0 + 1), false, 'not a 32-bit counter')
        assert.deepEqual([(await counter()).counter, (await counter()).lastUsedAt], [5, null])
        assert.equal(await users.usePasskey('ALICE', 'cred-1', 6, T0 + 2), true)
        assert.deepEqual([(await counter()).counter, (await counter()).lastUsedAt], [6, T0 + 2])
        // an authenticator that stopped counting: accepted, the stored counter kept
        assert.equal(await users.usePasskey('alice', 'cred-1', 0, T0 + 3), true)
        assert.deepEqual([(await counter()).counter, (await counter()).lastUsedAt], [6, T0 + 3])
        // one count used by two sign-ins at once: one passes
        const both = await Promise.all([users.usePasskey('alice', 'cred-1', 7, T0 + 4), users.usePasskey('alice', 'cred-1', 7, T0 + 4)])
        assert.deepEqual(both.toSorted(), [false, true])
      })
    })

    test('removePasskey (the owner’s only) and removePasskeys', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.add({ username: 'bob', password: PASSWORD })
        for (const id of ['c1', 'c2', 'c3']) await users.addPasskey('alice', key(id), T0)
        await users.addPasskey('bob', key('b1'), T0)
        assert.equal(await users.removePasskey('bob', 'c1'), false)
        assert.equal(await users.removePasskey('ALICE', 'c1'), true)
        assert.equal(await users.removePasskey('alice', 'c1'), false)
        assert.equal(await users.removePasskeys('alice'), 2)
        assert.equal(await users.removePasskeys('alice'), 0)
        assert.deepEqual((await users.passkeys('bob')).map((p) => p.id), ['b1'])
      })
    })

    test('names and IDs with a NUL character are nobody: no user, no passkey, refused as unknown', async () => {
      await withUsers(async (users) => {
        await users.add({ username: 'alice', password: PASSWORD })
        await users.addPasskey('alice', key('c1'), T0)
        assert.equal(await users.get('alice\u0000'), undefined)
        assert.equal(await users.verify('alice\u0000', PASSWORD), null)
        assert.equal(await users.remove('alice\u0000'), false)
        assert.deepEqual(await users.passkeys('alice\u0000'), [])
        assert.equal(await users.passkeyUserHandle('alice\u0000'), null)
        assert.equal(await users.usePasskey('alice', 'c1\u0000', 9, T0), false)
        assert.equal(await users.removePasskey('alice', 'c1\u0000'), false)
        assert.equal(await users.removePasskeys('alice\u0000'), 0)
        await assert.rejects(users.setGroups('alice\u0000', []), refused('user alice\u0000 does not exist'))
        await assert.rejects(users.addPasskey('alice\u0000', key('c2'), T0), refused('user alice\u0000 does not exist'))
        assert.ok(await users.get('alice'))
      })
    })
  })
}

describe('two nodes over one PostgreSQL', () => {
  test('a user added, changed or removed on one node is so on the other; one name added on both at once is one user', async () => {
    const url = await database()
    const [a, b] = await Promise.all([connect(url).then((pg) => PgUserDirectory.open(pg)), connect(url).then((pg) => PgUserDirectory.open(pg))])
    await a.add({ username: 'alice', password: PASSWORD, groups: ['staff'] })
    assert.deepEqual(await b.get('alice'), await a.get('alice'))
    assert.ok(await b.verify('alice', PASSWORD))
    await b.setTotpSecret('alice', 'JBSWY3DPEHPK3PXP')
    assert.equal((await a.get('alice'))!.totpSecret, 'JBSWY3DPEHPK3PXP')
    await a.addPasskey('alice', key('cred-1', { counter: 1 }), T0)
    assert.deepEqual((await b.passkeys('alice')).map((p) => p.id), ['cred-1'])
    // one count, sent to both nodes at once: one sign-in passes
    const counted = await Promise.all([a.usePasskey('alice', 'cred-1', 2, T0 + 1), b.usePasskey('alice', 'cred-1', 2, T0 + 1)])
    assert.deepEqual(counted.toSorted(), [false, true])
    const added = await Promise.allSettled([a.add({ username: 'bob', password: PASSWORD }), b.add({ username: 'bob', password: PASSWORD })])
    assert.equal(added.filter((r) => r.status === 'fulfilled').length, 1)
    assert.ok(refused('user bob exists')((added.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason))
    assert.equal(await b.remove('alice'), true)
    assert.equal(await a.get('alice'), undefined)
    assert.deepEqual(await a.passkeys('alice'), [])
  })
})

import { after, before, describe, test } from 'node:test'
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { RedisSessionStore } from '../../src/auth/redis-session-store.ts'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.ts'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import {
  MemorySessionStore,
  SqliteSessionStore,
  openSqliteSessionStore,
  type SessionRecord,
  type SessionStore,
} from '../../src/auth/session-store.ts'

const tempDirs: string[] = []
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'edgebox-session-store-'))
  tempDirs.push(dir)
  return dir
}
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

function session(key: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    key,
    provider: 'corp',
    sub: 'user-1',
    sid: 'sid-1',
    claims: { email: 'a@example.com', name: 'A. User', groups: ['admins', 'ops'], address: { country: 'NL', lines: ['x', 'y'] } },
    idToken: 'eyJ.id.token',
    accessToken: 'access-1',
    refreshToken: 'refresh-1',
    tokenExpiresAt: T0 + HOUR,
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 8 * HOUR,
    ...over,
  }
}

/** A plain (unfrozen) copy, for deepEqual against what was put. */
const plain = (r: SessionRecord | undefined): unknown => (r === undefined ? undefined : JSON.parse(JSON.stringify(r)))

let redis: RedisServer | undefined
let bus: RedisBus | undefined
// a Redis Cluster of three masters: each script runs on the node that has its slot, and a key of another slot would fail it
let cluster: RedisCluster | undefined
let clusterBus: RedisBus | undefined
before(async () => {
  redis = await startRedis()
  bus = openRedis({ url: redis.url, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, pino({ level: 'silent' }))
  assert.equal(await bus.whenUp(5_000), true)
  cluster = await startRedisCluster()
  clusterBus = openRedis({ url: 'redis://cluster', cluster: cluster.hosts, keyPrefix: 'edgebox-test:', commandTimeout: 2_000 }, pino({ level: 'silent' }))
  assert.equal(await clusterBus.whenUp(5_000), true)
})
after(async () => {
  await bus?.close()
  await redis?.close()
  await clusterBus?.close()
  await cluster?.close()
})

const stores: Array<{ name: string; make: () => Promise<SessionStore> }> = [
  { name: 'MemorySessionStore', make: async () => new MemorySessionStore() },
  { name: 'SqliteSessionStore', make: async () => openSqliteSessionStore(tempDir()) },
  // each store in a name space of its own: every test starts empty
  { name: 'RedisSessionStore', make: async () => new RedisSessionStore(bus!, `sso-${randomUUID()}`) },
  { name: 'RedisSessionStore on a cluster', make: async () => new RedisSessionStore(clusterBus!, `sso-${randomUUID()}`) },
]

// ---------------------------------------------------------------------------
// Contract: every SessionStore behaves the same.
// ---------------------------------------------------------------------------

for (const { name, make } of stores) {
  describe(`session store contract: ${name}`, () => {
    test('put / get round trip keeps every field, nested claims included', async () => {
      const store = await make()
      const full = session('k-full')
      const sparse = session('k-sparse', { sid: null, accessToken: null, refreshToken: null, tokenExpiresAt: null, claims: {} })
      await store.put(full)
      await store.put(sparse)
      assert.deepEqual(plain(await store.get('k-full')), plain(full))
      assert.deepEqual(plain(await store.get('k-sparse')), plain(sparse))
      const got = await store.get('k-full')
      assert.deepEqual(got!.claims.groups, ['admins', 'ops'])
      assert.deepEqual(got!.claims.address, { country: 'NL', lines: ['x', 'y'] })
      assert.equal(got!.sid, 'sid-1')
      assert.equal((await store.get('k-sparse'))!.sid, null)
      await store.close()
    })

    test('get of an unknown key is undefined', async () => {
      const store = await make()
      assert.equal(await store.get('nope'), undefined)
      await store.put(session('k1'))
      assert.equal(await store.get('k2'), undefined)
      await store.close()
    })

    test('put replaces the whole record, and its index entries', async () => {
      const store = await make()
      await store.put(session('k1'))
      const second = session('k1', { provider: 'other', sub: 'user-2', sid: null, claims: { email: 'b@example.com' }, refreshToken: null, lastSeenAt: T0 + 5 })
      await store.put(second)
      assert.deepEqual(plain(await store.get('k1')), plain(second))
      // the old (provider, sub) and (provider, sid) no longer lead to it
      assert.deepEqual(await store.deleteBySubject('corp', 'user-1'), [])
      assert.deepEqual(await store.deleteBySid('corp', 'sid-1'), [])
      assert.ok(await store.get('k1'))
      assert.deepEqual(await store.deleteBySubject('other', 'user-2'), ['k1'])
      await store.close()
    })

    test('touch moves lastSeenAt forward only, and ignores unknown keys', async () => {
      const store = await make()
      await store.put(session('k1', { lastSeenAt: T0 + 1000 }))
      await store.touch('k1', T0 + 2000)
      assert.equal((await store.get('k1'))!.lastSeenAt, T0 + 2000)
      await store.touch('k1', T0 + 1500)
      assert.equal((await store.get('k1'))!.lastSeenAt, T0 + 2000)
      await store.touch('k1', T0 + 2000)
      assert.equal((await store.get('k1'))!.lastSeenAt, T0 + 2000)
      await store.touch('unknown', T0 + 9000)
      assert.equal(await store.get('unknown'), undefined)
      // nothing else changed
      assert.deepEqual(plain(await store.get('k1')), plain(session('k1', { lastSeenAt: T0 + 2000 })))
      await store.close()
    })

    test('updateTokens replaces the token fields only, and ignores unknown keys', async () => {
      const store = await make()
      await store.put(session('k1'))
      await store.updateTokens('k1', { idToken: 'eyJ.id.2', accessToken: 'access-2', refreshToken: 'refresh-2', tokenExpiresAt: T0 + 2 * HOUR })
      assert.deepEqual(
        plain(await store.get('k1')),
        plain(session('k1', { idToken: 'eyJ.id.2', accessToken: 'access-2', refreshToken: 'refresh-2', tokenExpiresAt: T0 + 2 * HOUR })),
      )
      await store.updateTokens('k1', { idToken: 'eyJ.id.3', accessToken: null, refreshToken: null, tokenExpiresAt: null })
      const got = await store.get('k1')
      assert.equal(got!.idToken, 'eyJ.id.3')
      assert.equal(got!.accessToken, null)
      assert.equal(got!.refreshToken, null)
      assert.equal(got!.tokenExpiresAt, null)
      await store.updateTokens('unknown', { idToken: 'x', accessToken: null, refreshToken: null, tokenExpiresAt: null })
      assert.equal(await store.get('unknown'), undefined)
      await store.close()
    })

    test('delete returns whether there was a session', async () => {
      const store = await make()
      await store.put(session('k1'))
      await store.put(session('k2'))
      assert.equal(await store.delete('k1'), true)
      assert.equal(await store.get('k1'), undefined)
      assert.equal(await store.delete('k1'), false)
      assert.equal(await store.delete('never'), false)
      assert.ok(await store.get('k2'))
      // a deleted session no longer shows up by subject
      assert.deepEqual(await store.deleteBySubject('corp', 'user-1'), ['k2'])
      await store.close()
    })

    test('deleteBySubject deletes only that provider + sub', async () => {
      const store = await make()
      await store.put(session('a1', { provider: 'corp', sub: 'alice', sid: 's1' }))
      await store.put(session('a2', { provider: 'corp', sub: 'alice', sid: 's2' }))
      await store.put(session('a-other', { provider: 'partner', sub: 'alice', sid: 's1' }))
      await store.put(session('b1', { provider: 'corp', sub: 'bob', sid: 's3' }))
      assert.deepEqual((await store.deleteBySubject('corp', 'alice')).sort(), ['a1', 'a2'])
      assert.equal(await store.get('a1'), undefined)
      assert.equal(await store.get('a2'), undefined)
      assert.ok(await store.get('a-other'))
      assert.ok(await store.get('b1'))
      assert.deepEqual(await store.deleteBySubject('corp', 'alice'), [])
      assert.deepEqual(await store.deleteBySubject('nobody', 'alice'), [])
      await store.close()
    })

    test('deleteBySid deletes only that provider + sid', async () => {
      const store = await make()
      await store.put(session('x1', { provider: 'corp', sub: 'alice', sid: 'shared' }))
      await store.put(session('x2', { provider: 'corp', sub: 'alice', sid: 'shared' }))
      await store.put(session('x3', { provider: 'corp', sub: 'alice', sid: 'other' }))
      await store.put(session('y1', { provider: 'partner', sub: 'carol', sid: 'shared' }))
      await store.put(session('z1', { provider: 'corp', sub: 'dave', sid: null }))
      assert.deepEqual((await store.deleteBySid('corp', 'shared')).sort(), ['x1', 'x2'])
      assert.equal(await store.get('x1'), undefined)
      assert.equal(await store.get('x2'), undefined)
      assert.ok(await store.get('x3'))
      assert.ok(await store.get('y1'))
      assert.ok(await store.get('z1'))
      assert.deepEqual(await store.deleteBySid('corp', 'shared'), [])
      await store.close()
    })

    test('deleteBySubject with withoutSid deletes only the subject sessions that have no provider session id', async () => {
      const store = await make()
      await store.put(session('n1', { provider: 'corp', sub: 'erin', sid: null }))
      await store.put(session('n2', { provider: 'corp', sub: 'erin', sid: 'kept' }))
      await store.put(session('n3', { provider: 'partner', sub: 'erin', sid: null }))
      assert.deepEqual(await store.deleteBySubject('corp', 'erin', true), ['n1'])
      assert.ok(await store.get('n2'))
      assert.ok(await store.get('n3'))
      await store.close()
    })

    test('sweep removes sessions past their absolute end (equal is expired)', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      const idle = 100 * HOUR // idle time plays no part here
      await store.put(session('past', { lastSeenAt: now - 1, expiresAt: now - 1 }))
      await store.put(session('equal', { lastSeenAt: now - 1, expiresAt: now }))
      await store.put(session('future', { lastSeenAt: now - 1, expiresAt: now + 1 }))
      assert.equal(await store.sweep(now, idle), 2)
      assert.equal(await store.get('past'), undefined)
      assert.equal(await store.get('equal'), undefined)
      assert.ok(await store.get('future'))
      assert.equal(await store.sweep(now, idle), 0)
      await store.close()
    })

    test('sweep removes idle sessions (lastSeenAt + idle equal to now is expired)', async () => {
      const store = await make()
      const now = T0 + 10 * HOUR
      const idle = HOUR
      const end = now + 10 * HOUR
      await store.put(session('idle', { lastSeenAt: now - idle - 1, expiresAt: end }))
      await store.put(session('equal', { lastSeenAt: now - idle, expiresAt: end }))
      await store.put(session('active', { lastSeenAt: now - idle + 1, expiresAt: end }))
      await store.put(session('touched', { lastSeenAt: now - 2 * idle, expiresAt: end }))
      await store.touch('touched', now - 10)
      assert.equal(await store.sweep(now, idle), 2)
      assert.equal(await store.get('idle'), undefined)
      assert.equal(await store.get('equal'), undefined)
      assert.ok(await store.get('active'))
      assert.ok(await store.get('touched'))
      // swept sessions are gone from the indexes too
      assert.deepEqual((await store.deleteBySubject('corp', 'user-1')).sort(), ['active', 'touched'])
      await store.close()
    })

    test('records are frozen copies: changing one does not change the store', async () => {
      const store = await make()
      const original = session('k1', { claims: { groups: ['a'], nested: { x: 1 } } })
      await store.put(original)
      // changing what was put does not reach the store
      ;(original.claims.groups as string[]).push('pushed-after-put')
      const got = await store.get('k1')
      assert.ok(got)
      assert.deepEqual(got.claims.groups, ['a'])
      assert.ok(Object.isFrozen(got))
      assert.ok(Object.isFrozen(got.claims))
      assert.throws(() => {
        ;(got as { lastSeenAt: number }).lastSeenAt = 0
      }, TypeError)
      assert.throws(() => {
        ;(got.claims.groups as string[]).push('x')
      }, TypeError)
      assert.throws(() => {
        ;(got.claims.nested as { x: number }).x = 2
      }, TypeError)
      const again = await store.get('k1')
      assert.notEqual(again, got)
      assert.deepEqual(plain(again), plain(session('k1', { claims: { groups: ['a'], nested: { x: 1 } } })))
      await store.close()
    })

    test('a closed store rejects every method; close again is harmless', async () => {
      const store = await make()
      await store.put(session('k1'))
      await store.close()
      const closed = { message: 'session store is closed' }
      await assert.rejects(store.get('k1'), closed)
      await assert.rejects(store.put(session('k2')), closed)
      await assert.rejects(store.touch('k1', T0 + 1), closed)
      await assert.rejects(store.updateTokens('k1', { idToken: 'x', accessToken: null, refreshToken: null, tokenExpiresAt: null }), closed)
      await assert.rejects(store.delete('k1'), closed)
      await assert.rejects(store.deleteBySubject('corp', 'user-1'), closed)
      await assert.rejects(store.deleteBySid('corp', 'sid-1'), closed)
      await assert.rejects(store.sweep(T0, HOUR), closed)
      await store.close()
    })
  })
}

// ---------------------------------------------------------------------------
// SQLite only: the file.
// ---------------------------------------------------------------------------

describe('SqliteSessionStore: the file', () => {
  test('sessions survive close and reopen', async () => {
    const dataDir = tempDir()
    const first = await openSqliteSessionStore(dataDir)
    await first.put(session('k1'))
    await first.put(session('k2', { sid: null, claims: { groups: [] } }))
    await first.touch('k1', T0 + 500)
    await first.close()
    const second = await openSqliteSessionStore(dataDir)
    assert.deepEqual(plain(await second.get('k1')), plain(session('k1', { lastSeenAt: T0 + 500 })))
    assert.deepEqual(plain(await second.get('k2')), plain(session('k2', { sid: null, claims: { groups: [] } })))
    await second.close()
  })

  test('the file is 0600 and the auth folder 0700', async () => {
    const dataDir = tempDir()
    const store = await openSqliteSessionStore(dataDir)
    await store.put(session('k1'))
    const file = join(dataDir, 'auth', 'sessions.sqlite')
    assert.equal(store.file, file)
    assert.ok(existsSync(file))
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(join(dataDir, 'auth')).mode & 0o777, 0o700)
    await store.close()
  })

  test('uses WAL journal mode and schema version 1', async () => {
    const dataDir = tempDir()
    const store = await openSqliteSessionStore(dataDir)
    await store.close()
    const db = new DatabaseSync(join(dataDir, 'auth', 'sessions.sqlite'))
    try {
      assert.deepEqual({ ...db.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' })
      assert.deepEqual({ ...db.prepare('PRAGMA user_version').get() }, { user_version: 1 })
    } finally {
      db.close()
    }
  })

  test('a file with a newer schema version is refused, naming the file and both versions', async () => {
    const dataDir = tempDir()
    const first = await openSqliteSessionStore(dataDir)
    await first.close()
    const file = join(dataDir, 'auth', 'sessions.sqlite')
    const db = new DatabaseSync(file)
    db.exec('PRAGMA user_version = 99')
    db.close()
    assert.throws(
      () => new SqliteSessionStore(file),
      (err: Error) => err.message.includes(file) && /version 99\b/.test(err.message) && /\(1\)/.test(err.message),
    )
    await assert.rejects(openSqliteSessionStore(dataDir), (err: Error) => err.message.includes(file) && err.message.includes('99'))
    // the file is left as it was
    const check = new DatabaseSync(file)
    try {
      assert.deepEqual({ ...check.prepare('PRAGMA user_version').get() }, { user_version: 99 })
    } finally {
      check.close()
    }
  })

  test('two instances on one file see each other\'s writes', async () => {
    const dataDir = tempDir()
    const a = await openSqliteSessionStore(dataDir)
    const b = new SqliteSessionStore(a.file)
    try {
      await a.put(session('from-a'))
      assert.deepEqual(plain(await b.get('from-a')), plain(session('from-a')))
      await b.put(session('from-b', { sub: 'user-2', sid: 'sid-2' }))
      assert.equal((await a.get('from-b'))!.sub, 'user-2')
      await b.touch('from-a', T0 + 99)
      assert.equal((await a.get('from-a'))!.lastSeenAt, T0 + 99)
      assert.deepEqual(await a.deleteBySid('corp', 'sid-2'), ['from-b'])
      assert.equal(await b.get('from-b'), undefined)
      assert.equal(await b.delete('from-a'), true)
      assert.equal(await a.get('from-a'), undefined)
    } finally {
      await a.close()
      await b.close()
    }
  })
})

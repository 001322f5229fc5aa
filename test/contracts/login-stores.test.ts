import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { LOGIN_STORE_CLOSED, MemoryLoginStore, openSqliteLoginStore, RedisLoginStore, SqliteLoginStore, type LoginStore } from '../../src/auth/login-store.ts'
import type { PendingLogin } from '../../src/auth/relying-party.ts'
import { openRedis, type RedisBus } from '../../src/core/redis.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

/**
 * The login stores' contract (src/auth/login-store.ts): a login under way
 * is taken once, by whichever process the callback reaches; a mark is set
 * once. Each store is tried as two processes would use it: two handles on
 * one SQLite file, two stores on one Redis.
 */

const tempDirs: string[] = []
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'edgebox-login-store-'))
  tempDirs.push(dir)
  return dir
}

let redis: RedisServer | undefined
let bus: RedisBus | undefined
before(async () => {
  redis = await startRedis()
  bus = openRedis({ url: redis.url, keyPrefix: `edgebox-test-${randomUUID()}:`, commandTimeout: 2_000 }, pino({ level: 'silent' }))
  assert.equal(await bus.whenUp(5_000), true)
})
after(async () => {
  await bus?.close()
  await redis?.close()
})

function login(state: string, now: number): PendingLogin {
  return { provider: 'corp', state, nonce: `n-${state}`, codeVerifier: `v-${state}`, redirectUri: 'https://app.test/_edgebox/auth/callback/corp', returnTo: '/reports?q=1', binding: 'b1nd', createdAt: now }
}

/** Two handles on one store, as two processes see it. */
const kinds: Array<{ name: string; open(): Promise<[LoginStore, LoginStore]> }> = [
  {
    name: 'memory',
    open: async () => {
      const one = new MemoryLoginStore()
      return [one, one]
    },
  },
  {
    name: 'sqlite',
    open: async () => {
      const dir = tempDir()
      return [await openSqliteLoginStore(dir), await openSqliteLoginStore(dir)]
    },
  },
  { name: 'redis', open: async () => [new RedisLoginStore(bus!), new RedisLoginStore(bus!)] },
]

const MIN = 60_000

for (const kind of kinds) {
  describe(`login store contract: ${kind.name}`, () => {
    test('a login is taken once, through either handle; unknown keys are undefined', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const key = `k-${randomUUID()}`
      await a.put(key, login('s1', now), now + 10 * MIN)
      assert.deepEqual(await b.take(key, now + 1), login('s1', now))
      assert.equal(await a.take(key, now + 2), undefined, 'taken already')
      assert.equal(await b.take(key, now + 2), undefined)
      assert.equal(await a.take(`nothing-${randomUUID()}`, now), undefined)
      await a.close()
      await b.close()
    })

    test('two takes at once: exactly one gets the login', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const keys = Array.from({ length: 20 }, () => `k-${randomUUID()}`)
      for (const key of keys) await a.put(key, login(key, now), now + 10 * MIN)
      for (const key of keys) {
        const got = await Promise.all([a.take(key, now), b.take(key, now), a.take(key, now), b.take(key, now)])
        assert.equal(got.filter((g) => g !== undefined).length, 1, key)
      }
      await a.close()
      await b.close()
    })

    test('a login whose end has come is not given, and is gone', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const key = `k-${randomUUID()}`
      await a.put(key, login('late', now), now + 10 * MIN)
      assert.equal(await b.take(key, now + 10 * MIN), undefined)
      // and a later `now` does not bring it back
      assert.equal(await b.take(key, now), undefined)
      await a.close()
      await b.close()
    })

    test('put replaces a login under the same key', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const key = `k-${randomUUID()}`
      await a.put(key, login('first', now), now + 10 * MIN)
      await a.put(key, login('second', now), now + 10 * MIN)
      assert.equal((await b.take(key, now))?.state, 'second')
      await a.close()
      await b.close()
    })

    test('once: true the first time through either handle, false while the mark lasts, true again after it', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const key = `m-${randomUUID()}`
      const marks = await Promise.all([a.once(key, now + 5 * MIN, now), b.once(key, now + 5 * MIN, now), a.once(key, now + 5 * MIN, now)])
      assert.deepEqual(
        marks.filter((m) => m),
        [true],
        'one of three at once',
      )
      assert.equal(await b.once(key, now + 5 * MIN, now + MIN), false)
      if (kind.name !== 'redis') {
        // Redis ends marks by its own clock (PXAT): a later `now` given by the caller does not end them early
        assert.equal(await a.once(key, now + 15 * MIN, now + 5 * MIN), true, 'the mark ended')
        assert.equal(await b.once(key, now + 15 * MIN, now + 6 * MIN), false)
      }
      await a.close()
      await b.close()
    })

    test('sweep removes what ended and keeps what did not', async () => {
      const [a, b] = await kind.open()
      const now = Date.now()
      const old = `k-${randomUUID()}`
      const live = `k-${randomUUID()}`
      await a.put(old, login('old', now), now + MIN)
      await a.put(live, login('live', now), now + 10 * MIN)
      await b.sweep(now + 2 * MIN)
      if (kind.name === 'redis') {
        // Redis ends them itself: each key carries its end as its expiry
        assert.equal(await bus!.command.pexpiretime(`${bus!.keyPrefix}sso-login:${old}`), now + MIN)
      } else assert.equal(await a.take(old, now), undefined, 'swept')
      assert.equal((await a.take(live, now + 2 * MIN))?.state, 'live')
      await a.close()
      await b.close()
    })

    test('a closed store rejects every call', async () => {
      const [a, b] = await kind.open()
      await a.close()
      await a.close()
      await assert.rejects(a.put('k', login('x', 1), 2), { message: LOGIN_STORE_CLOSED })
      await assert.rejects(a.take('k', 1), { message: LOGIN_STORE_CLOSED })
      await assert.rejects(a.once('k', 2, 1), { message: LOGIN_STORE_CLOSED })
      await assert.rejects(a.sweep(1), { message: LOGIN_STORE_CLOSED })
      await b.close()
    })
  })
}

test('the SQLite login store is a private file in the data folder, and a bad file is refused naming it', async () => {
  const dir = tempDir()
  const store = await openSqliteLoginStore(dir)
  assert.equal(store.file, join(dir, 'auth', 'logins.sqlite'))
  assert.equal(statSync(store.file).mode & 0o777, 0o600)
  assert.equal(statSync(join(dir, 'auth')).mode & 0o777, 0o700)
  await store.close()
  const bad = join(tempDir(), 'not-a-db.sqlite')
  writeFileSync(bad, 'this is not a database, but long enough to look like a header of one '.repeat(4))
  assert.throws(() => new SqliteLoginStore(bad), (err: Error) => err.message.startsWith(`cannot open the login store ${bad}:`))
})

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { pino } from 'pino'
import { IdpKeys } from '../../src/auth/idp/keys.ts'
import { openPgKeyVault, PgIdpStore } from '../../src/auth/idp/pg-store.ts'
import { ConsumedError, SqliteIdpStore, type IdpStore } from '../../src/auth/idp/store.ts'
import type { Postgres } from '../../src/core/postgres.ts'
import { ManualClock } from '../helpers/clock.ts'
import { postgresPerFile } from '../helpers/postgres.ts'

/**
 * The built-in provider's state (docs/idp.md, docs/scale.md): every
 * IdpStore answers the same, the SQLite file of one node and the PostgreSQL
 * the nodes share (each PostgreSQL store on a database of its own). Then
 * two PostgreSQL stores over one database, as two nodes: one state, and
 * single use across them (a code, a TOTP step, the first keys).
 */

const log = pino({ level: 'silent' })
const HOUR = 3_600_000
const DAY = 24 * HOUR

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const { database: freshDatabase, connect } = postgresPerFile('idp')

const stores: Array<{ name: string; make: (clock: ManualClock) => Promise<IdpStore> }> = [
  {
    name: 'SqliteIdpStore',
    make: async (clock) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-contract-'))
      dirs.push(dir)
      return SqliteIdpStore.open(dir, clock)
    },
  },
  { name: 'PgIdpStore', make: async (clock) => PgIdpStore.open(await connect(await freshDatabase()), clock) },
]

const isConsumed = (grantId: string | null) => (err: unknown) => err instanceof ConsumedError && err.grantId === grantId

for (const { name, make } of stores) {
  describe(`idp store contract: ${name}`, () => {
    async function withStore(fn: (store: IdpStore, clock: ManualClock) => Promise<void>): Promise<void> {
      const clock = new ManualClock()
      const store = await make(clock)
      try {
        await fn(store, clock)
      } finally {
        await store.close()
      }
    }

    test('upsert and find, per model; an upsert replaces the payload; unknown ids are undefined', async () => {
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

    test('a payload comes back exactly as it was stored: key order, nesting, NUL and other characters, numbers', async () => {
      await withStore(async (store) => {
        const payload = {
          zeta: 1,
          alpha: { nested: [1, 'two', null, true, { deep: 'ẞ😀' }] },
          nul: 'a\u0000b',
          quote: '"\\\n',
          big: 2 ** 53 - 1,
          fraction: 0.1,
          negative: -3,
          empty: '',
          none: null,
        }
        const a = store.adapter('Interaction')
        await a.upsert('i1', payload, 600)
        const back = await a.find('i1')
        assert.deepEqual(back, payload)
        assert.equal(JSON.stringify(back), JSON.stringify(payload), 'the keys in the order they were written')
      })
    })

    test('findByUid and findByUserCode, per model; an upsert that changes them moves the lookups', async () => {
      await withStore(async (store) => {
        const sessions = store.adapter('Session')
        await sessions.upsert('s1', { uid: 'u-1', accountId: 'alice' }, 600)
        assert.deepEqual(await sessions.findByUid('u-1'), { uid: 'u-1', accountId: 'alice' })
        assert.equal(await sessions.findByUid('u-2'), undefined)
        assert.equal(await store.adapter('Grant').findByUid('u-1'), undefined, 'another model does not see it')
        await sessions.upsert('s1', { uid: 'u-2', accountId: 'alice' }, 600)
        assert.equal(await sessions.findByUid('u-1'), undefined)
        assert.deepEqual(await sessions.findByUid('u-2'), { uid: 'u-2', accountId: 'alice' })
        const devices = store.adapter('DeviceCode')
        await devices.upsert('d1', { userCode: 'ABCD-EFGH' }, 600)
        assert.deepEqual(await devices.findByUserCode('ABCD-EFGH'), { userCode: 'ABCD-EFGH' })
        assert.equal(await devices.findByUserCode('ABCD-EFGX'), undefined)
      })
    })

    test('consume marks the payload with the time in seconds, once: a second consume, or one of an unknown id, is refused', async () => {
      await withStore(async (store, clock) => {
        clock.advance(1_500)
        const codes = store.adapter('AuthorizationCode')
        await codes.upsert('c1', { accountId: 'alice', grantId: 'g1' }, 60)
        await codes.consume('c1')
        const at = Math.floor(clock.now() / 1000)
        assert.deepEqual(await codes.find('c1'), { accountId: 'alice', grantId: 'g1', consumed: at })
        clock.advance(5_000)
        await assert.rejects(codes.consume('c1'), isConsumed('g1'))
        assert.equal((await codes.find('c1'))!.consumed, at, 'the first use keeps its time')
        await assert.rejects(codes.consume('unknown'), isConsumed(null))
        await assert.rejects(store.adapter('RefreshToken').consume('c1'), isConsumed(null), 'another model has no such row')
        const refused = await codes.consume('c1').catch((e: unknown) => e)
        assert.equal((refused as Error).message, 'AuthorizationCode already consumed')
        // saved again (oidc-provider re-saves a model whole): not consumed any more
        await codes.upsert('c1', { accountId: 'alice' }, 60)
        assert.deepEqual(await codes.find('c1'), { accountId: 'alice' })
        await codes.consume('c1')
      })
    })

    test('of many consumes of one code at once, exactly one goes on', async () => {
      await withStore(async (store) => {
        const codes = store.adapter('AuthorizationCode')
        await codes.upsert('c1', { grantId: 'g1' }, 60)
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => codes.consume('c1')))
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
        for (const r of results) if (r.status === 'rejected') assert.ok(isConsumed('g1')(r.reason))
      })
    })

    test('destroy removes one row of one model', async () => {
      await withStore(async (store) => {
        await store.adapter('AccessToken').upsert('x', { n: 1 }, 60)
        await store.adapter('RefreshToken').upsert('x', { n: 2 }, 60)
        await store.adapter('AccessToken').destroy('x')
        assert.equal(await store.adapter('AccessToken').find('x'), undefined)
        assert.deepEqual(await store.adapter('RefreshToken').find('x'), { n: 2 })
        await store.adapter('AccessToken').destroy('x')
      })
    })

    test("revokeByGrantId removes every model's rows of the grant, and only those", async () => {
      await withStore(async (store) => {
        await store.adapter('AccessToken').upsert('a1', { grantId: 'g1' }, 600)
        await store.adapter('RefreshToken').upsert('r1', { grantId: 'g1' }, 600)
        await store.adapter('AuthorizationCode').upsert('c1', { grantId: 'g1' }, 600)
        await store.adapter('AccessToken').upsert('a2', { grantId: 'g2' }, 600)
        await store.adapter('Grant').upsert('g1', { accountId: 'alice' }, 600)
        await store.adapter('AccessToken').revokeByGrantId('g1')
        assert.equal(await store.adapter('AccessToken').find('a1'), undefined)
        assert.equal(await store.adapter('RefreshToken').find('r1'), undefined)
        assert.equal(await store.adapter('AuthorizationCode').find('c1'), undefined)
        assert.deepEqual(await store.adapter('AccessToken').find('a2'), { grantId: 'g2' })
        assert.deepEqual(await store.adapter('Grant').find('g1'), { accountId: 'alice' }, 'the grant row itself has no grantId field')
      })
    })

    test('expiry follows the clock: a row is gone at its expiry to every lookup; the sweep deletes what expired; no expiresIn: kept', async () => {
      await withStore(async (store, clock) => {
        const a = store.adapter('Session')
        await a.upsert('short', { uid: 'us', userCode: 'cs', accountId: 'alice', loginTs: 1 }, 60)
        await a.upsert('long', { n: 2 }, 3600)
        await a.upsert('forever', { n: 3 })
        clock.advance(60_000 - 1)
        assert.deepEqual(await a.find('short'), { uid: 'us', userCode: 'cs', accountId: 'alice', loginTs: 1 })
        clock.advance(1)
        assert.equal(await a.find('short'), undefined)
        assert.equal(await a.findByUid('us'), undefined)
        assert.equal(await a.findByUserCode('cs'), undefined)
        assert.deepEqual(await store.sessionAccounts(), [])
        assert.deepEqual(await store.sessionsOf('alice'), [])
        assert.deepEqual(await a.find('long'), { n: 2 })
        assert.equal(await store.sweep(), 1)
        assert.equal(await store.sweep(), 0)
        clock.advance(3600_000)
        assert.equal(await store.sweep(), 1)
        assert.deepEqual(await a.find('forever'), { n: 3 })
      })
    })

    test('ids with a NUL character match nothing and change nothing', async () => {
      await withStore(async (store) => {
        const codes = store.adapter('AuthorizationCode')
        await codes.upsert('c1', { grantId: 'g1', uid: 'u1', userCode: 'k1' }, 60)
        assert.equal(await codes.find('c1\u0000'), undefined)
        assert.equal(await codes.findByUid('u1\u0000'), undefined)
        assert.equal(await codes.findByUserCode('\u0000'), undefined)
        await assert.rejects(codes.consume('c\u00001'), isConsumed(null))
        await codes.destroy('c1\u0000')
        await codes.revokeByGrantId('g1\u0000')
        assert.deepEqual(await store.sessionsOf('alice\u0000'), [])
        assert.deepEqual(await codes.find('c1'), { grantId: 'g1', uid: 'u1', userCode: 'k1' })
      })
    })

    test('sessions by account: the accounts with live sessions and their first sign-in; the sessions of one', async () => {
      await withStore(async (store) => {
        const s = store.adapter('Session')
        await s.upsert('s1', { accountId: 'alice', loginTs: 200, authorizations: { app: { grantId: 'g1', sid: 'x' } } }, 600)
        await s.upsert('s2', { accountId: 'alice', loginTs: 100 }, 600)
        await s.upsert('s3', { accountId: 'bob' }, 600)
        await s.upsert('s4', { accountId: 42, loginTs: 5 }, 600)
        await s.upsert('s5', { loginTs: 5 }, 600)
        // not a session: never an account's
        await store.adapter('Grant').upsert('g1', { accountId: 'carol', loginTs: 1 }, 600)
        const accounts = (await store.sessionAccounts()).toSorted((a, b) => a.accountId.localeCompare(b.accountId))
        assert.deepEqual(accounts, [
          { accountId: 'alice', firstLogin: 100 },
          { accountId: 'bob', firstLogin: null },
        ])
        const ofAlice = (await store.sessionsOf('alice')).toSorted((a, b) => a.id.localeCompare(b.id))
        assert.deepEqual(ofAlice, [
          { id: 's1', payload: { accountId: 'alice', loginTs: 200, authorizations: { app: { grantId: 'g1', sid: 'x' } } } },
          { id: 's2', payload: { accountId: 'alice', loginTs: 100 } },
        ])
        assert.deepEqual(await store.sessionsOf('carol'), [])
        // signed in again as someone else: the index follows the payload
        await s.upsert('s2', { accountId: 'bob', loginTs: 50 }, 600)
        assert.deepEqual((await store.sessionAccounts()).toSorted((a, b) => a.accountId.localeCompare(b.accountId)), [
          { accountId: 'alice', firstLogin: 200 },
          { accountId: 'bob', firstLogin: 50 },
        ])
        assert.deepEqual((await store.sessionsOf('alice')).map((x) => x.id), ['s1'])
      })
    })

    test('endSession deletes the session, its grants and everything issued under them, in one go; true only for the call that ended it', async () => {
      await withStore(async (store) => {
        await store.adapter('Session').upsert('s1', { accountId: 'alice' }, 600)
        await store.adapter('Session').upsert('s2', { accountId: 'alice' }, 600)
        await store.adapter('Grant').upsert('g1', { accountId: 'alice' }, 600)
        await store.adapter('Grant').upsert('g9', { accountId: 'alice' }, 600)
        await store.adapter('AccessToken').upsert('a1', { grantId: 'g1' }, 600)
        await store.adapter('RefreshToken').upsert('r1', { grantId: 'g1' }, 600)
        await store.adapter('AccessToken').upsert('a9', { grantId: 'g9' }, 600)
        assert.equal(await store.endSession('s1', ['g1']), true)
        assert.equal(await store.adapter('Session').find('s1'), undefined)
        assert.equal(await store.adapter('Grant').find('g1'), undefined)
        assert.equal(await store.adapter('AccessToken').find('a1'), undefined)
        assert.equal(await store.adapter('RefreshToken').find('r1'), undefined)
        assert.deepEqual(await store.adapter('Session').find('s2'), { accountId: 'alice' })
        assert.deepEqual(await store.adapter('Grant').find('g9'), { accountId: 'alice' })
        assert.deepEqual(await store.adapter('AccessToken').find('a9'), { grantId: 'g9' })
        assert.equal(await store.endSession('s1', ['g1']), false, 'ended already')
      })
    })

    test('pending sign-ins (EdgeboxLogin): saved with their challenge, replaced without it, gone with the interaction or when destroyed', async () => {
      await withStore(async (store, clock) => {
        const pending = store.adapter('EdgeboxLogin')
        await pending.upsert('uid-1', { username: 'alice', step: 'totp', failures: 0, challenge: 'ch-1' }, 900)
        assert.deepEqual(await pending.find('uid-1'), { username: 'alice', step: 'totp', failures: 0, challenge: 'ch-1' })
        await pending.upsert('uid-1', { username: 'alice', step: 'totp', failures: 1 }, 900)
        assert.deepEqual(await pending.find('uid-1'), { username: 'alice', step: 'totp', failures: 1 })
        await pending.upsert('uid-2', { username: 'bob', step: 'enrol', secret: 'S', failures: 0 }, 900)
        await pending.destroy('uid-1')
        assert.equal(await pending.find('uid-1'), undefined)
        clock.advance(900_000)
        assert.equal(await pending.find('uid-2'), undefined)
        assert.equal(await store.sweep(), 1)
      })
    })

    test('a TOTP step is accepted once per user, and only after the last one used', async () => {
      await withStore(async (store) => {
        assert.equal(await store.useTotpStep('alice', 100), true)
        assert.equal(await store.useTotpStep('alice', 100), false)
        assert.equal(await store.useTotpStep('alice', 99), false)
        assert.equal(await store.useTotpStep('bob', 100), true)
        assert.equal(await store.useTotpStep('alice', 101), true)
        assert.equal(await store.useTotpStep('alice', 100), false)
        const many = await Promise.all(Array.from({ length: 6 }, () => store.useTotpStep('carol', 7)))
        assert.equal(many.filter(Boolean).length, 1, 'of one step tried at once, one is accepted')
      })
    })
  })
}

describe('two nodes over one PostgreSQL', () => {
  /** Two stores, each with its own pool (its own connections), over one new database; the same clock. */
  async function twoNodes(): Promise<{ a: PgIdpStore; b: PgIdpStore; pgA: Postgres; pgB: Postgres; clock: ManualClock }> {
    const url = await freshDatabase()
    const clock = new ManualClock()
    const [pgA, pgB] = await Promise.all([connect(url), connect(url)])
    const [a, b] = await Promise.all([PgIdpStore.open(pgA, clock), PgIdpStore.open(pgB, clock)])
    return { a, b, pgA, pgB, clock }
  }

  test('what one writes the other reads: sessions, pending sign-ins, expiry, the sweep', async () => {
    const { a, b, clock } = await twoNodes()
    await a.adapter('Session').upsert('s1', { accountId: 'alice', loginTs: 10 }, 60)
    await a.adapter('EdgeboxLogin').upsert('uid-1', { username: 'alice', step: 'totp', failures: 0 }, 60)
    assert.deepEqual(await b.adapter('Session').find('s1'), { accountId: 'alice', loginTs: 10 })
    assert.deepEqual(await b.sessionAccounts(), [{ accountId: 'alice', firstLogin: 10 }])
    await b.adapter('EdgeboxLogin').destroy('uid-1')
    assert.equal(await a.adapter('EdgeboxLogin').find('uid-1'), undefined)
    clock.advance(60_000)
    assert.equal(await b.adapter('Session').find('s1'), undefined)
    assert.equal(await a.sweep(), 1)
    assert.equal(await b.sweep(), 0)
  })

  test('a code consumed through one node is consumed for the other; of both at once, one goes on', async () => {
    const { a, b, clock } = await twoNodes()
    await a.adapter('AuthorizationCode').upsert('c1', { grantId: 'g1' }, 60)
    await a.adapter('AuthorizationCode').consume('c1')
    assert.deepEqual(await b.adapter('AuthorizationCode').find('c1'), { grantId: 'g1', consumed: Math.floor(clock.now() / 1000) })
    await assert.rejects(b.adapter('AuthorizationCode').consume('c1'), isConsumed('g1'))
    for (let i = 0; i < 20; i++) {
      await a.adapter('AuthorizationCode').upsert(`race-${i}`, { grantId: `g-${i}` }, 60)
      const results = await Promise.allSettled([a.adapter('AuthorizationCode').consume(`race-${i}`), b.adapter('AuthorizationCode').consume(`race-${i}`)])
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${i}: one use of the code`)
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
      assert.ok(isConsumed(`g-${i}`)(refused.reason))
    }
  })

  test('a TOTP step accepted on one node is refused on the other; of both at once, one is accepted', async () => {
    const { a, b } = await twoNodes()
    assert.equal(await a.useTotpStep('alice', 100), true)
    assert.equal(await b.useTotpStep('alice', 100), false)
    assert.equal(await b.useTotpStep('alice', 99), false)
    assert.equal(await b.useTotpStep('alice', 101), true)
    assert.equal(await a.useTotpStep('alice', 101), false)
    for (let step = 200; step < 220; step++) {
      const both = await Promise.all([a.useTotpStep('bob', step), b.useTotpStep('bob', step)])
      assert.deepEqual(both.toSorted(), [false, true], `step ${step}: accepted once`)
    }
  })

  test('a session ended by both nodes at once is ended by one of them (its clients are told once)', async () => {
    const { a, b } = await twoNodes()
    for (let i = 0; i < 10; i++) {
      await a.adapter('Session').upsert(`s${i}`, { accountId: 'alice' }, 600)
      await a.adapter('Grant').upsert(`g${i}`, { accountId: 'alice' }, 600)
      const both = await Promise.all([a.endSession(`s${i}`, [`g${i}`]), b.endSession(`s${i}`, [`g${i}`])])
      assert.deepEqual(both.toSorted(), [false, true])
      assert.equal(await b.adapter('Grant').find(`g${i}`), undefined)
    }
  })

  test('keys: nodes starting at once make one set of keys and all use it; a rotation is made once and taken by every node', async () => {
    const { pgA, pgB, clock } = await twoNodes()
    const lines: string[] = []
    const counting = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) })
    const opts = { rotation: DAY, retention: 12 * HOUR, clock, log: counting }
    const kids = (k: IdpKeys) => k.generations.map((g) => g.signing.map((s) => s.kid))
    const [a, b] = await Promise.all([IdpKeys.openIn(await openPgKeyVault(pgA), opts), IdpKeys.openIn(await openPgKeyVault(pgB), opts)])
    assert.deepEqual(kids(a), kids(b))
    assert.deepEqual(a.cookieKeys(), b.cookieKeys())
    assert.deepEqual(a.jwks(), b.jwks())
    assert.equal(lines.filter((l) => l.includes('new signing keys made')).length, 1, 'made by one node')
    assert.equal((await pgA.pool.query('SELECT count(*)::int AS n FROM idp_keys')).rows[0].n, 1)
    assert.match(a.where, /^the idp_keys table of postgres:\/\/edgebox@127\.0\.0\.1:\d+\/idp_\d+$/)
    // a third node started later reads the same keys
    const c = await IdpKeys.openIn(await openPgKeyVault(pgB), opts)
    assert.deepEqual(kids(c), kids(a))

    clock.advance(DAY)
    const changed = await Promise.all([a.refresh(), b.refresh(), c.refresh()])
    assert.deepEqual(changed, [true, true, true])
    assert.equal(a.generations.length, 2)
    assert.deepEqual(kids(a), kids(b))
    assert.deepEqual(kids(c), kids(a))
    assert.equal(lines.filter((l) => l.includes('signing keys rotated')).length, 1, 'rotated by one node')
    const stored = (await pgB.pool.query<{ doc: { generations: { signing: { kid: string }[] }[] } }>('SELECT doc FROM idp_keys')).rows[0]!.doc
    assert.deepEqual(
      stored.generations.map((g) => g.signing.map((s) => s.kid)),
      kids(a),
    )
  })

  test('keys: a damaged key row is refused with where it is, and left as it was', async () => {
    const { pgA, clock } = await twoNodes()
    await openPgKeyVault(pgA)
    await pgA.pool.query(`INSERT INTO idp_keys (id, doc) VALUES (1, '{"version":1,"generations":[]}')`)
    await assert.rejects(IdpKeys.openIn(await openPgKeyVault(pgA), { rotation: DAY, retention: HOUR, clock, log }), (err: Error) => {
      assert.match(err.message, /^the idp_keys table of postgres:\/\/edgebox@127\.0\.0\.1:\d+\/idp_\d+ is not an Edgebox key file/)
      return true
    })
    assert.deepEqual((await pgA.pool.query('SELECT doc FROM idp_keys')).rows[0].doc, { version: 1, generations: [] })
  })
})

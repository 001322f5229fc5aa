import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { balancers, type BalanceName, type Upstream } from '../../src/modules/proxy/balancers/index.ts'
import { hash32 } from '../../src/modules/proxy/balancers/hash.ts'

const ups = (...weights: number[]): Upstream[] =>
  weights.map((weight, i) => ({ id: `http://127.0.0.1:${3000 + i}`, weight, active: 0, healthy: true }))

const names = (picked: Array<Upstream | undefined>, list: readonly Upstream[]): string =>
  picked.map((u) => (u === undefined ? '-' : String.fromCharCode(97 + list.indexOf(u)))).join(' ')

const isAvailable = (u: Upstream, exclude?: ReadonlySet<Upstream>) => u.healthy && !(exclude?.has(u) ?? false)

/** Deterministic PRNG (mulberry32) so the statistical tests never flake. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const randomKeys = (count: number, seed: number): string[] => {
  const r = rng(seed)
  return Array.from({ length: count }, () => `${Math.floor(r() * 2 ** 32).toString(16)}:${Math.floor(r() * 2 ** 32).toString(16)}`)
}

// ---------------------------------------------------------------------------
// Contract: every policy in `balancers` obeys the Balancer interface.
// ---------------------------------------------------------------------------

for (const [name, factory] of Object.entries(balancers) as Array<[BalanceName, (typeof balancers)[BalanceName]]>) {
  describe(`balancer contract: ${name}`, () => {
    test('never returns an unhealthy or excluded upstream; undefined iff none is available', () => {
      const step = fc.record({
        healthy: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        excluded: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        active: fc.array(fc.nat({ max: 4 }), { minLength: 8, maxLength: 8 }),
        useExclude: fc.boolean(),
        key: fc.string({ maxLength: 12 }),
      })
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 8 }), fc.array(step, { minLength: 1, maxLength: 20 }), (weights, steps) => {
          const list = ups(...weights)
          const b = factory(list)
          // Health, load and exclusions change between picks on the same
          // instance, as they do under a live proxy.
          for (const s of steps) {
            list.forEach((u, i) => {
              u.healthy = s.healthy[i]!
              u.active = s.active[i]!
            })
            const exclude = s.useExclude ? new Set(list.filter((_, i) => s.excluded[i])) : undefined
            const got = b.pick(s.key, exclude)
            const candidates = list.filter((u) => isAvailable(u, exclude))
            if (candidates.length === 0) assert.equal(got, undefined)
            else {
              assert.ok(got !== undefined, 'an upstream is available')
              assert.ok(candidates.includes(got), `${got.id} is healthy and not excluded`)
            }
          }
        }),
      )
    })

    test('undefined: empty list, all unhealthy, all excluded', () => {
      assert.equal(factory([]).pick('k'), undefined)
      assert.equal(factory([]).pick('k', new Set()), undefined)
      const list = ups(1, 2, 3)
      const b = factory(list)
      assert.equal(b.pick('k', new Set(list)), undefined)
      list[1]!.healthy = false
      assert.equal(b.pick('k', new Set([list[0]!, list[2]!])), undefined)
      for (const u of list) u.healthy = false
      assert.equal(b.pick('k'), undefined)
      list[2]!.healthy = true
      assert.equal(b.pick('k'), list[2])
    })

    test('all healthy, equal weights: every upstream is picked within N*k picks', () => {
      for (const n of [1, 2, 3, 5, 8]) {
        const list = ups(...Array<number>(n).fill(1))
        const b = factory(list)
        const seen = new Set<Upstream>()
        // Varied keys so 'hash' spreads; the others ignore the key.
        for (let i = 0; i < n * 20; i++) seen.add(b.pick(`client-${i}`)!)
        assert.equal(seen.size, n, `n=${n}`)
      }
    })

    test('a single available upstream is always the one returned', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }).chain((n) =>
            fc.record({
              weights: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: n, maxLength: n }),
              only: fc.nat({ max: n - 1 }),
              // how each other upstream is unavailable: unhealthy or excluded
              how: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
              keys: fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 10 }),
            }),
          ),
          ({ weights, only, how, keys }) => {
            const list = ups(...weights)
            const exclude = new Set<Upstream>()
            list.forEach((u, i) => {
              if (i === only) return
              if (how[i]) u.healthy = false
              else exclude.add(u)
            })
            const b = factory(list)
            for (const k of keys) assert.equal(b.pick(k, exclude), list[only])
          },
        ),
      )
    })
  })
}

// ---------------------------------------------------------------------------
// Policy-specific behaviour.
// ---------------------------------------------------------------------------

describe('round-robin', () => {
  test('order is exactly cyclic', () => {
    const list = ups(1, 1, 1)
    const b = balancers['round-robin'](list)
    assert.equal(names(Array.from({ length: 9 }, () => b.pick('')), list), 'a b c a b c a b c')
  })

  test('stays even when one is unhealthy, and resumes when it returns', () => {
    const list = ups(1, 1, 1)
    const b = balancers['round-robin'](list)
    list[1]!.healthy = false
    assert.equal(names(Array.from({ length: 6 }, () => b.pick('')), list), 'a c a c a c')
    list[1]!.healthy = true
    assert.equal(names(Array.from({ length: 6 }, () => b.pick('')), list), 'a b c a b c')
  })

  test('a retry with the tried upstream excluded goes to the next one', () => {
    const list = ups(1, 1, 1)
    const b = balancers['round-robin'](list)
    const first = b.pick('')!
    assert.equal(first, list[0])
    assert.equal(b.pick('', new Set([first, list[1]!])), list[2])
    assert.equal(b.pick(''), list[0])
  })
})

describe('weighted (smooth weighted round-robin)', () => {
  test('weights 5, 1, 1 give exactly a a b a c a a, cycle after cycle', () => {
    const list = ups(5, 1, 1)
    const b = balancers.weighted(list)
    for (let cycle = 0; cycle < 3; cycle++) {
      assert.equal(names(Array.from({ length: 7 }, () => b.pick('')), list), 'a a b a c a a')
    }
  })

  test('700 picks split 500 / 100 / 100', () => {
    const list = ups(5, 1, 1)
    const b = balancers.weighted(list)
    const counts = new Map<Upstream, number>()
    for (let i = 0; i < 700; i++) {
      const u = b.pick('')!
      counts.set(u, (counts.get(u) ?? 0) + 1)
    }
    assert.deepEqual(list.map((u) => counts.get(u)), [500, 100, 100])
  })

  test('an unavailable upstream sits out; the rest keep their ratio', () => {
    const list = ups(5, 1, 1)
    const b = balancers.weighted(list)
    list[2]!.healthy = false
    const picked = Array.from({ length: 60 }, () => b.pick(''))
    assert.equal(picked.filter((u) => u === list[0]).length, 50)
    assert.equal(picked.filter((u) => u === list[1]).length, 10)
  })
})

describe('least-conn', () => {
  test('picks the upstream with the fewest requests in flight', () => {
    const list = ups(1, 1, 1)
    const b = balancers['least-conn'](list)
    list[0]!.active = 3
    list[1]!.active = 1
    list[2]!.active = 2
    for (let i = 0; i < 5; i++) assert.equal(b.pick(''), list[1])
    assert.equal(b.pick('', new Set([list[1]!])), list[2])
  })

  test('load is relative to weight', () => {
    const list = ups(2, 1)
    const b = balancers['least-conn'](list)
    list[0]!.active = 3 // 1.5 per unit of weight
    list[1]!.active = 2 // 2
    assert.equal(b.pick(''), list[0])
    // Driven like the proxy does (increment on pick, no completions), the
    // heavier upstream fills twice as fast.
    for (const u of list) u.active = 0
    for (let i = 0; i < 30; i++) b.pick('')!.active++
    assert.deepEqual(list.map((u) => u.active), [20, 10])
  })

  test('spreads ties instead of always taking the first', () => {
    const list = ups(1, 1, 1)
    const b = balancers['least-conn'](list)
    list[2]!.active = 4
    assert.equal(names(Array.from({ length: 6 }, () => b.pick('')), list), 'a b a b a b')
    list[2]!.active = 0
    const seen = new Set(Array.from({ length: 3 }, () => b.pick('')))
    assert.equal(seen.size, 3)
  })
})

describe('hash (consistent)', () => {
  test('hash32 is a stable 32-bit hash', () => {
    assert.equal(hash32('user-1'), hash32('user-1'))
    assert.notEqual(hash32('user-1'), hash32('user-2'))
    for (const s of ['', 'a', 'ü', '🙂', 'x'.repeat(1000)]) {
      const h = hash32(s)
      assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32, s)
    }
  })

  test('same key, same upstream: across calls and across factories', () => {
    const list = ups(1, 1, 1, 1, 1)
    const b1 = balancers.hash(list)
    const b2 = balancers.hash(list)
    // Built from a copy in another order: the ring depends on ids, not order.
    const b3 = balancers.hash([...list].reverse())
    for (const k of randomKeys(500, 1)) {
      const u = b1.pick(k)
      assert.equal(b1.pick(k), u)
      assert.equal(b2.pick(k), u)
      assert.equal(b3.pick(k), u)
    }
  })

  test('when one of 4 goes unhealthy, only its keys move', () => {
    const list = ups(1, 1, 1, 1)
    const b = balancers.hash(list)
    const keys = randomKeys(2000, 2)
    const before = keys.map((k) => b.pick(k)!)
    const gone = list[1]!
    gone.healthy = false
    const after = keys.map((k) => b.pick(k)!)
    let moved = 0
    const receivers = new Set<Upstream>()
    keys.forEach((_, i) => {
      if (before[i] === gone) {
        moved++
        assert.notEqual(after[i], gone)
        receivers.add(after[i]!)
      } else assert.equal(after[i], before[i], 'a key not on the missing upstream kept its upstream')
    })
    const fraction = moved / keys.length
    assert.ok(fraction > 0.15 && fraction < 0.35, `moved ${fraction}`)
    // The orphaned keys spread over the survivors rather than one neighbour.
    assert.equal(receivers.size, 3)
    // And come back when it recovers.
    gone.healthy = true
    assert.deepEqual(keys.map((k) => b.pick(k)), before)
  })

  test('excluded owner: the retry walks to another upstream, deterministically', () => {
    const list = ups(1, 1, 1, 1)
    const b = balancers.hash(list)
    for (const k of randomKeys(200, 3)) {
      const first = b.pick(k)!
      const second = b.pick(k, new Set([first]))!
      assert.notEqual(second, first)
      assert.equal(b.pick(k, new Set([first])), second)
      const third = b.pick(k, new Set([first, second]))!
      assert.ok(third !== first && third !== second)
    }
  })

  test('10000 keys over 4 equal upstreams: each within ±25% of even', () => {
    const list = ups(1, 1, 1, 1)
    const b = balancers.hash(list)
    const counts = new Map<Upstream, number>()
    for (const k of randomKeys(10000, 4)) {
      const u = b.pick(k)!
      counts.set(u, (counts.get(u) ?? 0) + 1)
    }
    for (const u of list) {
      const c = counts.get(u) ?? 0
      assert.ok(c >= 2500 * 0.75 && c <= 2500 * 1.25, `${u.id}: ${c}`)
    }
  })

  test('a weight-2 upstream gets about twice the keys', () => {
    const list = ups(2, 1, 1)
    const b = balancers.hash(list)
    const counts = new Map<Upstream, number>()
    for (const k of randomKeys(10000, 5)) {
      const u = b.pick(k)!
      counts.set(u, (counts.get(u) ?? 0) + 1)
    }
    const [heavy, x, y] = list.map((u) => counts.get(u) ?? 0) as [number, number, number]
    const ratio = heavy / ((x + y) / 2)
    assert.ok(ratio > 1.6 && ratio < 2.4, `ratio ${ratio}`)
  })
})

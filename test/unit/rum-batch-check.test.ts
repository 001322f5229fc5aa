import assert from 'node:assert/strict'
import test from 'node:test'
import { checkBatchFast } from '../../src/rum/batch-check.ts'
import { batchSchema, parseBatch } from '../../src/rum/schema.ts'

/**
 * The batch fast path may refuse more than the schema, never less, and what
 * it accepts is exactly what the schema outputs: checked on generated
 * batches and on every mutation of every value in them.
 */

/** A small seeded PRNG (mulberry32), so a failure repeats. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function generate(r: () => number): Record<string, unknown> {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const maybe = (o: Record<string, unknown>, k: string, v: unknown) => {
    if (r() < 0.6) o[k] = v
  }
  const at = () => Math.round(r() * 10_000) / (r() < 0.5 ? 1 : 10)
  const events: unknown[] = []
  const n = Math.floor(r() * 8)
  for (let i = 0; i < n; i++) {
    const t = pick(['vital', 'nav', 'resource', 'error', 'api', 'route'])
    const e: Record<string, unknown> = { t, at: at() }
    if (t === 'vital') {
      Object.assign(e, { name: pick(['LCP', 'INP', 'CLS', 'FCP', 'TTFB']), value: r() * 5000, rating: pick(['good', 'needs-improvement', 'poor']) })
      maybe(e, 'attr', { element: 'img.hero', n: 3 })
    } else if (t === 'nav') {
      Object.assign(e, { type: pick(['navigate', 'reload', 'back_forward']), phases: { load: 3, redirect: 0, dns: 1, tcp: 2, tls: 3, ttfb: 40.5, transfer: 5, dom: 100 } })
      maybe(e, 'protocol', pick(['h2', 'http/1.1', '']))
    } else if (t === 'resource') {
      Object.assign(e, { url: pick(['/a.js', 'https://cdn.example/x.css', 'data:']), initiator: 'img', duration: 12.5, status: pick([0, 200, 404]), size: 1000, failed: r() < 0.5 })
    } else if (t === 'error') {
      Object.assign(e, { kind: pick(['error', 'unhandledrejection', 'resource']), message: 'x is not a function', count: 1 + Math.floor(r() * 3) })
      maybe(e, 'stack', 'TypeError: x\n    at f (https://example.test/app.js:1:2)')
    } else if (t === 'api') {
      Object.assign(e, { method: pick(['GET', 'POST']), url: '/api/items', status: pick([0, 200, 500]), duration: 30, outcome: pick(['ok', 'error', 'abort', 'network']) })
    } else {
      Object.assign(e, { pv: 'Zq81mNa0', from: '/a', to: 'https://example.test/b' })
    }
    events.push(e)
  }
  const b: Record<string, unknown> = { v: 1, pv: 'k3J9x2Qw', page: pick(['/', '/docs/intro', 'https://example.test/x']), events }
  maybe(b, 'cached', r() < 0.5)
  maybe(b, 'release', '2026.12.1')
  maybe(b, 'env', 'production')
  maybe(b, 'device', { w: 1280, dpr: 2, conn: '4g', saveData: false, mobile: r() < 0.5 })
  return b
}

/** Values a mutation puts in place of a value. */
const WRONG: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, 1e300, '', 'x', '//evil.example', 'javascript:alert(1)', 'a'.repeat(2049), [], {}, [1], { t: 'vital' }, '__proto__']

/** Every path to a value in `v`. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = []
  if (Array.isArray(v)) v.forEach((x, i) => out.push([...at, i], ...paths(x, [...at, i])))
  else if (typeof v === 'object' && v !== null) for (const k of Object.keys(v)) out.push([...at, k], ...paths((v as Record<string, unknown>)[k], [...at, k]))
  return out
}

function mutated(b: unknown, path: (string | number)[], op: { set: unknown } | { del: true } | { add: string }): unknown {
  const copy = structuredClone(b) as Record<string | number, unknown>
  if (path.length === 0) {
    if ('add' in op) Object.defineProperty(copy, op.add, { value: 1, enumerable: true, writable: true, configurable: true })
    return copy
  }
  let o = copy as Record<string | number, unknown>
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>
  const last = path[path.length - 1]!
  if ('set' in op) o[last] = structuredClone(op.set)
  else if ('del' in op) {
    if (Array.isArray(o)) o.splice(last as number, 1)
    else delete o[last]
  } else {
    const target = o[last]
    // defined, not assigned: `o.__proto__ = 1` would not make a key, and JSON.parse does make one
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.defineProperty(target, op.add, { value: 1, enumerable: true, writable: true, configurable: true })
  }
  return copy
}

/** What the fast path says must be what the schema says, whenever the fast path is sure. */
function agree(value: unknown, label: string): boolean {
  const fast = checkBatchFast(structuredClone(value))
  if (fast === null) return false
  const slow = batchSchema.safeParse(structuredClone(value))
  assert.ok(slow.success, `${label}: the fast path accepted what the schema refuses: ${JSON.stringify(value).slice(0, 300)} (${slow.success ? '' : slow.error.issues[0]?.message})`)
  assert.deepEqual(fast, slow.data, label)
  // what the store keeps as JSON text (a nav event's phases, a vital's attribution) is the same text
  const stored = (b: { events: readonly unknown[] }) => b.events.map((e) => JSON.stringify((e as { phases?: unknown; attr?: unknown }).phases ?? (e as { attr?: unknown }).attr ?? null))
  assert.deepEqual(stored(fast), stored(slow.data), `${label}: stored JSON`)
  return true
}

test('generated batches take the fast path, with exactly the schema\'s output', () => {
  const r = rng(17)
  for (let i = 0; i < 300; i++) assert.ok(agree(generate(r), `batch ${i}`), `batch ${i} should take the fast path`)
})

test('no mutation of a batch is accepted by the fast path and refused by the schema', () => {
  const r = rng(42)
  let checked = 0
  let refused = 0
  for (let i = 0; i < 40; i++) {
    const b = generate(r)
    for (const p of [[] as (string | number)[], ...paths(b)]) {
      const ops: ({ set: unknown } | { del: true } | { add: string })[] = [{ add: 'extra' }, { add: '__proto__' }]
      if (p.length > 0) ops.push({ del: true }, ...WRONG.map((w) => ({ set: w })))
      for (const op of ops) {
        const m = mutated(b, p, op)
        checked++
        if (!agree(m, `${JSON.stringify(p)} ${JSON.stringify(op).slice(0, 40)}`)) refused++
      }
    }
  }
  assert.ok(checked > 5000, `${checked} mutations`)
  assert.ok(refused > checked / 2, 'most mutations are refused by the fast path')
})

test('parseBatch gives the schema\'s reason when the fast path is not sure, and the fast path\'s batch when it is', () => {
  const bad = parseBatch(JSON.stringify({ v: 1, pv: 'k3J9x2Qw', page: '/', events: [{ t: 'vital', at: 1, name: 'LCP', value: -1, rating: 'good' }] }))
  assert.deepEqual(bad, { ok: false, error: 'events[0].value: Too small: expected number to be >=0' })
  const good = parseBatch(JSON.stringify({ v: 1, pv: 'k3J9x2Qw', page: '/', events: [] }))
  assert.deepEqual(good, { ok: true, batch: { v: 1, pv: 'k3J9x2Qw', page: '/', cached: false, events: [] } })
})

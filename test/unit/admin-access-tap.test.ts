import assert from 'node:assert/strict'
import { test } from 'node:test'
import { accessFilter } from '../../src/admin/api.ts'
import { createAccessTap, keeps } from '../../src/admin/access-tap.ts'
import type { Context } from '../../src/core/context.ts'
import type { AccessLog } from '../../src/core/log.ts'

/** The live access log's tap: free when nobody watches, one JSON per answer, the filters and their checks. */

const inner = (): AccessLog & { lines: number } => {
  const log = { lines: 0, write() { log.lines++ }, flush() {}, close: async () => {}, reopen() {} }
  return log
}

/** A context that throws when anything of it is read. */
const untouchable = new Proxy({}, { get: (_t, k) => { throw new Error(`read ${String(k)}`) } }) as Context

const ctx = (over: Partial<Record<string, unknown>> = {}): Context =>
  ({ site: { id: 'sites[1]', hosts: ['a.test', '*.b.test'] }, route: { id: 'sites[1].routes[0]' }, method: 'GET', host: 'x.b.test', path: '/api/users', rawPath: '/api/users', status: 404, bytes: 12, cache: '', protocol: 'h2', clientAddress: '192.0.2.1', upstream: '', error: undefined, ...over }) as unknown as Context

test('nobody watching: the answer goes to the access log and nothing of it is read', () => {
  const tap = createAccessTap()
  const log = inner()
  const wrapped = tap.wrap(log)
  wrapped.write(untouchable, 1)
  assert.equal(log.lines, 1)
  // watching, it is read; after the last stream goes, not again
  const stop = tap.subscribe({}, () => {})
  assert.throws(() => wrapped.write(untouchable, 1), /read /)
  stop()
  wrapped.write(untouchable, 1)
  assert.deepEqual({ ...tap.stats }, { open: 0, cut: 0 })
})

test('one JSON per answer for every stream that keeps it', () => {
  const tap = createAccessTap()
  const wrapped = tap.wrap(inner())
  const got: string[][] = [[], [], []]
  tap.subscribe({ status: '4xx' }, (j) => got[0]!.push(j))
  tap.subscribe({ site: 'a.test', path: '/api/' }, (j) => got[1]!.push(j))
  tap.subscribe({ status: '200' }, (j) => got[2]!.push(j))
  wrapped.write(ctx(), 1.23456)
  assert.equal(got[0]!.length, 1)
  assert.equal(got[0]![0], got[1]![0]) // the same string, made once
  assert.equal(got[2]!.length, 0)
  const entry = JSON.parse(got[0]![0]!) as Record<string, unknown>
  assert.equal(typeof entry.time, 'number')
  delete entry.time
  // the access log's own JSON line
  assert.deepEqual(entry, { msg: 'request', method: 'GET', host: 'x.b.test', path: '/api/users', status: 404, bytes: 12, ms: 1.235, cache: '', proto: 'h2', client: '192.0.2.1' })
})

test('filters: a site by id, one of its hosts or the host asked; a status or a class; a path prefix', () => {
  assert.equal(keeps({ site: 'sites[1]' }, ctx()), true)
  assert.equal(keeps({ site: '*.b.test' }, ctx()), true)
  assert.equal(keeps({ site: 'x.b.test' }, ctx()), true)
  assert.equal(keeps({ site: 'sites[0]' }, ctx()), false)
  assert.equal(keeps({ status: '404' }, ctx()), true)
  assert.equal(keeps({ status: '4xx' }, ctx()), true)
  assert.equal(keeps({ status: '5xx' }, ctx()), false)
  assert.equal(keeps({ path: '/api/' }, ctx()), true)
  assert.equal(keeps({ path: '/static/' }, ctx()), false)
  assert.equal(keeps({ site: 'sites[1]' }, ctx({ site: null })), false)
})

test('filter values are checked: a malformed one names its parameter', () => {
  const p = (q: string) => {
    const params = new URLSearchParams(q)
    return accessFilter({ get: (n) => params.get(n) ?? undefined })
  }
  assert.deepEqual(p('site=sites[2]&status=5XX&path=/a'), { site: 'sites[2]', status: '5xx', path: '/a' })
  assert.throws(() => p('status=45'), /^Error: status: expected a status \(404\) or a class \(4xx\), not "45"$/)
  assert.throws(() => p('status=0xx'), /^Error: status: /)
  assert.throws(() => p('path=api'), /^Error: path: /)
  assert.throws(() => p('site=a b'), /^Error: site: /)
})

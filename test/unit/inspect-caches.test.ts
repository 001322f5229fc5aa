import assert from 'node:assert/strict'
import { test } from 'node:test'
import { explainCaches, parseCacheStatus } from '../../src/inspect/caches.ts'

/** Cache-Status (RFC 9211) read as a Structured Field List (RFC 9651 §4.2.1), and the caches explained. */

test('Cache-Status: members with their parameters, nearest the origin first', () => {
  assert.deepEqual(parseCacheStatus('origin-cache; hit; ttl=1100, "CDN Company Edge"; fwd=uri-miss; fwd-status=200; stored; collapsed; key="/a"; detail=limit'), [
    { cache: 'origin-cache', hit: true, fwd: null, fwdStatus: null, ttl: 1100, stale: null, stored: null, collapsed: false, key: null, detail: null },
    { cache: 'CDN Company Edge', hit: false, fwd: 'uri-miss', fwdStatus: 200, ttl: null, stale: null, stored: true, collapsed: true, key: '/a', detail: 'limit' },
  ])
  // a negative ttl is a stale response (RFC 9211 §2.4): how stale, never a negative duration
  assert.deepEqual(parseCacheStatus('c; hit; ttl=-5')?.[0]?.stale, 5)
  assert.equal(parseCacheStatus('c; hit; ttl=-5')?.[0]?.ttl, 0)
  // RFC 9211 §2: hit and fwd exclude each other; fwd wins is not said, so a member with both is read as given
  assert.equal(parseCacheStatus(['a; hit', 'b; fwd=miss'])?.length, 2)
  // parameters that are not of their type are ignored (RFC 9211 §2)
  assert.deepEqual(parseCacheStatus('c; hit=1; ttl="5"; fwd-status=x')?.[0], { cache: 'c', hit: false, fwd: null, fwdStatus: null, ttl: null, stale: null, stored: null, collapsed: false, key: null, detail: null })
})

test('Cache-Status that is not a list is refused as a whole', () => {
  for (const bad of ['edge; hit; ttl=(1', 'edge,', ', edge', 'edge;', '1edge', 'ed ge', 'édge', '(a b); hit']) assert.equal(parseCacheStatus(bad), null, bad)
})

test('with nothing about caches, nothing is claimed', () => {
  assert.equal(explainCaches({}).outcome, 'none')
  assert.equal(explainCaches({ 'x-cache': 'TCP_HIT from squid' }).outcome, 'hit')
  assert.equal(explainCaches({ 'x-cache': 'Error from cloudfront' }).outcome, 'unknown')
  // Age alone: some cache kept it that long
  const aged = explainCaches({ age: '30' })
  assert.equal(aged.outcome, 'hit')
  assert.equal(aged.age, 30)
})

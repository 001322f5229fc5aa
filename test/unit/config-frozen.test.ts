import assert from 'node:assert/strict'
import { test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'

test('a validated configuration is frozen all the way down: checked once, then only read', () => {
  const cfg = validateConfig({ trustedProxies: ['10.0.0.0/8'], sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }] })
  assert.ok(Object.isFrozen(cfg))
  assert.ok(Object.isFrozen(cfg.sites[0]!.routes[0]))
  assert.ok(Object.isFrozen(cfg.limits))
  assert.throws(() => (cfg.trustedProxies as string[]).push('0.0.0.0/0'), TypeError)
  assert.throws(() => {
    ;(cfg.limits as { maxBodySize: number }).maxBodySize = 1e12
  }, TypeError)
  assert.deepEqual(cfg.trustedProxies, ['10.0.0.0/8'])
})

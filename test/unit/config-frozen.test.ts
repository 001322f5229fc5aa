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

test('a checked configuration checks again to the same value (a reload of the configuration in force), health check status ranges included', () => {
  const input = {
    dns: {
      listen: [{ host: '127.0.0.1', port: 0 }],
      zones: [{ origin: 'example.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '192.0.2.1' }] }],
      balance: [{ name: 'www.example.test', check: { port: 8080, expect: '204' }, edges: [{ addresses: ['192.0.2.10'] }] }],
    },
    sites: [{ routes: [{ path: '/', proxy: { upstreams: ['http://127.0.0.1:3000'], health: { active: { path: '/up', expect: '200-299' } } } }] }],
  }
  const once = validateConfig(input)
  const twice = validateConfig(once)
  assert.deepEqual(twice, once)
  assert.deepEqual(twice.dns!.balance[0]!.check.expect, { min: 204, max: 204 })
  // the checked form is still checked: a range upside down is refused
  assert.throws(() => validateConfig({ ...input, dns: { ...input.dns, balance: [{ ...input.dns.balance[0]!, check: { port: 8080, expect: { min: 300, max: 200 } } }] } }), /min is at most max/)
})

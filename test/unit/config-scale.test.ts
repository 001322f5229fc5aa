import assert from 'node:assert/strict'
import { test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/core/errors.ts'

/** The scale-out settings (docs/scale.md): `workers`, `redis`, `postgres`; a bad value is refused with its path and what it should be. */

const sites = [{ routes: [{ path: '/', redirect: { to: '/x' } }] }]
function issues(input: Record<string, unknown>): string[] {
  try {
    validateConfig({ ...input, sites } as never)
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues]
    throw err
  }
  return []
}

test('redis: a URL or an object; anything else is refused naming redis', () => {
  assert.deepEqual(validateConfig({ redis: 'redis://10.0.0.5:6379', sites } as never).redis, { url: 'redis://10.0.0.5:6379', keyPrefix: 'edgebox:', commandTimeout: 2000 })
  assert.deepEqual(issues({ redis: 'http://10.0.0.5:6379' }), ['redis: is a redis://host:port or rediss://host:port URL (user and password before the host: redis://user:password@host:port)'])
  assert.match(issues({ redis: { url: 'redis://h:1', keyPrefix: 'bad prefix!' } }).join('\n'), /^redis\.keyPrefix: is 0-64 of A-Z a-z 0-9 : _ - \./m)
  assert.match(issues({ redis: { url: 'redis://mymaster', sentinel: { name: 'mymaster', hosts: ['no-port'] } } }).join('\n'), /^redis\.sentinel\.hosts\[0\]: is host:port/m)
})

test('postgres: a URL, true or an object; another scheme is refused naming postgres', () => {
  assert.equal(validateConfig({ postgres: 'postgres://u:p@db:5432/edgebox', sites } as never).postgres?.url, 'postgres://u:p@db:5432/edgebox')
  assert.equal(validateConfig({ postgres: true, sites } as never).postgres?.url, undefined)
  assert.ok(issues({ postgres: 'mysql://db/edgebox' }).some((i) => i.startsWith('postgres')), 'names postgres')
})

test("workers: 'auto' or a whole number from 1; 0 and 'many' are refused naming workers", () => {
  assert.equal(validateConfig({ workers: 'auto', sites } as never).workers, 'auto')
  assert.equal(validateConfig({ sites } as never).workers, 1)
  assert.ok(issues({ workers: 0 }).some((i) => i.startsWith('workers')))
  assert.ok(issues({ workers: 'many' }).some((i) => i.startsWith('workers')))
})

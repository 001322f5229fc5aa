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

test('redis.cluster: the nodes as host:port with the URL for the user, password and scheme; a bad node, a database or sentinel too is refused naming the path', () => {
  assert.deepEqual(validateConfig({ redis: { url: 'rediss://edgebox:secret@cluster', cluster: ['10.0.0.1:6379', '[fd00::2]:6379', 'redis-3.internal:6379'] }, sites } as never).redis, {
    url: 'rediss://edgebox:secret@cluster',
    cluster: ['10.0.0.1:6379', '[fd00::2]:6379', 'redis-3.internal:6379'],
    keyPrefix: 'edgebox:',
    commandTimeout: 2000,
  })
  assert.equal(validateConfig({ redis: { url: 'redis://cluster/0', cluster: ['h:1'] }, sites } as never).redis?.url, 'redis://cluster/0', 'database 0 is the one a cluster has')
  assert.deepEqual(issues({ redis: { url: 'redis://cluster', cluster: ['10.0.0.1'] } }), ['redis.cluster[0]: is host:port'])
  assert.match(issues({ redis: { url: 'redis://cluster', cluster: [] } }).join('\n'), /^redis\.cluster: /m)
  assert.deepEqual(issues({ redis: { url: 'redis://cluster/2', cluster: ['h:1'] } }), ['redis.url: names database 2, but a Redis Cluster has database 0 only'])
  assert.deepEqual(issues({ redis: { url: 'redis://mymaster', cluster: ['h:1'], sentinel: { name: 'mymaster', hosts: ['h:2'] } } }), [
    'redis.cluster: is not used with sentinel: a Redis is either watched by sentinels or a cluster',
  ])
  assert.match(issues({ redis: { url: 'redis://cluster', cluster: 'h:1' } }).join('\n'), /^redis\.cluster: /m)
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

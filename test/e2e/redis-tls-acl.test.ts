import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { certDir, testCa } from '../helpers/certs.ts'
import { startEdgebox } from '../../src/server/app.ts'
import { captureLog, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'
import { publishAll } from '../helpers/realtime-clients.ts'

/**
 * Redis over TLS (`rediss://`) with an ACL user (docs/scale.md): the
 * server's default user is off, so only the user in the URL gets in, with
 * rights to Edgebox's keys and channels alone. Two nodes share a realtime
 * channel and a purge through it; a wrong password is refused by Redis, and
 * the node serves on by itself and says why in its log.
 */

const KEY = 'publish-key-0123456789'
let redis: RedisServer
let files: ReturnType<typeof certDir>

before(async () => {
  const authority = await testCa()
  const leaf = await authority.leaf(['127.0.0.1'])
  files = certDir({ 'ca.crt': authority.certPem, 'redis.crt': leaf.certPem, 'redis.key': leaf.keyPem })
  writeFileSync(path.join(files.dir, 'users.acl'), ['user default off', 'user edgebox on >s3cret-pass ~edgebox:* &edgebox:* +@all -@admin -@dangerous'].join('\n') + '\n')
  redis = await startRedis({
    tls: true,
    conf: [`tls-cert-file ${files.path('redis.crt')}`, `tls-key-file ${files.path('redis.key')}`, 'tls-auth-clients no', `aclfile ${files.path('users.acl')}`],
  })
})

after(async () => {
  await redis.close()
  files.cleanup()
})

const config = (url: string) => ({
  redis: { url, ca: files.path('ca.crt') },
  sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'room:*': { history: { size: 10 } } }, publishKey: KEY } }] }],
})

const publish = async (srv: TestServer, d: unknown) => (await publishAll(`${srv.url}live/`, KEY, 'room:tls', [d]))[0]!

test('two nodes share a channel through rediss:// as an ACL user', async () => {
  assert.match(redis.url, /^rediss:/)
  const url = redis.url.replace('rediss://', 'rediss://edgebox:s3cret-pass@')
  const a = await startServer(config(url))
  const b = await startServer(config(url))
  try {
    const first = await publish(a, 'one')
    const second = await publish(b, 'two')
    assert.equal(second.e, first.e, 'one epoch: the same channel')
    assert.equal(second.o, first.o + 1)
  } finally {
    await Promise.all([a.close(), b.close()])
  }
})

test("a wrong password: Redis refuses it, each node keeps its channels to itself, and the log says why", async () => {
  const url = redis.url.replace('rediss://', 'rediss://edgebox:wrong-pass@')
  const { logger: log, text: lines } = captureLog('info')
  const data = tempDir()
  const box = await startEdgebox({ ...config(url), dataDir: data.dir, listen: [{ host: '127.0.0.1', port: 0 }], log: { access: false } }, { log })
  const a = { url: box.urls[0]! } as TestServer
  const b = await startServer(config(url))
  try {
    const first = await publish(a, 'one')
    const second = await publish(b, 'two')
    assert.notEqual(second.e, first.e, 'per node')
    const said = lines.map((l) => JSON.parse(l) as { msg: string; err?: string; redis?: string }).find((l) => l.msg.startsWith('redis is unreachable'))
    assert.ok(said, lines.join(''))
    assert.match(String(said.err), /WRONGPASS/)
    assert.equal(said.redis, redis.url.replace('rediss://', 'rediss://edgebox@'), 'the target without its password')
    assert.ok(!lines.join('').includes('wrong-pass'), 'the password is never logged')
  } finally {
    await Promise.all([box.close(), b.close()])
    data.cleanup()
  }
})

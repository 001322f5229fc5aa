import 'reflect-metadata'
import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, test } from 'node:test'
import * as x509 from '@peculiar/x509'
import { pino } from 'pino'
import { openRedis } from '../../src/core/redis.ts'
import { certDir, testCa } from '../helpers/certs.ts'
import { until } from '../helpers/realtime-clients.ts'
import { startRedisCluster, type RedisCluster } from '../helpers/redis.ts'

/**
 * Redis Cluster over TLS (docs/scale.md): `rediss://` in the URL and the
 * authority's file in `ca` reach every node of a cluster that serves TLS
 * only, for commands (each master's keys) and for pub/sub.
 */

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const

/**
 * The nodes' certificate: for 127.0.0.1, signed by the test authority, for
 * clients and servers both, since the nodes of a cluster that talk TLS on
 * their bus ask each other for a client certificate whatever
 * `tls-auth-clients` says.
 */
async function nodeCertificate(ca: { certPem: string; keyPem: string }): Promise<{ certPem: string; keyPem: string }> {
  const caKey = (await webcrypto.subtle.importKey('pkcs8', Buffer.from(ca.keyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), EC, false, ['sign'])) as unknown as CryptoKey
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b2c3d',
    subject: 'CN=127.0.0.1',
    issuer: new x509.X509Certificate(ca.certPem).subject,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: x509.IP, value: '127.0.0.1' }]),
    ],
  })
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  return { certPem: cert.toString('pem') + '\n', keyPem: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n` }
}

let cluster: RedisCluster
let files: ReturnType<typeof certDir>

before(async () => {
  const authority = await testCa()
  const leaf = await nodeCertificate(authority)
  files = certDir({ 'ca.crt': authority.certPem, 'redis.crt': leaf.certPem, 'redis.key': leaf.keyPem })
  cluster = await startRedisCluster({
    tls: { ca: files.path('ca.crt') },
    conf: [`tls-cert-file ${files.path('redis.crt')}`, `tls-key-file ${files.path('redis.key')}`, `tls-ca-cert-file ${files.path('ca.crt')}`, 'tls-auth-clients no', 'tls-cluster yes'],
  })
})

after(async () => {
  await cluster?.close()
  files?.cleanup()
})

test('rediss:// with the authority in `ca`: commands on every master and pub/sub, all over TLS', async () => {
  const bus = openRedis({ url: 'rediss://cluster', ca: files.path('ca.crt'), cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, pino({ level: 'silent' }))
  try {
    assert.equal(await bus.whenUp(5_000), true)
    // 30 keys in slots all over the cluster: every master was reached
    for (let i = 0; i < 30; i++) assert.equal(await bus.command.set(`edgebox-test:tls:${i}`, String(i)), 'OK')
    assert.equal(await bus.command.get('edgebox-test:tls:7'), '7')
    const got: string[] = []
    await bus.subscribe('edgebox-test:tls', (m) => got.push(m)).ready
    assert.equal(await bus.publish('edgebox-test:tls', 'over tls'), true)
    await until(() => got.length === 1, 'the message through the TLS subscriber')
    assert.deepEqual(got, ['over tls'])
  } finally {
    await bus.close()
  }
})

test('without the authority the nodes are not trusted: the bus stays down', async () => {
  const bus = openRedis({ url: 'rediss://cluster', cluster: [...cluster.hosts], keyPrefix: 'edgebox-test:', commandTimeout: 1_000 }, pino({ level: 'silent' }))
  try {
    assert.equal(await bus.whenUp(1_000), false)
    await assert.rejects(bus.command.set('edgebox-test:x', 'v'))
  } finally {
    await bus.close()
  }
})

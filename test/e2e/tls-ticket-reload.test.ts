import assert from 'node:assert/strict'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { certDir, testCa, type TestCa } from '../helpers/certs.ts'
import { startServer } from '../helpers/server.ts'
import type { EdgeboxConfig } from '../../src/config/schema.ts'

/**
 * Session tickets across a reload (docs/tls.md): the ticket keys derived from
 * the ticket secret stay the server's when its certificates are reloaded, so
 * a session from before the reload resumes after it (RFC 8446 §4.6.1), as it
 * does on every other process that shares the secret.
 */

const TIMEOUT = 5_000
let ca: TestCa
let files: ReturnType<typeof certDir>

before(async () => {
  ca = await testCa()
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  files = certDir({ 'ca.crt': ca.certPem, 'a.crt': leaf.certPem, 'a.key': leaf.keyPem, 'ticket.key': 'k'.repeat(48) })
})

after(() => files?.cleanup())

function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', ...opts })
    s.once('secureConnect', () => resolve(s))
    s.once('error', reject)
    s.setTimeout(TIMEOUT, () => s.destroy(new Error('handshake timed out')))
  })
}

/** A TLS 1.3 session: its ticket arrives after the handshake, with the answer to a request. */
async function session(port: number): Promise<Buffer> {
  const s = await handshake(port)
  const got = await new Promise<Buffer>((resolve) => {
    s.once('session', resolve)
    s.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
  })
  s.destroy()
  return got
}

async function resumed(port: number, sess: Buffer): Promise<boolean> {
  const s = await handshake(port, { session: sess })
  const reused = s.isSessionReused()
  s.destroy()
  return reused
}

test('after a reload, a session from before resumes, and a new one from the same ticket keys', async () => {
  const cfg = (listen?: EdgeboxConfig['listen']) => ({
    listen: listen ?? [{ host: '127.0.0.1', port: 0, tls: true }],
    tls: { certificates: [{ cert: files.path('a.crt'), key: files.path('a.key') }], ticketKeyFile: files.path('ticket.key') },
    sites: [{ routes: [{ path: '/', static: { root: files.dir } }] }],
  })
  const box = await startServer(cfg())
  try {
    const port = Number(new URL(box.url).port)
    const before = await session(port)
    assert.equal(await resumed(port, before), true, 'resumed before the reload')
    await box.box.reload({ ...cfg(box.box.config.listen), log: box.box.config.log })
    assert.equal(await resumed(port, before), true, 'a session from before the reload resumes after it')
    assert.equal(await resumed(port, await session(port)), true, 'a session from after the reload resumes')
  } finally {
    await box.close()
  }
})

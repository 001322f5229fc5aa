import assert from 'node:assert/strict'
import { constants } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import tls from 'node:tls'
import { validateConfig } from '../../src/config/load.ts'
import { issueLocalCertificate } from '../../src/tls/local-ca.ts'
import { sessionResumption, sessionVersion, ticketKeys, type SessionResumption } from '../../src/tls/sessions.ts'

/** Ticket keys (src/tls/sessions.ts): one 48-byte key per rotation window, the same for every process with the same secret. */

test('the same secret and window give the same 48 bytes; the next window or another secret a different key', () => {
  const secret = Buffer.alloc(32, 7)
  const k = ticketKeys(secret, 100)
  assert.equal(k.length, 48)
  assert.deepEqual(ticketKeys(Buffer.alloc(32, 7), 100), k, 'another process with the same file derives the same key')
  assert.notDeepEqual(ticketKeys(secret, 101), k, 'rotated')
  assert.notDeepEqual(ticketKeys(Buffer.alloc(32, 8), 100), k, 'another secret')
})

/** A TLS server with Edgebox's session resumption, and handshakes against it that report their session and whether it was resumed. */
async function withServer(
  cfg: { sessionTickets: boolean },
  fn: (connect: (opts: tls.ConnectionOptions) => Promise<{ session: Buffer; reused: boolean }>, r: SessionResumption, serialized: Buffer[]) => Promise<void>,
): Promise<void> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'edgebox-sessions-'))
  const cert = await issueLocalCertificate(home, ['localhost'])
  const r = sessionResumption(validateConfig({ tls: { sessionTickets: cfg.sessionTickets }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }).tls, home)
  // as the listener sets it up: without tickets, OpenSSL sends none (src/server/listener.ts)
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ...(cfg.sessionTickets ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }) }, (s) => s.end('ok'))
  r.attach(server)
  // the server's own serialized sessions, as its newSession listeners get them
  const serialized: Buffer[] = []
  server.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
    serialized.push(data)
    done()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const connect = (opts: tls.ConnectionOptions) =>
    new Promise<{ session: Buffer; reused: boolean }>((resolve, reject) => {
      let session: Buffer | undefined
      let reused = false
      const s = tls.connect({ port, host: '127.0.0.1', ca: readFileSync(path.join(home, 'ca', 'ca.crt')), servername: 'localhost', ...opts })
      s.on('session', (b: Buffer) => (session ??= b))
      s.on('secureConnect', () => (reused = s.isSessionReused()))
      s.on('data', () => {})
      s.on('error', reject)
      // a resumed TLS 1.2 session is not new: no session event then
      s.on('close', () => (session || reused ? resolve({ session: session ?? Buffer.alloc(0), reused }) : reject(new Error('no session'))))
    })
  try {
    await fn(connect, r, serialized)
  } finally {
    r.close()
    server.close()
    rmSync(home, { recursive: true, force: true })
  }
}

test('sessionVersion reads the protocol of a serialized session', async () => {
  await withServer({ sessionTickets: false }, async (connect, _r, serialized) => {
    await connect({})
    assert.equal(sessionVersion(serialized.at(-1)!), 0x0304)
    await connect({ maxVersion: 'TLSv1.2' })
    assert.equal(sessionVersion(serialized.at(-1)!), 0x0303)
    assert.equal(sessionVersion(Buffer.from('not a session')), 0)
  })
})

test('with tickets, TLS 1.3 full handshakes keep nothing in the session-ID cache; a TLS 1.2 client without tickets still resumes from it', async () => {
  await withServer({ sessionTickets: true }, async (connect, r) => {
    for (let i = 0; i < 3; i++) await connect({})
    assert.equal(r.cached(), 0)
    const first = await connect({ maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET })
    assert.equal(r.cached(), 1)
    assert.equal((await connect({ maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET, session: first.session })).reused, true)
    const t13 = await connect({})
    assert.equal((await connect({ session: t13.session })).reused, true, 'TLS 1.3 resumes from its ticket')
  })
})

test('without tickets, TLS 1.2 resumes by session ID; TLS 1.3 sessions are not kept (Node resumes TLS 1.3 only from tickets)', async () => {
  await withServer({ sessionTickets: false }, async (connect, r) => {
    const t13 = await connect({})
    assert.equal(r.cached(), 0)
    assert.equal((await connect({ session: t13.session })).reused, false)
    const t12 = await connect({ maxVersion: 'TLSv1.2' })
    assert.equal(r.cached(), 1)
    assert.equal((await connect({ maxVersion: 'TLSv1.2', session: t12.session })).reused, true)
  })
})

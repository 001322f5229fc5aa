import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import tls from 'node:tls'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import type { EdgeboxConfigInput } from '../../src/config/schema.ts'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts'
import { captureLog, type CapturedLog } from '../helpers/server.ts'
import { ariCertId } from '../../src/tls/acme.ts'
import { issueLocalCertificate } from '../../src/tls/local-ca.ts'

/**
 * Automatic HTTPS end to end against Pebble, Let's Encrypt's ACME test
 * server: HTTP-01 on the cleartext listener (before the HTTPS redirect),
 * TLS-ALPN-01 on the TLS listener, names skipped with their reasons, the
 * certificate stored under dataDir and served at once after a restart,
 * renewal moved by the injectable clock, a failed renewal that leaves the
 * old certificate serving, and External Account Binding.
 */

const LIMIT = { timeout: 60_000 }
const NAME = 'shop.example.com'

type Logged = CapturedLog

/** The certificate a TLS handshake for `servername` presents, verified against `ca` (throws when it does not verify). */
function presented(port: number, servername: string, ca: string, alpn?: string[]): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
      const raw = s.getPeerX509Certificate()
      s.destroy()
      if (raw) resolve(raw)
      else reject(new Error('no certificate'))
    })
    s.on('error', reject)
  })
}

async function servedBy(port: number, ca: string): Promise<X509Certificate | null> {
  try {
    return await presented(port, NAME, ca)
  } catch {
    return null
  }
}

describe('ACME against Pebble', () => {
  let httpPort: number
  let tlsPort: number
  let pebble: Pebble
  let root: string
  let dir: string

  before(async () => {
    ;[httpPort, tlsPort] = [await freePort(), await freePort()]
    pebble = await startPebble({ httpPort, tlsPort, validitySeconds: 3600 })
    root = await pebble.root()
    dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-acme-'))
    await writeFile(path.join(dir, 'index.html'), '<h1>shop</h1>\n')
  })
  after(async () => {
    await pebble?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const config = (dataDir: string, extra: Partial<EdgeboxConfigInput> & { challenges?: Array<'http-01' | 'tls-alpn-01'>; cleartext?: boolean } = {}): EdgeboxConfigInput => ({
    dataDir,
    listen: [...(extra.cleartext === false ? [] : [{ host: '127.0.0.1', port: httpPort, httpsRedirect: { port: tlsPort } }]), { host: '127.0.0.1', port: tlsPort, tls: true }],
    tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: pebble.directory, ca: pebble.caFile, ...(extra.challenges ? { challenges: extra.challenges } : {}) } },
    log: { access: false },
    sites: [{ hosts: [NAME, 'localhost', 'dev.test'], routes: [{ path: '/', static: { root: dir } }] }],
  })

  test('HTTP-01: a certificate for the public name, answered before the HTTPS redirect; other names skipped with the reason; stored 0600', LIMIT, async () => {
    const data = path.join(dir, 'http01')
    const log = captureLog()
    const box = await startEdgebox(config(data, { challenges: ['http-01'] }), { baseDir: dir, log: log.logger })
    try {
      // before the certificate arrives, the cleartext listener still redirects everything else
      const redirect = await new Promise<http.IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port: httpPort, path: '/', headers: { host: NAME } }, resolve).on('error', reject))
      redirect.resume()
      assert.equal(redirect.statusCode, 308)
      await waitFor('the ACME certificate', async () => (await servedBy(tlsPort, root)) !== null, 30_000)
      const cert = await presented(tlsPort, NAME, root)
      assert.equal(cert.checkHost(NAME), NAME)
      assert.match(cert.issuer, /Pebble/)
      assert.ok(pebble.queried.has(NAME), 'the authority looked the name up')
      const skipped = log.lines.filter((l) => l.msg === 'ACME: no certificate ordered for this name').map((l) => [l.name, l.reason])
      assert.deepEqual(skipped, [
        ['localhost', 'a localhost name exists only on this machine'],
        ['dev.test', '.test is reserved for testing and local networks and never in public DNS'],
      ])
      assert.ok(log.lines.some((l) => l.msg === 'ACME certificate obtained' && l.name === NAME))
      // a request over the new certificate is served
      const body = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: NAME, ca: root, ALPNProtocols: ['http/1.1'] }, () => s.write(`GET /index.html HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`))
        let got = ''
        s.on('data', (d: Buffer) => (got += d.toString()))
        s.on('end', () => resolve(got))
        s.on('error', reject)
      })
      assert.match(body, /^HTTP\/1\.1 200 OK\r\n[\s\S]*<h1>shop<\/h1>/)
      // stored under dataDir, private
      const file = path.join(data, 'acme', 'localhost-' + new URL(pebble.directory).port + '-dir', 'certificates', `${NAME}.pem`)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700)
      assert.match(await readFile(file, 'utf8'), /^-----BEGIN PRIVATE KEY-----[\s\S]+-----BEGIN CERTIFICATE-----/)
      assert.equal((await stat(path.join(path.dirname(file), '..', 'account.json'))).mode & 0o777, 0o600)
    } finally {
      await box.close()
    }

    // a restart serves the stored certificate at once, without an order (the authority is not even asked)
    const again = captureLog()
    const before = (await readFile(path.join(data, 'acme', 'localhost-' + new URL(pebble.directory).port + '-dir', 'certificates', `${NAME}.pem`), 'utf8')).length
    const box2 = await startEdgebox(config(data, { challenges: ['http-01'] }), { baseDir: dir, log: again.logger })
    try {
      const cert = await presented(tlsPort, NAME, root)
      assert.equal(cert.checkHost(NAME), NAME)
      assert.ok(!again.lines.some((l) => l.msg === 'ordering an ACME certificate'))
      assert.ok(before > 0)
    } finally {
      await box2.close()
    }
  })

  test('TLS-ALPN-01 on the TLS listener alone; ordinary handshakes are untouched meanwhile', LIMIT, async () => {
    const log = captureLog()
    const box = await startEdgebox(config(path.join(dir, 'alpn'), { challenges: ['tls-alpn-01'], cleartext: false }), { baseDir: dir, log: log.logger })
    try {
      await waitFor('the ACME certificate', async () => (await servedBy(tlsPort, root)) !== null, 30_000)
      const cert = await presented(tlsPort, NAME, root, ['h2', 'http/1.1'])
      assert.match(cert.issuer, /Pebble/)
      // no challenge is pending now: an acme-tls/1 handshake gets no challenge certificate
      await assert.rejects(presented(tlsPort, NAME, root, ['acme-tls/1']))
    } finally {
      await box.close()
    }
  })

  test('reload: a name added gets its certificate; the ACME settings themselves cannot change on reload', LIMIT, async () => {
    const log = captureLog()
    const input = config(path.join(dir, 'reload'), { challenges: ['http-01'] })
    const box = await startEdgebox(input, { baseDir: dir, log: log.logger })
    try {
      await waitFor('the first certificate', async () => (await servedBy(tlsPort, root)) !== null, 30_000)
      const www = 'www.shop.example.com'
      await assert.rejects(presented(tlsPort, www, root), 'no certificate covers www yet')
      await box.reload({ ...input, sites: [{ hosts: [NAME, www], routes: [{ path: '/', static: { root: dir } }] }] })
      await waitFor('the certificate for the added name', async () => {
        try {
          return (await presented(tlsPort, www, root)).checkHost(www) === www
        } catch {
          return false
        }
      }, 30_000)
      await assert.rejects(
        box.reload({ ...input, tls: { acme: { ...input.tls!.acme!, email: 'someone@shop.example.com' } } }),
        /tls\.acme: the ACME settings cannot change on reload/,
      )
      assert.equal((await presented(tlsPort, NAME, root)).checkHost(NAME), NAME, 'the refused reload changed nothing')
    } finally {
      await box.close()
    }
  })

  test('renewal at two thirds of the lifetime, moved by the clock; a failed renewal keeps the old certificate serving and backs off', LIMIT, async () => {
    const clock = new ManualClock(Date.now())
    const log = captureLog('debug')
    const box: Edgebox = await startEdgebox(config(path.join(dir, 'renew'), { challenges: ['http-01'] }), { baseDir: dir, log: log.logger, clock })
    try {
      await waitFor('the first certificate', async () => (await servedBy(tlsPort, root)) !== null, 30_000)
      // the clock moves only once the next check is on it
      await waitFor('the renewal scheduled', () => log.lines.some((l) => l.msg === 'ACME: next check scheduled'), 30_000)
      const first = (await presented(tlsPort, NAME, root)).serialNumber
      // a keep-alive connection made on the first certificate lives through the swap
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: root, servername: NAME })
      const get = () =>
        new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
          https
            .get({ host: '127.0.0.1', port: tlsPort, path: '/index.html', headers: { host: NAME }, agent, servername: NAME }, (res) => {
              res.resume()
              res.on('end', () => resolve({ status: res.statusCode!, socket: res.socket }))
            })
            .on('error', reject)
        })
      const a = await get()
      assert.equal(a.status, 200)

      // a renewal whose challenge fails: the old certificate keeps serving, and the failure is logged with a retry time
      pebble.setAddress('127.0.0.3')
      clock.advance(41 * 60_000) // past two thirds of the hour
      await waitFor('the failed renewal', () => log.lines.some((l) => l.msg === 'ACME order failed; trying again later'), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${log.lines.map((l) => JSON.stringify(l)).join('\n')}`)
      })
      const failed = log.lines.find((l) => l.msg === 'ACME order failed; trying again later')!
      assert.equal(failed.retryInSeconds, 60)
      assert.match(String(failed.serving), /^the certificate valid until /)
      assert.equal((await presented(tlsPort, NAME, root)).serialNumber, first)

      // the retry, a minute later, with the name reachable again: a new certificate, swapped in
      pebble.setAddress('127.0.0.1')
      clock.advance(61_000)
      await waitFor('the renewed certificate', async () => (await presented(tlsPort, NAME, root)).serialNumber !== first, 30_000)
      const b = await get()
      assert.equal(b.status, 200)
      assert.equal(b.socket, a.socket, 'the open connection was kept')
      agent.destroy()
    } finally {
      await box.close()
    }
  })
})

describe('ACME Renewal Information (RFC 9773)', () => {
  test('renewal follows the suggested window, asked with the certificate identifier; a far window means no renewal', LIMIT, async () => {
    const [httpPort, tlsPort] = [await freePort(), await freePort()]
    const pebble = await startPebble({ httpPort, tlsPort })
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-acme-ari-'))
    // Pebble has no renewal information: a directory in front of it adds a renewalInfo resource and answers it
    const own = await issueLocalCertificate(path.dirname(path.dirname(pebble.caFile)), ['localhost'])
    const asked: string[] = []
    let window = { start: '', end: '' }
    const front = https.createServer({ cert: own.certPem, key: own.keyPem }, async (req, res) => {
      if (req.url === '/dir') {
        const upstream = await new Promise<string>((resolve, reject) =>
          https.get(pebble.directory, { ca: readFileSync(pebble.caFile) }, (r) => {
            let b = ''
            r.on('data', (d: Buffer) => (b += d.toString()))
            r.on('end', () => resolve(b))
          }).on('error', reject),
        )
        const dirJson = { ...(JSON.parse(upstream) as object), renewalInfo: `https://localhost:${(front.address() as AddressInfo).port}/renewal-info` }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(dirJson))
      } else if (req.url?.startsWith('/renewal-info/')) {
        asked.push(req.url.slice('/renewal-info/'.length))
        res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '21600' }).end(JSON.stringify({ suggestedWindow: window }))
      } else res.writeHead(404).end()
    })
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
    const clock = new ManualClock(Date.now())
    const day = 86_400_000
    window = { start: new Date(clock.now() + 30 * day).toISOString(), end: new Date(clock.now() + 31 * day).toISOString() }
    const log = captureLog('debug')
    const box = await startEdgebox(
      {
        dataDir: path.join(dir, 'data'),
        listen: [
          { host: '127.0.0.1', port: httpPort },
          { host: '127.0.0.1', port: tlsPort, tls: true },
        ],
        tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: `https://localhost:${(front.address() as AddressInfo).port}/dir`, ca: pebble.caFile } },
        log: { access: false },
        sites: [{ hosts: [NAME], routes: [{ path: '/', static: { root: dir } }] }],
      },
      { baseDir: dir, log: log.logger, clock },
    )
    try {
      const root = await pebble.root()
      await waitFor('the certificate and its renewal information', async () => (await servedBy(tlsPort, root)) !== null && asked.length > 0, 30_000)
      await waitFor('the renewal scheduled', () => log.lines.some((l) => l.msg === 'ACME: next check scheduled'), 30_000)
      const first = await presented(tlsPort, NAME, root)
      assert.equal(asked[0], ariCertId(first.toString()))
      // six hours on (Retry-After), the window is asked again and is still far: no renewal
      clock.advance(6 * 3_600_000 + 1000)
      const notDue = (n: number) => log.lines.filter((l) => l.msg === 'ACME certificate not due for renewal').length >= n
      await waitFor('the second check', () => notDue(1) || log.lines.some((l) => l.msg === 'renewing the ACME certificate'), 30_000)
      assert.equal(asked.length, 2)
      assert.equal(log.lines.filter((l) => l.msg === 'ACME certificate not due for renewal').at(-1)!.by, 'renewal information')
      assert.equal((await presented(tlsPort, NAME, root)).serialNumber, first.serialNumber)
      assert.ok(!log.lines.some((l) => l.msg === 'renewing the ACME certificate'))
      // the authority moves the window to now (a revocation coming, say): the next check renews long before two thirds of the lifetime
      window = { start: new Date(clock.now()).toISOString(), end: new Date(clock.now() + 1000).toISOString() }
      clock.advance(6 * 3_600_000 + 1000)
      await waitFor('the renewed certificate', async () => (await presented(tlsPort, NAME, root)).serialNumber !== first.serialNumber, 30_000)
      assert.ok(log.lines.some((l) => l.msg === 'renewing the ACME certificate'))
    } finally {
      await box.close()
      front.close()
      await pebble.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('ACME with External Account Binding', () => {
  test('an account is created with the key id and HMAC key; a wrong key is an order failure, not a crash', LIMIT, async () => {
    const [httpPort, tlsPort] = [await freePort(), await freePort()]
    const hmac = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W'
    const pebble = await startPebble({ httpPort, tlsPort, eab: { 'kid-1': hmac } })
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-acme-eab-'))
    const start = (hmacKey: string, log: Logged) =>
      startEdgebox(
        {
          dataDir: path.join(dir, hmacKey.slice(0, 4)),
          listen: [
            { host: '127.0.0.1', port: httpPort },
            { host: '127.0.0.1', port: tlsPort, tls: true },
          ],
          tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: pebble.directory, ca: pebble.caFile, eab: { kid: 'kid-1', hmacKey } } },
          log: { access: false },
          sites: [{ hosts: [NAME], routes: [{ path: '/', static: { root: dir } }] }],
        },
        { baseDir: dir, log: log.logger },
      )
    try {
      const root = await pebble.root()
      const bad = captureLog()
      const wrong = await start('AAAA' + hmac.slice(4), bad)
      try {
        await waitFor('the refused account', () => bad.lines.some((l) => l.msg === 'ACME order failed; trying again later'), 30_000)
        assert.equal(await servedBy(tlsPort, root), null)
      } finally {
        await wrong.close()
      }
      const good = captureLog()
      const box = await start(hmac, good)
      try {
        await waitFor('the ACME certificate', async () => (await servedBy(tlsPort, root)) !== null, 30_000)
        assert.ok(good.lines.some((l) => l.msg === 'ACME account created'))
      } finally {
        await box.close()
      }
    } finally {
      await pebble.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { X509Certificate } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import tls from 'node:tls'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startEdgebox } from '../../src/server/app.ts'
import { waitFor } from '../helpers/clock.ts'
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts'

/**
 * A wildcard certificate by DNS-01 (RFC 8555 §8.4): Pebble's validation
 * asks Edgebox's own DNS server for `_acme-challenge.<name>` TXT, which
 * Edgebox answers from the zone it serves while the order is pending.
 */

const LIMIT = { timeout: 60_000 }

/** A port free over UDP and TCP on 127.0.0.1 (Pebble is told it before Edgebox binds it). */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
}

function presented(port: number, servername: string, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = s.getPeerX509Certificate()
      s.end()
      if (cert) resolve(cert)
      else reject(new Error('no certificate'))
    })
    s.on('error', reject)
  })
}

describe('ACME DNS-01 through Edgebox\'s own zone', () => {
  let pebble: Pebble
  let dnsPort: number
  let tlsPort: number
  let dir: string
  before(async () => {
    dnsPort = await freeDnsPort()
    tlsPort = await freePort()
    pebble = await startPebble({ httpPort: await freePort(), tlsPort, dnsServer: `127.0.0.1:${dnsPort}` })
    dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-dns01-'))
  })
  after(async () => {
    await pebble?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('a wildcard certificate: Pebble validates the challenge TXT that Edgebox serves while the order is pending (gone after); the certificate covers one label below', LIMIT, async () => {
    const lines: Record<string, unknown>[] = []
    const log = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb() } }))
    const box = await startEdgebox(
      {
        dataDir: path.join(dir, 'data'),
        listen: [{ host: '127.0.0.1', port: tlsPort, tls: true }],
        tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: pebble.directory, ca: pebble.caFile, challenges: ['dns-01'] } },
        log: { access: false },
        dns: { listen: { host: '127.0.0.1', port: dnsPort }, zones: [{ origin: 'shop.example.com', records: [{ name: '@', type: 'NS', data: 'ns' }, { name: 'ns', type: 'A', data: '127.0.0.1' }] }] },
        sites: [{ hosts: ['*.shop.example.com', '*.other.example.org'], routes: [{ path: '/', redirect: { to: 'https://shop.example.com/' } }] }],
      },
      { baseDir: dir, log },
    )
    try {
      const root = await pebble.root()
      await waitFor('the wildcard certificate', async () => (await presented(tlsPort, 'a.shop.example.com', root).catch(() => null)) !== null, 40_000)
      const cert = await presented(tlsPort, 'a.shop.example.com', root)
      assert.match(cert.subjectAltName ?? '', /DNS:\*\.shop\.example\.com/)
      assert.equal(cert.checkHost('b.shop.example.com'), '*.shop.example.com', 'a wildcard covers one label below it')
      assert.equal(cert.checkHost('shop.example.com'), undefined, 'not the base name itself')
      assert.match(cert.issuer, /Pebble/)
      assert.ok(lines.some((l) => l.msg === 'ACME certificate obtained' && l.name === '*.shop.example.com'))
      // a wildcard in a zone Edgebox does not serve is skipped, saying why
      const skipped = lines.find((l) => l.msg === 'ACME: no certificate ordered for this name' && l.name === '*.other.example.org')
      assert.match(String(skipped?.reason), /a wildcard needs the DNS-01 challenge, which Edgebox answers only for names in a zone of its own/)
      // stored as _wildcard.<name>.pem, private
      const file = path.join(dir, 'data', 'acme', 'localhost-' + new URL(pebble.directory).port + '-dir', 'certificates', '_wildcard.shop.example.com.pem')
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      // once validated, the challenge record is gone: the name is NXDOMAIN in the zone again
      const { udp, query } = await import('../helpers/dns.ts')
      const r = await udp(dnsPort, query('_acme-challenge.shop.example.com', 'TXT'))
      assert.equal(r.rcode, 'NXDOMAIN')
    } finally {
      await box.close()
    }
  })
})

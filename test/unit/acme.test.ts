import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import assert from 'node:assert/strict'
import { X509Certificate, webcrypto } from 'node:crypto'
import net from 'node:net'
import { test } from 'node:test'
import tls from 'node:tls'
import { validateConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { ariCertId, backoff, directoryFolder, directoryUrl, planAcmeNames, renewAtTwoThirds, renewalMoment, retryAfterMs } from '../../src/tls/acme.ts'
import type { LoadedCertificate } from '../../src/tls/certificates.ts'
import { parseClientHello } from '../../src/tls/client-hello.ts'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

const site = (hosts: string[]) => ({ hosts, routes: [{ path: '/', static: { root: '.' } }] })

/** The first bytes a real TLS client sends: its ClientHello, as Node's TLS stack writes it. */
async function clientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))))
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ...opts })
  c.on('error', () => {})
  const bytes = await got
  c.destroy()
  server.close()
  return bytes
}

test('parseClientHello: the server name and the offered ALPN protocols of a real ClientHello', async () => {
  const hello = parseClientHello(await clientHello({ servername: 'Shop.Example.com', ALPNProtocols: ['acme-tls/1'] }))
  assert.deepEqual(hello, { servername: 'shop.example.com', alpn: ['acme-tls/1'] })
  const browser = parseClientHello(await clientHello({ servername: 'a.example.org', ALPNProtocols: ['h2', 'http/1.1'] }))
  assert.deepEqual(browser, { servername: 'a.example.org', alpn: ['h2', 'http/1.1'] })
  const bare = await clientHello({ host: '127.0.0.1' })
  assert.deepEqual(parseClientHello(bare), { servername: undefined, alpn: [] })
  // cut short, or not a handshake: null, never a guess
  assert.equal(parseClientHello(bare.subarray(0, bare.length - 1)), null)
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')), null)
  const corrupt = Buffer.from(bare)
  corrupt.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + corrupt[5 + 4 + 2 + 32]!) // cipher_suites length beyond the record
  assert.equal(parseClientHello(corrupt), null)
})

test('planAcmeNames: public names are ordered; each other one is skipped with its reason', () => {
  const plan = planAcmeNames(
    validateConfig({ sites: [site(['shop.example.com', 'WWW.shop.example.com', 'localhost', 'api.localhost', '127.0.0.1', '[::1]', 'dev.test', 'x.example', 'printer.local', 'intranet', '*.shop.example.com']), site([])] }).sites,
    [],
  )
  assert.deepEqual(plan.names, ['shop.example.com', 'www.shop.example.com'])
  const why = Object.fromEntries(plan.skipped.map((s) => [s.name, s.reason]))
  assert.match(why['localhost']!, /only on this machine/)
  assert.match(why['api.localhost']!, /only on this machine/)
  assert.match(why['127.0.0.1']!, /IP address/)
  assert.match(why['[::1]']!, /IP address/)
  assert.match(why['dev.test']!, /\.test is reserved/)
  assert.match(why['x.example']!, /\.example is reserved/)
  assert.match(why['printer.local']!, /\.local is reserved/)
  assert.match(why['intranet']!, /not a fully qualified/)
  assert.match(why['*.shop.example.com']!, /DNS-01/)
  assert.match(why['sites[1]']!, /hosts: \[\] answers any name/)
})

/** A self-signed P-256 certificate, valid from `from` for `days`. */
async function selfSigned(serialNumber: string, name: string, extensions: x509.Extension[] = [], from = Date.now() - 1000, days = 1): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: `CN=${name}`,
    notBefore: new Date(from),
    notAfter: new Date(from + days * 86_400_000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions,
  })
  return cert.toString('pem')
}

test('planAcmeNames: a name a configured certificate covers is left to it', async () => {
  const pem = await selfSigned('01', 'static.example.com', [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'static.example.com' }])])
  const configured: LoadedCertificate = { id: 'tls.certificates[0]', cert: new X509Certificate(pem), certPem: pem, keyPem: '', names: ['static.example.com'] }
  const plan = planAcmeNames(validateConfig({ sites: [site(['static.example.com', 'shop.example.com'])] }).sites, [configured])
  assert.deepEqual(plan.names, ['shop.example.com'])
  assert.deepEqual(plan.skipped, [{ name: 'static.example.com', reason: 'already covered by tls.certificates[0]' }])
})

test('ariCertId: RFC 9773 §4.1 example (AKI 69:88:5B:..., serial 0x87654321)', async () => {
  const pem = await selfSigned('87654321', 'ari.example.com', [new x509.AuthorityKeyIdentifierExtension('69885b6b87464041e1b37b847ba0ae2cde01c8d4')])
  assert.equal(ariCertId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE')
})

test('renewalMoment: uniformly inside the suggested window; a missing or inverted window is no answer', () => {
  const window = { start: '2026-01-10T00:00:00Z', end: '2026-01-12T00:00:00Z' }
  assert.equal(renewalMoment(window, () => 0), Date.parse(window.start))
  assert.equal(renewalMoment(window, (n) => n - 1), Date.parse(window.end) - 1)
  assert.equal(renewalMoment({ start: window.end, end: window.start }, () => 0), undefined)
  assert.equal(renewalMoment(undefined, () => 0), undefined)
  assert.equal(renewalMoment({ start: 'soon' }, () => 0), undefined)
})

test('renewAtTwoThirds: day 60 of a 90-day certificate', async () => {
  const from = Date.UTC(2026, 0, 1)
  assert.equal(renewAtTwoThirds(new X509Certificate(await selfSigned('02', 'x', [], from, 90))), from + 60 * 86_400_000)
})

test('backoff: 1 minute doubling to 6 hours; a rate limit waits at least an hour', () => {
  assert.deepEqual([1, 2, 3, 10, 20].map((n) => backoff(n, new Error('connection refused')) / 60_000), [1, 2, 4, 360, 360])
  assert.equal(backoff(1, new Error('urn:ietf:params:acme:error:rateLimited: too many certificates')), 3_600_000)
})

test('retryAfterMs: seconds or an HTTP-date', () => {
  const now = Date.UTC(2026, 0, 1)
  assert.equal(retryAfterMs('120', now), 120_000)
  assert.equal(retryAfterMs('Thu, 01 Jan 2026 01:00:00 GMT', now), 3_600_000)
  assert.equal(retryAfterMs('later', now), undefined)
  assert.equal(retryAfterMs(null, now), undefined)
})

test('directories: Let\'s Encrypt by name, any https URL, and one folder per directory', () => {
  const acme = (directory?: string) => validateConfig({ listen: [{ tls: true }], tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, ...(directory ? { directory } : {}) } }, sites: [site(['shop.example.com'])] }).tls.acme!
  assert.equal(directoryUrl(acme()), 'https://acme-v02.api.letsencrypt.org/directory')
  assert.equal(directoryUrl(acme('letsencrypt-staging')), 'https://acme-staging-v02.api.letsencrypt.org/directory')
  assert.equal(directoryUrl(acme('https://acme.zerossl.com/v2/DV90')), 'https://acme.zerossl.com/v2/DV90')
  assert.equal(directoryFolder('https://acme-v02.api.letsencrypt.org/directory'), 'acme-v02.api.letsencrypt.org-directory')
  assert.equal(directoryFolder('https://localhost:14000/dir'), 'localhost-14000-dir')
})

test('tls.acme configuration errors name the option', () => {
  const problems = (input: unknown) => {
    try {
      validateConfig(input as never)
      return []
    } catch (err) {
      assert.ok(err instanceof ConfigError)
      return err.issues
    }
  }
  const base = { listen: [{ tls: true }], sites: [site(['shop.example.com'])] }
  assert.match(problems({ ...base, tls: { acme: { email: 'ops@shop.example.com' } } }).join('\n'), /tls\.acme\.agreeToTerms: set agreeToTerms: true/)
  assert.match(problems({ ...base, tls: { acme: { email: 'not an address', agreeToTerms: true } } }).join('\n'), /tls\.acme\.email/)
  assert.match(problems({ ...base, tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: 'http://acme.example.com/dir' } } }).join('\n'), /tls\.acme\.directory: .*https:\/\//)
  assert.match(problems({ ...base, tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, eab: { kid: 'k', hmacKey: 'not base64url!' } } } }).join('\n'), /tls\.acme\.eab\.hmacKey/)
  assert.match(problems({ listen: [{}], tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true } }, sites: base.sites }).join('\n'), /tls\.acme: ACME certificates are for a TLS listener/)
  assert.match(problems({ ...base, tls: { local: true, acme: { email: 'ops@shop.example.com', agreeToTerms: true } } }).join('\n'), /tls\.local: choose tls\.acme or tls\.local/)
  assert.deepEqual(problems({ ...base, tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true } } }), [])
})

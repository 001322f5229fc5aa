import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { mkdtemp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import tls from 'node:tls'
import { certCommand } from '../../src/cli/cert.ts'
import { csrInstructions, ensureLocalCa, issueLocalCertificate, trustInstructions } from '../../src/tls/local-ca.ts'

const DAY = 86_400_000
const LIMIT = { timeout: 30_000 }

/** Runs `fn` with a fresh temporary home folder, removed afterwards. */
async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'edgebox-ca-'))
  try {
    await fn(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

/** Every file under `dir` with its bytes, to show nothing changed. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const file = path.join(entry.parentPath, entry.name)
      out.set(path.relative(dir, file), (await readFile(file)).toString('base64'))
    }
  }
  return out
}

function ecKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

function capture() {
  let stdout = ''
  let stderr = ''
  return {
    out: { stdout: (s: string) => void (stdout += s), stderr: (s: string) => void (stderr += s) },
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
  }
}

test('the CA is created once, then loaded unchanged', LIMIT, () =>
  withHome(async (home) => {
    const first = await ensureLocalCa(home)
    assert.equal(first.created, true)
    assert.equal(first.certPath, path.join(home, 'ca', 'ca.crt'))
    assert.equal(first.keyPath, path.join(home, 'ca', 'ca.key'))
    const before = await snapshot(home)

    const second = await ensureLocalCa(home)
    assert.equal(second.created, false)
    assert.equal(second.certPem, first.certPem)
    assert.equal(second.keyPem, first.keyPem)
    assert.deepEqual(await snapshot(home), before)

    const ca = new X509Certificate(first.certPem)
    assert.equal(ca.ca, true)
    assert.equal(ca.verify(ca.publicKey), true, 'self-signed')
    assert.match(ca.subject, /CN=Edgebox local CA \(.+@.+\)/)
    assert.match(ca.subject, /O=Edgebox local development/)
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
    assert.deepEqual(ca.keyUsage ?? [], [], 'no extended key usage on the CA')
    const years = (ca.validToDate.getTime() - Date.now()) / (365.25 * DAY)
    assert.ok(years > 9.9 && years < 10.1, `valid ${years} years`)
    assert.ok(/^[0-7]/.test(ca.serialNumber) && ca.serialNumber.length === 32, `positive 16-byte serial ${ca.serialNumber}`)
    if (process.platform !== 'win32') {
      assert.equal((await stat(first.keyPath)).mode & 0o777, 0o600)
      assert.equal((await stat(path.join(home, 'ca'))).mode & 0o777, 0o700)
    }
    // no temporary files left behind
    assert.deepEqual((await readdir(path.join(home, 'ca'))).sort(), ['ca.crt', 'ca.key'])
  }),
)

test('a CA key without its certificate, or a mismatched pair, is refused and nothing is written', LIMIT, () =>
  withHome(async (home) => {
    const lone = path.join(home, 'lone')
    await mkdir(path.join(lone, 'ca'), { recursive: true })
    await writeFile(path.join(lone, 'ca', 'ca.key'), ecKeyPem(), { mode: 0o600 })
    const before = await snapshot(lone)
    await assert.rejects(ensureLocalCa(lone), (err: Error) => {
      assert.ok(err.message.includes(path.join(lone, 'ca', 'ca.crt')), err.message)
      assert.match(err.message, /nothing was changed/i)
      return true
    })
    await assert.rejects(issueLocalCertificate(lone, ['shop.example']), /ca\.crt/)
    assert.deepEqual(await snapshot(lone), before)
    assert.deepEqual(await readdir(lone), ['ca'])

    const certOnly = path.join(home, 'cert-only')
    const a = await ensureLocalCa(path.join(home, 'a'))
    await mkdir(path.join(certOnly, 'ca'), { recursive: true })
    await writeFile(path.join(certOnly, 'ca', 'ca.crt'), a.certPem)
    await assert.rejects(ensureLocalCa(certOnly), (err: Error) => err.message.includes(path.join(certOnly, 'ca', 'ca.key')))
    assert.deepEqual(await readdir(path.join(certOnly, 'ca')), ['ca.crt'])

    const mixed = path.join(home, 'mixed')
    const b = await ensureLocalCa(path.join(home, 'b'))
    await mkdir(path.join(mixed, 'ca'), { recursive: true })
    await writeFile(path.join(mixed, 'ca', 'ca.crt'), a.certPem)
    await writeFile(path.join(mixed, 'ca', 'ca.key'), b.keyPem, { mode: 0o600 })
    const mixedBefore = await snapshot(mixed)
    await assert.rejects(ensureLocalCa(mixed), (err: Error) => {
      assert.ok(err.message.includes(path.join(mixed, 'ca', 'ca.key')), err.message)
      assert.match(err.message, /does not match/)
      assert.match(err.message, /nothing was changed/i)
      return true
    })
    assert.deepEqual(await snapshot(mixed), mixedBefore)
  }),
)

test('the leaf certificate is signed by the CA and covers the hosts and loopback', LIMIT, () =>
  withHome(async (home) => {
    const leaf = await issueLocalCertificate(home, ['Shop.Example', '*.example.test', 'shop.example', '10.1.2.3'])
    const ca = new X509Certificate((await ensureLocalCa(home)).certPem)
    const cert = new X509Certificate(leaf.certPem)
    assert.equal(leaf.issued, true)
    assert.equal(leaf.certPath, path.join(home, 'certs', 'local.crt'))
    assert.equal(leaf.keyPath, path.join(home, 'certs', 'local.key'))
    assert.equal(leaf.chainPem, leaf.certPem)
    assert.deepEqual(leaf.hosts, ['shop.example', '*.example.test', '10.1.2.3', 'localhost', '127.0.0.1', '::1'])
    assert.equal(await readFile(leaf.certPath, 'utf8'), leaf.certPem)
    assert.equal(await readFile(leaf.keyPath, 'utf8'), leaf.keyPem)

    assert.equal(cert.verify(ca.publicKey), true)
    assert.equal(cert.checkIssued(ca), true)
    assert.equal(cert.checkPrivateKey(createPrivateKey(leaf.keyPem)), true)
    assert.equal(cert.ca, false)
    assert.equal(cert.subject, 'CN=shop.example')
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth')
    const san = cert.subjectAltName ?? ''
    for (const part of ['DNS:shop.example', 'DNS:*.example.test', 'DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:10.1.2.3']) assert.ok(san.includes(part), `${part} in ${san}`)
    assert.match(san, /IP Address:(::1|0:0:0:0:0:0:0:1)\b/)
    assert.equal(cert.checkHost('localhost'), 'localhost')
    assert.equal(cert.checkHost('shop.example'), 'shop.example')
    assert.equal(cert.checkHost('a.example.test'), '*.example.test', 'the wildcard name matches')
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1')
    assert.equal(cert.checkIP('::1'), '::1')
    assert.equal(cert.checkHost('other.example'), undefined)
    const days = (cert.validToDate.getTime() - Date.now()) / DAY
    assert.ok(days > 396 && days <= 397, `valid ${days} days`)
    if (process.platform !== 'win32') assert.equal((await stat(leaf.keyPath)).mode & 0o777, 0o600)
    assert.deepEqual((await readdir(path.join(home, 'certs'))).sort(), ['local.crt', 'local.key'])

    await assert.rejects(issueLocalCertificate(home, ['bad_name!']), /bad_name!/)
  }),
)

test('a stored certificate is reused while it fits, and reissued for a new host or a new CA', LIMIT, () =>
  withHome(async (home) => {
    const first = await issueLocalCertificate(home, ['shop.example'])
    const again = await issueLocalCertificate(home, ['SHOP.example'])
    assert.equal(again.issued, false)
    assert.equal(again.certPem, first.certPem)
    assert.equal(again.keyPem, first.keyPem)
    assert.equal(await readFile(first.certPath, 'utf8'), first.certPem)
    // the loopback names alone are covered too
    assert.equal((await issueLocalCertificate(home, [])).issued, false)

    const wider = await issueLocalCertificate(home, ['api.example'])
    assert.equal(wider.issued, true)
    assert.notEqual(wider.certPem, first.certPem)
    const cert = new X509Certificate(wider.certPem)
    assert.equal(cert.checkHost('api.example'), 'api.example')
    assert.equal(await readFile(wider.certPath, 'utf8'), wider.certPem)

    // another CA (the old one moved away): the certificate it signed no longer counts
    await rename(path.join(home, 'ca'), path.join(home, 'old-ca'))
    const ca = await ensureLocalCa(home)
    assert.equal(ca.created, true)
    const fresh = await issueLocalCertificate(home, ['api.example'])
    assert.equal(fresh.issued, true)
    assert.equal(new X509Certificate(fresh.certPem).verify(new X509Certificate(ca.certPem).publicKey), true)
  }),
)

interface Outcome {
  authorized: boolean
  error?: NodeJS.ErrnoException
}

/** A TLS handshake to 127.0.0.1:port; resolves with its outcome (never hangs: 5 s limit). */
function handshake(port: number, options: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ...options })
    const done = (outcome: Outcome) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => done({ authorized: false, error: Object.assign(new Error('handshake timed out'), { code: 'ETIMEDOUT' }) }), 5000)
    socket.once('secureConnect', () => done({ authorized: socket.authorized, ...(socket.authorizationError ? { error: socket.authorizationError as NodeJS.ErrnoException } : {}) }))
    socket.once('error', (error: NodeJS.ErrnoException) => done({ authorized: false, error }))
  })
}

test('a TLS server with the certificate is trusted by clients that trust the CA, and only by them', LIMIT, () =>
  withHome(async (home) => {
    const leaf = await issueLocalCertificate(home, ['shop.example', '*.example.test'])
    const caPem = (await ensureLocalCa(home)).certPem
    const server = tls.createServer({ cert: leaf.chainPem, key: leaf.keyPem }, (socket) => socket.end('hello\n'))
    server.on('tlsClientError', () => {})
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    try {
      for (const servername of ['localhost', 'shop.example', 'a.example.test']) {
        const ok = await handshake(port, { servername, ca: caPem })
        assert.equal(ok.error, undefined, `${servername}: ${ok.error?.message}`)
        assert.equal(ok.authorized, true, servername)
      }

      const untrusted = await handshake(port, { servername: 'localhost' })
      assert.ok(untrusted.error instanceof Error, 'a client without the CA refuses the certificate')
      assert.match(String(untrusted.error.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED|CERT_UNTRUSTED/)
      assert.equal(untrusted.authorized, false)

      const wrongName = await handshake(port, { servername: 'other.example', ca: caPem })
      assert.ok(wrongName.error instanceof Error, 'a name the certificate does not cover is refused')
      assert.equal(wrongName.error.code, 'ERR_TLS_CERT_ALTNAME_INVALID')
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }),
)

test('edgebox cert: validation, --csr and a normal run', LIMIT, () =>
  withHome(async (home) => {
    const bad = capture()
    assert.equal(await certCommand(['--host', 'bad_name!', '--home', home], bad.out), 2)
    assert.match(bad.stderr, /bad_name!/)
    assert.deepEqual(await readdir(home), [])

    const unknown = capture()
    assert.equal(await certCommand(['--nope'], unknown.out), 2)
    assert.match(unknown.stderr, /--nope/)

    const csr = capture()
    assert.equal(await certCommand(['--csr', '--host', 'shop.example', '--home', home], csr.out), 0)
    assert.match(csr.stdout, /openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out site\.key/)
    assert.match(csr.stdout, /openssl req -new -key site\.key -out site\.csr -subj "\/CN=shop\.example" -addext "subjectAltName=DNS:shop\.example"/)
    assert.match(csr.stdout, /openssl req -in site\.csr -noout -text/)
    assert.match(csr.stdout, /chain: '\.\/chain\.pem'/)
    assert.deepEqual(await readdir(home), [], '--csr creates nothing')

    const run = capture()
    assert.equal(await certCommand(['--home', home, '--host', 'shop.example'], run.out), 0, run.stderr)
    const caPath = path.join(home, 'ca', 'ca.crt')
    assert.ok(run.stdout.includes(caPath), run.stdout)
    assert.match(run.stdout, /created/)
    assert.match(run.stdout, /issued/)
    assert.ok(run.stdout.includes(path.join(home, 'certs', 'local.crt')))
    assert.match(run.stdout, /shop\.example, localhost, 127\.0\.0\.1, ::1/)
    assert.match(run.stdout, /valid until: \d{4}-\d{2}-\d{2}/)
    assert.match(run.stdout, /trust/i)
    assert.match(run.stdout, /update-ca-certificates/)
    // and how a real site gets its certificate: the CSR steps for the same names
    assert.match(run.stdout, /openssl req -new -key site\.key -out site\.csr -subj "\/CN=shop\.example"/)

    const rerun = capture()
    assert.equal(await certCommand(['--home', home, '--host', 'shop.example'], rerun.out), 0)
    assert.match(rerun.stdout, /already exists/)
    assert.match(rerun.stdout, /reused/)

    const broken = path.join(home, 'broken')
    await mkdir(path.join(broken, 'ca'), { recursive: true })
    await writeFile(path.join(broken, 'ca', 'ca.key'), ecKeyPem())
    const refused = capture()
    assert.equal(await certCommand(['--home', broken], refused.out), 1)
    assert.ok(refused.stderr.includes(path.join(broken, 'ca', 'ca.crt')), refused.stderr)
  }),
)

test('the instructions name the commands and the files', () => {
  const trust = trustInstructions('/home/u/.local/share/edgebox/ca/ca.crt')
  for (const part of [
    'sudo cp /home/u/.local/share/edgebox/ca/ca.crt /usr/local/share/ca-certificates/edgebox-local-ca.crt && sudo update-ca-certificates',
    '/etc/pki/ca-trust/source/anchors/',
    'update-ca-trust',
    'security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain',
    'certutil -addstore -f ROOT',
    'certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n "Edgebox local CA" -i',
    'NODE_EXTRA_CA_CERTS=/home/u/.local/share/edgebox/ca/ca.crt',
    '--cacert /home/u/.local/share/edgebox/ca/ca.crt',
    '/home/u/.local/share/edgebox/ca/ca.key',
  ]) {
    assert.ok(trust.includes(part), part)
  }
  assert.ok(trustInstructions('/tmp/my dir/ca.crt').includes("'/tmp/my dir/ca.crt'"), 'a path with a space is quoted')

  const csr = csrInstructions(['shop.example', 'www.shop.example', '192.0.2.1'])
  assert.ok(csr.includes('-subj "/CN=shop.example" -addext "subjectAltName=DNS:shop.example,DNS:www.shop.example,IP:192.0.2.1"'))
  for (const file of ['site.key', 'site.csr', 'site.crt', 'chain.pem']) assert.ok(csr.includes(file), file)
  assert.match(csr, /Let's Encrypt/)
  assert.match(csr, /tls: \{ certificates: \[\{ cert: '\.\/site\.crt', key: '\.\/site\.key', chain: '\.\/chain\.pem' \}\] \}/)
})

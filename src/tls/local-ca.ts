import 'reflect-metadata'
import { ensurePrivateDir, readIfExists, writeNewPrivateFile, writePrivateFile } from '../core/data-dir.ts'
import * as x509 from '@peculiar/x509'
import { X509Certificate, createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/**
 * A local certificate authority for development (docs/tls.md): one CA per
 * user, kept in Edgebox's data folder, signs a certificate for localhost,
 * 127.0.0.1, ::1 and the names a developer asks for. Once the user trusts
 * the CA (trustInstructions), browsers, curl and Node accept HTTPS from a
 * local Edgebox without warnings. The CA is created once and never
 * replaced: trusting a new one means doing the trust steps again, and a
 * CA key silently replaced would leave the old, still trusted one behind.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

const DAY = 86_400_000
/** The CA's lifetime: long, so trusting it is a one-time step. */
const CA_DAYS = 3652
/** A leaf's lifetime: within the 398 days browsers accept for a server certificate. */
const LEAF_DAYS = 397
/** A leaf this close to expiry is reissued rather than reused. */
const RENEW_DAYS = 30
/** notBefore is set this far in the past, so a client whose clock runs a little behind still accepts a fresh certificate. */
const BACKDATE = 3600_000
/** The names every local certificate covers. */
const LOOPBACK = ['localhost', '127.0.0.1', '::1']

const EC_KEY: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' }
const EC_SIGN: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' }

export interface LocalCa {
  certPath: string
  keyPath: string
  certPem: string
  keyPem: string
  /** True when this call created the authority; false when it was loaded from disk. */
  created: boolean
}

export interface LocalCertificate {
  certPath: string
  keyPath: string
  certPem: string
  keyPem: string
  /**
   * What a server sends: the certificate alone. The local CA is the trust
   * anchor the client already has, so it is not sent, and there is no
   * intermediate; this is the same text as certPem.
   */
  chainPem: string
  /** True when a new certificate was issued; false when the stored one still fits. */
  issued: boolean
  /** The names and addresses the certificate covers, in order (the first is the subject CN). */
  hosts: string[]
}

/** A host name a certificate can carry: a DNS name, optionally with a leading wildcard label. */
const HOST_NAME = /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/i

/**
 * What a requested host is: 'ip' (IPv4 or IPv6 address, without a zone),
 * 'dns' (a name, `*.example.test` allowed), or null when a certificate
 * cannot carry it.
 */
export function hostKind(host: string): 'ip' | 'dns' | null {
  if (net.isIP(host) !== 0 && !host.includes('%')) return 'ip'
  if (HOST_NAME.test(host) && host.length <= 253) return 'dns'
  return null
}

/** Loads the local CA from `<home>/ca`, creating it on first use. An incomplete or mismatched pair is refused, never replaced. */
export async function ensureLocalCa(home: string): Promise<LocalCa> {
  const dir = path.join(home, 'ca')
  const certPath = path.join(dir, 'ca.crt')
  const keyPath = path.join(dir, 'ca.key')
  const [certPem, keyPem] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)])
  const untouched = 'Nothing was changed.'
  const moveAway = `To start over with a new authority (which must then be trusted again), move ${dir} away.`

  if (certPem !== undefined && keyPem !== undefined) {
    let cert: X509Certificate
    let key: KeyObject
    try {
      cert = new X509Certificate(certPem)
    } catch (err) {
      throw new Error(`the local CA certificate ${certPath} cannot be read: ${(err as Error).message}. ${untouched} ${moveAway}`)
    }
    try {
      key = createPrivateKey(keyPem)
    } catch (err) {
      throw new Error(`the local CA key ${keyPath} cannot be read: ${(err as Error).message}. ${untouched} ${moveAway}`)
    }
    if (!cert.ca) throw new Error(`${certPath} is not a CA certificate. ${untouched} ${moveAway}`)
    if (key.asymmetricKeyType !== 'ec' || !cert.checkPrivateKey(key)) {
      throw new Error(`the local CA key ${keyPath} does not match the certificate ${certPath}. ${untouched} ${moveAway}`)
    }
    return { certPath, keyPath, certPem, keyPem, created: false }
  }
  if (certPem !== undefined) throw new Error(`the local CA certificate ${certPath} exists but its key ${keyPath} is missing. ${untouched} ${moveAway}`)
  if (keyPem !== undefined) throw new Error(`the local CA key ${keyPath} exists but its certificate ${certPath} is missing. ${untouched} ${moveAway}`)

  const keys = (await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [`Edgebox local CA (${userName()}@${os.hostname()})`] }, { O: ['Edgebox local development'] }],
    notBefore: new Date(now - BACKDATE),
    notAfter: new Date(now + CA_DAYS * DAY),
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      // pathLen 0: the CA signs server certificates only, never another CA
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const newCert = cert.toString('pem') + '\n'
  const newKey = await keyToPem(keys.privateKey)
  await ensurePrivateDir(home)
  await ensurePrivateDir(dir)
  // the key first: a certificate on disk always has its key beside it
  await writeNew(keyPath, newKey)
  await writeNew(certPath, newCert)
  return { certPath, keyPath, certPem: newCert, keyPem: newKey, created: true }
}

/**
 * A server certificate for `hosts` (plus localhost, 127.0.0.1 and ::1)
 * signed by the local CA, in `<home>/certs/local.crt` and `local.key`. The
 * stored one is reused while it has 30 days left, was signed by the
 * current CA, matches its key and covers every requested host; otherwise a
 * new one replaces it.
 */
export async function issueLocalCertificate(home: string, hosts: string[]): Promise<LocalCertificate> {
  const names = normalizeHosts(hosts)
  const ca = await ensureLocalCa(home)
  const caCert = new X509Certificate(ca.certPem)
  const now = Date.now()
  if (caCert.validToDate.getTime() <= now + DAY) {
    throw new Error(`the local CA ${ca.certPath} expires on ${caCert.validToDate.toISOString()}; move ${path.dirname(ca.certPath)} away to create a new one (and trust it again)`)
  }
  const dir = path.join(home, 'certs')
  const certPath = path.join(dir, 'local.crt')
  const keyPath = path.join(dir, 'local.key')

  const [oldCert, oldKey] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)])
  if (oldCert !== undefined && oldKey !== undefined && reusable(oldCert, oldKey, caCert, names, now)) {
    return { certPath, keyPath, certPem: oldCert, keyPem: oldKey, chainPem: oldCert, issued: false, hosts: sanHosts(oldCert) }
  }

  const caKey = await caSigningKey(ca.keyPem)
  const keys = (await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair
  const caX509 = new x509.X509Certificate(ca.certPem)
  // a certificate cannot outlive the authority that vouches for it
  const notAfter = Math.min(now + LEAF_DAYS * DAY, caCert.validToDate.getTime())
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [commonName(names)] }],
    issuer: caX509.subjectName,
    notBefore: new Date(now - BACKDATE),
    notAfter: new Date(notAfter),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((h) => ({ type: hostKind(h) === 'ip' ? x509.IP : x509.DNS, value: h }) as const)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyId(caX509),
    ],
  })
  const certPem = cert.toString('pem') + '\n'
  const keyPem = await keyToPem(keys.privateKey)
  await ensurePrivateDir(dir)
  // the key first, then the certificate: each file is replaced whole, never left half-written
  await writePrivateFile(keyPath, keyPem)
  await writePrivateFile(certPath, certPem)
  return { certPath, keyPath, certPem, keyPem, chainPem: certPem, issued: true, hosts: names }
}

/** How a user makes their system, browsers and tools trust the local CA. */
export function trustInstructions(caCertPath: string): string {
  const ca = shellQuote(caCertPath)
  const key = path.join(path.dirname(caCertPath), 'ca.key')
  return `To trust the Edgebox local CA (${caCertPath}):

  Debian, Ubuntu:
    sudo cp ${ca} /usr/local/share/ca-certificates/edgebox-local-ca.crt && sudo update-ca-certificates

  Fedora, RHEL, CentOS:
    sudo cp ${ca} /etc/pki/ca-trust/source/anchors/edgebox-local-ca.crt && sudo update-ca-trust

  macOS:
    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${ca}

  Windows (an administrator prompt):
    certutil -addstore -f ROOT ${ca}

  Chromium and Chrome on Linux (NSS; certutil is in libnss3-tools or nss-tools):
    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n "Edgebox local CA" -i ${ca}

  Firefox (it keeps its own list): Settings > Privacy & Security > Certificates >
  View Certificates > Authorities > Import, or on Linux, for each profile:
    certutil -d sql:$HOME/.mozilla/firefox/PROFILE -A -t C,, -n "Edgebox local CA" -i ${ca}

  Node.js:
    NODE_EXTRA_CA_CERTS=${ca} node app.js

  curl:
    curl --cacert ${ca} https://localhost:8080/

Keep ${key} private: it can sign a certificate for any name (your bank's
included) that every program trusting this CA accepts. Never share or copy
it; to stop trusting it, remove the CA from the places above.
`
}

/** How to get a certificate for `hosts` from a real (public or company) authority, and serve it. */
export function csrInstructions(hosts: string[]): string {
  const names = hosts.length ? [...new Set(hosts.map((h) => h.toLowerCase()))] : ['example.com']
  const san = names.map((h) => `${hostKind(h) === 'ip' ? 'IP' : 'DNS'}:${h}`).join(',')
  return `To get a certificate for ${names.join(', ')} from a certificate authority:

Files:
  site.key    the private key; it stays on your server (mode 0600), never sent anywhere
  site.csr    the certificate signing request you send to the authority
  site.crt    the certificate the authority returns
  chain.pem   the authority's intermediate certificates, sent after site.crt

1. Create the private key (ECDSA P-256):
     openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out site.key
     chmod 600 site.key

2. Create the signing request (OpenSSL 1.1.1 or later for -addext):
     openssl req -new -key site.key -out site.csr -subj "/CN=${names[0]}" -addext "subjectAltName=${san}"

3. Check it before sending it: the names appear under "Subject Alternative Name":
     openssl req -in site.csr -noout -text

4. Send site.csr to the authority; keep site.crt and chain.pem (the intermediates,
   without the root) that it returns next to site.key.

5. Point Edgebox at them, with a TLS listener:
     listen: [{ port: 443, tls: true }],
     tls: { certificates: [{ cert: './site.crt', key: './site.key', chain: './chain.pem' }] }

An ACME authority such as Let's Encrypt issues and renews these certificates
automatically, with a client like certbot, without a manual signing request.
`
}

/** Lower-cased, deduplicated, validated hosts, followed by the loopback names every local certificate carries. */
function normalizeHosts(hosts: string[]): string[] {
  const out: string[] = []
  for (const raw of [...hosts, ...LOOPBACK]) {
    const host = raw.trim().toLowerCase()
    if (hostKind(host) === null) throw new Error(`${JSON.stringify(raw)} is not a host name or IP address a certificate can carry`)
    if (!out.includes(host)) out.push(host)
  }
  return out
}

/**
 * The subject CN: the first host that fits the 64 characters X.509 allows a
 * common name, leaving out names under `.localhost` (this machine's aliases,
 * RFC 6761 §6.3: the certificate is localhost's). Browsers read only the
 * subject alternative names, which list every host.
 */
function commonName(names: string[]): string {
  return names.find((n) => n.length <= 64 && !n.endsWith('.localhost')) ?? 'localhost'
}

/** Whether the stored certificate and key can be served for `names` another 30 days. */
function reusable(certPem: string, keyPem: string, caCert: X509Certificate, names: string[], now: number): boolean {
  try {
    const cert = new X509Certificate(certPem)
    if (cert.validToDate.getTime() < now + RENEW_DAYS * DAY) return false
    if (cert.validFromDate.getTime() > now) return false
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false
    const dns = new Set(sanHosts(certPem))
    return names.every((h) => (hostKind(h) === 'ip' ? cert.checkIP(h) !== undefined : dns.has(h)))
  } catch {
    return false
  }
}

/** The names and addresses in a certificate's subjectAltName, as written when it was issued. */
function sanHosts(certPem: string): string[] {
  const san = new x509.X509Certificate(certPem).getExtension(x509.SubjectAlternativeNameExtension)
  return (san?.names.items ?? []).filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value.toLowerCase())
}

/** The authority key identifier: the CA's own subject key identifier, so clients match the two exactly. */
async function authorityKeyId(ca: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = ca.getExtension(x509.SubjectKeyIdentifierExtension)
  return ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : x509.AuthorityKeyIdentifierExtension.create(ca.publicKey)
}

/** The CA key as a WebCrypto signing key. */
async function caSigningKey(keyPem: string): Promise<CryptoKey> {
  const curves: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
  const key = createPrivateKey(keyPem)
  const namedCurve = curves[key.asymmetricKeyDetails?.namedCurve ?? '']
  if (!namedCurve) throw new Error(`the local CA key uses an unsupported curve (${key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType})`)
  return key.toCryptoKey({ name: 'ECDSA', namedCurve }, false, ['sign']) as unknown as CryptoKey
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`
}

/** A random, positive 16-byte serial number (hex), with a non-zero first byte so it keeps its length. */
function serial(): string {
  const bytes = randomBytes(16)
  bytes[0] = bytes[0]! & 0x7f || 0x01
  return bytes.toString('hex')
}

function userName(): string {
  try {
    return os.userInfo().username
  } catch {
    // no account entry (some containers)
    return process.env.USER ?? process.env.USERNAME ?? 'user'
  }
}

/** Puts a new file in the authority's folder, never over one another process created meanwhile. */
async function writeNew(file: string, data: string): Promise<void> {
  if (!(await writeNewPrivateFile(file, data))) throw new Error(`${file} appeared while the local CA was being created (another edgebox cert at the same time?); it was left as it is. Run the command again.`)
}

/** A path as one word for a POSIX shell, quoted only when it needs to be. */
function shellQuote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`
}

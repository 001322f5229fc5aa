import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { randomBytes, webcrypto } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

/**
 * Certificates for TLS tests: a throwaway authority and leaves signed by it,
 * with any names and validity (an expired one, one for the wrong name), as
 * PEM and as files in a temporary folder.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const
const DAY = 86_400_000

async function pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`
}

const serial = () => {
  const b = randomBytes(12)
  b[0] = (b[0]! & 0x7f) || 1
  return b.toString('hex')
}

export interface TestCa {
  certPem: string
  keyPem: string
  /** A leaf for these names (DNS names or IP addresses), valid from `from` to `to` (ms from now). */
  leaf(names: string[], opts?: { from?: number; to?: number }): Promise<{ certPem: string; keyPem: string }>
}

export async function testCa(): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=Edgebox test CA',
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys,
    signingAlgorithm: SIGN,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  })
  return {
    certPem: ca.toString('pem') + '\n',
    keyPem: await pem(keys.privateKey),
    async leaf(names, opts = {}) {
      const leafKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${names[0]}`,
        issuer: ca.subject,
        notBefore: new Date(Date.now() + (opts.from ?? -DAY)),
        notAfter: new Date(Date.now() + (opts.to ?? 30 * DAY)),
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: SIGN,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? x509.IP : x509.DNS, value: n }) as const)),
        ],
      })
      return { certPem: cert.toString('pem') + '\n', keyPem: await pem(leafKeys.privateKey) }
    },
  }
}

/** A temporary folder with files written into it; `cleanup()` removes it. */
export function certDir(files: Record<string, string>): { dir: string; path(name: string): string; write(name: string, text: string): void; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-certs-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
  return {
    dir,
    path: (name) => path.join(dir, name),
    write: (name, text) => writeFileSync(path.join(dir, name), text),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

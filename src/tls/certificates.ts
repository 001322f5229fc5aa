import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import type { EdgeboxConfig } from '../config/schema.ts'

/**
 * The certificates a TLS listener serves (docs/tls.md): each key +
 * certificate (+ chain) read and checked at start, so a problem is a
 * configuration error naming the file, never a failed handshake later:
 * a missing or unreadable file, something that is not PEM, a key that does
 * not match its certificate, a certificate that has expired or is not valid
 * yet, and a site host name that no certificate covers. A handshake then
 * picks the certificate by SNI (RFC 6066 §3): an exact name first, then a
 * wildcard; a name no certificate covers gets the first certificate, or a
 * refused handshake.
 */

type TlsConfig = EdgeboxConfig['tls']

export interface LoadedCertificate {
  /** Where it came from, for messages: `tls.certificates[0]`. */
  readonly id: string
  readonly cert: X509Certificate
  /** The certificate, then its chain, as PEM. */
  readonly certPem: string
  readonly keyPem: string
  /** DNS names and IP addresses the certificate is for (subjectAltName; the CN only when there is none). */
  readonly names: readonly string[]
}

export interface CertificateSource {
  cert: string
  key: string
  chain?: string | undefined
}

/** Reads and checks one key + certificate (+ chain); throws a list of problems, each starting with `id`. */
export function loadCertificate(id: string, src: CertificateSource, baseDir: string, now = Date.now()): LoadedCertificate {
  const problems: string[] = []
  const read = (field: string, file: string): string | null => {
    const abs = path.resolve(baseDir, file)
    try {
      return readFileSync(abs, 'utf8')
    } catch (err) {
      problems.push(`${id}.${field}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
      return null
    }
  }
  const certText = read('cert', src.cert)
  const keyText = read('key', src.key)
  const chainText = src.chain === undefined ? '' : read('chain', src.chain)
  if (problems.length) throw problems

  let cert: X509Certificate | undefined
  let key: KeyObject | undefined
  try {
    if (!/-----BEGIN CERTIFICATE-----/.test(certText!)) throw new Error('no PEM certificate in it')
    cert = new X509Certificate(certText!)
  } catch (err) {
    problems.push(`${id}.cert: ${src.cert} is not a PEM certificate (${(err as Error).message})`)
  }
  try {
    key = createPrivateKey(keyText!)
  } catch (err) {
    problems.push(`${id}.key: ${src.key} is not a PEM private key (${(err as Error).message})`)
  }
  if (chainText) {
    const blocks = chainText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    if (blocks.length === 0) problems.push(`${id}.chain: ${src.chain} holds no PEM certificate`)
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block)
      } catch (err) {
        problems.push(`${id}.chain: certificate ${i + 1} in ${src.chain} does not parse (${(err as Error).message})`)
      }
    }
  }
  if (cert && key) {
    if (!cert.checkPrivateKey(key)) problems.push(`${id}.key: ${src.key} does not match the certificate in ${src.cert}`)
    const from = Date.parse(cert.validFrom)
    const to = Date.parse(cert.validTo)
    if (to < now) problems.push(`${id}.cert: ${src.cert} expired on ${new Date(to).toUTCString()}`)
    else if (from > now) problems.push(`${id}.cert: ${src.cert} is not valid before ${new Date(from).toUTCString()}`)
  }
  if (problems.length) throw problems
  const certPem = certText!.trim() + '\n' + (chainText ? chainText.trim() + '\n' : '')
  return { id, cert: cert!, certPem, keyPem: keyText!, names: namesOf(cert!) }
}

/** The names a certificate is for: its subjectAltName DNS and IP entries, or its CN when it has none (RFC 6125 §6.4.4). */
export function namesOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName
  if (san) {
    return san
      .split(/,\s*/)
      .map((entry) => /^(DNS|IP Address):(.+)$/.exec(entry.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => m[2]!.toLowerCase())
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]
  return cn ? [cn.toLowerCase()] : []
}

/** Whether a certificate covers a host name: checkHost handles wildcards (one label) and IP addresses go through checkIP. */
export function covers(cert: X509Certificate, host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '')
  if (isIP(bare)) return cert.checkIP(bare) !== undefined
  if (bare.startsWith('*.')) {
    // a wildcard site host needs a certificate that covers any one label below it
    return cert.checkHost(`edgebox-probe${bare.slice(1)}`, { wildcards: true }) !== undefined && namesOf(cert).includes(bare)
  }
  return cert.checkHost(bare, { wildcards: true }) !== undefined
}

export interface CertificateSet {
  readonly certificates: readonly LoadedCertificate[]
  /** The secure context for a handshake's SNI name: null when none matches and unknown names are refused. */
  contextFor(servername: string): tls.SecureContext | null
  /** The default certificate's context options (the server's own, for clients without SNI). */
  readonly defaultOptions: tls.SecureContextOptions
}

/** Secure contexts for a set of certificates, chosen by SNI. */
export function certificateSet(certificates: readonly LoadedCertificate[], cfg: TlsConfig): CertificateSet {
  const base: tls.SecureContextOptions = { minVersion: cfg.minVersion, ciphers: cfg.ciphers, honorCipherOrder: true }
  const contexts = certificates.map((c) => tls.createSecureContext({ ...base, cert: c.certPem, key: c.keyPem }))
  const byName = new Map<string, tls.SecureContext>()
  const wildcards: Array<[suffix: string, ctx: tls.SecureContext]> = []
  for (const [i, c] of certificates.entries()) {
    for (const name of c.names) {
      if (name.startsWith('*.')) wildcards.push([name.slice(1), contexts[i]!])
      else if (!byName.has(name)) byName.set(name, contexts[i]!)
    }
  }
  return {
    certificates,
    // no certificate yet (ACME still ordering): handshakes without a matching name are refused
    defaultOptions: certificates.length ? { ...base, cert: certificates[0]!.certPem, key: certificates[0]!.keyPem } : base,
    contextFor(servername) {
      const name = servername.toLowerCase().replace(/\.$/, '')
      const exact = byName.get(name)
      if (exact) return exact
      const dot = name.indexOf('.')
      if (dot > 0) {
        const suffix = name.slice(dot)
        for (const [s, ctx] of wildcards) if (s === suffix) return ctx
      }
      return cfg.unknownServerName === 'refuse' ? null : (contexts[0] ?? null)
    },
  }
}

/** Site host names (exact names and wildcards) that no certificate covers, as configuration problems. */
export function uncoveredHosts(certificates: readonly LoadedCertificate[], sites: EdgeboxConfig['sites']): string[] {
  const problems: string[] = []
  for (const [si, site] of sites.entries()) {
    for (const [hi, host] of site.hosts.entries()) {
      if (!certificates.some((c) => covers(c.cert, host))) {
        const names = [...new Set(certificates.flatMap((c) => c.names))].join(', ')
        problems.push(`sites[${si}].hosts[${hi}]: ${host} is not covered by any certificate in tls.certificates (they cover: ${names || 'nothing'})`)
      }
    }
  }
  return problems
}

import { X509Certificate } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import tls, { type TLSSocket } from 'node:tls'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { Handler, Req } from '../../core/types.ts'

/**
 * `lab: { demo: 'connection' }`: what the browser just negotiated, for the
 * connection lab page (lab/www/lab/tls.html).
 *
 *   GET <prefix>   JSON describing the connection this very request came on
 *
 * - `protocol`: the HTTP version ('h2', 'h2c', 'http/1.1', 'http/1.0'), and
 *   `streamId` for HTTP/2 (one connection carries many requests, each on a stream).
 * - `tls`: null on a cleartext connection; else the TLS version, the cipher
 *   suite, the ALPN result, whether the handshake resumed an earlier session
 *   (a ticket or a session ID) or was a full one, the server name the client
 *   asked for (SNI: absent when it connected to an IP address), and the
 *   certificate chain from the leaf upward.
 *
 * What the server side cannot tell, and the JSON says so rather than guess:
 * - The chain: Node gives a server only its own certificate (the leaf), not
 *   the intermediates configured next to it. The issuers after the leaf are
 *   found by matching it against the local authority's certificate and
 *   Node's bundled root certificates; `chainNote` says how far that went.
 * - The key exchange: the ephemeral key's group is reported on the client
 *   side only (`getEphemeralKeyInfo()` is null on a server socket). The
 *   keys are ephemeral all the same: TLS 1.3 has no RSA key transport, and
 *   the TLS 1.2 suites Edgebox allows by default are all ECDHE.
 * - Whether the client received a session ticket for next time.
 */

interface CertificateInfo {
  subject: string
  issuer: string
  subjectAltName: string | null
  validFrom: string
  validTo: string
  serialNumber: string
  fingerprint256: string
  /** The certificate is a certificate authority's (basic constraints CA:TRUE). */
  ca: boolean
  /** The public key, in short: `ec P-256`, `rsa 2048`, `ed25519`. */
  key: string
  /** How this entry is known: the server presented it (the leaf), or it was found as the issuer of the one before. */
  source: 'presented' | 'local authority' | 'root store'
}

/** The socket an HTTP request arrived on: for HTTP/2, its session's (the TLS or TCP connection every stream shares). */
function socketOf(req: Req): TLSSocket | null {
  // over HTTP/2 too, req.socket is the connection's own socket (src/server/h2-exchange.ts)
  const socket = req.socket
  return socket && (socket as TLSSocket).encrypted ? (socket as TLSSocket) : null
}

function keyOf(cert: X509Certificate): string {
  const key = cert.publicKey
  const d = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'ec') return `ec ${CURVES[d.namedCurve ?? ''] ?? d.namedCurve ?? ''}`.trim()
  if (d.modulusLength) return `${key.asymmetricKeyType} ${d.modulusLength}`
  return key.asymmetricKeyType ?? 'unknown'
}

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }

function describe(cert: X509Certificate, source: CertificateInfo['source']): CertificateInfo {
  return {
    subject: cert.subject.replaceAll('\n', ', '),
    issuer: cert.issuer.replaceAll('\n', ', '),
    subjectAltName: cert.subjectAltName ?? null,
    validFrom: new Date(cert.validFrom).toISOString(),
    validTo: new Date(cert.validTo).toISOString(),
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    ca: cert.ca,
    key: keyOf(cert),
    source,
  }
}

/** Candidate issuers: the local authority's certificate (read again when the file changes) and Node's root store (parsed once, when first needed). */
function issuerPool(dataDir: string) {
  const caPath = path.join(dataDir, 'ca', 'ca.crt')
  let local: { mtimeMs: number; cert: X509Certificate } | null = null
  let roots: X509Certificate[] | null = null
  const localCa = (): X509Certificate | null => {
    let mtimeMs: number
    try {
      mtimeMs = statSync(caPath).mtimeMs
    } catch {
      return null
    }
    if (local?.mtimeMs !== mtimeMs) {
      try {
        local = { mtimeMs, cert: new X509Certificate(readFileSync(caPath)) }
      } catch {
        return null
      }
    }
    return local.cert
  }
  const rootStore = (): X509Certificate[] =>
    (roots ??= tls.rootCertificates.flatMap((pem) => {
      try {
        return [new X509Certificate(pem)]
      } catch {
        return []
      }
    }))
  const signed = (cert: X509Certificate, by: X509Certificate) => cert.checkIssued(by) && cert.verify(by.publicKey)
  return {
    /** The certificate that issued `cert`, and where it was found, or null. */
    issuerOf(cert: X509Certificate): { cert: X509Certificate; source: CertificateInfo['source'] } | null {
      const ca = localCa()
      if (ca && signed(cert, ca)) return { cert: ca, source: 'local authority' }
      const root = rootStore().find((r) => signed(cert, r))
      return root ? { cert: root, source: 'root store' } : null
    },
  }
}

const selfSigned = (cert: X509Certificate) => cert.subject === cert.issuer && cert.checkIssued(cert)

export function createConnectionDemo(prefix: string, dataDir: string): Handler {
  const pool = issuerPool(dataDir)

  function chain(leaf: X509Certificate): { certificate: CertificateInfo[]; chainNote: string } {
    const out = [describe(leaf, 'presented')]
    let cert = leaf
    while (out.length < 6 && !selfSigned(cert)) {
      const next = pool.issuerOf(cert)
      if (!next) break
      out.push(describe(next.cert, next.source))
      cert = next.cert
    }
    const chainNote =
      out.length === 1
        ? selfSigned(leaf)
          ? 'The certificate is self-signed: it is its own issuer.'
          : 'Only the leaf is available: a server sees its own certificate, not the intermediates configured with it, and its issuer is neither the local authority nor in the root store Node knows.'
        : `The first entry is the certificate this server presented; the ${out.length === 2 ? 'one after it was' : 'ones after it were'} found by matching issuers against the local authority and Node's root store. A root (or the local authority) is not sent in the handshake: the client must already trust it.`
    return { certificate: out, chainNote }
  }

  function describeConnection(ctx: Context) {
    const stream = 'stream' in ctx.req ? ctx.req.stream : undefined
    const socket = socketOf(ctx.req)
    const base = {
      protocol: ctx.protocol,
      ...(stream ? { streamId: stream.id ?? null } : {}),
    }
    if (!socket) return { ...base, tls: null }
    const cipher = socket.getCipher()
    const leaf = socket.getX509Certificate()
    return {
      ...base,
      tls: {
        version: socket.getProtocol(),
        cipher: cipher ? { name: cipher.name, standardName: cipher.standardName, version: cipher.version } : null,
        alpn: socket.alpnProtocol || null,
        resumed: socket.isSessionReused(),
        servername: (socket as TLSSocket & { servername?: string | false }).servername || null,
        ephemeralKey: socket.getEphemeralKeyInfo(),
        ephemeralKeyNote:
          'The key exchange group (X25519, P-256, a post-quantum hybrid) is reported on the client side only: on a server socket Node returns null. The keys are ephemeral all the same: TLS 1.3 has no RSA key transport, and the TLS 1.2 suites Edgebox allows by default are all ECDHE.',
        ...(leaf ? chain(leaf) : { certificate: [], chainNote: 'The server presented no certificate Node can show.' }),
      },
    }
  }

  return {
    kind: 'lab',
    methods: ['GET', 'HEAD'],
    handle(ctx: Context) {
      // other methods never get here: the pipeline answers them with 405 and Allow from `methods`
      if (ctx.path !== prefix) throw httpError('EB_ERR_NOT_FOUND', `no connection endpoint ${ctx.path}`)
      ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(describeConnection(ctx)))
    },
  }
}

import { X509Certificate } from 'node:crypto'
import dns from 'node:dns'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { phaseDurations, roundMs } from './timings.ts'

/**
 * One HTTP exchange, timed phase by phase (docs/inspect.md): DNS lookup, TCP
 * connect, TLS handshake, request sent, first byte of the response, the rest
 * of the body. A `Connection` keeps its socket (or HTTP/2 session) open so
 * a second request can show what reuse saves. Every failure names the phase
 * it happened in.
 */

export type Phase = 'dns' | 'tcp' | 'tls' | 'request' | 'response'

export class ProbeError extends Error {
  readonly phase: Phase
  readonly code: string | undefined
  constructor(phase: Phase, message: string, code?: string) {
    super(message)
    this.phase = phase
    this.code = code
  }
}

export interface CertInfo {
  subject: string
  issuer: string
  validFrom: string
  validTo: string
  daysLeft: number
  names: string[]
  fingerprint256: string
  selfSigned: boolean
}

export interface TlsInfo {
  version: string | null
  cipher: string
  alpn: string | false | null
  resumed: boolean
  servername: string | null
  /** Whether the chain verified against the trusted authorities. */
  authorized: boolean
  /** Why not (e.g. SELF_SIGNED_CERT_IN_CHAIN, ERR_TLS_CERT_ALTNAME_INVALID), when not. */
  authorizationError: string | null
  /** Whether the leaf certificate covers the host name. */
  nameMatches: boolean
  /** Which trusted authority verified the chain (an extra one by its label, else the system's), null when it did not verify. */
  verifiedBy: string | null
  chain: CertInfo[]
}

export interface Timings {
  /** Milliseconds spent in each phase; absent phases did not happen (an IP literal has no DNS; a reused connection no TCP or TLS). */
  dns?: number
  tcp?: number
  tls?: number
  send: number
  /** From the request sent to the first byte of the response. */
  ttfb: number
  transfer: number
  total: number
}

export interface Exchange {
  url: string
  method: string
  status: number
  httpVersion: string
  headers: Record<string, string | string[]>
  bodyBytes: number
  timings: Timings
  /** Interim responses before the final one (103 Early Hints with their Link fields, 100 Continue). */
  informational: Array<{ status: number; headers: Record<string, string | string[]> }>
  /** The connection was open already (keep-alive, or the same HTTP/2 session). */
  reused: boolean
  remoteAddress: string
  remoteFamily: string
}

export interface ConnectOptions {
  timeoutMs: number
  insecure: boolean
  /** Which protocols to offer by ALPN on https: both (h2 first), or one. */
  protocol: 'auto' | 'http1' | 'http2'
  /** 4 or 6: only addresses of that family; 0: the first the resolver returns. */
  family: 0 | 4 | 6
  /** A TLS session to resume. */
  session?: Buffer | undefined
  /** Authorities trusted besides the system's (`--ca`, Edgebox's local authority), each with how the report names it. */
  authorities?: readonly Authority[] | undefined
  /** Stands in for the system resolver (`dns.promises.lookup` with `all: true`): for embedding, and for tests that must not query the network. */
  lookup?: LookupAll | undefined
}

export interface Authority {
  /** How the report names it: `--ca ca.pem (CN=...)`. */
  label: string
  /** One or more PEM certificates. */
  pem: string
}

export type LookupAll = (host: string, opts: { all: true; family: 0 | 4 | 6; order: 'verbatim' }) => Promise<Array<{ address: string; family: number }>>

/** The system resolver's error codes (getaddrinfo, as Node names them) in words. */
const LOOKUP_WORDS: Record<string, string> = {
  ENOTFOUND: 'no such name (NXDOMAIN)',
  ENODATA: 'the name has no address',
  EAI_AGAIN: 'the resolver got no answer in time (a timeout or SERVFAIL on the way; EAI_AGAIN)',
  EAI_FAIL: 'the resolver failed for good (EAI_FAIL)',
  ESERVFAIL: 'SERVFAIL: the server could not get an answer (often an unreachable or broken authoritative server, or a DNSSEC validation failure)',
  EREFUSED: 'REFUSED: the DNS server will not answer this question',
  ECONNREFUSED: 'the DNS server refused the connection',
  ETIMEOUT: 'the DNS server did not answer in time',
}

export interface Connected {
  addresses: Array<{ address: string; family: number }>
  address: string
  family: number
  tls: TlsInfo | null
  /** The TLS session the server gave (to resume with later), once known. */
  session(): Buffer | undefined
}

const now = () => performance.now()

function withTimeout<T>(p: Promise<T>, ms: number, phase: Phase, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new ProbeError(phase, `${what} timed out after ${ms} ms`, 'ETIMEDOUT')), ms)
    }),
  ])
}

function certInfo(cert: X509Certificate, at: number): CertInfo {
  const names = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .map((e) => /^(?:DNS|IP Address):(.+)$/.exec(e.trim())?.[1])
    .filter((n): n is string => n !== undefined)
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    validFrom: new Date(cert.validFrom).toISOString(),
    validTo: new Date(cert.validTo).toISOString(),
    daysLeft: Math.floor((Date.parse(cert.validTo) - at) / 86_400_000),
    names,
    fingerprint256: cert.fingerprint256,
    selfSigned: cert.subject === cert.issuer && cert.checkIssued(cert),
  }
}

/** The chain the server presented, leaf first (each certificate links to its issuer when the server sent it or the trust store has it). */
function chainOf(leaf: X509Certificate | undefined): CertInfo[] {
  const out: CertInfo[] = []
  const seen = new Set<string>()
  let cert: X509Certificate | undefined = leaf
  while (cert && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256)
    out.push(certInfo(cert, Date.now()))
    cert = cert.issuerCertificate
  }
  return out
}

/** The system's authorities as Node trusts them by default (its bundled store, plus NODE_EXTRA_CA_CERTS and the system's own when Node is told to use them). */
function systemAuthorities(): string[] {
  return tls.getCACertificates ? tls.getCACertificates('default') : [...tls.rootCertificates]
}

/**
 * The authority that verified `leaf`'s chain: an extra one whose certificate
 * is in the chain or issued its top, named by its label; otherwise the
 * system's, named by the top of the chain.
 */
function verifier(leaf: X509Certificate, extra: readonly Authority[]): string {
  const chain: X509Certificate[] = []
  const seen = new Set<string>()
  for (let c: X509Certificate | undefined = leaf; c && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256)
    chain.push(c)
  }
  const top = chain[chain.length - 1]!
  for (const a of extra) {
    for (const ca of pemCertificates(a.pem)) {
      if (chain.some((c) => c.fingerprint256 === ca.fingerprint256) || (top.checkIssued(ca) && top.verify(ca.publicKey))) return a.label
    }
  }
  return `the system's trusted authorities (${(top.subject === top.issuer ? top.subject : top.issuer).replace(/\n/g, ', ')})`
}

/** Every certificate of a PEM text; the ones that do not parse are left out. */
export function pemCertificates(pem: string): X509Certificate[] {
  const out: X509Certificate[] = []
  for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
    try {
      out.push(new X509Certificate(block))
    } catch {
      // not a certificate: the caller checks that at least one was read
    }
  }
  return out
}

/**
 * An open connection to `url`'s origin: DNS, TCP and (for https) TLS, each
 * timed. HTTP/1.1 requests go over it one after another (keep-alive); with
 * ALPN h2 they are streams of one HTTP/2 session.
 */
export class Connection {
  readonly url: URL
  readonly opts: ConnectOptions
  private socket: net.Socket | tls.TLSSocket | null = null
  private h2: http2.ClientHttp2Session | null = null
  private agent: http.Agent | null = null
  private used = 0
  private firstTimings: Partial<Timings> = {}
  /** The server said it closes the connection after the last response (Connection: close, or HTTP/1.0). */
  private closing = false
  connected: Connected | null = null

  constructor(url: URL, opts: ConnectOptions) {
    this.url = url
    this.opts = opts
  }

  get protocol(): 'h2' | 'http/1.1' {
    return this.h2 ? 'h2' : 'http/1.1'
  }

  /** DNS, TCP and TLS, timed. */
  async open(): Promise<Connected> {
    const host = this.url.hostname.replace(/^\[|\]$/g, '')
    const secure = this.url.protocol === 'https:'
    const port = Number(this.url.port || (secure ? 443 : 80))
    const t0 = now()
    let addresses: Array<{ address: string; family: number }>
    if (net.isIP(host)) addresses = [{ address: host, family: net.isIP(host) }]
    else {
      try {
        const lookup: LookupAll = this.opts.lookup ?? ((h, o) => dns.promises.lookup(h, o))
        addresses = await withTimeout(lookup(host, { all: true, family: this.opts.family, order: 'verbatim' }), this.opts.timeoutMs, 'dns', `DNS lookup of ${host}`)
      } catch (err) {
        if (err instanceof ProbeError) throw err
        const e = err as NodeJS.ErrnoException
        throw new ProbeError('dns', `DNS lookup of ${host} failed: ${(e.code && LOOKUP_WORDS[e.code]) ?? e.message}`, e.code)
      }
      this.firstTimings.dns = now() - t0
    }
    const pick = addresses.find((a) => this.opts.family === 0 || a.family === this.opts.family)
    if (!pick) throw new ProbeError('dns', `${host} has no IPv${this.opts.family} address (it has ${addresses.map((a) => a.address).join(', ') || 'none'})`, 'ENOTFOUND')

    const t1 = now()
    const tcp = await withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: pick.address, port, family: pick.family })
        s.once('connect', () => resolve(s))
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(new ProbeError('tcp', `TCP connect to ${pick.family === 6 ? `[${pick.address}]` : pick.address}:${port} failed: ${err.code === 'ECONNREFUSED' ? 'connection refused (nothing listens there)' : err.message}`, err.code)),
        )
      }),
      this.opts.timeoutMs,
      'tcp',
      `TCP connect to ${pick.address}:${port}`,
    )
    this.firstTimings.tcp = now() - t1
    this.socket = tcp
    let tlsInfo: TlsInfo | null = null
    let session: Buffer | undefined
    if (secure) {
      const t2 = now()
      const extra = this.opts.authorities ?? []
      const alpn = this.opts.protocol === 'http1' ? ['http/1.1'] : this.opts.protocol === 'http2' ? ['h2'] : ['h2', 'http/1.1']
      const servername = net.isIP(host) ? undefined : host
      const ts = await withTimeout(
        new Promise<tls.TLSSocket>((resolve, reject) => {
          const s = tls.connect({ socket: tcp, servername, ALPNProtocols: alpn, rejectUnauthorized: false, session: this.opts.session, ...(extra.length ? { ca: [...systemAuthorities(), ...extra.map((a) => a.pem)] } : {}) })
          s.once('secureConnect', () => resolve(s))
          s.once('error', (err: NodeJS.ErrnoException) => reject(new ProbeError('tls', `TLS handshake with ${host} failed: ${err.message}`, err.code)))
        }),
        this.opts.timeoutMs,
        'tls',
        `TLS handshake with ${host}`,
      ).catch((err: unknown) => {
        tcp.destroy()
        throw err
      })
      this.firstTimings.tls = now() - t2
      ts.on('session', (s: Buffer) => (session = s))
      const cert = ts.getPeerX509Certificate()
      // a resumed session shows no certificate: it was checked in the handshake that made the session, which only a checked (or --insecure) connection offers again
      const resumedUnseen = ts.isSessionReused() && !cert
      const authError = ts.authorizationError ? String((ts.authorizationError as unknown as { code?: string }).code ?? ts.authorizationError) : null
      tlsInfo = {
        version: ts.getProtocol(),
        cipher: ts.getCipher().standardName ?? ts.getCipher().name,
        alpn: ts.alpnProtocol,
        resumed: ts.isSessionReused(),
        servername: servername ?? null,
        authorized: ts.authorized,
        authorizationError: authError,
        nameMatches: cert ? (net.isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined) : resumedUnseen,
        verifiedBy: ts.authorized && cert ? verifier(cert, extra) : null,
        chain: chainOf(cert),
      }
      if (!this.opts.insecure && (!ts.authorized || !tlsInfo.nameMatches)) {
        ts.destroy()
        const why = !tlsInfo.nameMatches ? `the certificate is not for ${host} (it is for ${cert ? (tlsInfo.chain[0]?.names.join(', ') ?? '?') : 'nothing'})` : `the certificate is not trusted (${authError})`
        throw new ProbeError('tls', `TLS handshake with ${host}: ${why}; --insecure goes on anyway`, authError ?? 'ERR_TLS_CERT_ALTNAME_INVALID')
      }
      this.socket = ts
      if (ts.alpnProtocol === 'h2') {
        this.h2 = http2.connect(this.url.origin, { createConnection: () => ts })
        this.h2.on('error', () => {})
      }
    }
    if (!secure && this.opts.protocol === 'http2') {
      // cleartext HTTP/2 with prior knowledge (h2c): what --http2 means for an http:// URL (browsers never do this)
      this.h2 = http2.connect(this.url.origin, { createConnection: () => tcp })
      this.h2.on('error', () => {})
    }
    if (!this.h2) {
      const socket = this.socket
      let handed = false
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      // the first request goes over the socket opened (and timed) above; later ones reuse it while it is open
      ;(this.agent as unknown as { createConnection: () => net.Socket }).createConnection = () => {
        if (handed) throw new ProbeError('tcp', 'the server closed the connection, so it could not be reused', 'ECONNRESET')
        handed = true
        return socket!
      }
    }
    this.connected = { addresses, address: pick.address, family: pick.family, tls: tlsInfo, session: () => session }
    return this.connected
  }

  /** One request on this connection, timed; the body is read and counted, not kept. */
  async request(method: string, path: string, headers: Record<string, string>): Promise<Exchange> {
    // a connection the server closed is opened again, as a browser would (and the request is not a reuse)
    if (this.connected && !this.h2 && (this.closing || this.socket?.destroyed || this.socket?.readableEnded)) {
      this.closing = false
      this.close()
      this.connected = null
      this.used = 0
      this.firstTimings = {}
    }
    if (!this.connected) await this.open()
    const reused = this.used++ > 0
    const started = now()
    const connectTimings = reused ? {} : this.firstTimings
    const result = this.h2 ? await this.requestH2(method, path, headers) : await this.requestH1(method, path, headers)
    const total = (connectTimings.dns ?? 0) + (connectTimings.tcp ?? 0) + (connectTimings.tls ?? 0) + (now() - started)
    const ms = roundMs
    const timings: Timings = { send: ms(result.send), ttfb: ms(result.ttfb), transfer: ms(result.transfer), total: ms(total) }
    if (connectTimings.dns !== undefined) timings.dns = ms(connectTimings.dns)
    if (connectTimings.tcp !== undefined) timings.tcp = ms(connectTimings.tcp)
    if (connectTimings.tls !== undefined) timings.tls = ms(connectTimings.tls)
    const exchange: Exchange = {
      url: new URL(path, this.url).href,
      method,
      status: result.status,
      httpVersion: result.httpVersion,
      headers: result.headers,
      bodyBytes: result.bodyBytes,
      informational: result.informational,
      timings: { ...(timings.dns !== undefined ? { dns: timings.dns } : {}), ...(timings.tcp !== undefined ? { tcp: timings.tcp } : {}), ...(timings.tls !== undefined ? { tls: timings.tls } : {}), send: timings.send, ttfb: timings.ttfb, transfer: timings.transfer, total: timings.total },
      reused: reused || result.reused,
      remoteAddress: this.connected!.address,
      remoteFamily: `IPv${this.connected!.family}`,
    }
    return exchange
  }

  private requestH1(method: string, path: string, headers: Record<string, string>) {
    return withTimeout(
      new Promise<{ status: number; httpVersion: string; headers: Record<string, string | string[]>; informational: Exchange['informational']; bodyBytes: number; send: number; ttfb: number; transfer: number; reused: boolean }>((resolve, reject) => {
        const t0 = now()
        let sent: number | undefined
        let first: number | undefined
        const informational: Exchange['informational'] = []
        const req = http.request({
          agent: this.agent!,
          method,
          path,
          headers: { host: this.url.host, 'user-agent': 'edgebox-inspect', ...headers },
          setHost: false,
        })
        req.once('error', (err: NodeJS.ErrnoException) => reject(err instanceof ProbeError ? err : new ProbeError(first !== undefined ? 'response' : 'request', `${method} ${path}: ${err.message}`, err.code)))
        req.on('information', (info) => informational.push({ status: info.statusCode, headers: info.headers as Record<string, string | string[]> }))
        req.once('finish', () => {
          sent = now()
          req.socket?.once('data', () => (first ??= now()))
        })
        req.once('response', (res) => {
          first ??= now()
          let bytes = 0
          res.on('data', (c: Buffer) => {
            bytes += c.length
          })
          res.once('end', () => {
            const done = now()
            if (!req.shouldKeepAlive) this.closing = true
            resolve({
              ...phaseDurations({ start: t0, sent, first, done }),
              status: res.statusCode ?? 0,
              httpVersion: `HTTP/${res.httpVersion}`,
              headers: res.headers as Record<string, string | string[]>,
              informational,
              bodyBytes: bytes,
              reused: req.reusedSocket,
            })
          })
          res.once('error', (err) => reject(new ProbeError('response', `${method} ${path}: the response was cut: ${err.message}`)))
        })
        req.end()
      }),
      this.opts.timeoutMs,
      'response',
      `${method} ${path}`,
    )
  }

  private requestH2(method: string, path: string, headers: Record<string, string>) {
    return withTimeout(
      new Promise<{ status: number; httpVersion: string; headers: Record<string, string | string[]>; informational: Exchange['informational']; bodyBytes: number; send: number; ttfb: number; transfer: number; reused: boolean }>((resolve, reject) => {
        const t0 = now()
        let sent: number | undefined
        const informational: Exchange['informational'] = []
        const stream = this.h2!.request({ ':method': method, ':path': path, 'user-agent': 'edgebox-inspect', ...headers }, { endStream: true })
        stream.once('ready', () => (sent = now()))
        stream.on('headers', (h) => {
          const fields: Record<string, string | string[]> = {}
          for (const [k, v] of Object.entries(h)) if (!k.startsWith(':') && v !== undefined) fields[k] = v as string | string[]
          informational.push({ status: Number(h[':status']), headers: fields })
        })
        stream.once('error', (err: NodeJS.ErrnoException) => reject(new ProbeError('response', `${method} ${path}: ${err.message}`, err.code)))
        stream.once('response', (h) => {
          const first = now()
          let bytes = 0
          stream.on('data', (c: Buffer) => {
            bytes += c.length
          })
          stream.once('end', () => {
            const done = now()
            const out: Record<string, string | string[]> = {}
            for (const [k, v] of Object.entries(h)) if (!k.startsWith(':') && v !== undefined) out[k] = v as string | string[]
            resolve({ status: Number(h[':status']), httpVersion: 'HTTP/2', headers: out, informational, bodyBytes: bytes, ...phaseDurations({ start: t0, sent, first, done }), reused: false })
          })
        })
      }),
      this.opts.timeoutMs,
      'response',
      `${method} ${path}`,
    )
  }

  close(): void {
    this.h2?.close()
    this.agent?.destroy()
    this.socket?.destroy()
  }
}

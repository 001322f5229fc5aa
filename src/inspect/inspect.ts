import { corsPlan, judgePreflight, judgeResponse, type CorsPlan, type PreflightVerdict, type ResponseVerdict } from './cors.ts'
import net from 'node:net'
import { explainCaches, type CacheTrail } from './caches.ts'
import { DnsQueryError, parseServer, queryDns, queryDoh, RCODE_WORDS, type DnsAnswer } from './dns.ts'
import { explainCaching, explainCompression, type CachingFacts } from './explain.ts'
import { Connection, ProbeError, type Authority, type ConnectOptions, type Connected, type Exchange, type LookupAll, type TlsInfo } from './probe.ts'
import { securityReport } from './security.ts'

/**
 * `edgebox inspect URL` (docs/inspect.md): one URL, requested the way a
 * browser would, every step measured and explained. The first request (and
 * each redirect) is timed phase by phase; then small follow-up requests
 * prove what the headers promise: a conditional request (304?), a ranged
 * one (206? If-Range?), a second request on the same connection (reuse),
 * whether HTTP/2 is offered, a CORS preflight for an origin, and with
 * `repeat` latency percentiles over one connection and over new ones.
 */

export interface InspectOptions {
  url: string
  method?: string
  headers?: Record<string, string>
  follow?: boolean
  maxRedirects?: number
  insecure?: boolean
  timeoutMs?: number
  protocol?: ConnectOptions['protocol']
  family?: ConnectOptions['family']
  dnsServer?: string
  /** Ask this DNS-over-HTTPS URL first instead (RFC 8484). */
  doh?: string
  /** Authorities trusted besides the system's (`--ca`, Edgebox's local authority); the report names the one that verified a chain. */
  authorities?: readonly Authority[]
  /** Stands in for the system resolver (tests, embedding). */
  lookup?: LookupAll
  /** CORS check: the page's origin, and the request its script would make. */
  origin?: string
  corsMethod?: string
  corsHeaders?: Record<string, string>
  credentials?: boolean
  repeat?: number
}

export interface Hop {
  url: string
  status: number
  location: string | null
  exchange: Exchange
  connection: { addresses: string[]; address: string; family: string }
  tls: TlsInfo | null
}

export interface Percentiles {
  n: number
  p50: number
  p90: number
  p99: number
  min: number
  max: number
}

export interface Report {
  url: string
  finalUrl: string
  hops: Hop[]
  warnings: string[]
  dnsServer: DnsAnswer[] | null
  http: { version: string; h2Offered: boolean | null; lines: string[] }
  /** The caches on the way: Cache-Status, Age, Via, X-Cache. */
  caches: CacheTrail
  caching: CachingFacts & { revalidation: { request: Record<string, string>; status: number; works: boolean; line: string } | null }
  ranges: { supported: boolean; status: number | null; contentRange: string | null; ifRange: { status: number; line: string } | null; lines: string[] }
  compression: { offered: string; used: string | null; lines: string[] }
  reuse: { reused: boolean; total: number; firstTotal: number; line: string } | null
  cors: CorsReport | null
  security: ReturnType<typeof securityReport>
  repeat: { reused: Percentiles; fresh: Percentiles; resumed: number | null; line: string } | null
}

/** What a browser would do for a script on `origin`: the preflight (if any), then the CORS check on the answer. */
export interface CorsReport {
  origin: string
  plan: CorsPlan
  preflight: { status: number; headers: Record<string, string | string[]>; verdict: PreflightVerdict } | null
  response: ResponseVerdict | null
  allowed: boolean
}

const ACCEPT_ENCODING = 'br, gzip'

function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), min: s[0] ?? 0, max: s[s.length - 1] ?? 0 }
}

const header = (h: Record<string, string | string[]>, name: string): string | undefined => {
  const v = h[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/**
 * A and AAAA for `host`, asked straight to `server`. Anything but an
 * answer (refused, no answer in time, an rcode other than NOERROR, a reply
 * that is not an answer to the question) fails the dns phase, naming the
 * server and what it said. An IP address is not looked up (null).
 */
async function askDnsServer(server: string, host: string, timeoutMs: number, doh = false): Promise<DnsAnswer[] | null> {
  if (net.isIP(host)) return null
  const label = doh ? server : parseServer(server).label
  const answers: DnsAnswer[] = []
  for (const type of ['A', 'AAAA'] as const) {
    let answer: DnsAnswer
    try {
      answer = doh ? await queryDoh(server, host, type, { timeoutMs }) : await queryDns(server, host, type, { timeoutMs })
    } catch (err) {
      if (!(err instanceof DnsQueryError)) throw err
      if (err.code === 'ECONNREFUSED') throw new ProbeError('dns', `DNS server ${label} refused the query for ${host}: connection refused (nothing listens on that port)`, err.code)
      if (err.code === 'ETIMEOUT') throw new ProbeError('dns', `DNS server ${label} did not answer for ${host} (${type}) within ${timeoutMs} ms: timed out`, err.code)
      throw new ProbeError('dns', err.message, err.code)
    }
    // NXDOMAIN, SERVFAIL, REFUSED...: no address to go on with (RFC 1035 §4.1.1, RFC 8914 for the finer reasons)
    if (answer.rcode !== 'NOERROR') {
      const words = RCODE_WORDS[answer.rcode]?.slice(answer.rcode.length + 2) ?? 'an error'
      throw new ProbeError('dns', `DNS server ${label} answered ${answer.rcode} for ${host}: ${words}`, answer.rcode)
    }
    answers.push(answer)
  }
  return answers
}

export async function inspect(o: InspectOptions): Promise<Report> {
  const opts: ConnectOptions = { timeoutMs: o.timeoutMs ?? 10_000, insecure: o.insecure ?? false, protocol: o.protocol ?? 'auto', family: o.family ?? 0, authorities: o.authorities, lookup: o.lookup }
  const method = (o.method ?? 'GET').toUpperCase()
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw new ProbeError('request', `${JSON.stringify(o.url)} is not a URL (like https://example.com/)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeError('request', `${url.protocol} URLs are not HTTP; use http:// or https://`)
  const warnings: string[] = []
  const hops: Hop[] = []
  const seen = new Set<string>()
  const follow = o.follow ?? true
  const max = o.maxRedirects ?? 10
  // the server asked directly goes first: when it cannot answer, that is the dns phase failing
  const asked = o.doh ?? o.dnsServer
  const dnsServer = asked ? await askDnsServer(asked, url.hostname.replace(/^\[|\]$/g, ''), opts.timeoutMs, o.doh !== undefined) : null
  const baseHeaders = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'accept-encoding': ACCEPT_ENCODING, ...o.headers }

  let conn: Connection
  let connected: Connected
  let exchange: Exchange
  let open: Connection | null = null
  for (;;) {
    // a redirect to the same origin goes over the same connection, as in a browser
    conn = open && open.url.origin === url.origin ? open : new Connection(url, opts)
    if (open && conn !== open) open.close()
    open = conn
    try {
      exchange = await conn.request(method, url.pathname + url.search, baseHeaders)
      connected = conn.connected!
    } catch (err) {
      conn.close()
      throw err
    }
    const location = header(exchange.headers, 'location') ?? null
    hops.push({
      url: url.href,
      status: exchange.status,
      location,
      exchange,
      connection: { addresses: connected.addresses.map((a) => a.address), address: connected.address, family: `IPv${connected.family}` },
      tls: connected.tls,
    })
    seen.add(url.href)
    if (!follow || exchange.status < 300 || exchange.status >= 400 || location === null || exchange.status === 304) break
    const next = new URL(location, url)
    if (url.protocol === 'https:' && next.protocol === 'http:') warnings.push(`${url.href} redirects to ${next.href}: from HTTPS down to plain HTTP, where the request can be read and changed on the way`)
    if (exchange.status === 302 && method !== 'GET' && method !== 'HEAD') warnings.push(`${exchange.status} from ${url.href}: browsers turn a ${method} into a GET on a 302; 307 (or 308 for a permanent move) keeps the method and body`)
    else if (exchange.status === 302 || exchange.status === 301) warnings.push(`${exchange.status} from ${url.href}: browsers turn POST into GET on ${exchange.status}; ${exchange.status === 301 ? '308' : '307'} keeps the method (no difference for this GET)`)
    if (seen.has(next.href)) {
      warnings.push(`redirect loop: ${next.href} was already visited (${hops.map((h) => h.url).join(' -> ')} -> ${next.href})`)
      break
    }
    if (hops.length > max) {
      warnings.push(`more than ${max} redirects; stopped`)
      break
    }
    url = next
  }
  const last = hops[hops.length - 1]!
  const finalUrl = last.url
  const path = url.pathname + url.search

  try {
    // HTTP version, and whether HTTP/2 is offered by ALPN (a TLS handshake offering only h2)
    const httpLines: string[] = []
    let h2Offered: boolean | null = null
    if (url.protocol === 'https:') {
      if (last.tls?.alpn === 'h2') h2Offered = true
      else {
        const probe = new Connection(url, { ...opts, protocol: 'http2' })
        try {
          await probe.open()
          h2Offered = probe.connected?.tls?.alpn === 'h2'
        } catch {
          h2Offered = false
        } finally {
          probe.close()
        }
      }
      httpLines.push(`${exchange.httpVersion} was used; HTTP/2 ${h2Offered ? 'is' : 'is not'} offered by ALPN during the TLS handshake.`)
    } else {
      httpLines.push(`${exchange.httpVersion} over cleartext: browsers speak HTTP/2 only over TLS (h2c, HTTP/2 without TLS, is for servers and tools).`)
    }

    // caching: the headers, then a conditional request that proves 304 revalidation
    const caching = explainCaching(exchange.status, exchange.headers)
    let revalidation: Report['caching']['revalidation'] = null
    if (exchange.status === 200 && (caching.validators.etag || caching.validators.lastModified)) {
      const cond: Record<string, string> = {}
      if (caching.validators.etag) cond['if-none-match'] = caching.validators.etag
      if (caching.validators.lastModified) cond['if-modified-since'] = caching.validators.lastModified
      const r = await conn!.request('GET', path, { ...baseHeaders, ...cond })
      const works = r.status === 304
      revalidation = {
        request: cond,
        status: r.status,
        works,
        line: works ? `A conditional request (${Object.keys(cond).join(', ')}) got 304 Not Modified with no body: revalidation works.` : `A conditional request (${Object.keys(cond).join(', ')}) got ${r.status} with ${r.bodyBytes} bytes: the server ignores its own validators, so every revalidation downloads everything again.`,
      }
    }

    // ranges: a ranged request proves 206; If-Range with the validator
    const rangeLines: string[] = []
    const acceptRanges = header(exchange.headers, 'accept-ranges')
    let rangeStatus: number | null = null
    let contentRange: string | null = null
    let ifRange: Report['ranges']['ifRange'] = null
    let supported = false
    if (exchange.status === 200 && method === 'GET') {
      const r = await conn!.request('GET', path, { ...baseHeaders, 'accept-encoding': 'identity', range: 'bytes=0-0' })
      rangeStatus = r.status
      contentRange = header(r.headers, 'content-range') ?? null
      supported = r.status === 206 && r.bodyBytes === 1 && /^bytes 0-0\/(\d+|\*)$/.test(contentRange ?? '')
      if (supported) rangeLines.push(`Range: bytes=0-0 got 206 Partial Content with ${contentRange}: downloads can be resumed.`)
      else if (r.status === 206) rangeLines.push(`Range: bytes=0-0 got 206 but ${r.bodyBytes} bytes and Content-Range ${contentRange ?? 'missing'}: a broken range answer; resumed downloads would be corrupt.`)
      else rangeLines.push(`Range: bytes=0-0 got ${r.status} with the whole body: no resumable downloads${acceptRanges === 'bytes' ? ', although Accept-Ranges: bytes says otherwise' : ''}.`)
      // the validator of the representation the range came from (with Accept-Encoding: identity; a compressed one has its own ETag)
      const rangeEtag = header(r.headers, 'etag')
      const validator = rangeEtag && !rangeEtag.startsWith('W/') ? rangeEtag : (header(r.headers, 'last-modified') ?? null)
      if (supported && validator) {
        const same = await conn!.request('GET', path, { ...baseHeaders, 'accept-encoding': 'identity', range: 'bytes=0-0', 'if-range': validator })
        const other = await conn!.request('GET', path, { ...baseHeaders, 'accept-encoding': 'identity', range: 'bytes=0-0', 'if-range': validator.startsWith('"') ? '"edgebox-inspect-other"' : 'Thu, 01 Jan 1970 00:00:00 GMT' })
        const good = same.status === 206 && other.status === 200
        ifRange = {
          status: same.status,
          line: good
            ? `If-Range: ${validator} got 206 (same version: the rest can be appended), and a different validator got 200 (the whole new version): resuming is safe.`
            : `If-Range: the matching validator got ${same.status} and a different one ${other.status} (expected 206 and 200): a resumed download could mix two versions.`,
        }
        rangeLines.push(ifRange.line)
      }
    }

    const compression = explainCompression(ACCEPT_ENCODING, exchange.headers)
    const caches = explainCaches(exchange.headers)

    // connection reuse: the requests above went over the same connection when keep-alive works
    let reuse: Report['reuse'] = null
    {
      const r = await conn!.request(method === 'HEAD' ? 'HEAD' : 'GET', path, baseHeaders).catch(() => null)
      if (r) {
        reuse = {
          reused: r.reused,
          total: r.timings.total,
          firstTotal: exchange.timings.total,
          line: r.reused
            ? `A second request on the same connection took ${r.timings.total.toFixed(1)} ms against ${exchange.timings.total.toFixed(1)} ms for the first: no DNS, TCP${url.protocol === 'https:' ? ' or TLS' : ''} this time (${conn!.protocol === 'h2' ? 'one HTTP/2 connection carries every request' : 'keep-alive'}).`
            : 'The server closed the connection after the response: each request pays for a new connection.',
        }
      }
    }

    // CORS: what the browser would do for a script on `origin`
    let cors: Report['cors'] = null
    if (o.origin) {
      const corsMethod = (o.corsMethod ?? 'GET').toUpperCase()
      const corsHeaders = o.corsHeaders ?? {}
      const plan = corsPlan(corsMethod, corsHeaders)
      const credentials = o.credentials ?? false
      let preflight: CorsReport['preflight'] = null
      let allowed = true
      if (plan.preflight) {
        // what the browser lists: only the headers that are not CORS-safelisted
        const names = plan.requestHeaders
        const pre = await conn!.request('OPTIONS', path, {
          origin: o.origin,
          'access-control-request-method': plan.method,
          ...(names.length ? { 'access-control-request-headers': names.join(',') } : {}),
        })
        const verdict = judgePreflight({ origin: o.origin, method: corsMethod, headers: names, credentials, status: pre.status, responseHeaders: pre.headers })
        preflight = { status: pre.status, headers: pre.headers, verdict }
        allowed = verdict.allowed
      }
      let response: ResponseVerdict | null = null
      if (allowed) {
        const actual = await conn!.request(corsMethod === 'HEAD' ? 'HEAD' : corsMethod === 'GET' ? 'GET' : corsMethod, path, { ...corsHeaders, origin: o.origin })
        response = judgeResponse({ origin: o.origin, credentials, responseHeaders: actual.headers })
        allowed = response.allowed
      }
      cors = { origin: o.origin, plan, preflight, response, allowed }
    }

    const security = securityReport(new URL(finalUrl), exchange.headers)

    // repeat: latency over the open connection, and over new connections (every handshake again)
    let repeat: Report['repeat'] = null
    if (o.repeat && o.repeat > 0) {
      const reused: number[] = []
      const fresh: number[] = []
      // new connections offer the first one's TLS session, as a browser does: resumed handshakes are cheaper
      const session = connected!.session()
      let resumed = 0
      for (let i = 0; i < o.repeat; i++) reused.push((await conn!.request('GET', path, baseHeaders)).timings.total)
      for (let i = 0; i < o.repeat; i++) {
        const c = new Connection(url, { ...opts, session })
        try {
          fresh.push((await c.request('GET', path, baseHeaders)).timings.total)
          if (c.connected?.tls?.resumed) resumed++
        } finally {
          c.close()
        }
      }
      const r = percentiles(reused)
      const f = percentiles(fresh)
      const secure = url.protocol === 'https:'
      // a difference of two medians: new connections can happen to be as fast, and a price is never negative
      const price = f.p50 - r.p50
      repeat = {
        reused: r,
        fresh: f,
        resumed: secure ? resumed : null,
        line:
          `Median ${r.p50.toFixed(1)} ms on the open connection against ${f.p50.toFixed(1)} ms with a new connection each time: ` +
          (price > 0 ? `${price.toFixed(1)} ms is the price of ${secure ? 'DNS, TCP and TLS' : 'DNS and TCP'} per request.` : `no measurable price for ${secure ? 'DNS, TCP and TLS' : 'DNS and TCP'} here.`) +
          (secure ? ` ${resumed} of ${o.repeat} new connections resumed the first one's TLS session${resumed === 0 ? ' (the server does not resume sessions: every handshake is a full one)' : ''}.` : ''),
      }
    }

    return {
      url: o.url,
      finalUrl,
      hops,
      warnings,
      dnsServer,
      http: { version: exchange.httpVersion, h2Offered, lines: httpLines },
      caches,
      caching: { ...caching, revalidation },
      ranges: { supported, status: rangeStatus, contentRange, ifRange, lines: rangeLines },
      compression,
      reuse,
      cors,
      security,
      repeat,
    }
  } finally {
    conn!.close()
  }
}

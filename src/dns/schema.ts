import { z } from 'zod'
import { isIP } from 'node:net'
import { duration, size } from '../config/units.ts'
import { cidr, statusRange } from '../config/validators.ts'
import { NameError, parseAbsolute } from './names.ts'

/**
 * The `dns` section of the configuration (docs/dns.md). Absent: Edgebox
 * answers no DNS.
 */

/** A domain name in presentation format; relative names are not allowed here (there is no origin to complete them). */
const zoneName = () =>
  z.string().superRefine((value, ctx) => {
    try {
      parseAbsolute(value)
    } catch (err) {
      if (err instanceof NameError) ctx.addIssue({ code: 'custom', message: `is not a domain name: ${err.message}` })
      else throw err
    }
  })

const listenOne = z.strictObject({
  host: z.string().refine((h) => isIP(h) !== 0, 'is an IP address (DNS binds to an address, not a name)').default('127.0.0.1'),
  /** 53 needs privileges; 0 picks a free port (printed). */
  port: z.number().int().min(0).max(65535).default(53),
})

/** The listen addresses a zone or the resolver answers on (default: all of them). */
const onSchema = z.array(z.string().refine((h) => isIP(h) !== 0, 'is one of dns.listen\'s addresses')).min(1).optional()

const serverAddress = () =>
  z.string().refine((v) => {
    const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(v)
    return m !== null && isIP(m[1]!) !== 0 && (m[2] === undefined || Number(m[2]) <= 65535)
  }, 'is an address with an optional port: 192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53')

const recordSchema = z.strictObject({
  /** Owner: `@` for the zone's apex, a name relative to it (`www`, `*.app`), or an absolute name ending in a dot. */
  name: z.string().min(1),
  /** A, AAAA, NS, CNAME, MX, TXT, CAA, SRV, PTR, SOA, HTTPS, SVCB (or TYPEnnn with `\# len hex` data). */
  type: z.string().min(1),
  /** The record's data as a zone file writes it: `192.0.2.1`, `10 mail`, `"v=spf1 -all"`, `1 . alpn=h2`. */
  data: z.string().min(1),
  /** Seconds (or `1h`, `2d`); default: the zone's `ttl`. */
  ttl: z.union([z.number().int().min(0).max(0x7fffffff), z.string().regex(/^([0-9]+[smhdwSMHDW]?)+$/, 'is seconds, or a time such as 1h, 2d, 1w')]).optional(),
})

const zoneSchema = z
  .strictObject({
    /** The zone's name (`example.test`). */
    origin: zoneName(),
    /** An RFC 1035 zone file, relative to the configuration's folder; its `$ORIGIN` starts as `origin`. */
    file: z.string().min(1).optional(),
    /** Records, written as a zone file would (with or instead of `file`). */
    records: z.array(recordSchema).default([]),
    /** TTL of records that give none (seconds). */
    ttl: z.number().int().min(0).max(0x7fffffff).default(3600),
    /** Answer this zone only on these of `dns.listen`'s addresses (default: on all). */
    on: onSchema,
    /**
     * Zone transfers to secondaries (AXFR, and IXFR answered with the whole
     * zone): the addresses allowed, the TSIG keys one of which must sign the
     * request (`dns.keys`), and where to send NOTIFY when the zone changes.
     * Absent: transfers are REFUSED.
     */
    transfer: z
      .strictObject({
        allow: z.array(cidr()).min(1, 'list the secondaries (addresses or CIDRs) that may transfer the zone'),
        keys: z.array(z.string().min(1)).default([]),
        notify: z.array(serverAddress()).default([]),
      })
      .optional(),
    /**
     * The zone's SOA when no record gives one: `mname` (the primary name
     * server, default the first NS) and `rname` (the responsible mailbox as a
     * name, default `hostmaster.<origin>`); the serial is the time the zone
     * was loaded, in seconds.
     */
    soa: z
      .strictObject({
        mname: z.string().min(1).optional(),
        rname: z.string().min(1).optional(),
        refresh: z.number().int().min(0).default(7200),
        retry: z.number().int().min(0).default(3600),
        expire: z.number().int().min(0).default(1209600),
        /** The negative-answer TTL (RFC 2308 §4). */
        minimum: z.number().int().min(0).default(300),
      })
      .prefault({}),
  })
  .superRefine((z1, ctx) => {
    if (!z1.file && z1.records.length === 0) ctx.addIssue({ code: 'custom', message: 'a zone needs a file or records' })
  })

const checkSchema = z
  .strictObject({
    /** `http`: GET `path` on each address at `port` (a status in `expect` is healthy); `tcp`: a connection to `port` opens. */
    kind: z.enum(['http', 'tcp']).default('http'),
    port: z.number().int().min(1).max(65535).default(80),
    /** http only. */
    path: z.string().startsWith('/').default('/'),
    scheme: z.enum(['http', 'https']).default('http'),
    /** The Host field of http probes; default the address. */
    host: z.string().min(1).optional(),
    expect: statusRange().prefault('200-399'),
    interval: duration().default(5000),
    timeout: duration().default(2000),
    /** Good probes in a row that bring an address back. */
    rise: z.number().int().min(1).default(2),
    /** Bad probes in a row that take an address out. */
    fall: z.number().int().min(1).default(3),
    /** With the top-level `redis`: one node of the deployment probes at a time and the others take its outcomes (docs/scale.md). */
    shared: z.boolean().default(false),
  })
  .prefault({})

const edgeSchema = z.strictObject({
  /** A name for logs and explanations (default: its first address). */
  name: z.string().min(1).optional(),
  /** The edge's IPv4 and IPv6 addresses (A and AAAA answers). */
  addresses: z.array(z.string().refine((a) => isIP(a) !== 0, 'is an IPv4 or IPv6 address')).min(1),
  weight: z.number().int().min(1).max(1000).default(1),
  /** One of `dns.regions` (default: the default region). */
  region: z.string().min(1).optional(),
})

const balanceSchema = z.strictObject({
  /** The balanced name, inside one of `zones` (absolute, e.g. `www.example.test`). */
  name: zoneName(),
  /** TTL of the answers: short, so clients ask again soon after an edge fails. */
  ttl: z.number().int().min(0).max(0x7fffffff).default(30),
  /** Addresses per answer. */
  answers: z.number().int().min(1).max(16).default(2),
  edges: z.array(edgeSchema).min(1),
  check: checkSchema,
})

const regionSchema = z.strictObject({
  name: z.string().min(1),
  /** Client networks (CIDRs) in this region. */
  networks: z.array(cidr()).default([]),
  /** Regions to use in order when this one has no healthy edge (then every other, in configuration order). */
  next: z.array(z.string().min(1)).default([]),
  /** With `dns.geo`: ISO 3166 country codes (`JP`, `DE`) whose clients belong here. */
  countries: z.array(z.string().regex(/^[A-Za-z]{2}$/, 'is a two-letter ISO 3166 country code (JP, DE, US)')).default([]),
  /** With `dns.geo`: continent codes (AF, AN, AS, EU, NA, OC, SA) whose clients belong here. */
  continents: z.array(z.enum(['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'])).default([]),
})

const OPEN_RESOLVER = 'list the networks that may use the resolver (e.g. 127.0.0.0/8): an open resolver is abused for amplification attacks'

const resolverSchema = z.strictObject({
  /** Client networks (CIDRs) that may use recursion; everyone else is REFUSED. Required: Edgebox is never an open resolver. */
  allow: z
    .array(cidr(), { error: (issue) => (issue.input === undefined ? OPEN_RESOLVER : undefined) })
    .min(1, OPEN_RESOLVER),
  /** The root servers to start from: `{ name, address }`; default the real root servers. */
  rootHints: z.array(z.strictObject({ name: zoneName(), address: z.string().refine((a) => isIP(a) !== 0, 'is an IP address') })).min(1).optional(),
  /** The port authorities are asked on (53; another port for a local hierarchy in tests and the lab). */
  authorityPort: z.number().int().min(1).max(65535).default(53),
  /** Bytes the cache holds at most (least recently used answers go first). */
  cacheSize: size().default(32 * 1024 * 1024),
  /** Time to wait for one authority before asking the next. */
  timeout: duration().default(1500),
  /** Tell each authority only the part of the name it needs (RFC 9156). */
  qnameMinimisation: z.boolean().default(true),
  /** Refresh answers still being asked for shortly before they expire. */
  prefetch: z.boolean().default(true),
  /** Answer from expired data when every authority fails (RFC 8767). */
  serveStale: z.strictObject({ enabled: z.boolean().default(true), maxStale: duration().default(86_400_000) }).prefault({}),
  /** Ask these resolvers instead of iterating from the root: `192.0.2.53`, `[2001:db8::53]:53`, or DNS over HTTPS (`https://dns.example/dns-query`). */
  forward: z
    .array(
      z.string().refine((v) => {
        if (/^https?:\/\//i.test(v)) return URL.canParse(v)
        const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(v)
        return m !== null && isIP(m[1]!) !== 0 && (m[2] === undefined || Number(m[2]) <= 65535)
      }, 'is an address with an optional port (192.0.2.53, [2001:db8::53]:53) or a DNS-over-HTTPS URL (https://dns.example/dns-query)'),
    )
    .default([]),
  /** Offer recursion only on these of `dns.listen`'s addresses (default: on all). */
  on: onSchema,
})

export const dnsSchema = z
  .strictObject({
    /**
     * Where UDP and TCP are both bound: one address and port, or several
     * (`[{ host: '127.0.0.1', port: 53 }, { host: '127.0.0.2', port: 53 }]`);
     * zones and the resolver can be limited to some of them with `on`.
     */
    listen: z
      .union([listenOne, z.array(listenOne).min(1)])
      .prefault({})
      .transform((l) => (Array.isArray(l) ? l : [l])),
    /** Largest UDP answer in bytes, whatever the client advertises (RFC 9715: 1232 avoids IP fragmentation). */
    maxUdpSize: z.number().int().min(512).max(4096).default(1232),
    /** A TCP connection with no query for this long is closed (RFC 7766 §6.2.3). */
    tcpIdleTimeout: duration().default(10_000),
    /** Open TCP connections at once; more are refused until one closes. */
    tcpMaxConnections: z.number().int().min(1).default(1000),
    /** One log line per query (off: the fastest). */
    queryLog: z.boolean().default(false),
    /**
     * Response rate limiting over UDP per client network (against reflection
     * attacks); `false` turns it off. Over the rate, queries are dropped and
     * every `slip`-th gets an empty truncated answer, so real clients retry
     * over TCP, which is never limited.
     */
    rateLimit: z
      .union([
        z.literal(false),
        z.strictObject({
          /** Answers per second to one client network (a one-second burst). */
          responsesPerSecond: z.number().int().min(1).default(100),
          /** Every slip-th limited query gets a truncated answer (TC) instead of nothing; 0: drop all. */
          slip: z.number().int().min(0).max(10).default(2),
          /** The client network: the address cut to this many bits. */
          ipv4Prefix: z.number().int().min(8).max(32).default(24),
          ipv6Prefix: z.number().int().min(16).max(128).default(56),
          /** Clients never limited (this machine by default). */
          exempt: z.array(cidr()).default(['127.0.0.0/8', '::1']),
        }),
      ])
      .prefault({}),
    zones: z.array(zoneSchema).default([]),
    /** Regions for balanced names: clients are placed by network (the longest match). */
    regions: z.array(regionSchema).default([]),
    /** A MaxMind database (GeoLite2-Country or -City `.mmdb`, yours to download) that places clients in no configured network by country or continent (`regions[].countries`, `continents`). */
    geo: z.strictObject({ file: z.string().min(1) }).optional(),
    /** The region of clients in no configured network (default: the first region). */
    defaultRegion: z.string().min(1).optional(),
    /** Names answered by global load balancing across health-checked edges (docs/dns.md). */
    balance: z.array(balanceSchema).default([]),
    /** TSIG keys (RFC 8945) for zone transfers and NOTIFY: `{ name, algorithm, secret }` (the secret in base64, as `tsig-keygen` prints it). */
    keys: z
      .array(
        z.strictObject({
          name: zoneName(),
          algorithm: z.enum(['hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'hmac-sha224', 'hmac-sha1']).default('hmac-sha256'),
          secret: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'is the key in base64').refine((v) => Buffer.from(v, 'base64').length >= 16, 'is at least 16 bytes (RFC 8945 §6: as long as the hash)'),
        }),
      )
      .default([]),
    /** A caching recursive resolver for the `allow`ed networks (off unless set). */
    resolver: resolverSchema.optional(),
  })
  .superRefine((d, ctx) => {
    // (after a problem in listen, zod still runs this with what it has)
    if (!Array.isArray(d.listen)) return
    const hosts = new Set(d.listen.map((l) => l.host))
    const checkOn = (on: readonly string[] | undefined, path: (string | number)[]) =>
      on?.forEach((h, i) => {
        if (!hosts.has(h)) ctx.addIssue({ code: 'custom', path: [...path, 'on', i], message: `${h} is not one of dns.listen's addresses (${[...hosts].join(', ')})` })
      })
    d.zones.forEach((z1, i) => checkOn(z1.on, ['zones', i]))
    const keyNames = new Set(d.keys.map((k) => k.name.toLowerCase().replace(/\.$/, '')))
    d.zones.forEach((z1, i) =>
      z1.transfer?.keys.forEach((k, j) => {
        if (!keyNames.has(k.toLowerCase().replace(/\.$/, ''))) ctx.addIssue({ code: 'custom', path: ['zones', i, 'transfer', 'keys', j], message: `no key ${k} in dns.keys` })
      }),
    )
    if (d.resolver) checkOn(d.resolver.on, ['resolver'])
    d.listen.forEach((l, i) => {
      if (l.port !== 0 && d.listen.findIndex((x) => x.host === l.host && x.port === l.port) !== i) ctx.addIssue({ code: 'custom', path: ['listen', i], message: `${l.host}:${l.port} is listed twice` })
    })
    const regionNames = new Set(d.regions.map((r) => r.name))
    d.regions.forEach((r, i) => {
      if (d.regions.findIndex((x) => x.name === r.name) !== i) ctx.addIssue({ code: 'custom', path: ['regions', i, 'name'], message: `the region ${r.name} is named twice` })
      r.next.forEach((n, j) => {
        if (!regionNames.has(n)) ctx.addIssue({ code: 'custom', path: ['regions', i, 'next', j], message: `no region is named ${n}` })
      })
    })
    if (d.defaultRegion !== undefined && !regionNames.has(d.defaultRegion)) ctx.addIssue({ code: 'custom', path: ['defaultRegion'], message: `no region is named ${d.defaultRegion}` })
    d.balance.forEach((b, i) => {
      b.edges.forEach((e, j) => {
        if (e.region !== undefined && !regionNames.has(e.region)) ctx.addIssue({ code: 'custom', path: ['balance', i, 'edges', j, 'region'], message: regionNames.size ? `no region is named ${e.region} (dns.regions has ${[...regionNames].join(', ')})` : `no region is named ${e.region}: add it to dns.regions` })
      })
      if (d.balance.findIndex((x) => x.name.toLowerCase().replace(/\.$/, '') === b.name.toLowerCase().replace(/\.$/, '')) !== i) ctx.addIssue({ code: 'custom', path: ['balance', i, 'name'], message: `${b.name} is balanced twice` })
    })
    const seen = new Map<string, number>()
    d.zones.forEach((zn, i) => {
      const k = zn.origin.toLowerCase().replace(/\.$/, '')
      if (seen.has(k)) ctx.addIssue({ code: 'custom', path: ['zones', i, 'origin'], message: `the zone ${zn.origin} is already zones[${seen.get(k)}]` })
      seen.set(k, i)
    })
  })

export type DnsConfig = z.output<typeof dnsSchema>
export type DnsZoneConfig = DnsConfig['zones'][number]

import { corsSchema } from '../modules/security/cors.ts'
import { routeSecurityHeadersSchema, securityHeadersSchema } from '../modules/security/headers.ts'
import { jsonpSchema } from '../modules/security/jsonp.ts'
import { earlyHintsSchema } from '../core/early-hints.ts'
import { rateLimitSchema } from '../modules/security/rate-limit.ts'
import { csrfSchema } from '../modules/security/csrf.ts'
import { cidr, host, origin } from './validators.ts'
import { z } from 'zod'
import { handlerModules } from '../modules/registry.ts'
import { duration, size } from './units.ts'
import { dnsSchema } from '../dns/schema.ts'
import { rumSchema, siteRumSchema } from '../rum/config.ts'
import { adminSchemaOf } from '../admin/schema.ts'
import { authSchema, gateOptionSchema } from '../auth/schema.ts'
import { redisSchema } from './redis-schema.ts'
import { postgresSchema } from './postgres-schema.ts'

/**
 * The whole configuration schema. Every default lives here, once; the
 * documentation (docs/configuration.md) lists the same values, and
 * `edgebox config --print` shows the resolved result.
 */

const listenSchema = z
  .strictObject({
    /** Address to bind. `0.0.0.0` / `::` for every interface. */
    host: z.string().min(1).default('127.0.0.1'),
    /** TCP port; 0 lets the system pick a free one (the URL is printed). */
    port: z.number().int().min(0).max(65535).default(8080),
    /** This listener speaks TLS, with the certificates of the top-level `tls` (docs/tls.md). */
    tls: z.boolean().default(false),
    /**
     * Protocols accepted. Cleartext: HTTP/1.x and HTTP/2 with prior knowledge
     * (`h2c`), default both. TLS: `h2` and `http/1.1`, chosen by ALPN, default both.
     */
    protocols: z.array(z.enum(['http/1.1', 'h2c', 'h2'])).min(1).optional(),
    /** Answer every request on this listener with a redirect to the same URL over HTTPS. */
    httpsRedirect: z
      .strictObject({
        port: z.number().int().min(1).max(65535).default(443),
        status: z.union([z.literal(301), z.literal(302), z.literal(307), z.literal(308)]).default(308),
      })
      .optional(),
  })
  .superRefine((l, ctx) => {
    for (const [i, p] of (l.protocols ?? []).entries()) {
      if (l.tls && p === 'h2c') ctx.addIssue({ code: 'custom', path: ['protocols', i], message: "h2c is cleartext HTTP/2; a TLS listener speaks 'h2' (chosen by ALPN)" })
      if (!l.tls && p === 'h2') ctx.addIssue({ code: 'custom', path: ['protocols', i], message: "'h2' needs TLS (tls: true); cleartext HTTP/2 is 'h2c'" })
    }
    if (l.tls && l.httpsRedirect) ctx.addIssue({ code: 'custom', path: ['httpsRedirect'], message: 'a TLS listener is already HTTPS; put httpsRedirect on a cleartext listener' })
  })
  .transform((l) => ({ ...l, protocols: l.protocols ?? (l.tls ? (['h2', 'http/1.1'] as const) : (['http/1.1', 'h2c'] as const)) }))

/** A cipher list for TLS 1.2 with forward secrecy and AEAD only (TLS 1.3 suites are always these three, all modern). */
export const MODERN_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/** Automatic certificates from an ACME authority (RFC 8555); docs/tls.md "Automatic HTTPS with ACME". */
const acmeSchema = z.strictObject({
  /** The account's contact address. */
  email: z.email(),
  /** Accepts the authority's terms of service; required, and must be true. */
  agreeToTerms: z.literal(true, { error: "set agreeToTerms: true to accept the ACME authority's terms of service" }),
  /** 'letsencrypt', 'letsencrypt-staging', or an https:// ACME directory URL. */
  directory: z
    .union([z.enum(['letsencrypt', 'letsencrypt-staging']), z.url({ protocol: /^https$/, error: "is 'letsencrypt', 'letsencrypt-staging' or an https:// ACME directory URL" })])
    .default('letsencrypt'),
  /** External Account Binding (RFC 8555 §7.3.4): the key id and base64url HMAC key the authority gave. */
  eab: z.strictObject({ kid: z.string().min(1), hmacKey: z.string().regex(/^[A-Za-z0-9_-]+=*$/, 'is the base64url key the authority gave') }).optional(),
  /** Challenge types, in order of preference (each used only where a listener can answer it). */
  challenges: z
    .array(z.enum(['http-01', 'tls-alpn-01', 'dns-01']))
    .min(1)
    .default(['http-01', 'tls-alpn-01', 'dns-01']),
  /** A PEM file of authorities to trust for the directory's HTTPS (a private ACME server); default: the system's. */
  ca: z.string().min(1).optional(),
})

const tlsSchema = z.strictObject({
  /** Key + certificate (+ intermediate chain) files; each serves the names in its certificate, chosen by SNI. The first is the default. */
  certificates: z
    .array(
      z.strictObject({
        cert: z.string().min(1),
        key: z.string().min(1),
        /** Intermediate certificates sent after the certificate (PEM, in order). */
        chain: z.string().min(1).optional(),
      }),
    )
    .default([]),
  /** Without certificates: use a certificate from the local authority (`edgebox cert`), issued for the sites' hosts, localhost and 127.0.0.1. */
  local: z.boolean().default(false),
  /** Publicly trusted certificates for the sites' names, obtained and renewed automatically (off unless set). */
  acme: acmeSchema.optional(),
  /** Oldest TLS version accepted; TLS 1.0 and 1.1 are never. */
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are fixed). */
  ciphers: z.string().min(1).default(MODERN_CIPHERS),
  /** A client asking (SNI) for a name no certificate covers: 'default' (the first certificate) or 'refuse' (the handshake fails). */
  unknownServerName: z.enum(['default', 'refuse']).default('default'),
  /** Session resumption with tickets (RFC 8446 §4.6.1, RFC 5077); keys rotate every `ticketRotation`. */
  sessionTickets: z.boolean().default(true),
  ticketRotation: duration().default(12 * 3600_000),
  /**
   * A file of at least 32 random bytes the ticket keys are derived from, so
   * that every Edgebox process on the node (sharing the file) resumes the
   * others' sessions; default: a random secret per process.
   */
  ticketKeyFile: z.string().min(1).optional(),
  /** How long a session may be resumed (tickets and the TLS 1.2 session cache). */
  sessionTimeout: duration().default(3600_000),
  /** TLS 1.2 session IDs kept for resumption (RFC 5246 §7.4.1.2). */
  sessionCacheSize: z.number().int().min(0).default(10_000),
})

const limitsSchema = z.strictObject({
  /** Largest request head (request line + header fields); larger gets 431. */
  maxHeaderSize: size().default(16 * 1024),
  /** Largest request body a handler accepts; larger gets 413. */
  maxBodySize: size().default(10 * 1024 * 1024),
  /** Time a client has to send the complete request head; then 408 and close. HTTP/2: to open its first stream, or finish a header block. */
  headersTimeout: duration().default(15_000),
  /** A request body that sends no bytes for this long is cut (408); a flowing upload is never cut. */
  bodyIdleTimeout: duration().default(30_000),
  /** Once `bodyRateGrace` has passed, a request body averaging fewer bytes per second since its start is cut (408): a trickle that keeps the idle timeout away. 0: no minimum. */
  bodyMinRate: z.number().int().min(0).default(500),
  /** How long a request body may take before `bodyMinRate` applies (Apache mod_reqtimeout's `body=20,MinRate=500`). */
  bodyRateGrace: duration().default(20_000),
  /** A request body the proxy buffers is kept in memory up to this size, then goes to a temporary file. */
  bodyBuffer: size().default(64 * 1024),
  /** All temporary request body files of the process together; a body that would go beyond gets 503, so buffering never fills the disk. */
  bodyTempMax: size().default(1024 ** 3),
  /** How long an idle keep-alive connection stays open (HTTP/2: a session with no open stream). */
  keepAliveTimeout: duration().default(5_000),
  /** A streamed response the client stops reading for this long is cut (HTTP/2: a session with a stream open and no traffic). */
  idleTimeout: duration().default(120_000),
  /** Open connections per listener; further connections are refused until one closes. */
  maxConnections: z.number().int().min(1).default(10_000),
  /** On SIGTERM/SIGINT: how long in-flight requests may take before connections are cut. */
  shutdownTimeout: duration().default(10_000),
  /** HTTP/2: concurrent streams per connection. */
  maxConcurrentStreams: z.number().int().min(1).default(128),
})

const logSchema = z.strictObject({
  /** One line per request. Turning it off is the fastest configuration. */
  access: z.boolean().default(true),
  /** `auto`: a readable line in a terminal, JSON otherwise. */
  format: z.enum(['auto', 'json', 'pretty']).default('auto'),
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Append logs to this file instead of standard output. */
  file: z.string().optional(),
  /**
   * An HTTP/2 connection that resets more streams than this within a second
   * (rapid reset) gets one `stream resets` access line when it closes,
   * instead of one 499 line per reset stream.
   */
  resetFlood: z.number().int().min(1).default(100),
})

const forwardProxySchema = z.strictObject({
  /** Forward proxy mode (docs/forward-proxy.md): absolute-form requests and CONNECT tunnels. Off by default. */
  enabled: z.boolean().default(false),
  /** Client addresses allowed without a credential (addresses or CIDRs). */
  clients: z.array(cidr()).default([]),
  /** Accepted `Proxy-Authorization: Basic` credentials. */
  credentials: z
    .array(
      z.strictObject({
        user: z.string().min(1).regex(/^[^:]*$/, 'cannot contain ":"'),
        password: z.string().min(1),
      }),
    )
    .default([]),
  /** Destination ports CONNECT may open tunnels to. */
  connectPorts: z.array(z.number().int().min(1).max(65535)).default([443]),
  /** Destination host names allowed (`example.com`, `*.example.com`, `*`), as the client wrote them. Empty: any. */
  allowHosts: z.array(host({ wildcard: true, any: true })).default([]),
  timeouts: z
    .strictObject({
      /** Opening the connection to the destination: 504 beyond. */
      connect: duration().default(10_000),
      /** A tunnel or a forwarded exchange with no bytes either way for this long is closed. */
      idle: duration().default(120_000),
    })
    .prefault({}),
})

type Modules = typeof handlerModules
/** `{ static: z.ZodOptional<staticSchema>, redirect: ... }`, typed, so a configuration file autocompletes. */
type KindShape = { [M in Modules[number] as M['kind']]: z.ZodOptional<M['schema']> }

function routeSchema() {
  const kinds = Object.fromEntries(handlerModules.map((m) => [m.kind, m.schema.optional()])) as KindShape
  const names = handlerModules.map((m) => m.kind)
  return z
    .strictObject({
      /** Path prefix; the longest matching prefix wins. `/_edgebox/` is Edgebox's own (docs/configuration.md). */
      path: z
        .string()
        .startsWith('/', 'must start with /')
        .refine((p) => !p.startsWith('/_edgebox/') && p !== '/_edgebox', "/_edgebox/ is reserved for Edgebox's own endpoints"),
      /** CORS for this route (replaces the site's `cors`), or false for none here. */
      cors: z.union([corsSchema, z.literal(false)]).optional(),
      /** A token-bucket rate limit for this route: { requests, per, burst, key }; docs/security.md. */
      rateLimit: rateLimitSchema.optional(),
      /** CSRF protection for this route's unsafe methods: true, or { token, cookie, secret }; docs/security.md. */
      csrf: csrfSchema.optional(),
      /** JSONP for this route's JSON answers: true (parameter `callback`) or `{ param }`; docs/security.md. */
      jsonp: jsonpSchema.optional(),
      /** Security headers that differ here from the site's `headers` (only what is named changes); docs/security.md. */
      headers: routeSecurityHeadersSchema.optional(),
      /** 103 Early Hints for this route's HTML documents: Link values such as `</app.css>; rel=preload; as=style`; docs/tls.md. */
      earlyHints: earlyHintsSchema.optional(),
      /** Single sign-on in front of this route (replaces the site's `auth`): true, false, or { providers, rules, skip, bearer, upstream }; docs/sso.md. */
      auth: gateOptionSchema.optional(),
      ...kinds,
    })
    .superRefine((route, ctx) => {
      const present = names.filter((k) => (route as Record<string, unknown>)[k] !== undefined)
      if (present.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          message: present.length === 0 ? `a route needs one handler: ${names.join(', ')}` : `a route has exactly one handler, found ${present.join(' and ')}`,
        })
      }
    })
}

const siteSchema = z.strictObject({
  /** Host names this site answers (`example.com`, `*.example.test`). Empty: any host. */
  hosts: z.array(host({ wildcard: true })).default([]),
  /** The site for requests whose Host matches no other site (default: the first site). */
  default: z.boolean().default(false),
  /**
   * Web origins whose pages may use this site from a browser besides its own
   * (`https://app.example.com`, `https://*.example.com`, or `*`): the one
   * origin policy the realtime hub's WebSocket and cross-origin checks read.
   */
  /** Security response headers (nosniff, Referrer-Policy, clickjacking, CSP, ...); docs/security.md. */
  headers: securityHeadersSchema.prefault({}),
  /** CORS for the whole site (a route's own `cors` replaces it); docs/security.md. */
  cors: corsSchema.optional(),
  origins: z.array(origin()).default([]),
  /** Single sign-on in front of every route of the site (a route's own `auth` replaces it); docs/sso.md. */
  auth: gateOptionSchema.optional(),
  /** Publish the head of each answer (status, Location, cookies; values shortened) to the wire trace a lab page watches (the sign-on lab). */
  trace: z.boolean().default(false),
  /**
   * Real-user monitoring (docs/monitoring.md): each HTML answer gets a
   * page-view id (`Server-Timing: pv;desc="<id>"`, and `"pv"` in the access
   * log), and the collector's endpoints are on the site. `true` or an object
   * (`{}` is the same as `true`); `{ sentry: {...} }` also takes a Sentry
   * SDK's errors.
   */
  rum: siteRumSchema,
  routes: z.array(routeSchema()).min(1),
})

export const configSchema = z
  .strictObject({
    listen: z.array(listenSchema).min(1).prefault([{}]),
    /** Certificates and TLS settings for listeners with `tls: true` (docs/tls.md). */
    tls: tlsSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    log: logSchema.prefault({}),
    /** Adds `Server-Timing: edge;dur=...` to every response. */
    serverTiming: z.boolean().default(true),
    /** Path of the health endpoint on every site, or false. */
    health: z.union([z.literal(false), z.string().regex(/^\/_edgebox\/[a-z0-9/_-]+$/, "is a path under /_edgebox/, Edgebox's own endpoints")]).default('/_edgebox/health'),
    sites: z.array(siteSchema).min(1),
    /**
     * Proxies in front of Edgebox (addresses or CIDRs, e.g. a load balancer's
     * 10.0.0.0/8) whose `Forwarded` / `X-Forwarded-For` fields name the real
     * client for rate limits, logs and the realtime hub; from anyone else
     * those fields are ignored.
     */
    trustedProxies: z.array(cidr()).default([]),
    /**
     * The one field your proxies set to name the client (as nginx's
     * `real_ip_header`): `x-forwarded-for` or `forwarded` (RFC 7239). The
     * other field is never read for the address, and is not passed upstream.
     */
    clientAddressHeader: z.enum(['x-forwarded-for', 'forwarded']).default('x-forwarded-for'),
    /** Forward proxy mode, off by default; when on, access is limited to `clients` or `credentials`. */
    forwardProxy: forwardProxySchema.prefault({}),
    /**
     * The folder Edgebox keeps its state in (the local authority, ACME
     * accounts and certificates), relative to the configuration's folder;
     * default `$EDGEBOX_HOME`, else `$XDG_DATA_HOME/edgebox`, else
     * `~/.local/share/edgebox`. Keep it across restarts (docs/deploy.md).
     */
    dataDir: z.string().min(1).optional(),
    /** An authoritative DNS server for your zones, on UDP and TCP (docs/dns.md); off unless set. */
    dns: dnsSchema.optional(),
    /** Single sign-on: the identity providers and sessions that `auth` on a site or route uses (docs/sso.md). */
    auth: authSchema.optional(),
    /** Real-user monitoring's store, limits, query API and alerts, shared by the sites with `rum` (docs/monitoring.md). */
    rum: rumSchema.prefault({}),
    /** The admin listener and its API (docs/admin.md); off unless set (`npm start` sets it: 127.0.0.1:8082). */
    admin: adminSchemaOf(gateOptionSchema).optional(),
    /** Redis that several Edgebox nodes share (docs/scale.md): realtime fan-out and history, purges, rate limits; off unless set. */
    redis: redisSchema.optional(),
    /**
     * Worker processes serving the same ports (docs/scale.md): a number, or
     * `auto` for one per core (what production wants). 1, the default, is one
     * process with no primary.
     */
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default(1),
    /** PostgreSQL for the data that outgrows one machine's node:sqlite (docs/scale.md): RUM events, the built-in identity provider's users, sessions and keys; off unless set. */
    postgres: postgresSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    const fp = cfg.forwardProxy
    if (fp.enabled && fp.clients.length === 0 && fp.credentials.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['forwardProxy', 'enabled'],
        message: 'a forward proxy needs clients (allowed addresses) or credentials: without either it would be an open proxy',
      })
    }
    const tlsAt = cfg.listen.findIndex((l) => l.tls)
    if (tlsAt !== -1 && cfg.tls.certificates.length === 0 && !cfg.tls.local && !cfg.tls.acme) {
      ctx.addIssue({ code: 'custom', path: ['listen', tlsAt, 'tls'], message: 'a TLS listener needs tls.certificates, tls.acme for automatic certificates, or tls.local: true for a local development certificate (edgebox cert)' })
    }
    if (cfg.tls.acme && tlsAt === -1) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'acme'], message: 'ACME certificates are for a TLS listener: add one (listen: [{ port: 443, tls: true }])' })
    }
    if (cfg.tls.acme && cfg.tls.local) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'local'], message: 'choose tls.acme or tls.local: names no public authority can validate are served by tls.certificates' })
    }
    // every gate needs the providers it names
    const providers = cfg.auth ? Object.keys(cfg.auth.providers) : []
    const checkGate = (gate: unknown, path: (string | number)[]) => {
      if (gate === undefined || gate === false) return
      if (!cfg.auth) return ctx.addIssue({ code: 'custom', path, message: 'a sign-on gate needs the top-level auth.providers (docs/sso.md)' })
      const names = typeof gate === 'object' && gate !== null ? (gate as { providers?: string[] }).providers : undefined
      for (const [i, n] of (names ?? []).entries()) {
        if (!providers.includes(n)) ctx.addIssue({ code: 'custom', path: [...path, 'providers', i], message: `there is no provider ${JSON.stringify(n)} in auth.providers (${providers.join(', ')})` })
      }
    }
    // the admin listener's gate (docs/admin.md) uses the same providers
    checkGate(cfg.admin?.auth, ['admin', 'auth'])
    for (const [si, site] of cfg.sites.entries()) {
      checkGate(site.auth, ['sites', si, 'auth'])
      for (const [ri, route] of site.routes.entries()) {
        checkGate(route.auth, ['sites', si, 'routes', ri, 'auth'])
        if (route.forwardAuth === undefined) continue
        const gated = (route.auth ?? site.auth) !== undefined && (route.auth ?? site.auth) !== false
        if (!gated) ctx.addIssue({ code: 'custom', path: ['sites', si, 'routes', ri, 'forwardAuth'], message: 'a forward-auth route answers with its sign-on gate: give it auth (true, or { rules, ... })' })
        if (cfg.trustedProxies.length === 0) ctx.addIssue({ code: 'custom', path: ['sites', si, 'routes', ri, 'forwardAuth'], message: 'a forward-auth route reads the request from the proxy that asks (X-Forwarded-Uri, -Host, -Method): list that proxy in trustedProxies' })
      }
    }
    // health checks shared by the nodes need the Redis they share
    if (!cfg.redis) {
      for (const [si, site] of cfg.sites.entries()) {
        for (const [ri, route] of site.routes.entries()) {
          const proxy = (route as { proxy?: { health?: { active?: { shared?: unknown } } } }).proxy
          if (proxy?.health?.active?.shared === true) ctx.addIssue({ code: 'custom', path: ['sites', si, 'routes', ri, 'proxy', 'health', 'active', 'shared'], message: "health checks shared by the nodes need the top-level redis (redis: 'redis://host:port')" })
        }
      }
      for (const [bi, b] of (cfg.dns?.balance ?? []).entries()) {
        if (b.check.shared) ctx.addIssue({ code: 'custom', path: ['dns', 'balance', bi, 'check', 'shared'], message: "health checks shared by the nodes need the top-level redis (redis: 'redis://host:port')" })
      }
    }
    const defaults = cfg.sites.flatMap((s, i) => (s.default ? [i] : []))
    if (defaults.length > 1) ctx.addIssue({ code: 'custom', path: ['sites', defaults[1]!, 'default'], message: 'only one site can be the default' })
  })

/** What a user writes (defaults optional). */
export type EdgeboxConfigInput = z.input<typeof configSchema>
/** The resolved configuration, every default filled in. */
export type EdgeboxConfig = z.output<typeof configSchema>

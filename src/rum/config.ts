import { isIP } from 'node:net'
import { z } from 'zod'
import { duration, size } from '../config/units.ts'

/**
 * The configuration of real-user monitoring (docs/monitoring.md): the
 * top-level `rum` section (the store, the collector's limits, the query API,
 * alerts), shared by every site, and each site's own `rum` option (the
 * collector's endpoints on it, the Sentry DSN, injection, symbolication).
 */

/** A loopback address: the query API is never on a site's listener, nor on a public address. */
const loopbackHost = () =>
  z
    .string()
    .refine((h) => (isIP(h) === 4 && h.startsWith('127.')) || h === '::1', 'is a loopback address (127.0.0.0/8 or ::1): the query API carries every page\'s data')
    .default('127.0.0.1')

/** The top-level `rum` section; absent, every default below applies (when a site has `rum`). */
export const rumSchema = z.strictObject({
  /** How long rows are kept: older ones, and the oldest beyond `maxSize`, are deleted every minute. */
  retention: z
    .strictObject({
      /** Rows older than this are deleted (default 30 days). */
      maxAge: duration().default(30 * 86_400_000),
      /** The store's data at most this size (default 1 GiB); the oldest rows go first. */
      maxSize: size().default(1024 ** 3),
    })
    .prefault({}),
  /** Beacons per client network (a /24 or /48) per minute; more get 429. */
  perMinute: z.number().int().min(1).default(120),
  /**
   * The request field a trusted proxy in front of Edgebox puts the client's
   * country in (`cf-ipcountry`, `cloudfront-viewer-country`), for the
   * `country` breakdowns; read only from `trustedProxies`. Unset: no country.
   */
  countryHeader: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'is a request field name such as cf-ipcountry').toLowerCase().optional(),
  /** Rows waiting for the store at most; more are dropped and counted (a page is never slowed by its monitoring). */
  queue: z.number().int().min(100).default(10_000),
  /**
   * The query API (JSON, for dashboards and scripts): on its own loopback
   * listener, never on a site's, each request with `Authorization: Bearer <token>`.
   */
  api: z
    .strictObject({
      host: loopbackHost(),
      /** 0 picks a free port (printed). */
      port: z.number().int().min(0).max(65535).default(8089),
      /** At least 32 characters: `openssl rand -hex 32`. */
      token: z.string().min(32, 'is at least 32 characters (openssl rand -hex 32)'),
    })
    .optional(),
  /** A webhook told (a JSON POST, retried with backoff) when an error group is new, or comes back in a new release. */
  alerts: z
    .strictObject({
      webhook: z.url({ protocol: /^https?$/, error: 'is an http: or https: URL' }),
      /** Signs each POST: `Edgebox-Signature: t=<unix seconds>,sha256=<hex HMAC-SHA256 of "<t>.<body>">`. */
      secret: z.string().min(16, 'is at least 16 characters').optional(),
      /** Each attempt's time limit. */
      timeout: duration().default(5_000),
      /** Attempts after the first, 1 s apart and doubling (1, 2, 4, 8, 16 s). */
      retries: z.number().int().min(0).max(10).default(5),
    })
    .optional(),
})

export type RumConfig = z.output<typeof rumSchema>

/** The SDK injected into a site's HTML: what its `<script>` tag says. */
const injectSchema = z.union([
  z.boolean(),
  z.strictObject({
    /** The release every event carries (`data-release`), e.g. a version or commit; it picks the source maps a stack is mapped with. */
    release: z.string().min(1).max(128).optional(),
    /** The environment (`data-env`): production, staging... */
    env: z.string().min(1).max(64).optional(),
    /** The share of page views reported, 0 to 1 (`data-sample-rate`). */
    sampleRate: z.number().min(0).max(1).optional(),
  }),
])

/** A site's `rum`: `true`, or an object (`{}` is the same as `true`). */
export const siteRumSchema = z
  .union([
    z.boolean(),
    z.strictObject({
      /**
       * Take errors from an app's Sentry SDK (`@sentry/browser`) whose DSN is
       * `https://<key>@<this site>/_edgebox/rum/sentry/<project>`: its
       * envelopes and events, at `/_edgebox/rum/sentry/api/<project>/envelope/`
       * and `.../store/`, land in the same error groups as the Edgebox SDK's.
       */
      sentry: z
        .strictObject({
          /** The DSN's project id (its last path segment): 1 to 16 digits. */
          project: z.string().regex(/^\d{1,16}$/, 'is the DSN\'s project id: 1 to 16 digits'),
          /** The DSN's public key (its user part; Sentry makes 32 hex characters): 16 to 64 of [a-f0-9]. Public: it is in every page that reports. */
          key: z.string().regex(/^[a-f0-9]{16,64}$/, 'is the DSN\'s public key: 16 to 64 of [a-f0-9]'),
        })
        .optional(),
      /** Put the SDK's `<script>` before `</head>` of the site's HTML answers (served or proxied). */
      inject: injectSchema.default(false),
      /** Map stack frames of the site's own scripts back to their sources, with the `.map` files its static routes have. */
      symbolicate: z.boolean().default(true),
      /** Source maps larger than this are not read. */
      maxMapSize: size().default(20 * 1024 ** 2),
      /** Serve `.map` files to browsers (default: 404, they stay on the server for symbolication). */
      serveMaps: z.boolean().default(false),
    }),
  ])
  .default(false)

export type SiteRumConfig = z.output<typeof siteRumSchema>

/** A site's `rum` as an object, or null when it is off. */
export interface SiteRum {
  readonly sentry?: { readonly project: string; readonly key: string } | undefined
  readonly inject: false | { readonly release?: string | undefined; readonly env?: string | undefined; readonly sampleRate?: number | undefined }
  readonly symbolicate: boolean
  readonly maxMapSize: number
  readonly serveMaps: boolean
}

/** The defaults of `rum: true`. */
const ON: SiteRum = { inject: false, symbolicate: true, maxMapSize: 20 * 1024 ** 2, serveMaps: false }

/** A site's `rum` option made one shape: null when off, the defaults for `true`. */
export function siteRum(option: SiteRumConfig): SiteRum | null {
  if (option === false) return null
  if (option === true) return ON
  return { sentry: option.sentry, inject: option.inject === true ? {} : option.inject, symbolicate: option.symbolicate, maxMapSize: option.maxMapSize, serveMaps: option.serveMaps }
}

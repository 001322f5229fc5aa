import { z } from 'zod'
import { duration } from '../../config/units.ts'
import { isLoopbackHost } from '../../http/address.ts'

/**
 * The configuration of Edgebox's built-in OpenID Connect provider: a route
 * kind (`{ path: '/', idp: { issuer, clients } }`, docs/idp.md). Users come
 * from the user store in the data folder (`edgebox user add`), never from
 * the configuration.
 */

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** A URL that is https, or http on a loopback host (`localhost`, `*.localhost`, 127.0.0.1, ::1) only. */
function webUrl(what: string, opts: { path: boolean }) {
  return z.string().superRefine((v, ctx) => {
    let url: URL
    try {
      url = new URL(v)
    } catch {
      return ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a URL` })
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      return ctx.addIssue({ code: 'custom', message: `${what} is https (http only on a loopback host such as localhost, *.localhost or 127.0.0.1): ${v}` })
    }
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: `${what} has no user name or password in it: ${v}` })
    // RFC 6749 §3.1.2: a redirection endpoint has no fragment; an issuer has neither query nor fragment (OpenID Connect Discovery 1.0 §3)
    if (url.hash || v.includes('#')) ctx.addIssue({ code: 'custom', message: `${what} has no fragment (#...): ${v}` })
    if (!opts.path && (url.search || v.endsWith('?'))) ctx.addIssue({ code: 'custom', message: `${what} has no query (?...): ${v}` })
  })
}

/** The token-bucket limit of one kind of login attempt. */
const limitSchema = (attempts: number, per: number) =>
  z
    .strictObject({
      /** Attempts allowed in a window, at most at once (the bucket's size; it refills evenly over `per`). */
      attempts: z.number().int().min(1).max(1_000_000).default(attempts),
      /** The window: `15m`, `1h`. */
      per: duration().default(per),
    })
    .prefault({})

/** One relying party registered with the provider. */
export const idpClientSchema = z
  .strictObject({
    /** The client ID (`client_id`, RFC 6749 §2.2): printable ASCII without spaces. */
    clientId: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'is 1-128 printable ASCII characters without spaces'),
    /**
     * The client secret (RFC 6749 §2.3.1), at least 24 characters (`openssl
     * rand -base64 32`); absent: a public client, which authenticates with
     * PKCE alone (RFC 7636) and cannot use introspection.
     */
    clientSecret: z.string().min(24, 'a client secret is at least 24 characters (openssl rand -base64 32)').max(512).optional(),
    /** How a confidential client authenticates at the token endpoint (OpenID Connect Core §9); default `client_secret_basic`. */
    tokenAuth: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
    /** The algorithm of the client's ID tokens (OpenID Connect Registration 1.0 §2 `id_token_signed_response_alg`): RS256, what clients expect unless told, or ES256. */
    idTokenAlg: z.enum(['RS256', 'ES256']).default('RS256'),
    /** The name the sign-in page shows ("to continue to ..."); default: the client ID. */
    name: z.string().min(1).max(80).optional(),
    /** Where the provider may send the browser back with a code (exact match, RFC 6749 §3.1.2; Edgebox: `<site origin>/_edgebox/auth/callback`). */
    redirectUris: z.array(webUrl('a redirect URI', { path: true })).min(1, 'name at least one redirect URI'),
    /** Where the provider may send the browser after a sign-out the client asked for (RP-Initiated Logout 1.0 §3; Edgebox: `<site origin>/_edgebox/auth/signed-out`). */
    postLogoutRedirectUris: z.array(webUrl('a post-logout redirect URI', { path: true })).default([]),
    /** Where the provider posts a logout token when the user signs out at the provider (Back-Channel Logout 1.0 §2; Edgebox: `<site origin>/_edgebox/auth/backchannel-logout`). */
    backchannelLogoutUri: webUrl('a back-channel logout URI', { path: true }).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.tokenAuth && !c.clientSecret) ctx.addIssue({ code: 'custom', path: ['tokenAuth'], message: 'a public client (no clientSecret) authenticates with PKCE alone; tokenAuth needs a clientSecret' })
  })

/** A registered client, every default filled in. */
export type IdpClientConfig = z.output<typeof idpClientSchema>

/** A route's `idp`: the provider's issuer, its clients, the second factor, keys, lifetimes and login limits. */
export const idpSchema = z
  .strictObject({
    /**
     * The provider's public URL, exactly as tokens name it (`iss`): its
     * discovery document is `<issuer>/.well-known/openid-configuration`.
     * https, or http on a loopback host only. Its path (if any) is the
     * route's path.
     */
    issuer: webUrl('the issuer', { path: false }),
    /** The name on the provider's pages and in authenticator apps; default: the issuer's host name. */
    name: z.string().min(1).max(80).regex(/^[^:\p{Cc}]+$/u, 'has no colon or control characters').optional(),
    /** The relying parties allowed to sign users in here (all first-party: no consent page). */
    clients: z
      .array(idpClientSchema)
      .min(1, 'register at least one client')
      .superRefine((clients, ctx) => {
        const seen = new Set<string>()
        clients.forEach((c, i) => {
          if (seen.has(c.clientId)) ctx.addIssue({ code: 'custom', path: [i, 'clientId'], message: `client ${JSON.stringify(c.clientId)} is registered twice` })
          seen.add(c.clientId)
        })
      }),
    /**
     * A second factor: a TOTP code (RFC 6238) or a passkey (W3C WebAuthn
     * Level 3), whichever the user has (both are offered to a user who has
     * both). `off` (passwords only), `optional` (users with a TOTP secret or
     * a passkey are asked for one), `required` (everyone; users with neither
     * set one up at their next sign-in: an authenticator app, or a passkey
     * instead). Passkeys are for the issuer's host name (its relying party
     * ID): an issuer on an IP address offers none.
     */
    secondFactor: z.enum(['off', 'optional', 'required']).default('optional'),
    /** A new signing key (and cookie key) after this long; the old ones stay published until what they signed has expired. */
    keyRotation: duration()
      .default(90 * DAY)
      .refine((ms) => ms >= HOUR, 'keyRotation is at least 1h'),
    /** How long a sign-in at the provider lasts (its session): within it, clients get tokens without a new password. */
    sessionTtl: duration()
      .default(12 * HOUR)
      .refine((ms) => ms >= MINUTE, 'sessionTtl is at least 1m'),
    /** Token lifetimes (not `tokens`: an option of that name is a secret to `edgebox config --print`, which hides it). */
    tokenLifetimes: z
      .strictObject({
        /** Access tokens (opaque; checked at userinfo and introspection). */
        accessToken: duration()
          .default(10 * MINUTE)
          .refine((ms) => ms >= 1000, 'at least 1s'),
        /** ID tokens (JWTs signed with the current key). */
        idToken: duration()
          .default(10 * MINUTE)
          .refine((ms) => ms >= 1000, 'at least 1s'),
        /** Refresh tokens: rotated at each use, the chain ending this long after the sign-in. */
        refreshToken: duration()
          .default(12 * HOUR)
          .refine((ms) => ms >= 1000, 'at least 1s'),
      })
      .prefault({}),
    /**
     * Login attempts (passwords and codes), token buckets checked before any
     * password hash is computed: a full bucket per account (whatever the
     * address) and per client address; an empty one answers 429.
     */
    loginLimits: z
      .strictObject({
        /** Per account (the username as typed, normalised; unknown names count too, so nothing tells which exist). */
        perAccount: limitSchema(10, 15 * MINUTE),
        /** Per client address (as Edgebox sees it through `trustedProxies`). */
        perAddress: limitSchema(30, 15 * MINUTE),
      })
      .prefault({}),
  })

/** A route's `idp`, every default filled in. */
export type IdpConfig = z.output<typeof idpSchema>

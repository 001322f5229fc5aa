import { z } from 'zod'
import { duration } from '../config/units.ts'
import { isLoopbackHost } from '../http/address.ts'
import { compileGlob } from '../http/glob.ts'
import { TOKEN } from '../http/token.ts'
import { rulesSchema } from './rules.ts'

/**
 * The configuration of single sign-on (docs/sso.md): the identity providers
 * and sessions (top-level `auth`), and the gate a site or route puts in front
 * of itself (`sites[].auth`, `routes[].auth`).
 */

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/

/** An issuer URL: https, or http on a loopback host only (a provider on this machine, in development and tests). */
const issuerUrl = () =>
  z.string().superRefine((v, ctx) => {
    let url: URL
    try {
      url = new URL(v)
    } catch {
      return ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a URL` })
    }
    if (url.protocol === 'https:') return
    if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return
    ctx.addIssue({ code: 'custom', message: `an issuer is https (http only on a loopback host such as 127.0.0.1 or localhost): ${v}` })
  })

export const providerSchema = z.strictObject({
  /** The issuer's URL, exactly as its tokens name it (`iss`); its discovery document is `<issuer>/.well-known/openid-configuration`. */
  issuer: issuerUrl(),
  /** The client ID Edgebox is registered with at the provider. */
  clientId: z.string().min(1),
  /** The client secret; absent: a public client (PKCE alone, no client authentication). */
  clientSecret: z.string().min(1).optional(),
  /** How the client authenticates at the token endpoint; default `client_secret_basic` with a secret, `none` without. */
  tokenAuth: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
  /** The scopes asked for; `openid` is required. */
  scopes: z
    .array(z.string().regex(TOKEN, 'is a scope token'))
    .default(['openid', 'email', 'profile'])
    .refine((s) => s.includes('openid'), 'the scopes must include openid'),
  /** The name on the sign-in chooser page, when a route allows several providers. Default: the provider's key. */
  label: z.string().min(1).max(80).optional(),
  /** Also read claims from the userinfo endpoint after login (email, groups where the ID token lacks them). */
  userinfo: z.boolean().default(true),
  /** The claim that lists the user's groups (`groups`; Keycloak: a mapper of that name; Entra ID: `groups` or `roles`). */
  groupsClaim: z.string().min(1).default('groups'),
  /** Bearer access tokens this provider issues are accepted for these audiences (`aud`); default: the client ID. */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Extra parameters of the authorization request (`prompt`, `acr_values`, `hd`, ...). */
  params: z.record(z.string(), z.string()).default({}),
})

export type ProviderConfig = z.output<typeof providerSchema>

export const authSchema = z.strictObject({
  /** The identity providers, by name (`[a-z0-9_-]`): any OpenID Connect issuer. */
  providers: z
    .record(z.string().regex(PROVIDER_NAME, 'a provider name is 1-32 characters of a-z, 0-9, _ and -, starting with a letter or digit'), providerSchema)
    .refine((p) => Object.keys(p).length > 0, 'name at least one provider'),
  sessions: z
    .strictObject({
      /**
       * Where sessions (and logins under way) live: `sqlite` (a file in `dataDir`, kept across restarts, shared by the
       * machine's workers), `redis` (the top-level `redis`, shared by every node), or `memory` (this process's, lost on
       * restart). Default: `redis` when `redis` is set, else `sqlite`.
       */
      store: z.enum(['sqlite', 'redis', 'memory']).optional(),
      /** A session unused this long ends. */
      idleTimeout: duration().default(30 * 60_000),
      /** A session ends this long after its login, however much it is used. */
      absoluteTimeout: duration().default(12 * 3_600_000),
      /** Tokens are refreshed this long before they expire (with a refresh token). */
      refreshBefore: duration().default(60_000),
      /** The session cookie's name; on HTTPS it gets the `__Host-` prefix (RFC 6265bis §4.1.3.2). */
      cookie: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a cookie name of letters, digits, _ and -').default('edgebox-session'),
      /** Sessions kept in memory in front of the store. */
      cacheSize: z.number().int().min(0).max(10_000_000).default(100_000),
    })
    .prefault({}),
  assertion: z
    .strictObject({
      /** The lifetime of the identity assertion (`Edgebox-Jwt-Assertion`) a proxied request carries. */
      lifetime: duration().default(60_000),
    })
    .prefault({}),
})

export type AuthConfig = z.output<typeof authSchema>

const METHOD = /^[A-Z]+$/

/** A path (and optionally methods) that passes without a login, as oauth2-proxy's `skip_auth_routes`. */
const skipSchema = z.strictObject({
  /** A path glob (`/health`, `/public/**`, `*.css`), matched against the request's decoded path. */
  path: z.string().min(1).superRefine((p, ctx) => {
    try {
      compileGlob(p)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `is not a path glob: ${(err as Error).message}` })
    }
  }),
  /** Only these methods (`GET`, `HEAD`); absent: any method. */
  methods: z.array(z.string().regex(METHOD, 'a method in capitals')).min(1).optional(),
})

const gateSchema = z.strictObject({
  /** The providers a user may sign in with here; absent: every configured one. More than one shows a chooser page. */
  providers: z.array(z.string().regex(PROVIDER_NAME)).min(1).optional(),
  /** Who may pass: `{ allow | deny: condition }`, first match wins; absent: anyone signed in. */
  rules: rulesSchema.default([]),
  /** Paths and methods that pass without a login. */
  skip: z.array(skipSchema).default([]),
  /** false: a signed-in user is known here (their identity goes to the handler and upstream), and anyone else passes anonymously (a realtime hub with public and members-only channels). */
  required: z.boolean().default(true),
  /** Accept `Authorization: Bearer` access tokens from the providers (JWTs checked with their keys, others introspected). */
  bearer: z.boolean().default(true),
  /** What a proxied request carries upstream. */
  upstream: z
    .strictObject({
      /** `Edgebox-Jwt-Assertion`: a JWT signed by Edgebox, checkable with `/_edgebox/auth/jwks.json`. */
      assertion: z.boolean().default(true),
      /** `X-Auth-Request-User`, `-Email`, `-Groups`. */
      headers: z.boolean().default(true),
      /** `X-Auth-Request-Access-Token`: the user's access token at the provider. */
      accessToken: z.boolean().default(false),
    })
    .prefault({}),
})

/** `auth` on a site or route: true (every provider, anyone signed in), false (none here), or the gate's options. */
export const gateOptionSchema = z.union([z.boolean(), gateSchema])

export type GateOption = z.output<typeof gateOptionSchema>
export type GateConfig = z.output<typeof gateSchema>

/** The gate a route gets from its own `auth`, else its site's; null: none. */
export function gateFor(route: GateOption | undefined, site: GateOption | undefined): GateConfig | null {
  const option = route ?? site
  if (option === undefined || option === false) return null
  return option === true ? gateSchema.parse({}) : option
}

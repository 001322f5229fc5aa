import { randomBytes } from 'node:crypto'
import { readdir, rm } from 'node:fs/promises'
import http from 'node:http'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Pool } from 'undici'
import { readSmall } from '../../core/body.ts'
import { requestHasBody, type Context, type Headers } from '../../core/context.ts'
import { ensurePrivateDir } from '../../core/data-dir.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import type { Clock } from '../../core/clock.ts'
import type { Logger } from '../../core/log.ts'
import type { Postgres } from '../../core/postgres.ts'
import type { Handler, ModuleDeps } from '../../core/types.ts'
import { openUserDirectory, type UserDirectory } from '../users.ts'
import { createInteractions } from './interactions.ts'
import { IdpKeys } from './keys.ts'
import { LoginLimiter } from './limits.ts'
import { messagePage } from './pages.ts'
import { backchannelAgent, buildProvider, unavailablePage, type OidcProvider, type ProviderDeps } from './provider.ts'
import { watchRemovals } from './removals.ts'
import type { IdpConfig } from './schema.ts'
import { SqliteIdpStore, StoreUnavailableError, type IdpStore } from './store.ts'
import { processAlive } from '../../core/process.ts'

/**
 * The built-in provider as a route's handler (docs/idp.md).
 *
 * oidc-provider is a Koa application: it writes to Node's
 * `ServerResponse` itself (setHeader, getHeader, statusMessage, the socket,
 * the `finish` event), which Edgebox's HTTP/2 response (`H2Res`,
 * src/server/h2-exchange.ts) does not have; and even over HTTP/1.1, writing
 * to the response behind Edgebox's back would skip its response filters,
 * byte counting and access log. So it runs on an internal HTTP/1.1 server
 * on a Unix socket in the data folder (0700: only this user reaches it),
 * and the handler forwards each request there (undici, one pool) and sends
 * the answer with `ctx.send`, over HTTP/1.1 and HTTP/2 alike. The internal
 * server takes only requests carrying a per-process secret, and trusts the
 * forwarding fields Edgebox sets (the issuer's scheme and host, the client
 * address as Edgebox resolved it): oidc-provider runs with `proxy = true`.
 */

/** The field that proves a request to the internal server comes from this process. */
const SECRET_HEADER = 'x-edgebox-idp-key'
/** The largest request body forwarded (token, introspection and sign-in forms are small). */
const MAX_BODY = 64 * 1024
/** Unix socket paths are at most 104-108 bytes, depending on the system. */
const MAX_SOCKET_PATH = 100
const SWEEP_EVERY_MS = 60 * 60_000
/** How long after a failed key rotation (the store out of reach) it is tried again. */
const KEYS_RETRY_MS = 30_000

/** Request fields never forwarded: the connection's own, and the forwarding fields only Edgebox sets. */
const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'host', 'content-length', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'http2-settings', SECRET_HEADER])
/** Response fields Edgebox sets itself. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date', 'trailer', 'upgrade'])

/** The provider's state: where sign-ins, codes and tokens are kept, its users, its keys. */
export interface IdpStores {
  readonly store: IdpStore
  readonly users: UserDirectory
  readonly keys: IdpKeys
  /** Where they are, for the log: the data folder's files, or the PostgreSQL. */
  readonly where: string
  /** Lets go of the store and the users (a shared PostgreSQL's pool stays: it is the process's). */
  close(): Promise<void>
}

/** What opening the provider's state needs. */
export interface IdpStoreOptions {
  readonly dataDir: string
  readonly clock: Clock
  readonly log: Logger
  /** The PostgreSQL the nodes share: the state is kept there instead of the data folder. */
  readonly postgres?: Postgres | undefined
  /** How long a key generation signs, and how long it is published after (keys.ts). */
  readonly rotation: number
  readonly retention: number
}

/**
 * Opens the provider's state: SQLite files and the key file in
 * `<dataDir>/auth/` (one node), or with `postgres` the tables every node
 * shares (pg-store.ts, pg-users.ts; loaded only then), where the first
 * node to start makes the keys and the others read them. What was opened
 * is closed again when a later part fails.
 */
export async function openIdpStores(o: IdpStoreOptions): Promise<IdpStores> {
  const keyOptions = { rotation: o.rotation, retention: o.retention, clock: o.clock, log: o.log }
  if (o.postgres) {
    const pg = o.postgres
    const { PgIdpStore, openPgKeyVault } = await import('./pg-store.ts')
    const store = await PgIdpStore.open(pg, o.clock)
    const users = await openUserDirectory({ dataDir: o.dataDir, postgres: pg })
    const keys = await IdpKeys.openIn(await openPgKeyVault(pg), keyOptions)
    return {
      store,
      users,
      keys,
      where: pg.target,
      async close() {
        await store.close()
        await users.close()
      },
    }
  }
  const users = await openUserDirectory({ dataDir: o.dataDir })
  let store: SqliteIdpStore | undefined
  try {
    store = await SqliteIdpStore.open(o.dataDir, o.clock)
    const keys = await IdpKeys.open(o.dataDir, keyOptions)
    const opened = store
    return {
      store,
      users,
      keys,
      where: path.dirname(store.file),
      async close() {
        await opened.close()
        await users.close()
      },
    }
  } catch (err) {
    await store?.close()
    await users.close()
    throw err
  }
}

/** What the provider of a route needs: its module's, and the PostgreSQL the nodes share when there is one. */
export type IdpDeps = ModuleDeps & { readonly postgres?: Postgres | undefined }

/** Starts the provider of one `idp` route and returns its handler. */
export async function createIdp(cfg: IdpConfig, deps: IdpDeps): Promise<Handler> {
  const issuer = new URL(cfg.issuer)
  const mountPath = issuer.pathname.replace(/\/+$/, '')
  const routePath = deps.prefix.replace(/\/+$/, '')
  if (routePath !== mountPath) throw new ConfigError([`${deps.configPath}.issuer: the issuer's path (${mountPath || '/'}) is the route's path, not ${deps.prefix}: the provider's endpoints are under the issuer`])
  const log = deps.log
  // a retired key stays published while anything it signed may still be shown: tokens, and ID tokens given back as id_token_hint during the session
  const retention = Math.max(cfg.tokenLifetimes.accessToken, cfg.tokenLifetimes.idToken, cfg.tokenLifetimes.refreshToken, cfg.sessionTtl)
  const stores = await openIdpStores({ dataDir: deps.dataDir, clock: deps.clock, log, postgres: deps.postgres, rotation: cfg.keyRotation, retention })
  const { store, users, keys } = stores
  const closeStores = () => stores.close()
  const name = cfg.name ?? issuer.hostname
  const origins = new Set(cfg.clients.flatMap((c) => [...c.redirectUris, ...c.postLogoutRedirectUris].map((u) => new URL(u).origin)))
  origins.delete(issuer.origin)
  const formAction = ["'self'", ...origins].join(' ')
  const base = `${mountPath}/interaction/`
  const backchannel = backchannelAgent()
  const providerDeps: ProviderDeps = { config: cfg, store, users, keys, log, name, formAction, interactionBase: base }

  let version = keys.version
  let provider: OidcProvider
  try {
    provider = buildProvider(providerDeps, backchannel)
    // oidc-provider checks a static client's metadata when it is first used: check them all now, so a bad one is a start error
    const problems: string[] = []
    for (const [i, c] of cfg.clients.entries()) {
      try {
        await provider.Client.find(c.clientId)
      } catch (err) {
        const e = err as { error_description?: string; message?: string }
        problems.push(`${deps.configPath}.clients[${i}]: ${e.error_description ?? e.message}`)
      }
    }
    if (problems.length) throw new ConfigError(problems)
  } catch (err) {
    await closeStores()
    await backchannel.close()
    throw err
  }
  let callback = provider.callback()

  /** When bringing the keys up to date last failed (the clock's ms), or null. */
  let keysFailedAt: number | null = null
  /**
   * The keys rotated or dropped: a provider with the new set (its state is
   * all in the store). A rotation that cannot be stored (the shared
   * PostgreSQL out of reach) leaves the keys as they are: they still sign
   * and verify, so discovery, the JWKS and what needs no store keep
   * answering; it is tried again after {@link KEYS_RETRY_MS}, not at every
   * request.
   */
  const current = async (): Promise<void> => {
    if (keysFailedAt === null || deps.clock.now() - keysFailedAt >= KEYS_RETRY_MS) {
      try {
        await keys.refresh()
        if (keysFailedAt !== null) log.info('identity provider: the keys are up to date again')
        keysFailedAt = null
      } catch (err) {
        if (keysFailedAt === null) log.warn({ description: (err as Error).message }, 'identity provider: the keys could not be brought up to date; the current ones are used meanwhile')
        keysFailedAt = deps.clock.now()
      }
    }
    if (keys.version !== version) {
      version = keys.version
      provider = buildProvider(providerDeps, backchannel)
      callback = provider.callback()
    }
  }

  const interactions = createInteractions({
    provider: () => provider,
    config: cfg,
    users,
    store,
    limiter: new LoginLimiter(cfg.loginLimits, deps.clock, deps.rateLimits),
    clock: deps.clock,
    log,
    base,
    name,
    formAction,
  })

  const secret = randomBytes(32).toString('base64url')
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const key = req.headers[SECRET_HEADER]
    if (typeof key !== 'string' || !safeEqual(key, secret)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('not from Edgebox\n')
      return
    }
    let url = req.url ?? '/'
    if (mountPath) {
      // as when mounted under a path: oidc-provider reads its mount path from originalUrl
      ;(req as http.IncomingMessage & { originalUrl?: string }).originalUrl = url
      url = url.slice(mountPath.length)
      if (!url.startsWith('/')) url = '/' + url
      req.url = url
    }
    const q = url.indexOf('?')
    interactions(req, res, q === -1 ? url : url.slice(0, q)).then(
      (handled) => {
        if (!handled) callback(req, res)
      },
      (err: unknown) => {
        log.error({ error: (err as Error).name, description: (err as Error).message }, 'identity provider: a sign-in step failed')
        if (res.headersSent) return void res.destroy()
        // the store out of reach: a 503 that says so (nothing was written halfway; the same sign-in goes on once it is back)
        const page =
          err instanceof StoreUnavailableError
            ? unavailablePage(formAction)
            : messagePage(500, 'Something went wrong', '<p>The sign-in could not go on because of an error on this server. Go back to the application and try again.</p>', formAction)
        res.writeHead(page.status, page.headers).end(page.body)
      },
    )
  })
  let socketPath: string
  let socketDir: string | null = null
  try {
    socketPath = await socketFor(deps.dataDir)
    if (socketPath.length > MAX_SOCKET_PATH) {
      // a deep data folder: a private folder of its own in the temporary folder (mkdtemp makes it 0700)
      socketDir = mkdtempSync(path.join(os.tmpdir(), 'edgebox-idp-'))
      socketPath = path.join(socketDir, 's.sock')
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(socketPath, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await closeStores()
    await backchannel.close()
    throw err
  }
  const pool = new Pool('http://idp.internal', { socketPath, connections: 32, keepAliveTimeout: 10_000, headersTimeout: 30_000, bodyTimeout: 30_000 })
  const sweepNow = () => store.sweep().catch((err: unknown) => log.warn({ description: (err as Error).message }, 'identity provider: expired state could not be swept'))
  const sweep = deps.clock.setInterval(() => void sweepNow(), SWEEP_EVERY_MS)
  sweep.unref()
  await sweepNow()
  // removed and disabled users lose their sessions here and at every client that registered a back-channel logout URI
  const removals = watchRemovals({
    store,
    users,
    provider: async () => {
      await current()
      return provider
    },
    clock: deps.clock,
    log,
  })
  log.info({ issuer: cfg.issuer, clients: cfg.clients.map((c) => c.clientId), secondFactor: cfg.secondFactor, kids: keys.generations[0]!.signing.map((k) => k.kid), storage: stores.where }, 'identity provider: ready')

  return {
    kind: 'idp',
    methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
    async handle(ctx: Context) {
      await current()
      const headers: Record<string, string | string[]> = {}
      for (const [k, v] of Object.entries(ctx.req.headers)) {
        if (v === undefined || k.charCodeAt(0) === 58 /* : pseudo-header */ || DROP_REQUEST.has(k)) continue
        headers[k] = v
      }
      // the issuer's scheme and host, whatever the client named: the provider's URLs and cookies are the issuer's
      headers.host = issuer.host
      headers['x-forwarded-host'] = issuer.host
      headers['x-forwarded-proto'] = issuer.protocol.slice(0, -1)
      headers['x-forwarded-for'] = ctx.clientAddress
      headers[SECRET_HEADER] = secret
      const body = requestHasBody(ctx.req) ? await readSmall(ctx, deps.limits, MAX_BODY) : undefined
      let answer
      try {
        answer = await pool.request({ method: (ctx.method === 'HEAD' ? 'GET' : ctx.method) as 'GET', path: ctx.encodedPath + ctx.query, headers, ...(body ? { body } : {}) })
      } catch (err) {
        throw httpError('EB_ERR_INTERNAL', `the identity provider did not answer: ${(err as Error).message}`)
      }
      const bytes = Buffer.from(await answer.body.arrayBuffer())
      const out: Headers = {}
      for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !DROP_RESPONSE.has(k)) out[k] = v
      const status = answer.statusCode
      ctx.send(status, out, status === 204 || status === 304 ? undefined : bytes)
    },
    async close() {
      deps.clock.clearInterval(sweep)
      await removals.close()
      await pool.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await backchannel.close()
      await rm(socketDir ?? socketPath, { recursive: true, force: true })
      await closeStores()
    },
  } satisfies Handler
}

/** A new socket path in `<dataDir>/auth/` (`idp-<pid>-<random>.sock`), after removing those of processes that are gone. */
async function socketFor(dataDir: string): Promise<string> {
  const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
  for (const f of await readdir(dir)) {
    const m = /^idp-(\d+)-[0-9a-f]+\.sock$/.exec(f)
    if (m && !processAlive(Number(m[1]))) await rm(path.join(dir, f), { force: true })
  }
  return path.join(dir, `idp-${process.pid}-${randomBytes(4).toString('hex')}.sock`)
}


import type { Context } from './context.ts'
import { httpError } from './errors.ts'

/**
 * Edgebox's own public endpoints: one namespace, `/_edgebox/`, matched after
 * the site and before the site's routes, on the sites where the feature is
 * on (docs/configuration.md, "Edgebox's own endpoints"). The namespace is
 * reserved: a route cannot claim it, and a path under it that names no
 * endpoint of the site is a 404. A module that needs an endpoint (the
 * single sign-on callback, the monitoring collector) adds it here, to the
 * table of the site it is on, instead of inventing a path. Admin endpoints
 * (metrics, the admin API, the dashboard) never come here: they live on the
 * admin listener only.
 */

export const EDGEBOX_PREFIX = '/_edgebox/'

export interface Endpoint {
  /** The full path, under /_edgebox/. */
  readonly path: string
  /** What turns it on, for the docs and errors: `health`, `sites[].auth`, ... */
  readonly feature: string
  readonly methods: readonly string[]
  handle(ctx: Context): void | Promise<void>
}

/** A site's endpoints by path. */
export type EndpointTable = ReadonlyMap<string, Endpoint>

export function endpointTable(endpoints: readonly Endpoint[]): EndpointTable {
  const table = new Map<string, Endpoint>()
  for (const e of endpoints) {
    if (!e.path.startsWith(EDGEBOX_PREFIX)) throw new Error(`${e.feature}: the endpoint ${e.path} is outside ${EDGEBOX_PREFIX}`)
    if (table.has(e.path)) throw new Error(`${e.feature}: the endpoint ${e.path} is taken by ${table.get(e.path)!.feature}`)
    table.set(e.path, e)
  }
  return table
}

/** Answers a request under /_edgebox/ from the site's table: the endpoint, 405 with Allow, or 404. */
export function serveEndpoint(ctx: Context, table: EndpointTable): void | Promise<void> {
  const endpoint = table.get(ctx.path)
  if (!endpoint) throw httpError('EB_ERR_NOT_FOUND', `no Edgebox endpoint ${ctx.path} on this site`)
  if (!endpoint.methods.includes(ctx.method)) throw httpError('EB_ERR_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed on ${ctx.path}`, { Allow: endpoint.methods.join(', ') })
  return endpoint.handle(ctx)
}

/** The health check: 200 with the uptime, never cached. */
export function healthEndpoint(path: string): Endpoint {
  // with workers (docs/scale.md), which one answered: a check that it is the node, not one worker, that is up
  const worker = process.env.EDGEBOX_WORKER === undefined ? '' : `,"worker":${Number(process.env.EDGEBOX_WORKER)}`
  return {
    path,
    feature: 'health',
    methods: ['GET', 'HEAD'],
    handle(ctx) {
      ctx.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, `{"status":"ok","uptime":${Math.round(process.uptime())}${worker}}\n`)
    },
  }
}

import type { EndpointTable } from './endpoints.ts'
import type { Handler, ResponseFilter, RouteStep, UpgradeCheck } from './types.ts'

/**
 * What a matched route gives the pipeline: its prefix, its handler, and its
 * filter modules' steps and response filters, in the pipeline's order
 * (assembled once at start by `routeChain` in pipeline.ts).
 */
export interface Route {
  readonly prefix: string
  readonly handler: Handler
  /** Phase 8, access control: rate limit, CORS, JSONP, CSRF (each where configured). */
  readonly access: readonly RouteStep[]
  /** Phase 10, once the method is allowed, just before the handler: 103 Early Hints. */
  readonly beforeHandler: readonly RouteStep[]
  /** Phase 11: what runs on every response head of this route. */
  readonly filters: readonly ResponseFilter[]
  /** Checks an Upgrade request passes before the handler takes its socket (the sign-on gate). */
  readonly upgradeChecks: readonly UpgradeCheck[]
  /** Index in the configuration, for logs: `sites[0].routes[2]`. */
  readonly id: string
}

export interface Site {
  readonly id: string
  readonly hosts: readonly string[]
  readonly routes: readonly Route[]
  /** The response filters of answers no route gave (a 404, an Edgebox endpoint): the site's security headers. */
  readonly filters: readonly ResponseFilter[]
  /** Edgebox's own endpoints on this site, under /_edgebox/ (core/endpoints.ts). */
  readonly endpoints: EndpointTable
}

import type { Route, Site } from './route.ts'

/**
 * Site and route matching, built once at start.
 * - Sites: exact host names first, then wildcards (`*.example.test` matches
 *   any name below example.test, longest suffix first), then the default site
 *   (the one marked `default`, or else the first).
 * - Routes: longest matching path prefix wins. A prefix ending in `/` matches
 *   any path that starts with it; a prefix without it matches itself and
 *   anything below it (`/api` matches `/api` and `/api/x`, not `/apix`).
 */
export interface SiteTable {
  readonly exact: ReadonlyMap<string, Site>
  readonly wildcards: ReadonlyArray<readonly [suffix: string, site: Site]>
  readonly fallback: Site | null
}

export function buildSiteTable(sites: readonly Site[], defaultIndex: number): SiteTable {
  const exact = new Map<string, Site>()
  const wildcards: Array<[string, Site]> = []
  for (const site of sites) {
    for (const host of site.hosts) {
      const h = host.toLowerCase()
      if (h.startsWith('*.')) wildcards.push([h.slice(1), site])
      else if (!exact.has(h)) exact.set(h, site)
    }
  }
  wildcards.sort((a, b) => b[0].length - a[0].length)
  return { exact, wildcards, fallback: sites[defaultIndex] ?? null }
}

export function matchSite(table: SiteTable, host: string): Site | null {
  return namedSite(table, host) ?? table.fallback
}

/** The site that names this host (exactly or by wildcard), without falling back to the default site. */
export function namedSite(table: SiteTable, host: string): Site | null {
  const site = table.exact.get(host)
  if (site) return site
  for (let i = 0; i < table.wildcards.length; i++) {
    const [suffix, s] = table.wildcards[i]!
    if (host.length > suffix.length && host.endsWith(suffix)) return s
  }
  return null
}

/** Sorts routes so the first match is the longest prefix. */
export function sortRoutes<R extends Route>(routes: readonly R[]): R[] {
  return [...routes].sort((a, b) => b.prefix.length - a.prefix.length)
}

export function matchRoute(site: Site, path: string): Route | null {
  const routes = site.routes
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!
    const p = r.prefix
    if (path.startsWith(p)) {
      if (p.charCodeAt(p.length - 1) === 47 || path.length === p.length || path.charCodeAt(p.length) === 47) return r
    }
  }
  return null
}

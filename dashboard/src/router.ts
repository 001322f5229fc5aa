import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'

/**
 * The dashboard's pages, one path each (history mode: real paths such as
 * /upstreams, which the admin listener answers with index.html through the
 * static handler's SPA fallback, so a reload or a shared link opens the
 * same page). Each page is its own chunk, loaded when first opened.
 */

export interface PageLink {
  readonly path: string
  readonly name: string
  readonly title: string
}

export const PAGES: readonly PageLink[] = [
  { path: '/', name: 'overview', title: 'Overview' },
  { path: '/traffic', name: 'traffic', title: 'Traffic' },
  { path: '/cache', name: 'cache', title: 'Cache' },
  { path: '/upstreams', name: 'upstreams', title: 'Upstreams' },
  { path: '/realtime', name: 'realtime', title: 'Realtime' },
  { path: '/security', name: 'security', title: 'Security' },
  { path: '/tls', name: 'tls', title: 'TLS' },
  { path: '/config', name: 'config', title: 'Configuration' },
  { path: '/dns', name: 'dns', title: 'DNS' },
  { path: '/rum', name: 'rum', title: 'RUM' },
]

const components: Record<string, RouteRecordRaw['component']> = {
  overview: () => import('./pages/OverviewPage.vue'),
  traffic: () => import('./pages/TrafficPage.vue'),
  cache: () => import('./pages/CachePage.vue'),
  upstreams: () => import('./pages/UpstreamsPage.vue'),
  realtime: () => import('./pages/RealtimePage.vue'),
  security: () => import('./pages/SecurityPage.vue'),
  tls: () => import('./pages/TlsPage.vue'),
  config: () => import('./pages/ConfigPage.vue'),
  dns: () => import('./pages/DnsPage.vue'),
  rum: () => import('./pages/RumPage.vue'),
}

const routes: RouteRecordRaw[] = [
  ...PAGES.map((p) => ({ path: p.path, name: p.name, component: components[p.name]!, meta: { title: p.title } })),
  { path: '/:rest(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue'), meta: { title: 'Not found' } },
]

export const router = createRouter({ history: createWebHistory('/'), routes })

router.afterEach((to) => {
  document.title = `${String(to.meta.title ?? 'Edgebox')} · Edgebox`
})

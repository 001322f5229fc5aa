import { DATA, ORIGIN, PORT, WWW } from './common.mts'

// The origin: the files every edge serves, through the parents
export default {
  listen: [{ host: ORIGIN, port: PORT }],
  dataDir: `${DATA}/origin`,
  // pages may be kept a minute by the caches in front (the default for HTML is to revalidate each time)
  sites: [{ routes: [{ path: '/', static: { root: WWW, cacheControl: { html: 'public, max-age=60' } } }] }],
}

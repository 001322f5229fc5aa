import { DATA, ORIGIN, PARENTS, PORT, nth } from './common.mts'

// A parent cache: each object is stored on one parent (the edges pick it by consistent hashing), in front of the origin
const n = nth('PARENT', PARENTS.length)
export default {
  listen: [{ host: PARENTS[n - 1], port: PORT }],
  dataDir: `${DATA}/parent-${n}`,
  sites: [{ routes: [{ path: '/', proxy: { upstreams: [`http://${ORIGIN}:${PORT}`], cache: { name: `parent-${n}` } } }] }],
}

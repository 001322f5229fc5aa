import { DATA, EDGES, PARENTS, PORT, REDIS_URL, nth } from './common.mts'

// An edge: what clients reach (the GSLB names the healthy ones). Its cache asks the parent that owns each URL;
// realtime channels, purges and rate limits are shared with the other edges through Redis.
const n = nth('EDGE', EDGES.length)
export default {
  listen: [{ host: EDGES[n - 1], port: PORT }],
  dataDir: `${DATA}/edge-${n}`,
  redis: REDIS_URL,
  sites: [
    {
      routes: [
        {
          path: '/live/',
          realtime: { channels: { 'room:*': { history: { size: 100 } } }, publishKey: process.env.PUBLISH_KEY ?? 'cluster-demo-publish-key' },
        },
        {
          path: '/',
          rateLimit: { requests: 600, per: '1m' },
          proxy: {
            upstreams: PARENTS.map((p) => `http://${p}:${PORT}`),
            // consistent hashing by URL (nginx's hash ... consistent): one parent per object
            balance: 'hash',
            hashKey: 'url',
            cache: { name: `edge-${n}`, purge: { token: process.env.PURGE_TOKEN ?? 'cluster-demo-purge-token' } },
          },
        },
      ],
    },
  ],
}

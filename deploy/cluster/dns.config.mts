import { DATA, DNS, DNS_PORT, EDGES, PORT } from './common.mts'

// The global load balancer: www.cluster.test answers with the edges whose health check passes
export default {
  listen: [{ host: DNS, port: PORT }],
  dataDir: `${DATA}/dns`,
  dns: {
    listen: { host: DNS, port: DNS_PORT },
    zones: [
      {
        origin: 'cluster.test',
        records: [
          { name: '@', type: 'NS', data: 'ns1' },
          { name: 'ns1', type: 'A', data: DNS },
        ],
      },
    ],
    balance: [
      {
        name: 'www.cluster.test',
        ttl: 5,
        answers: 3,
        edges: EDGES.map((address, i) => ({ name: `edge-${i + 1}`, addresses: [address] })),
        check: { kind: 'http', port: PORT, path: '/_edgebox/health', interval: '1s', timeout: '500ms', rise: 1, fall: 2 },
      },
    ],
  },
  sites: [{ routes: [{ path: '/', redirect: { to: 'http://www.cluster.test/' } }] }],
}

// The DNS benchmark's "edges": a TCP port open on 127.0.0.1 and 127.0.0.2, for the health checks of Edgebox's load
// balancer and PowerDNS's ifportup() to find up. Accepts and closes.   node tcp-edges.mjs PORT
import net from 'node:net'
const port = Number(process.argv[2])
for (const host of ['127.0.0.1', '127.0.0.2']) net.createServer((s) => s.destroy()).listen(port, host)
process.on('SIGTERM', () => process.exit(0))

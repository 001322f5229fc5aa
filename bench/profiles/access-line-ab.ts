// ns per access-log line of several Edgebox trees, in one process: each tree's createAccessLog writing to a file,
// alternating rounds of 30,000 lines (the event loop turns every 100 lines, as between requests), the lowest round of
// each after two. usage: node_modules/.bin/node bench/profiles/access-line-ab.ts TREE...
const trees = process.argv.slice(2)
const logs = await Promise.all(trees.map(async (t, k) => (await import(t + '/src/core/log.ts')).createAccessLog({ level: 'info', format: 'json', file: `/tmp/access-line-ab-${k}-${process.pid}.log`, enabled: true })))
const mk = () => ({ method: 'GET', host: '127.0.0.1', rawPath: '/index.html', status: 200, bytes: 1024, cache: 'HIT', protocol: 'h2', clientAddress: '127.0.0.1', upstream: '', corsRefused: '', rateLimited: false, csrfRefused: '', error: undefined, req: {} })
const ctxs = Array.from({ length: 100 }, mk)
const best = trees.map(() => Infinity)
for (let r = 0; r < 16; r++) {
  for (let k = 0; k < logs.length; k++) {
    let busy = 0n
    for (let j = 0; j < 300; j++) {
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < 100; i++) logs[k].write(ctxs[i], 0.123456 + ((j * 100 + i) % 1000) * 1e-4)
      busy += process.hrtime.bigint() - t0
      await new Promise((res) => setImmediate(res))
    }
    const ns = Number(busy) / 30000
    if (r >= 2) best[k] = Math.min(best[k], ns)
  }
}
console.log(trees.map((t, k) => `${t}: ${best[k].toFixed(0)} ns/line`).join('  '))

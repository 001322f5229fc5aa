// ns per access-log line (src/core/log.ts writeJson) of an Edgebox tree, in-process, 7 rounds of 1e6 lines (take the lowest).
// usage: node_modules/.bin/node bench/profiles/h1-access-line-bench.ts TREE   (TREE: this checkout, or a git worktree of the commit before)
const mod = await import(process.argv[2] + '/src/core/log.ts')
const ctx: any = { method: 'GET', host: '127.0.0.1', rawPath: '/index.html', status: 200, bytes: 1024, cache: 'HIT', protocol: 'http/1.1', clientAddress: '127.0.0.1', upstream: '', corsRefused: '', rateLimited: false, csrfRefused: '', error: undefined, req: {} }
let n = 0
for (let r = 0; r < 7; r++) {
  const t = process.hrtime.bigint()
  for (let i = 0; i < 1e6; i++) n += mod.writeJson(ctx, 0.123456 + i * 1e-7).length
  const dt = Number(process.hrtime.bigint() - t) / 1e6
  console.log(`${(dt).toFixed(0)} ns/line`)
}

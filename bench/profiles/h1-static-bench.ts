// ns per static GET (200) and 304 of a 1 KiB file kept in memory, inside the static handler, the response write left out (ctx.send and ctx.sendPrepared are no-ops).
// usage: node_modules/.bin/node bench/profiles/h1-static-bench.ts /abs/path/to/TREE WWWDIR
const [tree, www] = process.argv.slice(2)
const { staticModule } = await import(tree + '/src/modules/static/index.ts')
const cfg = staticModule.schema.parse({ root: www, memoryCache: { revalidate: '1h' } })
const h = staticModule.create(cfg, { baseDir: '/', configPath: 'bench', limits: {} } as any)
let sent = 0, last = 0
const mk = (headers: Record<string, string>): any => ({ method: 'GET', isHead: false, routePath: '/index.html', path: '/index.html', query: '', cache: '', req: { headers },
  header(n: string) { return this.req.headers[n] }, send(status: number, hd: Record<string, unknown>) { last = status; sent += Object.keys(hd).length },
  sendPrepared(p: { status: number; headers: Record<string, unknown> }) { last = p.status; sent += Object.keys(p.headers).length } })
await h.handle(mk({}))
const etag = (() => { let e = ''; const c = mk({}); c.send = (_s: number, hd: any) => { e = hd.ETag }; c.sendPrepared = (p: any) => { e = p.headers.ETag }; h.handle(c); return e })()
for (const [name, ctx, want] of [['GET', mk({ host: 'x' }), 200], ['304', mk({ host: 'x', 'if-none-match': etag }), 304]] as const) {
  const times: number[] = []
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < 1e6; i++) h.handle(ctx)
    times.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  if (last !== want) throw new Error(`${name}: status ${last}`)
  console.log(`${name} ${Math.min(...times).toFixed(0)} ns/request`)
}

// ns per fresh cache hit as the proxy and the pipeline call it: HttpCache.handle behind an async function, with a .catch on
// what it returns, microtasks run every 1024 hits (h1-cache-hit-bench.ts calls handle bare). 7 x 1e6 hits, take the lowest.
// usage: node_modules/.bin/node bench/profiles/h1-cache-hit-async-bench.ts /abs/path/to/TREE
const tree = process.argv[2]
const { HttpCache, cacheOptions } = await import(tree + '/src/modules/cache/cache.ts')
const { MemoryStore } = await import(tree + '/src/modules/cache/store.ts')
const store = new MemoryStore(1 << 26)
const cache = new HttpCache(cacheOptions.parse({}), store)
const now = Date.now()
const body = Buffer.alloc(1024, 97)
store.put({ key: 'http://127.0.0.1/obj', variant: '', vary: undefined, status: 200, body, requestTime: now, responseTime: now, tags: [],
  headers: { 'content-type': 'text/html; charset=utf-8', 'content-length': '1024', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'cache-control': 'public, max-age=3600', date: new Date(now).toUTCString(), via: '1.1 edgebox' } })
let sent = 0
const ctx: any = { method: 'GET', host: '127.0.0.1', encodedPath: '/obj', query: '', cache: '', req: { headers: { host: '127.0.0.1:8080', 'user-agent': 'wrk' } },
  header(n: string) { return this.req.headers[n] }, send(status: number, headers: Record<string, unknown>) { sent += status + Object.keys(headers).length },
  sendPrepared(p: { status: number; headers: Record<string, unknown> }, values: readonly string[]) { sent += p.status + Object.keys(p.headers).length + values.length } }
const origin = async () => { throw new Error('no origin in this benchmark') }
async function handle(c: any): Promise<void> { return cache.handle(c, (extra: any, background: any) => origin()) }
for (let r = 0; r < 7; r++) {
  const t = process.hrtime.bigint()
  for (let i = 0; i < 1e6; i++) { const done = handle(ctx); if (done) done.catch((err: unknown) => { throw err }); if ((i & 1023) === 0) await null }
  console.log(`${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ns/hit`)
}
if (ctx.cache !== 'HIT' || sent === 0) throw new Error('not a hit: ' + ctx.cache)

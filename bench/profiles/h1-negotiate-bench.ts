// ns per chooseEncoding call (src/http/negotiate.ts) for the static handler's frozen ['br', 'gzip'], two Accept-Encoding values, 5 x 1e6 calls, lowest.
// usage: node_modules/.bin/node bench/profiles/h1-negotiate-bench.ts /abs/path/to/TREE
const { chooseEncoding } = await import(process.argv[2] + '/src/http/negotiate.ts')
const both = Object.freeze(['br', 'gzip'])
for (const v of ['identity', 'gzip, deflate, br, zstd']) {
  let n = 0; const ts: number[] = []
  for (let r = 0; r < 5; r++) { const t = process.hrtime.bigint(); for (let i = 0; i < 1e6; i++) n += chooseEncoding(v, both).length; ts.push(Number(process.hrtime.bigint() - t) / 1e6) }
  console.log(v, Math.min(...ts).toFixed(0), 'ns')
}

// Server-Timing's duration as text, two ways, same characters: 'edge;dur=' + Math.round(x * 100) / 100 (V8's shortest-decimal
// path for a fraction) against the same text from two small integers (V8's number-string cache). ns per call, 3 x 1024 x 3000.
// usage: node_modules/.bin/node bench/profiles/h1-number-format-bench.mjs
const xs = Array.from({length: 1024}, (_, i) => 0.05 + (i % 97) * 0.0137 + (i % 7) * 0.9)
function a(x) { return 'edge;dur=' + Math.round(x * 100) / 100 }
function b(x) {
  const c = Math.round(x * 100)
  const i = Math.floor(c / 100), f = c - i * 100
  return f === 0 ? 'edge;dur=' + i : f % 10 === 0 ? 'edge;dur=' + i + '.' + f / 10 : 'edge;dur=' + i + (f < 10 ? '.0' : '.') + f
}
for (let i = 0; i < 1024; i++) if (a(xs[i]) !== b(xs[i])) throw new Error(xs[i] + ' ' + a(xs[i]) + ' ' + b(xs[i]))
let s = 0
for (const f of [a, b, a, b]) {
  const t = process.hrtime.bigint()
  for (let r = 0; r < 3000; r++) for (let i = 0; i < 1024; i++) s += f(xs[i]).length
  console.log(f.name, Number(process.hrtime.bigint() - t) / 3072000, 'ns')
}

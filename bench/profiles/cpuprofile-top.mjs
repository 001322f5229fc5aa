// Summarises a V8 .cpuprofile (node --cpu-prof): the self-time shares of the top frames, and the inclusive shares of
// the frames under src/ and bench/, as Markdown tables. Only the samples from the first one whose stack holds the
// function FROM (e.g. publishNow: the first broadcast) are counted, so start-up and connecting are left out.
// With REQUESTS (the fixed count the load sent), each row also gives microseconds per request.
// FROM for the paths profiled here: publishNow (realtime fan-out), parserOnIncoming (HTTP/1.1), onSessionHeaders (HTTP/2).
// usage: node bench/profiles/cpuprofile-top.mjs FILE.cpuprofile|DIR [N (25)] [FROM] [REQUESTS]
import fs from 'node:fs'

const arg = process.argv[2]
const file = fs.statSync(arg).isDirectory() ? `${arg}/${fs.readdirSync(arg).find((f) => f.endsWith('.cpuprofile'))}` : arg
const p = JSON.parse(fs.readFileSync(file, 'utf8'))
const n = Number(process.argv[3] ?? 25)
const from = process.argv[4] || undefined
const requests = Number(process.argv[5] ?? 0)
const byId = new Map(p.nodes.map((x) => [x.id, x]))
const parent = new Map()
for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id)
const name = (cf) =>
  `${cf.functionName || '(anonymous)'} ${cf.url ? cf.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/').replace('file://', '') + ':' + (cf.lineNumber + 1) : ''}`.trim()
const stack = (id) => {
  const s = []
  for (let x = id; x !== undefined; x = parent.get(x)) s.push(byId.get(x))
  return s
}
const self = new Map(), incl = new Map()
let total = 0, idle = 0, started = !from
for (let i = 0; i < p.samples.length; i++) {
  const st = stack(p.samples[i])
  if (!started) {
    if (st.some((x) => x.callFrame.functionName === from)) started = true
    else continue
  }
  const d = p.timeDeltas[i + 1] ?? 0
  const k = name(st[0].callFrame)
  if (k === '(idle)') idle += d
  self.set(k, (self.get(k) ?? 0) + d)
  const seen = new Set()
  for (const x of st) {
    if (!/\/(src|bench)\//.test(x.callFrame.url)) continue
    const kk = name(x.callFrame)
    if (seen.has(kk)) continue
    seen.add(kk)
    incl.set(kk, (incl.get(kk) ?? 0) + d)
  }
  total += d
}
const busy = total - idle
const rows = (m, k) =>
  [...m]
    .filter(([key]) => key !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([key, v]) => `| ${((100 * v) / busy).toFixed(1)}% | ${(v / 1e3).toFixed(0)} |${requests ? ` ${(v / requests).toFixed(2)} |` : ''} \`${key}\` |`)
    .join('\n')
const head = requests ? '| share | ms | us/request | frame |\n|---|---|---|---|' : '| share | ms | frame |\n|---|---|---|'
console.log(`samples from ${from ?? 'the start'}: ${(total / 1e6).toFixed(2)} s, of which not idle ${(busy / 1e6).toFixed(2)} s (shares below are of that)${requests ? `; ${(busy / requests).toFixed(1)} us busy per request` : ''}

self time:

${head}
${rows(self, n)}

inclusive (frames under src/ and bench/):

${head}
${rows(incl, 12)}`)

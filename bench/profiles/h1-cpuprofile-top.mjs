// Top self-time frames of a --cpu-prof profile, counted from the first request (parserOnIncoming) on, so startup is left out.
// usage: node h1-cpuprofile-top.mjs PROFILE_DIR [N]
import fs from 'node:fs'
const dir = process.argv[2]; const n = Number(process.argv[3] ?? 25)
const f = fs.readdirSync(dir).filter(x => x.endsWith('.cpuprofile')).map(x => dir + '/' + x)[0]
const p = JSON.parse(fs.readFileSync(f))
const self = new Map(); const byId = new Map(p.nodes.map(x => [x.id, x]))
const parent = new Map(); for (const nd of p.nodes) for (const c of nd.children ?? []) parent.set(c, nd.id)
const under = (id) => { for (let x = id; x !== undefined; x = parent.get(x)) if (byId.get(x).callFrame.functionName === 'parserOnIncoming') return true; return false }
let first = p.samples.findIndex(under)
const dt = new Map(); for (let i = first; i < p.samples.length; i++) dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0))
let total = 0, idle = 0
for (const [id, t] of dt) { const nd = byId.get(id); const cf = nd.callFrame
  const key = `${cf.functionName || '(anon)'} ${cf.url.replace(/.*\/(node_modules\/|src\/|lib\/|bench\/)/, '$1')}:${cf.lineNumber + 1}`
  if (cf.functionName === '(idle)' || cf.functionName === '(program)') { idle += t; if (cf.functionName === '(idle)') continue }
  total += t; self.set(key, (self.get(key) ?? 0) + t) }
let srcT = 0, mine = 0; const MINE = /src\/(modules\/cache|modules\/static|core\/log|http\/freshness|http\/cache-key)/
for (const [k, t] of self) { if (/ src\//.test(k)) srcT += t; if (MINE.test(k)) mine += t }
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, n)
console.log(`busy ${(total/1000).toFixed(0)} ms; self time in src/: ${(100*srcT/total).toFixed(1)}%, in the files changed here (cache, static, log, freshness, cache-key): ${(100*mine/total).toFixed(1)}%`)
for (const [k, t] of rows) console.log(`${(100 * t / total).toFixed(1).padStart(5)}%  ${k}`)

// The top self-time frames of a --cpu-prof profile, per request of a fixed-count load (bench/profiles/h2-static.sh).
// The window is from the first to the last sample under a socket read or the tick queue (start-up is left out);
// (idle) is not counted. Sampled wall time: on a loaded machine compare shares, not microseconds.
// usage: node h2-cpuprofile.mjs PROFILE REQUESTS [TOP]
import fs from 'node:fs'
const [file, nArg, topArg] = process.argv.slice(2)
const p = JSON.parse(fs.readFileSync(file, 'utf8'))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const inWindowMarker = (id) => { for (let x = id; x !== undefined; x = parent.get(x)) { const f = byId.get(x).callFrame.functionName; if (f === 'onStreamRead' || f === 'onSessionHeaders' || f === 'processTicksAndRejections') return true } return false }
let t = p.startTime; const times = []
for (let i = 0; i < p.samples.length; i++) { t += p.timeDeltas[i]; times.push(t) }
let first = -1, last = -1
for (let i = 0; i < p.samples.length; i++) if (inWindowMarker(p.samples[i])) { if (first < 0) first = i; last = i }
const self = new Map(); let busy = 0, idle = 0
for (let i = first + 1; i <= last + 1 && i < p.samples.length; i++) {
  const dt = times[i] - times[i - 1]
  const n = byId.get(p.samples[i]); const cf = n.callFrame
  if (cf.functionName === '(idle)') { idle += dt; continue }
  busy += dt
  const key = `${cf.functionName || '(anon)'} ${cf.url.replace(/^.*\/work\/main\//, '').replace('file://', '')}:${cf.lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + dt)
}
const N = Number(nArg)
console.log(`window ${((times[last] - times[first]) / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms, busy per request ${(busy / N).toFixed(1)} us`)
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 30))
for (const [k, v] of rows) console.log(`${(100 * v / busy).toFixed(1).padStart(5)}%  ${(v / N).toFixed(2).padStart(6)} us/req  ${k}`)

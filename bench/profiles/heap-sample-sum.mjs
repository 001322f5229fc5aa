// Bytes allocated per request from a heap-sample.mjs profile: usage: node heap-sample-sum.mjs FILE REQUESTS
// prints the total, the top functions by their own allocations, and by the nearest frame in Edgebox's src/.
import fs from 'node:fs'
const [file, n] = [process.argv[2], Number(process.argv[3])]
const profile = JSON.parse(fs.readFileSync(file, 'utf8'))
const self = new Map(), nearest = new Map()
let total = 0
const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v)
const walk = (node, stack) => {
  const f = node.callFrame
  const name = `${f.functionName || '(anonymous)'} ${f.url.replace(/.*\/(src|lib|internal)\//, '$1/')}:${f.lineNumber + 1}`
  const frames = [...stack, name]
  if (node.selfSize) {
    total += node.selfSize
    add(self, name, node.selfSize)
    add(nearest, frames.findLast((x) => / src\//.test(x)) ?? '(no src/ frame: Node itself)', node.selfSize)
  }
  for (const c of node.children) walk(c, frames)
}
walk(profile.head, [])
const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).forEach(([name, v]) => console.log(String(Math.round(v / n)).padStart(7), name))
console.log(`total ${Math.round(total / n)} bytes per request`)
console.log('-- own allocations'); top(self, 25)
console.log('-- by the nearest src/ frame'); top(nearest, 15)

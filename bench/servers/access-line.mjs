// Edgebox's JSON access-log line for the bench's bare servers (raw-node --log, h1-same-head --log, h2-node.mjs
// --work): the fields and order of writeJson in src/core/log.ts (strings escaped only when needed), batched as
// Edgebox's createAccessLog batches (one write per ~32 KiB and at least once a second, flushed on SIGTERM) through the
// same destination, pino.destination (sonic-boom, async).
// accessLog(dest) -> { line(method, host, path, status, bytes, start, cache, proto, client), flush() }
//   dest: 1 for stdout (as Edgebox writes its access log), or a file name; start: performance.now() at the request
//   hostOf(h): the host of a Host / :authority value without its port, as Edgebox logs it
import pino from 'pino'

const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/
const jsonString = (s) => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`)

export const hostOf = (h) => {
  if (!h) return ''
  if (h[0] === '[') return h.slice(0, h.indexOf(']') + 1)
  const i = h.indexOf(':')
  return i < 0 ? h : h.slice(0, i)
}

export function accessLog(dest) {
  const out = pino.destination({ dest, sync: false, mkdir: true })
  const batchChars = 32 * 1024
  let batch = ''
  const flushBatch = () => {
    if (batch === '') return
    out.write(batch)
    batch = ''
  }
  setInterval(flushBatch, 1000).unref()
  return {
    line(method, host, path, status, bytes, start, cache, proto, client) {
      const ms = performance.now() - start
      batch += `{"time":${Date.now()},"msg":"request","method":${jsonString(method)},"host":${jsonString(host)},"path":${jsonString(path)},"status":${status},"bytes":${bytes},"ms":${Math.round(ms * 1000) / 1000},"cache":"${cache}","proto":"${proto}","client":"${client ?? ''}"}\n`
      if (batch.length >= batchChars) flushBatch()
    },
    flush() {
      flushBatch()
      try { out.flushSync() } catch { /* nothing buffered */ }
    },
  }
}

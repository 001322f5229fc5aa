import type { Percentiles, Report } from './inspect.ts'
import type { Timings } from './probe.ts'
import { explainDns } from './dns.ts'

/**
 * The report in a terminal (docs/inspect.md): the timing waterfall of each
 * request as bars, then each subject in plain words. `--json` prints the
 * Report object itself instead.
 */

const WIDTH = 40
const PHASES: Array<[keyof Timings, string]> = [
  ['dns', 'DNS lookup'],
  ['tcp', 'TCP connect'],
  ['tls', 'TLS handshake'],
  ['send', 'request sent'],
  ['ttfb', 'waiting (TTFB)'],
  ['transfer', 'content transfer'],
]

export function waterfall(t: Timings): string[] {
  const total = Math.max(t.total, 0.001)
  let offset = 0
  const lines: string[] = []
  for (const [key, label] of PHASES) {
    const ms = t[key]
    if (ms === undefined) continue
    const start = Math.round((offset / total) * WIDTH)
    const len = Math.max(1, Math.round((ms / total) * WIDTH))
    lines.push(`  ${label.padEnd(17)} ${' '.repeat(Math.min(start, WIDTH))}${'█'.repeat(Math.min(len, WIDTH - Math.min(start, WIDTH - 1)))}${' '.repeat(Math.max(0, WIDTH - start - len))} ${ms.toFixed(1).padStart(7)} ms`)
    offset += ms
  }
  lines.push(`  ${'total'.padEnd(17)} ${' '.repeat(WIDTH)} ${t.total.toFixed(1).padStart(7)} ms`)
  return lines
}

const MARK = { ok: '✓', missing: '✗', weak: '!', info: '·' } as const

export function renderText(r: Report): string {
  const out: string[] = []
  const section = (title: string) => out.push('', title)
  for (const [i, hop] of r.hops.entries()) {
    const e = hop.exchange
    out.push(`${i === 0 ? '' : '\n'}${e.method} ${hop.url}`)
    out.push(`  ${e.httpVersion} ${hop.status}${hop.location ? ` -> ${hop.location}` : ''}   ${hop.connection.family} ${hop.connection.address}${hop.connection.addresses.length > 1 ? ` (of ${hop.connection.addresses.join(', ')})` : ''}`)
    out.push(...waterfall(e.timings))
    for (const i of e.informational) {
      const link = i.headers.link
      out.push(`  ${i.status}${i.status === 103 ? ' Early Hints' : ''} before the response${link ? `: ${([] as string[]).concat(link).join(', ')} (the browser starts these while the server works)` : ''}`)
    }
    if (hop.tls) {
      const t = hop.tls
      out.push(`  TLS: ${t.version}, ${t.cipher}, ALPN ${t.alpn || 'none'}, ${t.resumed ? 'resumed session (no full handshake)' : 'full handshake'}${t.servername ? `, SNI ${t.servername}` : ', no SNI (IP address)'}`)
      for (const [j, c] of t.chain.entries()) {
        out.push(`  ${j === 0 ? 'certificate' : '  issued by'}: ${c.subject}${c.selfSigned ? ' (self-signed)' : ''}`)
        if (j === 0) out.push(`    for ${c.names.join(', ') || '(no names)'}; ${t.nameMatches ? 'matches the host' : 'DOES NOT match the host'}; valid until ${c.validTo.slice(0, 10)} (${c.daysLeft} days)`)
      }
      if (t.verifiedBy) out.push(`  trusted: verified by ${t.verifiedBy}`)
      if (!t.authorized) out.push(`  ! not trusted: ${t.authorizationError}${t.chain[0]?.selfSigned ? ' (self-signed)' : ''}; shown because of --insecure`)
    }
  }
  if (r.warnings.length) {
    section('Warnings')
    for (const w of r.warnings) out.push(`  ! ${w}`)
  }
  if (r.dnsServer) {
    section('DNS (asked directly)')
    for (const a of r.dnsServer) for (const l of explainDns(a)) out.push(`  ${l}`)
  }
  section('HTTP')
  for (const l of r.http.lines) out.push(`  ${l}`)
  if (r.reuse) out.push(`  ${r.reuse.line}`)
  section('Caches on the way')
  for (const l of r.caches.lines) out.push(`  ${l}`)
  section('Caching')
  for (const l of r.caching.lines) out.push(`  ${l}`)
  if (r.caching.revalidation) out.push(`  ${r.caching.revalidation.works ? '✓' : '✗'} ${r.caching.revalidation.line}`)
  section('Ranges (resumable downloads)')
  for (const l of r.ranges.lines) out.push(`  ${l}`)
  if (!r.ranges.lines.length) out.push('  not checked (the response is not a 200 to a GET)')
  section('Compression')
  for (const l of r.compression.lines) out.push(`  ${l}`)
  if (r.cors) {
    section(`CORS for a page on ${r.cors.origin}`)
    out.push(`  ${r.cors.plan.preflight ? 'The browser sends a preflight first' : 'No preflight: a simple request'}${r.cors.plan.why.length ? ` (${r.cors.plan.why.join('; ')})` : ''}.`)
    if (r.cors.preflight) for (const l of r.cors.preflight.verdict.reasons) out.push(`  preflight ${r.cors.preflight.status}: ${l}`)
    if (r.cors.response) for (const l of r.cors.response.reasons) out.push(`  response: ${l}`)
    out.push(`  ${r.cors.allowed ? '✓ the browser would let the page read the answer' : '✗ the browser would block it'}`)
  }
  section('Security headers')
  for (const f of r.security) out.push(`  ${MARK[f.status]} ${f.check}: ${f.explain}`)
  if (r.repeat) {
    section(`Latency over ${r.repeat.reused.n} requests`)
    const p = (x: Percentiles) => `p50 ${x.p50.toFixed(1)} ms, p90 ${x.p90.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms`
    out.push(`  same connection: ${p(r.repeat.reused)}`)
    out.push(`  new connections: ${p(r.repeat.fresh)}`)
    out.push(`  ${r.repeat.line}`)
  }
  return out.join('\n') + '\n'
}

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { parseServer } from '../inspect/dns.ts'
import { inspect, type InspectOptions } from '../inspect/inspect.ts'
import { pemCertificates, ProbeError, type Authority } from '../inspect/probe.ts'
import { defaultDataDir } from '../core/data-dir.ts'
import { renderText } from '../inspect/report.ts'
import { TCHAR } from '../http/token.ts'

const HELP = `edgebox inspect: what happens when you open a URL, measured and explained

Usage:
  edgebox inspect URL [options]

Options:
      --json              the report as JSON
      --no-follow         do not follow redirects
  -X, --method M          request method (default GET)
  -H, --header 'N: v'     a request header (repeatable)
      --origin ORIGIN     check CORS as a page on ORIGIN would (with --cors-method, --cors-header, --credentials)
      --cors-method M     the method the page's script uses (default GET)
      --cors-header 'N: v'  a header the page's script sends (repeatable)
      --credentials       the script sends cookies (credentials: 'include')
      --repeat N          N requests over one connection and N over new ones: latency percentiles
  -k, --insecure          go on when the certificate is not trusted or not for this host (flagged in the report)
      --ca FILE           also trust the authorities in this PEM file (repeatable); Edgebox's local authority is trusted when present
      --dns-server ADDR   ask this DNS server directly first (answers, TTLs, flags; a failure there fails the dns phase)
      --doh URL           ask over DNS over HTTPS first (RFC 8484), as a browser with secure DNS does (the same report)
      --http1.1           offer only HTTP/1.1 (ALPN)
      --http2             offer only HTTP/2 (ALPN); on http://, HTTP/2 with prior knowledge (h2c)
  -4, -6                  connect over IPv4 / IPv6 only
      --timeout SECONDS   per phase (default 10)
  -h, --help              this help

Exit status: 0 when the report was made, 1 when a phase failed (the message names it), 2 for bad usage.
`

export interface CommandOutput {
  stdout: (s: string) => void
  stderr: (s: string) => void
}

const processOutput: CommandOutput = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
}

const FIELD_LINE = new RegExp(`^(${TCHAR}+):\\s*(.*)$`)

function headerMap(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const h of list ?? []) {
    const m = FIELD_LINE.exec(h)
    if (!m) throw new Error(`${flag} ${JSON.stringify(h)}: write it as 'Name: value'`)
    out[m[1]!.toLowerCase()] = m[2]!
  }
  return out
}

/** An authority named by its file and subject; throws a usage message when the file has no certificate. */
function authorityFile(file: string, label: (subject: string) => string): Authority {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const certs = pemCertificates(pem)
  if (!certs.length) throw new Error('no PEM certificate in it')
  return { label: label(certs.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')), pem }
}

/**
 * Edgebox's local authority (docs/tls.md, `edgebox cert`), trusted when
 * present: a local Edgebox's certificates then verify as they do for a
 * browser that trusts it. One that cannot be read is left out.
 */
function localAuthority(env: NodeJS.ProcessEnv): Authority | null {
  const file = path.join(defaultDataDir(env), 'ca', 'ca.crt')
  try {
    return authorityFile(file, (subject) => `Edgebox's local authority ${file} (${subject})`)
  } catch {
    return null
  }
}

/** `edgebox inspect`; returns the exit code. `env` says where Edgebox's local authority is (EDGEBOX_HOME). */
export async function inspectCommand(argv: string[], out: CommandOutput = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        'no-follow': { type: 'boolean' },
        method: { type: 'string', short: 'X' },
        header: { type: 'string', short: 'H', multiple: true },
        origin: { type: 'string' },
        'cors-method': { type: 'string' },
        'cors-header': { type: 'string', multiple: true },
        credentials: { type: 'boolean' },
        repeat: { type: 'string' },
        insecure: { type: 'boolean', short: 'k' },
        ca: { type: 'string', multiple: true },
        'dns-server': { type: 'string' },
        doh: { type: 'string' },
        'http1.1': { type: 'boolean' },
        http2: { type: 'boolean' },
        '4': { type: 'boolean', short: '4' },
        '6': { type: 'boolean', short: '6' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    out.stderr(`edgebox inspect: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    out.stdout(HELP)
    return 0
  }
  const usage = (msg: string) => {
    out.stderr(`edgebox inspect: ${msg}\n`)
    return 2
  }
  if (positionals.length !== 1) return usage(positionals.length ? `one URL at a time, got ${positionals.length}` : `which URL?\n\n${HELP}`)
  const repeat = values.repeat === undefined ? 0 : Number(values.repeat)
  if (!Number.isInteger(repeat) || repeat < 0 || repeat > 10_000) return usage(`--repeat ${values.repeat}: a whole number from 0 to 10000`)
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout)
  if (!(timeout > 0 && timeout <= 600)) return usage(`--timeout ${values.timeout}: seconds, more than 0 and at most 600`)
  if (values['http1.1'] && values.http2) return usage('--http1.1 and --http2 exclude each other')
  if (values['4'] && values['6']) return usage('-4 and -6 exclude each other')
  if (values.origin !== undefined && !/^https?:\/\/[^/?#\s]+$/i.test(values.origin)) return usage(`--origin ${values.origin}: an origin like https://app.example.com (scheme, host, port; no path)`)
  if (values['dns-server'] !== undefined) {
    try {
      parseServer(values['dns-server'])
    } catch (err) {
      return usage(`--dns-server ${values['dns-server']}: ${(err as Error).message}`)
    }
  }
  if (values.doh !== undefined) {
    if (values['dns-server'] !== undefined) return usage('--dns-server and --doh exclude each other: one DNS server to ask first')
    let u: URL | undefined
    try {
      u = new URL(values.doh)
    } catch {
      u = undefined
    }
    if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:')) return usage(`--doh ${values.doh}: a DNS-over-HTTPS URL like https://dns.example/dns-query`)
  }
  const authorities: Authority[] = []
  for (const file of values.ca ?? []) {
    try {
      authorities.push(authorityFile(file, (subject) => `--ca ${file} (${subject})`))
    } catch (err) {
      return usage(`--ca ${file}: ${(err as Error).message}`)
    }
  }
  const local = localAuthority(env)
  if (local) authorities.push(local)
  let headers: Record<string, string>
  let corsHeaders: Record<string, string>
  try {
    headers = headerMap(values.header, '--header')
    corsHeaders = headerMap(values['cors-header'], '--cors-header')
  } catch (err) {
    return usage((err as Error).message)
  }
  const opts: InspectOptions = {
    url: positionals[0]!,
    method: values.method ?? 'GET',
    headers,
    follow: !values['no-follow'],
    insecure: values.insecure ?? false,
    timeoutMs: timeout * 1000,
    protocol: values['http1.1'] ? 'http1' : values.http2 ? 'http2' : 'auto',
    family: values['4'] ? 4 : values['6'] ? 6 : 0,
    ...(values['dns-server'] ? { dnsServer: values['dns-server'] } : {}),
    ...(values.doh ? { doh: values.doh } : {}),
    ...(authorities.length ? { authorities } : {}),
    ...(values.origin ? { origin: values.origin, corsMethod: values['cors-method'] ?? 'GET', corsHeaders, credentials: values.credentials ?? false } : {}),
    repeat,
  }
  try {
    const report = await inspect(opts)
    out.stdout(values.json ? JSON.stringify(report, null, 2) + '\n' : renderText(report))
    return 0
  } catch (err) {
    if (err instanceof ProbeError) {
      if (values.json) out.stdout(JSON.stringify({ url: opts.url, error: { phase: err.phase, code: err.code ?? null, message: err.message } }, null, 2) + '\n')
      out.stderr(`edgebox inspect: ${err.phase} failed: ${err.message}\n`)
      return 1
    }
    throw err
  }
}

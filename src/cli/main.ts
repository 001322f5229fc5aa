import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ConfigError } from '../core/errors.ts'
import { isLoopbackHost } from '../http/address.ts'
import { loadConfigFile, validateConfig } from '../config/load.ts'
import type { EdgeboxConfigInput } from '../config/schema.ts'
import { startEdgebox, type Edgebox } from '../server/app.ts'
import { inheritedSockets, type InheritedSocket } from '../server/socket-activation.ts'
import { primaryChannel, runPrimary, serveAsWorker, workerCount, workerFailed, workerIndex } from './workers.ts'
import { createLogger } from '../core/log.ts'
import { defaultDataDir, resolveDataDir } from '../core/data-dir.ts'
import { inspectCommand } from './inspect.ts'
import { stopWithNpx } from './parent-watch.ts'
import { removePidFile, writePidFile } from './pid-file.ts'
import { reloadCommand } from './reload.ts'
import { tuneRuntime } from './runtime-tuning.ts'
import { redactSecrets } from '../config/redact.ts'

const HELP = `edgebox: a self-hosted web edge

Usage:
  edgebox [DIR] [options]        serve DIR (zero configuration), or the built-in welcome site and lab
  edgebox --config FILE          run a configuration (edgebox.config.ts, .js, .mjs or .json)
  edgebox config --print [...]   print the resolved configuration (every default filled in) and exit
  edgebox cert [--host NAME]...  a local development certificate (and how to trust it); --csr: how to get a real one
  edgebox inspect URL [...]      what happens when you open URL: timings, TLS, caching, ranges, CORS, security headers
  edgebox reload --pid-file FILE reload the server whose PID is in FILE (SIGHUP: configuration, certificates, log files)
  edgebox dns check FILE         check a DNS zone file (RFC 1035) as Edgebox would serve it
  edgebox dig NAME [TYPE] [@SERVER] [+tcp] [+trace] [--doh URL] [--explain]
                                 ask a DNS server, follow a resolution from the root, or ask why Edgebox answered so
  edgebox user add|passwd|groups|remove|list [...]
                                 the built-in identity provider's users (edgebox user --help)

Options:
  -c, --config FILE    configuration file
  -p, --port N         port to listen on (default 8080; 0 picks a free port)
  -H, --host ADDR      address to bind (default 127.0.0.1; 0.0.0.0 or :: for every interface)
      --https          serve HTTPS (HTTP/2 and HTTP/1.1); without certificates configured, with one
                       from the local authority (edgebox cert)
      --listing        list directories that have no index.html (zero-configuration mode)
      --spa            serve index.html for unknown paths without an extension
      --no-access-log  do not log each request
      --pid-file FILE  write the server's PID to FILE (removed when it stops), for edgebox reload
      --dns-port N     the DNS lab's port on 127.0.0.1-127.0.0.4 (default 8053; 0 with --port 0)
      --admin-port N   the admin listener's port on 127.0.0.1 (default 8082; 0 with --port 0)
  -v, --version        print the version
  -h, --help           this help
`

/** The package's own folder (two levels above src/cli or dist/cli). */
export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Where `npm start` listens: PORT for the site, PORT + 1 for the lab's second origin; over HTTPS with `https`. */
export interface DefaultListen {
  host?: string
  port?: number
  https?: boolean
  /** The DNS lab's port on 127.0.0.1-4 (UDP and TCP); without it, no DNS lab (`npm start` always gives one: 8053 unless --dns-port). */
  dnsPort?: number
  /** The DNS lab's demo edges' HTTP port on 127.0.0.2 and 127.0.0.3; default PORT + 2. */
  edgePort?: number
  /** The admin listener's port on 127.0.0.1 (docs/admin.md); without it, no admin listener. */
  adminPort?: number
}

/** The DNS lab's addresses: the resolver (1), the root (2), test. (3) and edgebox.test. (4); the demo edges on 2 and 3. */
export const DNS_LAB = { resolver: '127.0.0.1', root: '127.0.0.2', test: '127.0.0.3', edgebox: '127.0.0.4', edges: ['127.0.0.2', '127.0.0.3'] } as const

/**
 * The default configuration's DNS: a whole hierarchy on loopback, one port.
 * 127.0.0.1 is a caching resolver for this machine starting from a root on
 * 127.0.0.2, which delegates `test.` to 127.0.0.3, which delegates
 * `edgebox.test.` to 127.0.0.4, where `www.edgebox.test` is balanced across
 * two demo edges (127.0.0.2 and 127.0.0.3, HTTP on `edgePort`) by health.
 */
export function defaultDns(dnsPort: number, edgePort: number): NonNullable<EdgeboxConfigInput['dns']> {
  const r = (name: string, type: string, data: string) => ({ name, type, data })
  const L = DNS_LAB
  return {
    listen: [L.resolver, L.root, L.test, L.edgebox].map((host) => ({ host, port: dnsPort })),
    zones: [
      { origin: '.', on: [L.root], ttl: 86400, records: [r('@', 'NS', 'a.root-servers.net.'), r('a.root-servers.net.', 'A', L.root), r('test.', 'NS', 'ns.test.'), r('ns.test.', 'A', L.test)] },
      { origin: 'test', on: [L.test], ttl: 3600, records: [r('@', 'NS', 'ns'), r('ns', 'A', L.test), r('edgebox', 'NS', 'ns.edgebox'), r('ns.edgebox', 'A', L.edgebox)] },
      {
        origin: 'edgebox.test',
        on: [L.edgebox],
        ttl: 300,
        soa: { minimum: 60 },
        records: [r('@', 'NS', 'ns'), r('ns', 'A', L.edgebox), r('app', 'CNAME', 'www'), r('@', 'TXT', '"the DNS lab zone of Edgebox"'), r('@', 'HTTPS', '1 . alpn=h2,http/1.1'), r('@', 'CAA', '0 issue ";"'), ...bigTxt(r)],
      },
    ],
    balance: [
      {
        name: 'www.edgebox.test',
        ttl: 10,
        answers: 2,
        edges: [
          { name: 'edge-a', addresses: [L.edges[0]] },
          { name: 'edge-b', addresses: [L.edges[1]] },
        ],
        check: { kind: 'http', port: edgePort, path: '/', interval: '1s', timeout: '500ms', rise: 1, fall: 2 },
      },
    ],
    resolver: { allow: ['127.0.0.0/8', '::1'], on: [L.resolver], rootHints: [{ name: 'a.root-servers.net.', address: L.root }], authorityPort: dnsPort },
  }
}

/**
 * `big.edgebox.test TXT`: three long records, over the 512 bytes of a DNS
 * message over UDP without EDNS (RFC 1035 §4.2.1), so such a query gets a
 * truncated answer (TC) and is asked again over TCP (RFC 7766 §5): what the
 * journey lab page (/lab/journey.html) times.
 */
function bigTxt<R>(r: (name: string, type: string, data: string) => R): R[] {
  const part = (n: number) => `"${`part ${n} of a TXT record too large for a classic UDP answer `.repeat(3).slice(0, 180)}"`
  return [1, 2, 3].map((n) => r('big', 'TXT', part(n)))
}

/** The demo relying parties' client secrets: made once per process (a reload keeps them), never written anywhere. */
const DEMO_SECRETS = { app1: randomBytes(24).toString('base64url'), app2: randomBytes(24).toString('base64url') }

/** The sign-on demo's account: its password is new at each start and printed in the banner. */
export const DEMO_USER = 'demo'

/**
 * The sign-on demo (`npm start` on a loopback address only): Edgebox's
 * built-in identity provider on `id.localhost` and two sites behind it,
 * `app1.localhost` and `app2.localhost`, each a client of the provider, on
 * the same ports as the rest. Browsers send `*.localhost` to this machine
 * (RFC 6761 §6.3), and cookies are kept apart by host, not by port (RFC 6265
 * §8.5): three host names make three sites. Each site's answers go to the
 * wire trace the sign-on lab page watches.
 */
export function ssoDemo(scheme: 'http' | 'https', port: number): Pick<EdgeboxConfigInput, 'auth'> & { sites: EdgeboxConfigInput['sites'] } {
  const issuer = `${scheme}://id.localhost:${port}`
  const apps = ['app1', 'app2'] as const
  const origin = (app: string) => `${scheme}://${app}.localhost:${port}`
  return {
    auth: {
      providers: Object.fromEntries(
        apps.map((app) => [`demo-${app}`, { issuer, clientId: app, clientSecret: DEMO_SECRETS[app], label: 'Edgebox demo provider', scopes: ['openid', 'email', 'profile', 'groups'] }]),
      ),
    },
    sites: [
      {
        hosts: ['id.localhost'],
        trace: true,
        headers: { csp: 'strict' },
        routes: [
          {
            path: '/',
            idp: {
              issuer,
              name: 'Edgebox demo provider',
              clients: apps.map((app) => ({
                clientId: app,
                clientSecret: DEMO_SECRETS[app],
                name: `Demo ${app}`,
                // two providers configured (one per site): each has its own callback path (docs/sso.md)
                redirectUris: [`${origin(app)}/_edgebox/auth/callback/demo-${app}`],
                postLogoutRedirectUris: [`${origin(app)}/_edgebox/auth/signed-out`],
                backchannelLogoutUri: `${origin(app)}/_edgebox/auth/backchannel-logout`,
              })),
            },
          },
        ],
      },
      ...apps.map((app) => ({
        hosts: [`${app}.localhost`],
        trace: true,
        headers: { csp: 'strict' as const },
        auth: { providers: [`demo-${app}`] },
        routes: [{ path: '/', static: { root: path.join(PACKAGE_DIR, 'lab', 'www', 'lab', 'sso-app') } }],
      })),
    ],
  }
}

/**
 * The configuration `npm start` runs: the welcome page, the labs, the
 * realtime hub and a directory listing, on two ports. Both ports serve the
 * same site, so a page on one (origin A) has a second origin, B, to try
 * cross-origin techniques and attacks against: `/lab/cross-origin.html` and
 * `/lab/attacker.html`. The lab pages under `/lab/` may connect to, frame
 * and post forms to the sibling origins, whose helpers under `/lab/xo/` let
 * them frame them; the rest of the site keeps the strict policy and refuses
 * to be framed by other origins.
 */
export function defaultConfig(at: DefaultListen = {}): EdgeboxConfigInput {
  const host = at.host ?? '127.0.0.1'
  const port = at.port ?? 8080
  const ports = [port, port + 1]
  const scheme = at.https ? 'https' : 'http'
  const origins = ports.flatMap((p) => [`${scheme}://localhost:${p}`, `${scheme}://127.0.0.1:${p}`])
  const others = origins.join(' ')
  const policy = (d: { form: string; ancestors: string; script: string; connect: string }) =>
    `default-src 'self'; base-uri 'self'; object-src 'none'; form-action ${d.form}; frame-ancestors ${d.ancestors}; ` +
    `img-src 'self' data:; script-src ${d.script}; style-src 'self'; connect-src ${d.connect}; frame-src 'self' ${others}`
  // the lab pages: they may fetch from, frame and post forms to the sibling origins; scripts stay 'self' only
  const pageHeaders = { csp: policy({ form: `'self' ${others}`, ancestors: "'self'", script: "'self'", connect: `'self' ${others}` }) }
  // the other origin's helpers: framed by the siblings, and their JSONP variant trusts their scripts
  const xoHeaders = { frameOptions: false, csp: policy({ form: "'self'", ancestors: `'self' ${others}`, script: `'self' ${others}`, connect: "'self'" }) } as const
  const www = path.join(PACKAGE_DIR, 'lab', 'www')
  const xo = path.join(www, 'lab', 'xo')
  const dnsPort = at.dnsPort
  const edgePort = at.edgePort ?? port + 2
  // the sign-on demo only where nobody else can reach it: its provider's demo account is printed in the terminal
  const sso = isLoopbackHost(host) ? ssoDemo(scheme, port) : null
  return {
    listen: ports.map((p) => ({ host, port: p, ...(at.https ? { tls: true } : {}) })),
    ...(at.https ? { tls: { local: true } } : {}),
    ...(sso ? { auth: sso.auth } : {}),
    // the admin API on loopback only, without a login for this machine's own user (src/admin/access.ts)
    ...(at.adminPort !== undefined ? { admin: { host: '127.0.0.1', port: at.adminPort } } : {}),
    // DNS stays on loopback whatever --host says: it is the lab's hierarchy and a resolver for this machine
    ...(dnsPort !== undefined ? { dns: defaultDns(dnsPort, edgePort) } : {}),
    sites: [
      {
        // Edgebox's own pages run under the strict Content-Security-Policy preset.
        headers: { csp: 'strict' },
        // real-user monitoring: page-view ids on every HTML answer, the SDK injected into every page (the welcome page and
        // the labs report to the collector; /lab/monitoring.html starts it itself, with its own options, and shows it)
        rum: { inject: { env: 'npm start' } },
        routes: [
          { path: '/', static: { root: www } },
          { path: '/files/', static: { root: path.join(PACKAGE_DIR, 'lab', 'files'), listing: true } },
          { path: '/lab/demo/', lab: {} },
          // the realtime hub behind the chat example (/chat/) and the transport lab (/lab/realtime.html)
          { path: '/live/', realtime: { channels: { 'chat:*': { presence: true, history: { size: 200, age: '1h' } }, 'lab:*': { history: { size: 1000, age: '10m' } } } } },
          // the cross-origin lab and the attacker's page, across the two ports
          // every lab page gets a 103 Early Hints for the stylesheet before its HTML (browsers act on it over HTTP/2)
          { path: '/lab/', static: { root: path.join(www, 'lab') }, headers: pageHeaders, earlyHints: ['</assets/style.css>; rel=preload; as=style'] },
          { path: '/lab/xo/', static: { root: xo }, headers: xoHeaders, cors: { origins, allowHeaders: ['x-lab'], maxAge: '10m' } },
          { path: '/lab/xo/nocors/', static: { root: xo }, headers: xoHeaders, cors: false },
          { path: '/lab/xo/cred/', static: { root: xo }, headers: xoHeaders, cors: { origins, credentials: true } },
          { path: '/lab/xo/jsonp/', static: { root: xo }, headers: xoHeaders, jsonp: true },
          {
            path: '/lab/xo-proxy/',
            proxy: {
              upstreams: [`${scheme}://${loopbackOf(host)}:${port + 1}`],
              stripPrefix: true,
              prefix: '/lab/xo/nocors',
              // over HTTPS, B's certificate comes from the local authority
              ...(at.https ? { tls: { ca: path.join(defaultDataDir(), 'ca', 'ca.crt') } } : {}),
            },
            headers: xoHeaders,
          },
          // the attacks' victim: a cookie-authenticated account with CSRF checks, under the site's strict headers
          { path: '/lab/account/', lab: { demo: 'account' }, csrf: { token: true } },
          // what this request's connection negotiated (HTTP version, TLS, certificate), for /lab/tls.html
          { path: '/lab/connection/', lab: { demo: 'connection' } },
          // the wire trace of the sign-on demo's sites, for /lab/sso.html
          { path: '/lab/demo/trace/', lab: { demo: 'trace', sso: sso !== null } },
          // what real-user monitoring stored for a page view, side by side, for /lab/monitoring.html
          { path: '/lab/demo/rum/', lab: { demo: 'rum' } },
          ...(dnsPort !== undefined
            ? [
                // DNS over HTTPS (RFC 8484), answered by the resolver on 127.0.0.1, for /lab/dns.html, curl and fetch
                { path: '/dns-query', doh: {} },
                // the DNS lab's demo edges and step-by-step traces
                { path: '/lab/demo/dns/', lab: { demo: 'dns' as const, dns: { edges: { port: edgePort }, root: { address: DNS_LAB.root, port: dnsPort } } } },
              ]
            : []),
          // what happens when you type a URL, measured against this Edgebox, for /lab/journey.html (its DNS comparison asks edgebox.test's server)
          { path: '/lab/demo/journey/', lab: { demo: 'journey', ...(dnsPort !== undefined ? { journey: { dns: { address: DNS_LAB.edgebox, port: dnsPort } } } : {}) } },
        ],
      },
      ...(sso ? sso.sites : []),
    ],
  }
}

/** An address of this machine that a listener bound to `host` answers on. */
function loopbackOf(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === 'localhost') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

/** The --port flag as a number, or undefined. */
function portFlag(value: string | undefined, flag = '--port'): number | undefined {
  if (value === undefined) return undefined
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`${flag}: ${value} is not a port number (0-65535)`)
  return port
}

/** Two free consecutive ports on `host` (the first is returned), or null: for `npm start --port 0`, whose two origins name each other, so both are chosen first. */
export async function freePortPair(host: string): Promise<number | null> {
  const tryListen = (port: number) =>
    new Promise<net.Server | null>((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(null))
      s.listen(port, host, () => resolve(s))
    })
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await tryListen(0)
    if (!first) break
    const port = (first.address() as net.AddressInfo).port
    const second = port < 65535 ? await tryListen(port + 1) : null
    await new Promise((r) => first.close(r))
    if (second) {
      await new Promise((r) => second.close(r))
      return port
    }
  }
  return null
}

/** The default configuration's listeners from --host, --port and --https. */
async function defaultListen(values: { port?: string; host?: string; https?: boolean; 'dns-port'?: string; 'admin-port'?: string }): Promise<DefaultListen> {
  const host = values.host ?? '127.0.0.1'
  const asked = portFlag(values.port) ?? 8080
  let port = asked
  if (port >= 65534) fail("--port: the default configuration also listens on PORT + 1 and PORT + 2 (the DNS lab's demo edges); choose a port below 65534")
  if (port === 0) port = (await freePortPair(host)) ?? fail(`--port 0: found no two free consecutive ports on ${host}`)
  let dnsPort = values['dns-port'] === undefined ? (asked === 0 ? 0 : 8053) : portFlag(values['dns-port'], '--dns-port')!
  // the lab's DNS servers share one port on four addresses (an authority is asked on one port): a free one is chosen first
  if (dnsPort === 0) dnsPort = (await freeOnAll([...new Set([DNS_LAB.resolver, DNS_LAB.root, DNS_LAB.test, DNS_LAB.edgebox])], true)) ?? fail('--dns-port 0: found no port free on 127.0.0.1-127.0.0.4')
  const edgePort = asked === 0 ? ((await freeOnAll([...DNS_LAB.edges], false)) ?? fail('--port 0: found no free port for the DNS lab\'s demo edges')) : port + 2
  const adminPort = values['admin-port'] === undefined ? (asked === 0 ? 0 : 8082) : portFlag(values['admin-port'], '--admin-port')!
  return { host, port, https: values.https === true, dnsPort, edgePort, adminPort }
}

/** Free ports for the DNS lab: one for DNS on 127.0.0.1-4 (UDP and TCP), one for the demo edges on 127.0.0.2-3; null if none. */
export async function freeDnsLabPorts(): Promise<{ dnsPort: number; edgePort: number } | null> {
  const dnsPort = await freeOnAll([DNS_LAB.resolver, DNS_LAB.root, DNS_LAB.test, DNS_LAB.edgebox], true)
  const edgePort = await freeOnAll([...DNS_LAB.edges], false)
  return dnsPort && edgePort ? { dnsPort, edgePort } : null
}

/** A port free over TCP (and UDP when `udp`) on every address, or null. */
async function freeOnAll(hosts: readonly string[], udp: boolean): Promise<number | null> {
  const { createSocket } = await import('node:dgram')
  const tcpFree = (port: number, h: string) =>
    new Promise<net.Server | null>((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(null))
      s.listen({ port, host: h, exclusive: true }, () => resolve(s))
    })
  const udpFree = (port: number, h: string) =>
    new Promise<boolean>((resolve) => {
      const s = createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind({ port, address: h, exclusive: true }, () => s.close(() => resolve(true)))
    })
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await tcpFree(0, hosts[0]!)
    if (!first) return null
    const port = (first.address() as net.AddressInfo).port
    await new Promise((r) => first.close(r))
    let ok = true
    for (const h of hosts) {
      const t = await tcpFree(port, h)
      if (!t) {
        ok = false
        break
      }
      await new Promise((r) => t.close(r))
      if (udp && !(await udpFree(port, h))) {
        ok = false
        break
      }
    }
    if (ok) return port
  }
  return null
}

export function zeroConfig(dir: string, opts: { listing: boolean; spa: boolean }): EdgeboxConfigInput {
  return { sites: [{ routes: [{ path: '/', static: { root: dir, listing: opts.listing, spa: opts.spa } }] }] }
}

function fail(message: string): never {
  process.stderr.write(`edgebox: ${message}\n`)
  process.exit(2)
}

/** The long options `edgebox` takes, for suggestions (kept with the parseArgs table in main). */
const FLAGS = ['config', 'port', 'host', 'listing', 'spa', 'https', 'no-access-log', 'pid-file', 'dns-port', 'admin-port', 'print', 'version', 'help']

/** One line for a flag parseArgs refused, instead of its own text and the whole help. */
function flagProblem(err: Error & { code?: string }): string {
  const unknown = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(err.message)?.[1] : undefined
  if (unknown !== undefined) {
    const near = unknown.startsWith('--') ? closestFlag(unknown.slice(2).split('=')[0]!) : undefined
    return `unknown option ${unknown}${near ? ` (did you mean --${near}?)` : ''}; edgebox --help lists them`
  }
  const missing = err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? /(--[\w-]+) <value>' argument missing/.exec(err.message)?.[1] : undefined
  if (missing !== undefined) return `${missing} needs a value; edgebox --help lists the options`
  return `${err.message.split('\n')[0]}; edgebox --help lists the options`
}

/** The known flag within two edits of `name` (a typo), if one is. */
function closestFlag(name: string): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  for (const flag of FLAGS) {
    const d = editDistance(name, flag)
    if (d < bestDistance) [best, bestDistance] = [flag, d]
  }
  return best
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    row = next
  }
  return row[b.length]!
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'cert') {
    const { certCommand } = await import('./cert.ts')
    process.exitCode = await certCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'reload') {
    process.exitCode = reloadCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'inspect') {
    process.exitCode = await inspectCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'dig') {
    const { digCommand } = await import('./dig.ts')
    process.exitCode = await digCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'dns') {
    const { dnsCommand } = await import('./dns.ts')
    process.exitCode = dnsCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'user') {
    const { userCommand } = await import('./user.ts')
    process.exitCode = await userCommand(argv.slice(1))
    return
  }
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string', short: 'H' },
        listing: { type: 'boolean' },
        spa: { type: 'boolean' },
        https: { type: 'boolean' },
        'access-log': { type: 'boolean', default: true },
        'no-access-log': { type: 'boolean' },
        'pid-file': { type: 'string' },
        'dns-port': { type: 'string' },
        'admin-port': { type: 'string' },
        print: { type: 'boolean' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    fail(flagProblem(err as Error & { code?: string }))
  }
  const { values, positionals } = parsed
  if (values.help) return void process.stdout.write(HELP)
  if (values.version) return void process.stdout.write(`edgebox ${packageVersion()} (node ${process.version})\n`)
  const printOnly = positionals[0] === 'config'
  if (printOnly) positionals.shift()
  if (printOnly && !values.print) fail('usage: edgebox config --print [--config FILE] [DIR]')
  if (positionals.length > 1) fail(`one directory at most, got: ${positionals.join(' ')}`)
  if (values.config && positionals.length) fail('give either a directory or --config, not both')
  if (values['dns-port'] !== undefined && (values.config || positionals.length)) fail("--dns-port is the built-in lab's DNS port; in a configuration, set dns.listen")
  if (values['admin-port'] !== undefined && (values.config || positionals.length)) fail("--admin-port is the built-in configuration's admin port; in a configuration, set admin.port")

  let baseDir = process.cwd()
  /** The built-in lab's DNS could not start (no 127.0.0.2-4, or its port taken): reloads leave it out too. */
  let dnsLabOff = false
  // the default configuration's ports are chosen once (--port 0 picks them): a reload keeps them
  const listenAt = values.config || positionals[0] !== undefined ? undefined : await defaultListen(values)
  /** The configuration from the file, the directory or the default, with the flags applied; read again on SIGHUP. */
  const resolveInput = async (): Promise<EdgeboxConfigInput> => {
    let input: EdgeboxConfigInput
    if (values.config) {
      input = await loadConfigFile(values.config)
      baseDir = path.dirname(path.resolve(values.config))
    } else if (positionals[0] !== undefined) {
      const dir = path.resolve(positionals[0])
      if (!existsSync(dir)) fail(`directory ${positionals[0]} does not exist`)
      input = zeroConfig(dir, { listing: values.listing ?? false, spa: values.spa ?? false })
    } else {
      input = defaultConfig(listenAt)
    }
    if (dnsLabOff) input = withoutDnsLab(input)
    if (values.config || positionals[0] !== undefined) input = applyFlags(input, values)
    else if (values['no-access-log'] || values['access-log'] === false) input = { ...input, log: { ...input.log, access: false } }
    return input
  }
  // systemd's listening sockets (socket activation, docs/deploy.md), read before anything else runs: the variables are
  // removed at once, so no process started from here takes them for its own
  let sockets: InheritedSocket[] = []
  try {
    sockets = inheritedSockets()
  } catch (err) {
    fail((err as Error).message)
  }
  try {
    let input = await resolveInput()
    if (printOnly) {
      // secrets show as "<redacted>": what is printed gets pasted into issues and chats
      process.stdout.write(JSON.stringify(redactSecrets(validateConfig(input)), null, 2) + '\n')
      return
    }
    tuneRuntime()
    // workers (docs/scale.md): the primary starts them and serves nothing itself; each worker runs what follows
    const resolved = validateConfig(input)
    const me = workerIndex()
    if (me === null && workerCount(resolved.workers) > 1) {
      const log = createLogger(resolved.log)
      const pidFile = values['pid-file']
      runPrimary(
        resolved,
        log,
        (urls) => {
          log.info({ urls, workers: workerCount(resolved.workers) }, `edgebox ${packageVersion()} pid ${process.pid} (primary of ${workerCount(resolved.workers)} workers) listening on ${urls.join(' ')}`)
          if (pidFile === undefined) return
          try {
            writePidFile(pidFile)
          } catch (err) {
            log.error(`--pid-file: cannot write ${pidFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
          }
        },
        (code) => {
          if (pidFile !== undefined) removePidFile(pidFile)
          process.exit(code)
        },
        (stop) => stopWithNpx(() => stop('npx exited')),
        sockets,
      )
      return
    }
    const channel = me ? primaryChannel() : undefined
    const worker = me && channel ? { ...me, channel } : undefined
    let box
    try {
      box = await startEdgebox(input, { baseDir, readConfig: resolveInput, sockets, ...(worker ? { worker } : {}) })
    } catch (err) {
      if (worker) await workerFailed(err instanceof ConfigError ? err.issues.join('; ') : (err as Error).message)
      // the built-in lab's DNS needs 127.0.0.2-127.0.0.4 (not there by default on macOS) and its port: without them, serve the rest
      // (not with systemd's sockets: the failed start has closed this process's copies of them)
      if (!listenAt || sockets.length || !(err instanceof ConfigError) || !err.issues.some((i) => i.startsWith('dns.') || i.includes('.lab.dns.'))) throw err
      process.stderr.write(`edgebox: the DNS lab is off: ${err.issues.join('; ')}\n`)
      dnsLabOff = true
      input = withoutDnsLab(input)
      box = await startEdgebox(input, { baseDir, readConfig: resolveInput, ...(worker ? { worker } : {}) })
    }
    if (worker) {
      // the primary says when to reload and stop; worker 1 does what is done once (the demo account)
      if (worker.index === 1) await demoAccount(box, listenAt !== undefined, baseDir)
      serveAsWorker(box, worker.channel, resolveInput)
      return
    }
    // the real PID (not npm's or npx's, which do not pass signals on) and every bound port, on one line
    const dnsAt = (box.dns ? ` dns ${box.dns.urls.join(' ')}` : '') + (box.rumApi ? ` rum-api ${box.rumApi.url}` : '') + (box.admin ? ` admin ${box.admin.url}` : '')
    box.log.info({ urls: box.urls, ...(box.dns ? { dns: box.dns.urls } : {}), ...(box.rumApi ? { rumApi: box.rumApi.url } : {}), ...(box.admin ? { admin: box.admin.url } : {}) }, `edgebox ${packageVersion()} pid ${process.pid} listening on ${box.urls.join(' ')}${dnsAt}`)
    if (box.admin && !box.config.admin?.token && !box.config.admin?.auth) {
      box.log.info({ admin: box.admin.url }, `admin: the dashboard, the admin API and /metrics at ${box.admin.url}, with no login from this machine only (docs/admin.md)`)
    }
    const pidFile = values['pid-file']
    if (pidFile !== undefined) {
      try {
        writePidFile(pidFile)
      } catch (err) {
        await box.close()
        fail(`--pid-file: cannot write ${pidFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
      }
    }
    await demoAccount(box, listenAt !== undefined, baseDir)
    if (box.config.listen.some((l) => l.tls) && box.config.tls.local) {
      const ca = path.join(resolveDataDir(box.config.dataDir, baseDir), 'ca', 'ca.crt')
      box.log.info({ ca }, `HTTPS with a certificate from the local authority ${ca}: run "npx edgebox cert" to see how to trust it`)
    }
    let signals = 0
    const stop = (signal: string) => {
      if (++signals > 1) process.exit(1)
      box.log.info({ signal }, 'shutting down: finishing in-flight requests')
      const exit = (code: number) => {
        if (pidFile !== undefined) removePidFile(pidFile)
        process.exit(code)
      }
      box.close().then(
        () => exit(0),
        () => exit(1),
      )
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    // under npx, signals sent to npx never arrive here: stop when npx is gone rather than live on as an orphan
    stopWithNpx(() => stop('npx exited'))
    // SIGUSR2: reopen the log files by name, after logrotate has renamed them (a reload does it too)
    process.on('SIGUSR2', () => {
      box.reopenLogs()
      box.log.info({ signal: 'SIGUSR2' }, 'log files reopened')
    })
    // SIGHUP: read the configuration (and certificates) again; a bad one is refused and the running one keeps serving
    process.on('SIGHUP', () => {
      box.log.info({ signal: 'SIGHUP' }, 'reloading the configuration')
      resolveInput()
        .then(
          (next) => box.reload(next, 'SIGHUP'),
          (err: unknown) => {
            // box.reload reopens the log files; a configuration file that cannot be read must not stop log rotation
            box.reopenLogs()
            throw err
          },
        )
        .catch((err: unknown) => {
          if (err instanceof ConfigError) box.log.error({ issues: err.issues }, `reload refused, the running configuration keeps serving:\n  ${err.issues.join('\n  ')}`)
          else box.log.error({ err }, 'reload failed, the running configuration keeps serving')
        })
    })
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error:\n  ${err.issues.join('\n  ')}`)
    throw err
  }
}

/**
 * The sign-on demo's account (the built-in configuration on loopback only),
 * with a new random password at each start, printed in the log: the
 * provider keeps no other demo secret.
 */
async function demoAccount(box: Edgebox, builtIn: boolean, baseDir: string): Promise<void> {
  if (builtIn && box.config.sites.some((s) => s.hosts.includes('id.localhost'))) {
    // the sign-on demo's account, with a new random password at each start (the provider keeps no other demo secret)
    const { UserStore } = await import('../auth/users.ts')
    const users = await UserStore.open(resolveDataDir(box.config.dataDir, baseDir))
    try {
      const password = randomBytes(12).toString('base64url')
      if (users.get(DEMO_USER)) await users.setPassword(DEMO_USER, password)
      else await users.add({ username: DEMO_USER, password, email: 'demo@example.com', name: 'Demo User', groups: ['staff'] })
      const port = new URL(box.urls[0]!).port
      const scheme = box.config.listen[0]!.tls ? 'https' : 'http'
      box.log.info({ sso: `${scheme}://app1.localhost:${port}/` }, `single sign-on demo: open ${scheme}://app1.localhost:${port}/ and sign in as "${DEMO_USER}" with the password ${password} (the lab: /lab/sso.html)`)
    } finally {
      users.close()
    }
  } else if (builtIn) {
    box.log.info('the single sign-on demo is off: it runs only when Edgebox listens on a loopback address')
  }
}

/** The version in the package's package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version
}

/** The default configuration without the DNS lab: no dns section, no DoH route, no DNS demo route. */
function withoutDnsLab(input: EdgeboxConfigInput): EdgeboxConfigInput {
  const { dns: _dns, ...rest } = input
  void _dns
  const noDns = (r: (typeof rest.sites)[number]['routes'][number]) => (r.lab?.demo === 'journey' ? { ...r, lab: { ...r.lab, journey: undefined } } : r)
  return { ...rest, sites: rest.sites.map((site) => ({ ...site, routes: site.routes.filter((r) => !('doh' in r) && !(r.lab && r.lab.demo === 'dns')).map(noDns) })) }
}

function applyFlags(input: EdgeboxConfigInput, values: { port?: string; host?: string; https?: boolean; 'access-log'?: boolean; 'no-access-log'?: boolean }): EdgeboxConfigInput {
  const out: EdgeboxConfigInput = { ...input }
  if (values.https) {
    // every listener speaks TLS (h2 + http/1.1); without certificates, the local authority issues one
    out.listen = (out.listen?.length ? out.listen : [{}]).map((l) => ({ ...l, tls: true, protocols: undefined, httpsRedirect: undefined }))
    if (!input.tls?.certificates?.length && !input.tls?.acme) out.tls = { ...input.tls, local: true }
  }
  if (values.port !== undefined || values.host !== undefined) {
    const port = portFlag(values.port)
    const listen = out.listen?.length ? out.listen : [{}]
    out.listen = listen.map((l) => ({ ...l, ...(port !== undefined ? { port } : {}), ...(values.host ? { host: values.host } : {}) }))
  }
  if (values['no-access-log'] || values['access-log'] === false) out.log = { ...input.log, access: false }
  return out
}

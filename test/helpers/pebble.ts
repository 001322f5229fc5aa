import { spawn, type ChildProcess } from 'node:child_process'
import dgram from 'node:dgram'
import { constants } from 'node:fs'
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import dnsPacket from 'dns-packet'
import type { Answer } from 'dns-packet'
import { issueLocalCertificate } from '../../src/tls/local-ca.ts'
import { outputTail } from './output-tail.ts'

/**
 * Let's Encrypt's ACME test server Pebble (Debian package `pebble`) for
 * end-to-end ACME tests: its API on a loopback port with a certificate from
 * Edgebox's own local authority, its validation authority pointed at the
 * test's HTTP-01 and TLS-ALPN-01 ports, and a small DNS responder that sends
 * every name to one address (127.0.0.1 unless the test moves it).
 */

const PEBBLE = '/usr/bin/pebble'
const START_TIMEOUT = 10_000
const POLL = 50
const KILL_AFTER = 3_000
const OUTPUT_LINES = 40

export interface PebbleOptions {
  /** Port Pebble's VA uses for HTTP-01 (the Edgebox cleartext listener's port). */
  httpPort: number
  /** Port Pebble's VA uses for TLS-ALPN-01 (the Edgebox TLS listener's port). */
  tlsPort: number
  /** Pebble config "certificateValidityPeriod" (seconds); omitted → Pebble's default. */
  validitySeconds?: number
  /** kid -> base64url HMAC key; when given, externalAccountBindingRequired: true. */
  eab?: Record<string, string>
  /** The DNS server Pebble's VA asks (`127.0.0.1:port`: an Edgebox serving the zones, for DNS-01); default: the helper's own responder. */
  dnsServer?: string
}

export interface Pebble {
  /** https://localhost:<port>/dir */
  directory: string
  /** PEM file of the authority that signed Pebble's own API certificate (pass to Edgebox as tls.acme.ca). */
  caFile: string
  /** Pebble's current root certificate (PEM) that issued certificates chain to: GET https://localhost:<mgmt>/roots/0 */
  root(): Promise<string>
  /** Where the test DNS responder points every name (A record); default '127.0.0.1'. Set e.g. '127.0.0.3' to make validations fail. */
  setAddress(ip: string): void
  /** Names the DNS responder was asked about (lowercased, no trailing dot), for assertions. */
  readonly queried: ReadonlySet<string>
  close(): Promise<void>
}

/** A port that was free a moment ago: binds 127.0.0.1:0, reads the port, closes. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** One GET over a fresh HTTPS connection that trusts only `ca`. */
function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, headers: { connection: 'close' }, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
  })
}

interface DnsResponder {
  port: number
  address: string
  queried: Set<string>
  close(): Promise<void>
}

/** A UDP DNS server on 127.0.0.1: every A question gets `address` (TTL 0), every other question NOERROR with no answers. */
async function startDns(): Promise<DnsResponder> {
  const socket = dgram.createSocket('udp4')
  const dns: DnsResponder = {
    port: 0,
    address: '127.0.0.1',
    queried: new Set(),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  }
  socket.on('message', (msg, rinfo) => {
    let query
    try {
      query = dnsPacket.decode(msg)
    } catch {
      return
    }
    if (query.type !== 'query') return
    const questions = query.questions ?? []
    const answers: Answer[] = []
    for (const q of questions) {
      const name = q.name.toLowerCase().replace(/\.$/, '')
      dns.queried.add(name)
      if (q.type === 'A' && q.class === 'IN') answers.push({ type: 'A', class: 'IN', name: q.name, ttl: 0, data: dns.address })
    }
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED),
      questions,
      answers,
    })
    socket.send(reply, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  // a send to a client that went away must not crash the test process
  socket.on('error', () => {})
  dns.port = socket.address().port
  return dns
}

/** Waits for the child to exit: SIGTERM, then SIGKILL after 3 s. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** Starts Pebble with its own DNS responder; resolves once its directory answers 200 over HTTPS. */
export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  try {
    await access(PEBBLE, constants.X_OK)
  } catch {
    throw new Error('pebble is not installed (apt-get install pebble; .ci/run installs it)')
  }

  const home = await mkdtemp(path.join(tmpdir(), 'edgebox-pebble-'))
  let dns: DnsResponder | undefined
  let child: ChildProcess | undefined
  const cleanup = async () => {
    if (child) await stop(child)
    if (dns) await dns.close()
    await rm(home, { recursive: true, force: true })
  }

  try {
    const cert = await issueLocalCertificate(home, ['localhost'])
    const caFile = path.join(home, 'ca', 'ca.crt')
    const ca = await readFile(caFile, 'utf8')
    dns = await startDns()
    const apiPort = await freePort()
    const mgmtPort = await freePort()

    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${apiPort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: cert.certPath,
        privateKey: cert.keyPath,
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: opts.eab !== undefined,
        ...(opts.eab !== undefined ? { externalAccountMACKeys: opts.eab } : {}),
        ...(opts.validitySeconds !== undefined ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    }
    const configFile = path.join(home, 'pebble-config.json')
    await writeFile(configFile, JSON.stringify(config, null, 2))

    const { collect, output } = outputTail(OUTPUT_LINES)

    const proc = spawn(PEBBLE, ['-config', configFile, '-dnsserver', opts.dnsServer ?? `127.0.0.1:${dns.port}`], {
      cwd: home,
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = proc
    proc.stdout!.on('data', collect)
    proc.stderr!.on('data', collect)
    let spawnError: Error | undefined
    proc.on('error', (err) => {
      spawnError = err
    })

    const directory = `https://localhost:${apiPort}/dir`
    const deadline = Date.now() + START_TIMEOUT
    for (;;) {
      if (spawnError) throw new Error(`pebble could not be started: ${spawnError.message}\n${output()}`)
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`pebble exited (${proc.exitCode ?? proc.signalCode}) before its directory answered:\n${output()}`)
      }
      const reply = await get(directory, ca).catch(() => undefined)
      if (reply?.status === 200) break
      if (Date.now() >= deadline) throw new Error(`pebble's directory ${directory} did not answer 200 within ${START_TIMEOUT} ms:\n${output()}`)
      await new Promise((r) => setTimeout(r, POLL))
    }

    const responder = dns
    let closing: Promise<void> | undefined
    return {
      directory,
      caFile,
      async root() {
        const reply = await get(`https://localhost:${mgmtPort}/roots/0`, ca)
        if (reply.status !== 200) throw new Error(`pebble's /roots/0 answered ${reply.status}: ${reply.body}`)
        return reply.body
      },
      setAddress(ip: string) {
        responder.address = ip
      },
      queried: responder.queried,
      close() {
        closing ??= cleanup()
        return closing
      },
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { validateConfig } from '../../src/config/load.ts'
import type { Broadcast } from '../../src/core/broadcast.ts'
import { systemClock } from '../../src/core/clock.ts'
import { createAcme, type AcmeManager } from '../../src/tls/acme.ts'
import { waitFor } from '../helpers/clock.ts'
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts'

/**
 * ACME with workers (docs/scale.md): one worker orders, every worker
 * answers the authority's challenges and serves the certificates. First the
 * mechanism, deterministically: an orderer and a follower on one data
 * folder, with the authority's validations answered by the follower alone
 * (HTTP-01 and TLS-ALPN-01); then the real command with `workers: 2`,
 * whose every worker presents the certificate.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const LIMIT = { timeout: 60_000 }
const silent = pino({ level: 'silent' })

/** Two ends of one broadcast, as two workers' channels through their primary. */
function linked(): [Broadcast, Broadcast] {
  const listeners: Array<Map<string, Set<(m: unknown) => void>>> = [new Map(), new Map()]
  const end = (me: number): Broadcast => ({
    async send(topic, message) {
      for (const fn of listeners[1 - me]!.get(topic) ?? []) fn(structuredClone(message))
      return true
    },
    on(topic, fn) {
      const set = listeners[me]!.get(topic) ?? new Set()
      listeners[me]!.set(topic, set)
      set.add(fn)
      return () => set.delete(fn)
    },
  })
  return [end(0), end(1)]
}

describe('ACME with workers', () => {
  let httpPort: number
  let tlsPort: number
  let pebble: Pebble
  let root: string
  let dir: string

  before(async () => {
    ;[httpPort, tlsPort] = [await freePort(), await freePort()]
    pebble = await startPebble({ httpPort, tlsPort, validitySeconds: 3600 })
    root = await pebble.root()
    dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-acme-workers-'))
  })
  after(async () => {
    await pebble?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const acmeConfig = (challenges: Array<'http-01' | 'tls-alpn-01'>) =>
    validateConfig({ tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: pebble.directory, ca: pebble.caFile, challenges } }, listen: [{ host: '127.0.0.1', port: tlsPort, tls: true }], sites: [{ routes: [{ path: '/', static: { root: dir } }] }] }).tls.acme!

  async function pair(dataDir: string, name: string, challenges: Array<'http-01' | 'tls-alpn-01'>): Promise<{ orderer: AcmeManager; follower: AcmeManager; followerChanged: () => number }> {
    const [a, b] = linked()
    let changes = 0
    const common = { config: acmeConfig(challenges), baseDir: dir, dataDir, clock: systemClock, log: silent, challenges, names: [name] }
    const orderer = await createAcme({ ...common, onChange: () => {}, peers: a })
    const follower = await createAcme({ ...common, onChange: () => changes++, peers: b, follow: true })
    return { orderer, follower, followerChanged: () => changes }
  }

  for (const kind of ['http-01', 'tls-alpn-01'] as const) {
    test(`${kind}: the authority's validation answered by the other worker alone succeeds, and the follower serves the certificate without ordering`, LIMIT, async () => {
      const name = kind === 'http-01' ? 'shop.example.com' : 'tls.example.com'
      const dataDir = path.join(dir, kind)
      const { orderer, follower, followerChanged } = await pair(dataDir, name, [kind])
      // the authority's validations reach the follower only: HTTP-01 on the cleartext port, TLS-ALPN-01 (RFC 8737) on the TLS port
      const web = http.createServer((req, res) => {
        const token = /^\/\.well-known\/acme-challenge\/([^/]+)$/.exec(req.url ?? '')?.[1]
        const answer = token === undefined ? undefined : follower.http01(token)
        res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'application/octet-stream' }).end(answer ?? '')
      })
      const alpn = tls.createServer({ ALPNProtocols: ['acme-tls/1'], SNICallback: (sni, cb) => cb(null, follower.alpn01(sni)) })
      await Promise.all([new Promise<void>((r) => web.listen(httpPort, '127.0.0.1', r)), new Promise<void>((r) => alpn.listen(tlsPort, '127.0.0.1', r))])
      try {
        follower.start()
        assert.equal(follower.certificates().length, 0)
        orderer.start()
        await orderer.idle()
        assert.equal(orderer.certificates().length, 1, 'the order succeeded: the follower answered the challenge')
        await waitFor('the follower takes the certificate', async () => follower.certificates().length === 1, 5_000)
        const cert = follower.certificates()[0]!
        assert.equal(cert.certPem, orderer.certificates()[0]!.certPem)
        assert.equal(cert.cert.checkHost(name), name)
        assert.equal(followerChanged(), 1)
        // nothing of the challenge is left in the data folder
        const challenges = path.join(dataDir, 'acme', `localhost-${new URL(pebble.directory).port}-dir`, 'challenges', kind)
        assert.ok(existsSync(challenges), 'the challenge went through the data folder')
        assert.deepEqual(readdirSync(challenges), [])
      } finally {
        orderer.close()
        follower.close()
        await Promise.all([new Promise((r) => web.close(r)), new Promise((r) => alpn.close(r))])
      }
    })
  }

  test('a token or name that is not one never becomes a file name', LIMIT, async () => {
    const { orderer, follower } = await pair(path.join(dir, 'names'), 'names.example.com', ['http-01'])
    try {
      for (const token of ['../../account.json', '..', 'a/b', '']) assert.equal(follower.http01(token), undefined, token)
      for (const name of ['../x', 'a/b', '.', 'x'.repeat(300)]) assert.equal(follower.alpn01(name), undefined, name)
    } finally {
      orderer.close()
      follower.close()
    }
  })

  describe('the real command with workers: 2', () => {
    let child: ChildProcess | undefined
    after(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r))
        child.kill('SIGTERM')
        await exited
      }
    })

    test('worker 1 orders; both workers present the certificate and answer over it', LIMIT, async () => {
      const home = path.join(dir, 'command')
      await writeFile(path.join(dir, 'index.html'), '<h1>shop</h1>\n')
      await writeFile(
        path.join(dir, 'workers.config.json'),
        JSON.stringify({
          workers: 2,
          dataDir: home,
          listen: [
            { host: '127.0.0.1', port: httpPort },
            { host: '127.0.0.1', port: tlsPort, tls: true },
          ],
          tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: pebble.directory, ca: pebble.caFile } },
          log: { access: false },
          sites: [{ hosts: ['www.example.com'], routes: [{ path: '/', static: { root: dir } }] }],
        }),
      )
      child = spawn(process.execPath, [BIN, '--config', 'workers.config.json'], { cwd: dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
      await waitFor('the certificate obtained', async () => out.includes('ACME certificate obtained'), 30_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${out}`)
      })
      assert.equal(out.match(/ordering an ACME certificate/g)?.length, 1, 'one orderer')
      const seen = new Map<number, X509Certificate>()
      const end = Date.now() + 20_000
      while (seen.size < 2 && Date.now() < end) {
        const v = await visit(tlsPort, root).catch(() => null)
        if (v) seen.set(v.worker, v.cert)
      }
      assert.deepEqual([...seen.keys()].sort(), [1, 2], 'both workers answered')
      for (const cert of seen.values()) {
        assert.equal(cert.checkHost('www.example.com'), 'www.example.com')
        assert.match(cert.issuer, /Pebble/)
      }
    })
  })
})

/** A TLS connection for www.example.com that asks the health endpoint which worker it reached, with the certificate presented (verified against `ca`). */
function visit(port: number, ca: string): Promise<{ worker: number; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'www.example.com', ca, ALPNProtocols: ['http/1.1'] })
    let body = ''
    s.setTimeout(5_000, () => s.destroy(new Error('no answer')))
    s.once('secureConnect', () => s.write('GET /_edgebox/health HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n'))
    s.on('data', (d: Buffer) => (body += d.toString()))
    s.once('end', () => {
      const cert = s.getPeerX509Certificate()
      const worker = Number(/"worker":(\d+)/.exec(body)?.[1])
      if (!cert || !Number.isInteger(worker)) reject(new Error(`no worker or certificate in ${body}`))
      else resolve({ worker, cert })
    })
    s.on('error', reject)
  })
}

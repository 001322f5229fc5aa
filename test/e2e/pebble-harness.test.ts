import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import https from 'node:https'
import path from 'node:path'
import { X509Certificate } from 'node:crypto'
import { test } from 'node:test'
import dnsPacket from 'dns-packet'
import acme from 'acme-client'
import http from 'node:http'
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts'

/**
 * The Pebble harness (test/helpers/pebble.ts) the ACME end-to-end tests
 * stand on: the directory answers over HTTPS trusting only caFile, the DNS
 * responder answers A questions with the address the test sets, EAB mode
 * starts, and close() leaves no Pebble process and no temp folder.
 */

function getJson(url: string, ca: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

/** The running Pebble processes whose command line names a file in `home` (the helper's temp folder). */
function pebblePids(home: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
    } catch {
      continue
    }
    const argv = cmdline.split('\0')
    if (argv[0] === '/usr/bin/pebble' && argv.some((a) => a.startsWith(home))) pids.push(Number(entry))
  }
  return pids
}

/** The DNS responder's port, read from the Pebble command line (`-dnsserver 127.0.0.1:<port>`). */
function dnsPort(pid: number): number {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  const server = argv[argv.indexOf('-dnsserver') + 1]!
  return Number(server.slice(server.lastIndexOf(':') + 1))
}

/** One question over UDP; resolves with the addresses in the answer. */
function query(port: number, name: string, type: 'A' | 'AAAA' = 'A'): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4')
    const id = Math.floor(Math.random() * 65535)
    const timer = setTimeout(() => {
      socket.close()
      reject(new Error(`no DNS answer for ${name}`))
    }, 5_000)
    socket.on('message', (msg) => {
      const reply = dnsPacket.decode(msg)
      if (reply.id !== id) return
      clearTimeout(timer)
      socket.close()
      assert.equal((reply as typeof reply & { rcode?: string }).rcode, 'NOERROR')
      resolve((reply.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : [])))
    })
    socket.on('error', reject)
    socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, class: 'IN', name }] }), port, '127.0.0.1')
  })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('Pebble starts, its directory and DNS responder answer, EAB mode starts, and close() leaves no process', async () => {
  const ports = { httpPort: await freePort(), tlsPort: await freePort() }
  const started: Pebble[] = []
  try {
    const pebble = await startPebble(ports)
    started.push(pebble)
    const ca = readFileSync(pebble.caFile, 'utf8')
    const home = path.dirname(path.dirname(pebble.caFile))

    // RFC 8555 §7.1.1: the directory names the resources a client starts from
    assert.match(pebble.directory, /^https:\/\/localhost:\d+\/dir$/)
    const dir = await getJson(pebble.directory, ca)
    assert.equal(dir.status, 200)
    for (const key of ['newNonce', 'newAccount', 'newOrder']) {
      assert.equal(typeof dir.json[key], 'string', key)
      assert.match(dir.json[key] as string, /^https:\/\/localhost:\d+\//, key)
    }
    assert.notEqual((dir.json.meta as Record<string, unknown> | undefined)?.externalAccountRequired, true)

    const [pid, ...others] = pebblePids(home)
    assert.ok(pid !== undefined, 'the pebble process is found by its config path')
    assert.deepEqual(others, [])
    const port = dnsPort(pid)
    assert.deepEqual(await query(port, 'shop.example.com'), ['127.0.0.1'])
    assert.deepEqual(await query(port, 'shop.example.com', 'AAAA'), [], 'AAAA: NOERROR, no answers')
    assert.ok(pebble.queried.has('shop.example.com'))
    pebble.setAddress('127.0.0.3')
    assert.deepEqual(await query(port, 'Shop.Example.COM'), ['127.0.0.3'])
    assert.deepEqual([...pebble.queried], ['shop.example.com'])

    const root = await pebble.root()
    assert.match(root, /^-----BEGIN CERTIFICATE-----\n/)
    assert.ok(new X509Certificate(root).ca, 'the root is a CA certificate')

    const eab = await startPebble({ ...ports, eab: { 'kid-1': 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' } })
    started.push(eab)
    const eabHome = path.dirname(path.dirname(eab.caFile))
    const eabDir = await getJson(eab.directory, readFileSync(eab.caFile, 'utf8'))
    assert.equal(eabDir.status, 200)
    assert.equal((eabDir.json.meta as Record<string, unknown>).externalAccountRequired, true)
    const eabPids = pebblePids(eabHome)
    assert.equal(eabPids.length, 1)

    await Promise.all([pebble.close(), eab.close()])
    assert.equal(alive(pid), false, 'pebble has exited')
    assert.equal(alive(eabPids[0]!), false, 'the EAB pebble has exited')
    assert.equal(existsSync(home), false, 'the temp folder is removed')
    assert.equal(existsSync(eabHome), false, 'the EAB temp folder is removed')
  } finally {
    await Promise.all(started.map((p) => p.close()))
  }
})

test('an HTTP-01 validation resolves the name through the UDP responder; another address makes it fail', async () => {
  const httpPort = await freePort()
  const tokens = new Map<string, string>()
  const asked: string[] = []
  // RFC 8555 §8.3: the key authorization at /.well-known/acme-challenge/<token>
  const challenges = http.createServer((req, res) => {
    asked.push(req.headers.host ?? '')
    const token = /^\/\.well-known\/acme-challenge\/([\w-]+)$/.exec(req.url ?? '')?.[1]
    const answer = token === undefined ? undefined : tokens.get(token)
    if (answer === undefined) return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(answer)
  })
  await new Promise<void>((resolve) => challenges.listen(httpPort, '127.0.0.1', resolve))
  const pebble = await startPebble({ httpPort, tlsPort: await freePort(), validitySeconds: 120 })
  try {
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: readFileSync(pebble.caFile), keepAlive: false })
    const client = new acme.Client({ directoryUrl: pebble.directory, accountKey: await acme.crypto.createPrivateKey() })
    const order = async (name: string) => {
      const [, csr] = await acme.crypto.createCsr({ commonName: name })
      return client.auto({
        csr,
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => void tokens.set(challenge.token, keyAuthorization),
        challengeRemoveFn: async (_authz, challenge) => void tokens.delete(challenge.token),
      })
    }

    const chain = (await order('shop.example.com')).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
    assert.equal(chain.length, 2, 'leaf and intermediate')
    const leaf = new X509Certificate(chain[0]!)
    const intermediate = new X509Certificate(chain[1]!)
    assert.equal(leaf.subjectAltName, 'DNS:shop.example.com')
    assert.ok(leaf.verify(intermediate.publicKey))
    assert.ok(intermediate.verify(new X509Certificate(await pebble.root()).publicKey), 'the chain ends at root()')
    // certificateValidityPeriod: 120 s
    assert.ok(leaf.validToDate.getTime() - leaf.validFromDate.getTime() <= 120_000)
    assert.ok(pebble.queried.has('shop.example.com'))
    assert.ok(asked.length > 0)
    assert.ok(asked.every((host) => host === `shop.example.com:${httpPort}`))

    pebble.setAddress('127.0.0.3')
    await assert.rejects(order('other.example.com'), /127\.0\.0\.3/)
    assert.ok(pebble.queried.has('other.example.com'))
  } finally {
    await pebble.close()
    await new Promise((resolve) => challenges.close(resolve))
  }
})

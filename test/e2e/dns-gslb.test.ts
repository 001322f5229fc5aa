import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import dnsPacket from 'dns-packet'
import { startServer, type TestServer } from '../helpers/server.ts'
import { udp, tcp } from '../helpers/dns.ts'

/** A tiny HTTP edge on `host`: answers 200 at /health while `up`. */
async function edge(host: string, port = 0): Promise<{ port: number; stop(): Promise<void>; start(): Promise<void> }> {
  let server: http.Server
  let bound = port
  const start = () =>
    new Promise<void>((resolve) => {
      server = http.createServer((_req, res) => res.end('ok'))
      server.listen(bound, host, () => {
        bound = (server.address() as AddressInfo).port
        resolve()
      })
    })
  await start()
  const e = { port: bound, start, stop: () => new Promise<void>((r) => { server.closeAllConnections(); if (!server.listening) return r(); server.close(() => r()) }) }
  edges.push(e)
  return e
}

/** A query with an EDNS Client Subnet option (RFC 7871 §6). */
function ecsQuery(name: string, type: string, subnet: string, prefix: number, id = 1): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [{ code: 8, family: subnet.includes(':') ? 2 : 1, sourcePrefixLength: prefix, scopePrefixLength: 0, ip: subnet } as never] } as never],
  })
}

function plain(name: string, type = 'A', id = 1): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ name, type: type as 'A', class: 'IN' }] })
}

const addrs = (p: { answers?: { type: string; data?: unknown }[] }) => (p.answers ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => a.data as string)

const servers: TestServer[] = []
const edges: { stop(): Promise<void> }[] = []
after(async () => {
  for (const s of servers) await s.close()
  for (const e of edges) await e.stop().catch(() => {})
})

async function start(dns: Record<string, unknown>): Promise<{ s: TestServer; port: number }> {
  const s = await startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: { listen: { host: '127.0.0.1', port: 0 }, ...dns } as never })
  servers.push(s)
  return { s, port: s.box.dns!.port }
}

const zone = { origin: 'edge.test', records: [{ name: '@', type: 'NS', data: 'ns1' }, { name: 'ns1', type: 'A', data: '127.0.0.1' }] }

async function until(what: string, check: () => Promise<boolean>, ms = 5000): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check()) return Date.now() - started
    if (Date.now() - started > ms) assert.fail(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test('GSLB: the first answer names only edges whose first health check passed; answers rotate by weight', async () => {
  const a = await edge('127.0.0.2')
  const b = await edge('127.0.0.3', a.port)
  // 127.0.0.4 has nothing listening on the port: its first check fails, so no answer ever names it
  const { port } = await start({
    zones: [zone],
    balance: [{ name: 'www.edge.test', ttl: 20, answers: 1, edges: [{ name: 'a', addresses: ['127.0.0.2'], weight: 3 }, { name: 'b', addresses: ['127.0.0.3'] }, { name: 'dead', addresses: ['127.0.0.4'] }], check: { kind: 'http', port: a.port, path: '/health', interval: 60_000 } }],
  })
  const seen: Record<string, number> = {}
  for (let i = 0; i < 40; i++) {
    const r = await udp(port, plain('www.edge.test'))
    assert.equal(r.flag_aa, true)
    assert.equal(r.answers[0]!.ttl, 20)
    const got = addrs(r)
    assert.equal(got.length, 1)
    seen[got[0]!] = (seen[got[0]!] ?? 0) + 1
  }
  assert.deepEqual(seen, { '127.0.0.2': 30, '127.0.0.3': 10 }, 'weight 3 against weight 1, and never the dead edge')
  // AAAA: no IPv6 edge, so NODATA with the SOA
  const v6 = await udp(port, plain('www.edge.test', 'AAAA'))
  assert.equal(v6.rcode, 'NOERROR')
  assert.equal(v6.answers.length, 0)
  assert.equal(v6.authorities[0]!.type, 'SOA')
  await a.stop()
  await b.stop()
})

test('GSLB: regions by EDNS Client Subnet or by resolver address, the ECS scope in the answer, failover to the next region', async () => {
  const asia = await edge('127.0.0.5')
  const europe = await edge('127.0.0.6', asia.port)
  const { port } = await start({
    zones: [zone],
    regions: [
      { name: 'asia', networks: ['10.1.0.0/16'], next: ['europe'] },
      { name: 'europe', networks: ['10.2.0.0/16', '127.0.0.0/8'] },
    ],
    balance: [{ name: 'www.edge.test', edges: [{ addresses: ['127.0.0.5'], region: 'asia' }, { addresses: ['127.0.0.6'], region: 'europe' }], check: { kind: 'tcp', port: asia.port, interval: 100, timeout: 300, fall: 2, rise: 1 } }],
  })
  const asked = await udp(port, ecsQuery('www.edge.test', 'A', '10.1.2.0', 24))
  assert.deepEqual(addrs(asked), ['127.0.0.5'])
  const opt = asked.additionals.find((r) => r.type === 'OPT') as unknown as { options: { code: number; sourcePrefixLength: number; scopePrefixLength: number; ip: string }[] }
  const ecs = opt.options.find((o) => o.code === 8)!
  assert.equal(ecs.sourcePrefixLength, 24)
  assert.equal(ecs.scopePrefixLength, 16, 'the answer holds for the whole /16 the client was placed by')
  assert.equal(ecs.ip, '10.1.2.0')
  // no ECS: the resolver's own address (127.0.0.1) places it in europe
  assert.deepEqual(addrs(await udp(port, plain('www.edge.test'))), ['127.0.0.6'])
  // the asia edge stops: within fall x interval (2 x 100 ms) plus a probe's time, asia's clients get europe's edge
  await asia.stop()
  const took = await until('asia fails over to europe', async () => addrs(await udp(port, ecsQuery('www.edge.test', 'A', '10.1.2.0', 24))).join() === '127.0.0.6')
  assert.ok(took < 3000, `${took} ms`)
  // and back when it returns (rise 1)
  await asia.start()
  await until('asia back', async () => addrs(await udp(port, ecsQuery('www.edge.test', 'A', '10.1.2.0', 24))).join() === '127.0.0.5')
  await asia.stop()
  await europe.stop()
})

test('GSLB: every edge down: every edge of the nearest region (fail open); a bad ECS option is FORMERR', async () => {
  const { port } = await start({
    zones: [zone],
    balance: [{ name: 'www.edge.test', answers: 1, edges: [{ addresses: ['127.0.0.7'] }, { addresses: ['127.0.0.8', '::1'] }], check: { kind: 'tcp', port: 9, interval: 60_000, timeout: 300 } }],
  })
  assert.deepEqual(addrs(await tcp(port, plain('www.edge.test'))).sort(), ['127.0.0.7', '127.0.0.8'])
  assert.deepEqual(addrs(await tcp(port, plain('www.edge.test', 'AAAA'))), ['::1'])
  // scope not 0 in a query
  const bad = ecsQuery('www.edge.test', 'A', '10.1.2.0', 24)
  const at = bad.length - 8 + 3 // the option's scope byte: family(2) source(1) scope(1) address(3)
  bad[at - 1] = 5
  const r = await udp(port, bad)
  assert.equal(r.rcode, 'FORMERR')
})

test('GSLB configuration problems are named: a name in no zone, an unknown region, a clash with records', async () => {
  const bad = (dns: Record<string, unknown>) => start(dns).then(() => assert.fail('started'), (err: { issues: string[] }) => err.issues)
  assert.deepEqual(await bad({ zones: [zone], balance: [{ name: 'www.other.test', edges: [{ addresses: ['127.0.0.2'] }] }] }), ['dns.balance[0].name: www.other.test is in no zone of dns.zones; add its zone'])
  assert.deepEqual(await bad({ zones: [zone], balance: [{ name: 'www.edge.test', edges: [{ addresses: ['127.0.0.2'], region: 'mars' }] }] }), ['dns.balance[0].edges[0].region: no region is named mars: add it to dns.regions'])
  assert.deepEqual(await bad({ zones: [{ ...zone, records: [...zone.records, { name: 'www', type: 'A', data: '127.0.0.9' }] }], balance: [{ name: 'www.edge.test', edges: [{ addresses: ['127.0.0.2'] }], check: { kind: 'tcp', port: 9, timeout: 200 } }] }), ['dns.zones[0]: www.edge.test. is a balanced name and has A records; its addresses come from its edges'])
})

test('GSLB: regions from a MaxMind database by country, then continent, for subnets in no configured network; a bad database file is named', async () => {
  const { writeMmdb } = await import('../helpers/mmdb.ts')
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const pathMod = await import('node:path')
  const dir = mkdtempSync(pathMod.join(tmpdir(), 'edgebox-geo-'))
  try {
    const file = pathMod.join(dir, 'geo.mmdb')
    writeFileSync(file, writeMmdb([{ network: '10.1.0.0/16', country: 'JP', continent: 'AS' }, { network: '10.2.0.0/16', country: 'KR', continent: 'AS' }, { network: '10.3.0.0/16', country: 'DE', continent: 'EU' }]))
    const tokyo = await edge('127.0.0.5')
    const frankfurt = await edge('127.0.0.6', tokyo.port)
    const { port } = await start({
      zones: [zone],
      geo: { file },
      regions: [
        { name: 'japan', countries: ['JP'] },
        { name: 'asia', continents: ['AS'], networks: ['10.9.0.0/16'] },
        { name: 'europe', continents: ['EU'] },
      ],
      defaultRegion: 'europe',
      balance: [{ name: 'www.edge.test', answers: 1, edges: [{ addresses: ['127.0.0.5'], region: 'japan' }, { addresses: ['127.0.0.6'], region: 'europe' }], check: { kind: 'tcp', port: tokyo.port, interval: 60_000, timeout: 300 } }],
    })
    const scopeOf = (r: Awaited<ReturnType<typeof udp>>) => (r.additionals.find((x) => x.type === 'OPT') as unknown as { options: { code: number; scopePrefixLength: number }[] }).options.find((o) => o.code === 8)!.scopePrefixLength
    const jp = await udp(port, ecsQuery('www.edge.test', 'A', '10.1.2.0', 24))
    assert.deepEqual(addrs(jp), ['127.0.0.5'], 'JP: the japan region')
    assert.equal(scopeOf(jp), 16, 'the scope is the database network the answer holds for')
    // KR is in no region by country; its continent, AS, is asia's, which has no edge: asia falls over (next: every other region in order)
    assert.deepEqual(addrs(await udp(port, ecsQuery('www.edge.test', 'A', '10.2.2.0', 24))), ['127.0.0.5'])
    assert.deepEqual(addrs(await udp(port, ecsQuery('www.edge.test', 'A', '10.3.2.0', 24))), ['127.0.0.6'], 'DE: europe by continent')
    await tokyo.stop()
    await frankfurt.stop()
    const bad = pathMod.join(dir, 'bad.mmdb')
    writeFileSync(bad, 'not a database')
    await assert.rejects(start({ zones: [zone], geo: { file: bad } }), (err: { issues: string[] }) => {
      assert.match(err.issues[0]!, /^dns\.geo\.file: .*bad\.mmdb is not a MaxMind database/)
      return true
    })
    await assert.rejects(start({ zones: [zone], geo: { file: pathMod.join(dir, 'missing.mmdb') } }), /dns\.geo\.file: cannot read .*missing\.mmdb \(ENOENT\)/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a program that only starts Edgebox with a balanced name gets it started: waiting for the first health checks keeps the process alive', async () => {
  // nothing else keeps this child's event loop alive while startEdgebox waits for the edges' first checks
  const { execFile } = await import('node:child_process')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const path = await import('node:path')
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-gslb-start-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const index = new URL('../../src/index.ts', import.meta.url).href
  const config = {
    listen: [{ host: '127.0.0.1', port: 0 }],
    dataDir: dir,
    log: { level: 'error' },
    dns: { listen: [{ host: '127.0.0.1', port: 0 }], zones: [zone], balance: [{ name: 'www.edge.test', edges: [{ addresses: ['127.0.0.7'] }], check: { kind: 'tcp', port: 9, interval: 60_000, timeout: 300 } }] },
    sites: [{ routes: [{ path: '/', redirect: { to: '/x' } }] }],
  }
  const script = `import { startEdgebox } from ${JSON.stringify(index)}; const box = await startEdgebox(${JSON.stringify(config)}); console.log('started'); await box.close()`
  const out = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }))
  })
  assert.equal(out.code, 0)
  assert.match(out.stdout, /^started$/m)
})

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import dnsPacket from 'dns-packet'
import { startServer, type TestServer } from '../helpers/server.ts'
import { ManualClock } from '../helpers/clock.ts'
import { query, udp, lines } from '../helpers/dns.ts'

/**
 * A whole DNS hierarchy on loopback, one port: a root on 127.0.0.2, `test.`
 * on 127.0.0.3, `edgebox.test.` on 127.0.0.4 (each an Edgebox), and a
 * misbehaving authority for `bad.` on 127.0.0.5; the resolver under test on
 * 127.0.0.1 starts from the local root.
 */

const site = { sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }] }
const rec = (name: string, type: string, data: string, ttl?: number) => ({ name, type, data, ...(ttl !== undefined ? { ttl } : {}) })

const zones = {
  root: { origin: '.', ttl: 86400, records: [rec('@', 'SOA', 'a.root-servers.net. nstld.test. 1 1800 900 604800 86400'), rec('@', 'NS', 'a.root-servers.net.'), rec('a.root-servers.net.', 'A', '127.0.0.2'), rec('test.', 'NS', 'ns.test.'), rec('ns.test.', 'A', '127.0.0.3'), rec('bad.', 'NS', 'ns.bad.'), rec('ns.bad.', 'A', '127.0.0.5')] },
  test: { origin: 'test', ttl: 3600, records: [rec('@', 'SOA', 'ns h 1 1800 900 604800 300'), rec('@', 'NS', 'ns'), rec('ns', 'A', '127.0.0.3'), rec('edgebox', 'NS', 'ns.edgebox'), rec('ns.edgebox', 'A', '127.0.0.4')] },
  edgebox: { origin: 'edgebox.test', records: [rec('@', 'SOA', 'ns h 1 1800 900 604800 60'), rec('@', 'NS', 'ns'), rec('ns', 'A', '127.0.0.4'), rec('www', 'A', '192.0.2.10', 300), rec('alias', 'CNAME', 'www', 300), rec('away', 'CNAME', 'nothing.test.', 300)] },
}

let port = 0
const authorities: TestServer[] = []
let fake: dgram.Socket
const clock = new ManualClock()
let resolver: TestServer
let rport = 0
const fakeSeen: string[] = []

/** The misbehaving authority for `bad.`: what each name gets is in the switch. */
function startFake(p: number): Promise<dgram.Socket> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    s.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg)
      const name = q.questions![0]!.name
      fakeSeen.push(name.toLowerCase())
      const reply = (answers: dnsPacket.Answer[], opts: { id?: number; authorities?: dnsPacket.Answer[]; additionals?: dnsPacket.Answer[] } = {}) =>
        s.send(dnsPacket.encode({ type: 'response', id: opts.id ?? q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, answers, authorities: opts.authorities ?? [], additionals: opts.additionals ?? [] }), rinfo.port, rinfo.address)
      switch (name.toLowerCase()) {
        case 'silent.bad':
          return // never answers
        case 'wrongid.bad':
          return reply([{ name, type: 'A', ttl: 60, data: '192.0.2.66' }], { id: (q.id! + 1) & 0xffff })
        case 'poison.bad':
          // an answer for its own name, and records for a name in another zone (www.edgebox.test): out of bailiwick
          return reply([{ name, type: 'A', ttl: 60, data: '192.0.2.67' }, { name: 'www.edgebox.test', type: 'A', ttl: 86400, data: '6.6.6.6' }], { additionals: [{ name: 'ns.edgebox.test', type: 'A', ttl: 86400, data: '6.6.6.6' }] })
        case 'sub.bad':
          // a referral whose glue names a server in another zone (ns.edgebox.test) with a forged address: out of bailiwick
          return s.send(dnsPacket.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions, answers: [], authorities: [{ name: 'sub.bad', type: 'NS', ttl: 60, data: 'ns.edgebox.test' }], additionals: [{ name: 'ns.edgebox.test', type: 'A', ttl: 86400, data: '6.6.6.6' }] }), rinfo.port, rinfo.address)
        case 'loop1.bad':
          return reply([{ name, type: 'CNAME', ttl: 60, data: 'loop2.bad' }])
        case 'loop2.bad':
          return reply([{ name, type: 'CNAME', ttl: 60, data: 'loop1.bad' }])
        case 'deep.bad':
        case 'x.deep.bad':
          // a "referral" back up to bad. itself: not below the zone asked, a referral loop
          return s.send(dnsPacket.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions, answers: [], authorities: [{ name: 'bad', type: 'NS', ttl: 60, data: 'ns.bad' }] }), rinfo.port, rinfo.address)
        default:
          return reply([{ name, type: 'A', ttl: 60, data: '192.0.2.68' }])
      }
    })
    s.bind(p, '127.0.0.5', () => resolve(s))
  })
}

before(async () => {
  const first = await startServer({ ...site, dns: { listen: { host: '127.0.0.2', port: 0 }, zones: [zones.root] } } as never)
  authorities.push(first)
  port = first.box.dns!.port
  authorities.push(await startServer({ ...site, dns: { listen: { host: '127.0.0.3', port }, zones: [zones.test] } } as never))
  authorities.push(await startServer({ ...site, dns: { listen: { host: '127.0.0.4', port }, zones: [zones.edgebox] } } as never))
  fake = await startFake(port)
  resolver = await startServer(
    { ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['127.0.0.0/8'], rootHints: [{ name: 'a.root-servers.net', address: '127.0.0.2' }], authorityPort: port, timeout: 300 } } } as never,
    undefined,
    { clock },
  )
  rport = resolver.box.dns!.port
})

after(async () => {
  await resolver.close()
  for (const a of authorities) await a.close().catch(() => {})
  fake.close()
})

const ask = (name: string, type = 'A', id = 1) => udp(rport, query(name, type, { id, udpSize: 1232 }))

test('iterative resolution from the root: RA set, AA off, the answer and its TTL; then from the cache with a falling TTL', async () => {
  const r = await ask('www.edgebox.test')
  assert.equal(r.rcode, 'NOERROR')
  assert.equal(r.flag_ra, true)
  assert.equal(r.flag_aa, false)
  assert.deepEqual(lines(r), ['www.edgebox.test 300 A 192.0.2.10'])
  clock.advance(100_000)
  assert.deepEqual(lines(await ask('WWW.edgebox.TEST')), ['WWW.edgebox.TEST 200 A 192.0.2.10'])
})

test('CNAME chains are chased; a chain into a name that does not exist is NXDOMAIN with the SOA', async () => {
  // both from the authority's one answer (the chain inside its zone), so both with their full TTL
  assert.deepEqual(lines(await ask('alias.edgebox.test')), ['alias.edgebox.test 300 CNAME www.edgebox.test', 'www.edgebox.test 300 A 192.0.2.10'])
  const away = await ask('away.edgebox.test')
  assert.equal(away.rcode, 'NXDOMAIN')
  assert.deepEqual(lines(away), ['away.edgebox.test 300 CNAME nothing.test'])
  assert.equal(away.authorities[0]!.type, 'SOA')
})

test('negative answers are cached for the SOA\'s negative TTL (RFC 2308)', async () => {
  const nx = await ask('nope.edgebox.test')
  assert.equal(nx.rcode, 'NXDOMAIN')
  assert.equal(nx.authorities[0]!.ttl, 60)
  clock.advance(30_000)
  const again = await ask('nope.edgebox.test')
  assert.equal(again.rcode, 'NXDOMAIN')
  assert.equal(again.authorities[0]!.ttl, 30)
  const nodata = await ask('www.edgebox.test', 'MX')
  assert.equal(nodata.rcode, 'NOERROR')
  assert.equal(nodata.answers.length, 0)
  assert.equal(nodata.authorities[0]!.type, 'SOA')
})

test('faults: a silent authority, a wrong ID, a CNAME loop and a referral loop are SERVFAIL; out-of-bailiwick records are never cached', async () => {
  assert.equal((await ask('silent.bad')).rcode, 'SERVFAIL')
  assert.equal((await ask('wrongid.bad')).rcode, 'SERVFAIL')
  assert.equal((await ask('loop1.bad')).rcode, 'SERVFAIL')
  assert.equal((await ask('x.deep.bad')).rcode, 'SERVFAIL')
  assert.deepEqual(lines(await ask('poison.bad')), ['poison.bad 60 A 192.0.2.67'])
  // a referral to sub.bad with forged glue for ns.edgebox.test: the glue is not taken; the real ns.edgebox.test (127.0.0.4)
  // is then asked about sub.bad, which it does not serve (REFUSED): SERVFAIL
  assert.equal((await ask('sub.bad')).rcode, 'SERVFAIL')
  // the forged records for www.edgebox.test and for its name server's address were not taken
  const www = await ask('www.edgebox.test')
  assert.deepEqual(www.answers.map((a) => a.data), ['192.0.2.10'])
  clock.advance(400_000) // past www's TTL: asked again through edgebox.test's server, whose address must still be the real one
  assert.deepEqual(lines(await ask('www.edgebox.test')), ['www.edgebox.test 300 A 192.0.2.10'], 'a fresh answer (TTL 300), not stale data (TTL 30)')
})

test('query name minimisation: each server is shown one label more than its zone (RFC 9156)', async () => {
  // a root that records what it is asked, and refers everything to bad.
  const rootSeen: string[] = []
  const root = dgram.createSocket('udp4')
  root.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg)
    rootSeen.push(`${q.questions![0]!.name.toLowerCase()} ${q.questions![0]!.type}`)
    root.send(dnsPacket.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions, authorities: [{ name: 'bad', type: 'NS', ttl: 60, data: 'ns.bad' }], additionals: [{ name: 'ns.bad', type: 'A', ttl: 60, data: '127.0.0.5' }] }), rinfo.port, rinfo.address)
  })
  await new Promise<void>((r) => root.bind(port, '127.0.0.6', () => r()))
  const fresh = await startServer({ ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['127.0.0.0/8'], rootHints: [{ name: 'r.test', address: '127.0.0.6' }], authorityPort: port, timeout: 300 } } } as never)
  try {
    fakeSeen.length = 0
    const r = await udp(fresh.box.dns!.port, query('x.y.bad', 'AAAA', { udpSize: 1232 }))
    assert.equal(r.rcode, 'NOERROR')
    assert.deepEqual(rootSeen, ['bad A'], 'the root learns only the top-level label')
    assert.deepEqual(fakeSeen, ['y.bad', 'x.y.bad'], 'the zone\'s server is shown one label more at a time')
  } finally {
    await fresh.close()
    root.close()
  }
})

test('prefetch: an answer asked for in the last tenth of its TTL is refreshed in the background', async () => {
  await ask('www.edgebox.test')
  // find where www's TTL stands, then move to its last tenth (300 s TTL: the last 30 s)
  const ttl = (await ask('www.edgebox.test')).answers[0]!.ttl
  clock.advance((ttl - 20) * 1000)
  assert.equal((await ask('www.edgebox.test')).answers[0]!.ttl, 20, 'still from the cache')
  await new Promise((r) => setTimeout(r, 200)) // the background refresh
  // past the first answer's expiry: from the cache, refreshed 20 s before it ran out (a re-resolution would say 300)
  clock.advance(30_000)
  assert.equal((await ask('www.edgebox.test')).answers[0]!.ttl, 270)
})

test('a zone with a server that never answers: the other one is asked, and after one timeout the fast one first (smoothed RTT)', async () => {
  // a root that refers slow. to two servers: ns1 (127.0.0.7) never answers, ns2 (127.0.0.8) does
  const sockets: dgram.Socket[] = []
  const bind = (host: string, onMessage: (s: dgram.Socket, q: dnsPacket.DecodedPacket, r: dgram.RemoteInfo) => void) =>
    new Promise<void>((resolve) => {
      const sock = dgram.createSocket('udp4')
      sock.on('message', (m, r) => onMessage(sock, dnsPacket.decode(m), r))
      sock.bind(port, host, () => resolve())
      sockets.push(sock)
    })
  let silentAsked = 0
  await bind('127.0.0.9', (sock, q, r) =>
    sock.send(dnsPacket.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions, authorities: [{ name: 'slow', type: 'NS', ttl: 60, data: 'ns1.slow' }, { name: 'slow', type: 'NS', ttl: 60, data: 'ns2.slow' }], additionals: [{ name: 'ns1.slow', type: 'A', ttl: 60, data: '127.0.0.7' }, { name: 'ns2.slow', type: 'A', ttl: 60, data: '127.0.0.8' }] }), r.port, r.address),
  )
  await bind('127.0.0.7', () => void silentAsked++)
  await bind('127.0.0.8', (sock, q, r) => sock.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, answers: [{ name: q.questions![0]!.name, type: 'A', ttl: 60, data: '192.0.2.80' }] }), r.port, r.address))
  const res = await startServer({ ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['127.0.0.0/8'], rootHints: [{ name: 'r.test', address: '127.0.0.9' }], authorityPort: port, timeout: 300, qnameMinimisation: false } } } as never)
  try {
    for (const name of ['a.slow', 'b.slow', 'c.slow', 'd.slow']) {
      const r = await udp(res.box.dns!.port, query(name, 'A', { udpSize: 1232 }))
      assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.80'], name)
    }
    assert.ok(silentAsked <= 1, `the silent server was asked ${silentAsked} times`)
  } finally {
    await res.close()
    for (const sock of sockets) sock.close()
  }
})

test('serve-stale: with every authority of the zone gone, an expired answer is served with TTL 30 (RFC 8767)', async () => {
  await ask('www.edgebox.test')
  await authorities[2]!.close()
  clock.advance(600_000)
  const r = await ask('www.edgebox.test')
  assert.equal(r.rcode, 'NOERROR')
  assert.deepEqual(lines(r), ['www.edgebox.test 30 A 192.0.2.10'])
})

test('never an open resolver: clients outside allow are REFUSED without RA, and so are queries without RD', async () => {
  const closed = await startServer({ ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['10.0.0.0/8'], rootHints: [{ name: 'a.root-servers.net', address: '127.0.0.2' }], authorityPort: port } } } as never)
  try {
    const r = await udp(closed.box.dns!.port, query('www.edgebox.test', 'A'))
    assert.equal(r.rcode, 'REFUSED')
    assert.equal(r.flag_ra, false)
  } finally {
    await closed.close()
  }
  const nord = await udp(rport, query('www.edgebox.test', 'A', { rd: false }))
  assert.equal(nord.rcode, 'REFUSED')
  assert.equal(nord.flag_ra, true)
})

test('a resolver needs allow: the configuration says why', async () => {
  await assert.rejects(startServer({ ...site, dns: { listen: { port: 0 }, resolver: {} } } as never), /dns\.resolver\.allow: .*open resolver/)
})

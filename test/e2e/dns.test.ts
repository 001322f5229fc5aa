import { test, after, before } from 'node:test'
import dgram from 'node:dgram'
import assert from 'node:assert/strict'
import path from 'node:path'
import fc from 'fast-check'
import { startServer, type TestServer } from '../helpers/server.ts'
import { decode, frame, lines, query, tcp, tcpRaw, udp, udpRaw } from '../helpers/dns.ts'
import { ConfigError } from '../../src/core/errors.ts'

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dns')
let s: TestServer
let port: number

const dnsConfig = (extra: Record<string, unknown> = {}) => ({
  listen: { host: '127.0.0.1', port: 0 },
  tcpIdleTimeout: 400,
  zones: [
    { origin: 'example.test', file: 'example.test.zone' },
    {
      origin: 'edge.test',
      ttl: 120,
      records: [
        { name: '@', type: 'NS', data: 'ns1' },
        { name: 'ns1', type: 'A', data: '127.0.0.2' },
        { name: 'www', type: 'A', data: '127.0.0.2', ttl: 30 },
        { name: 'www', type: 'A', data: '127.0.0.3', ttl: 30 },
      ],
    },
  ],
  ...extra,
})

before(async () => {
  s = await startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: dnsConfig() }, fixtures)
  port = s.box.dns!.port
})
after(() => s.close())

test('UDP and TCP answer on the same port', async () => {
  assert.match(s.box.dns!.url, /^udp\+tcp:\/\/127\.0\.0\.1:\d+$/)
  const u = await udp(port, query('www.example.test', 'A'))
  const t = await tcp(port, query('www.example.test', 'A'))
  assert.deepEqual(lines(u), ['www.example.test 60 A 192.0.2.1', 'www.example.test 60 A 192.0.2.2'])
  assert.deepEqual(lines(t), lines(u))
})

test('a zone from the configuration gets an SOA made for it (serial: when it was loaded)', async () => {
  const a = await udp(port, query('www.edge.test', 'A'))
  assert.deepEqual(lines(a), ['www.edge.test 30 A 127.0.0.2', 'www.edge.test 30 A 127.0.0.3'])
  const soa = await udp(port, query('edge.test', 'SOA'))
  const data = soa.answers[0]!.data as { mname: string; rname: string; serial: number; minimum: number }
  assert.equal(data.mname, 'ns1.edge.test')
  assert.equal(data.rname, 'hostmaster.edge.test')
  assert.ok(Math.abs(data.serial - Date.now() / 1000) < 600)
  assert.equal(data.minimum, 300)
  assert.equal(soa.answers[0]!.ttl, 120)
})

test('truncation: TC over UDP, then the whole answer over TCP', async () => {
  const u = await udp(port, query('big.example.test', 'TXT'))
  assert.equal(u.flag_tc, true)
  assert.ok(u.raw.length <= 512)
  const t = await tcp(port, query('big.example.test', 'TXT'))
  assert.equal(t.flag_tc, false)
  assert.equal(t.answers.length, 3)
  assert.ok(t.raw.length > 512)
})

test('TCP pipelining: several queries in one write, each answered with its id', async () => {
  const ids = [11, 22, 33, 44]
  const names = ['www.example.test', 'mail.example.test', 'nope.example.test', 'www.edge.test']
  const bytes = Buffer.concat(ids.map((id, i) => frame(query(names[i]!, 'A', { id }))))
  // split across writes in the middle of a frame, too
  const { answers } = await tcpRaw(port, [bytes.subarray(0, 7), bytes.subarray(7, 40), bytes.subarray(40)], 4)
  const got = answers.map((a) => decode(a)).map((p) => [p.id, p.questions[0]!.name, p.rcode])
  assert.deepEqual(got.sort((a, b) => (a[0] as number) - (b[0] as number)), [
    [11, 'www.example.test', 'NOERROR'],
    [22, 'mail.example.test', 'NOERROR'],
    [33, 'nope.example.test', 'NXDOMAIN'],
    [44, 'www.edge.test', 'NOERROR'],
  ])
})

test('TCP: a zero-length frame is skipped and the next query answered; an idle connection is closed', async () => {
  const { answers } = await tcpRaw(port, [Buffer.from([0, 0]), frame(query('www.example.test', 'A', { id: 7 }))], 1)
  assert.equal(decode(answers[0]!).id, 7)
  const started = Date.now()
  const idle = await tcpRaw(port, [], 1, 5000)
  assert.equal(idle.closed, true)
  assert.ok(Date.now() - started < 4000, 'closed by tcpIdleTimeout (400 ms), not by the test')
})

test('malformed packets (a fixed-seed corpus) over UDP and TCP: FORMERR or dropped, never a crash, and the next query answered', async () => {
  const seed = 20261206
  const good = query('www.example.test', 'A')
  // mutations of a good query (bytes flipped, cut, counts that lie, pointer loops) and random bytes
  const packet = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 80 }),
    fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const b = Buffer.from(good)
      b[i] = v
      return b
    }),
    fc.nat(good.length).map((n) => good.subarray(0, n)),
    fc.tuple(fc.integer({ min: 4, max: 10 }), fc.integer({ min: 0, max: 65535 })).map(([at, v]) => {
      const b = Buffer.from(good)
      b.writeUInt16BE(v, at & ~1)
      return b
    }),
    // a question name that is a compression pointer to itself, and an answer record pointing forwards
    fc.constant(Buffer.from('0001010000010000000000000c000000010001', 'hex')),
    fc.constant(Buffer.concat([good, Buffer.from('c00c0001000100000000000400', 'hex')])),
  )
  const cases = fc.sample(packet, { seed, numRuns: 3000 }).map((p) => Buffer.from(p))
  let answered = 0
  for (let i = 0; i < cases.length; i += 500) {
    const batch = cases.slice(i, i + 500)
    const replies = await Promise.all(batch.map((c) => udpRaw(port, c, 250)))
    for (const [j, r] of replies.entries()) {
      if (!r) continue
      answered++
      const p = decode(r)
      assert.equal(p.type, 'response', `seed ${seed}, case ${i + j}`)
      if (batch[j]!.length >= 12) assert.equal(p.id, batch[j]!.readUInt16BE(0))
    }
  }
  assert.ok(answered > 100, `many malformed queries got an answer (${answered})`)
  // over TCP: every case framed on one connection, then a good query, which is answered
  const framed = cases.slice(0, 500).map(frame)
  const { answers } = await tcpRaw(port, [...framed, frame(query('www.example.test', 'A', { id: 999 }))], 10_000, 3000)
  assert.ok(answers.some((a) => decode(a).id === 999 && decode(a).rcode === 'NOERROR'), `seed ${seed}: the good query after the corpus is answered over TCP`)
  assert.deepEqual(lines(await udp(port, good)), ['www.example.test 60 A 192.0.2.1', 'www.example.test 60 A 192.0.2.2'])
})

test('a reload changes the zones without closing the listener; a bad zone is refused and the old one kept', async () => {
  const next = dnsConfig()
  ;(next.zones[1] as { records: { name: string; type: string; data: string }[] }).records.push({ name: 'new', type: 'A', data: '127.0.0.9' })
  const reload = (dns: unknown) => s.box.reload({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], listen: s.box.config.listen, log: { access: false, level: 'silent' }, dns } as never)
  await reload(next)
  assert.deepEqual(lines(await udp(port, query('new.edge.test', 'A'))), ['new.edge.test 120 A 127.0.0.9'])
  const bad = dnsConfig()
  ;(bad.zones[1] as { records: { name: string; type: string; data: string }[] }).records.push({ name: 'x', type: 'A', data: 'not-an-address' })
  await assert.rejects(reload(bad), (err: ConfigError) => {
    assert.deepEqual(err.issues, ['dns.zones[1].records[4].data: A data is an IPv4 address, not "not-an-address"'])
    return true
  })
  assert.deepEqual(lines(await udp(port, query('new.edge.test', 'A'))), ['new.edge.test 120 A 127.0.0.9'])
})

test('configuration problems name their path: an unreadable file, a zone file with errors, no zone content', async () => {
  const start = (dns: unknown) => startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: dns as never }, fixtures)
  await assert.rejects(start({ listen: { port: 0 }, zones: [{ origin: 'a.test', file: 'missing.zone' }] }), (err: ConfigError) => {
    assert.match(err.issues[0]!, /^dns\.zones\[0\]\.file: cannot read .*missing\.zone: ENOENT$/)
    return true
  })
  await assert.rejects(start({ listen: { port: 0 }, zones: [{ origin: 'a.test' }] }), /dns\.zones\.0: a zone needs a file or records|dns\.zones\[0\]: a zone needs a file or records/)
  await assert.rejects(start({ listen: { port: 0 }, zones: [{ origin: 'a.test', records: [{ name: '@', type: 'A', data: '192.0.2.1' }] }] }), (err: ConfigError) => {
    assert.deepEqual(err.issues, ['dns.zones[0]: the zone a.test. has no NS records at its apex'])
    return true
  })
  await assert.rejects(start({ listen: { host: 'localhost', port: 0 }, zones: [] }), /dns\.listen\.host/)
})

test('the DNS port taken: a clear error, and nothing left listening', async () => {
  await assert.rejects(
    startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: { listen: { host: '127.0.0.1', port }, zones: [] } }),
    (err: ConfigError) => {
      assert.match(err.issues[0]!, new RegExp(`^dns\\.listen: cannot listen on 127\\.0\\.0\\.1:${port} over UDP and TCP \\(EADDRINUSE\\)$`))
      return true
    },
  )
})

test('several listen addresses, each answering the zones that are `on` it (views by destination address)', async () => {
  const v = await startServer({
    sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }],
    dns: {
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.5', port: 0 }],
      zones: [{ origin: 'inside.test', on: ['127.0.0.5'], records: [{ name: '@', type: 'NS', data: 'ns' }, { name: 'ns', type: 'A', data: '127.0.0.5' }, { name: 'db', type: 'A', data: '10.0.0.7' }] }, { origin: 'edge.test', records: [{ name: '@', type: 'NS', data: 'ns' }, { name: 'ns', type: 'A', data: '127.0.0.1' }] }],
    },
  })
  try {
    const [first, second] = v.box.dns!.urls.map((u) => Number(u.split(':').pop()))
    assert.match(v.box.dns!.urls[1]!, /^udp\+tcp:\/\/127\.0\.0\.5:\d+$/)
    const ask = (host: string, port: number, name: string) =>
      new Promise<ReturnType<typeof decode>>((resolve, reject) => {
        const s = dgram.createSocket('udp4')
        s.on('message', (m) => (s.close(), resolve(decode(m))))
        s.on('error', reject)
        s.send(query(name, 'A'), port, host)
      })
    assert.equal((await ask('127.0.0.1', first!, 'db.inside.test')).rcode, 'REFUSED')
    assert.deepEqual(lines(await ask('127.0.0.5', second!, 'db.inside.test')), ['db.inside.test 3600 A 10.0.0.7'])
    assert.equal((await ask('127.0.0.5', second!, 'ns.edge.test')).rcode, 'NOERROR', 'a zone without `on` is answered everywhere')
  } finally {
    await v.close()
  }
  await assert.rejects(
    startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: { listen: { host: '127.0.0.1', port: 0 }, zones: [{ origin: 'a.test', on: ['127.0.0.9'], records: [{ name: '@', type: 'NS', data: 'ns' }] }] } }),
    /dns\.zones\[0\]\.on\[0\]: 127\.0\.0\.9 is not one of dns\.listen's addresses \(127\.0\.0\.1\)/,
  )
})

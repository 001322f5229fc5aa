import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import net from 'node:net'
import { after, before, test } from 'node:test'
import dnsPacket from 'dns-packet'
import type { Answer, DecodedPacket, Packet } from 'dns-packet'
import { explainDns, parseServer, queryDns } from '../../src/inspect/dns.ts'

// A tiny DNS server: www.test -> app.test (CNAME), app.test with two A and one AAAA,
// big.test truncated over UDP and complete over TCP on the same port, NXDOMAIN for the rest.

const BIG = Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`)

function answer(query: DecodedPacket, tcp: boolean): Packet {
  const q = query.questions![0]!
  const name = q.name.toLowerCase()
  const base = { type: 'response' as const, id: query.id, questions: query.questions }
  const rd = query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | rd
  const records: Answer[] = []
  if (name === 'www.test') records.push({ type: 'CNAME', name: 'www.test', ttl: 600, data: 'app.test' })
  if (name === 'www.test' || name === 'app.test') {
    if (q.type === 'A') records.push({ type: 'A', name: 'app.test', ttl: 300, data: '192.0.2.1' }, { type: 'A', name: 'app.test', ttl: 120, data: '192.0.2.2' })
    if (q.type === 'AAAA') records.push({ type: 'AAAA', name: 'app.test', ttl: 300, data: '2001:db8::1' })
    return { ...base, flags, answers: records }
  }
  if (name === 'big.test') {
    if (!tcp) return { ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [] }
    return { ...base, flags, answers: q.type === 'A' ? BIG.map((data) => ({ type: 'A' as const, name: 'big.test', ttl: 60, data })) : [] }
  }
  if (name === 'cache.test') return { ...base, flags: rd | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHENTIC_DATA, answers: [{ type: 'A', name: 'cache.test', ttl: 42, data: '203.0.113.9' }] }
  if (name === 'badid.test') return { ...base, id: (query.id! + 1) & 0xffff, flags }
  return { ...base, flags: flags | 3 /* NXDOMAIN */, answers: [] }
}

let udp: dgram.Socket
let tcp: net.Server
let silent: dgram.Socket
let port: number
let silentPort: number
let tcpQueries = 0

/** The fixture's UDP server, and a TCP server on the same port number (a port free for both is looked for). */
async function bindBoth(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    udp = dgram.createSocket('udp4')
    udp.on('message', (msg, rinfo) => {
      const query = dnsPacket.decode(msg)
      if (query.questions?.[0]?.name === 'junk.test') return void udp.send(Buffer.from([1, 2, 3]), rinfo.port, rinfo.address)
      udp.send(dnsPacket.encode(answer(query, false)), rinfo.port, rinfo.address)
    })
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve))
    port = udp.address().port

    tcp = net.createServer((socket) => {
      let buf = Buffer.alloc(0)
      socket.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk])
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return
        tcpQueries++
        const query = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)))
        socket.end(dnsPacket.streamEncode(answer(query, true)))
      })
    })
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false))
      tcp.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (listening) return
    // the port number is taken for TCP (by another test): try another one
    udp.close()
    if (attempt >= 20) throw new Error('no port free for both UDP and TCP')
  }
}

before(async () => {
  await bindBoth()

  silent = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
  silentPort = silent.address().port
})

after(async () => {
  udp.close()
  silent.close()
  await new Promise((resolve) => tcp.close(resolve))
})

test('parseServer: addresses with and without ports, IPv6 in brackets, nothing else', () => {
  assert.deepEqual(parseServer('1.1.1.1'), { host: '1.1.1.1', port: 53, family: 4, label: '1.1.1.1:53' })
  assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353, family: 4, label: '127.0.0.1:5353' })
  assert.deepEqual(parseServer('::1'), { host: '::1', port: 53, family: 6, label: '[::1]:53' })
  assert.deepEqual(parseServer('[2001:db8::1]:5300'), { host: '2001:db8::1', port: 5300, family: 6, label: '[2001:db8::1]:5300' })
  assert.deepEqual(parseServer('[::1]'), { host: '::1', port: 53, family: 6, label: '[::1]:53' })
  assert.throws(() => parseServer('dns.example'), /not an IP address/)
  assert.throws(() => parseServer('1.2.3.4:70000'), /port/)
  assert.throws(() => parseServer('[1.2.3.4]:53'), /brackets/)
})

test('A and AAAA through a CNAME chain: records, TTLs, flags, rcode', async () => {
  const a = await queryDns(`127.0.0.1:${port}`, 'www.test', 'A', { timeoutMs: 2000 })
  assert.equal(a.server, `127.0.0.1:${port}`)
  assert.equal(a.name, 'www.test')
  assert.equal(a.rcode, 'NOERROR')
  assert.equal(a.transport, 'udp')
  assert.deepEqual(a.flags, { authoritative: true, truncated: false, recursionDesired: true, recursionAvailable: false, authenticData: false })
  assert.deepEqual(a.answers, [
    { name: 'www.test', type: 'CNAME', ttl: 600, data: 'app.test' },
    { name: 'app.test', type: 'A', ttl: 300, data: '192.0.2.1' },
    { name: 'app.test', type: 'A', ttl: 120, data: '192.0.2.2' },
  ])
  assert.ok(a.ms >= 0)
  const lines = explainDns(a)
  assert.ok(lines.includes('www.test is an alias (CNAME) for app.test, cached for up to 600 s'), lines.join('\n'))
  assert.ok(lines.includes('app.test has 2 IPv4 addresses, cached for up to 120 s by resolvers (TTL)'), lines.join('\n'))
  assert.ok(lines.some((l) => /authoritative: it comes from a server responsible/.test(l)))
  assert.ok(lines.some((l) => /does not offer recursion/.test(l)))

  const aaaa = await queryDns('127.0.0.1', 'app.test.', 'AAAA', { port })
  assert.equal(aaaa.name, 'app.test')
  assert.deepEqual(aaaa.answers, [{ name: 'app.test', type: 'AAAA', ttl: 300, data: '2001:db8::1' }])
  assert.ok(explainDns(aaaa).includes('app.test has 1 IPv6 address, cached for up to 300 s by resolvers (TTL)'))
})

test('a resolver answer from cache, with DNSSEC validated', async () => {
  const r = await queryDns(`127.0.0.1:${port}`, 'cache.test', 'A')
  assert.deepEqual(r.flags, { authoritative: false, truncated: false, recursionDesired: true, recursionAvailable: true, authenticData: true })
  const lines = explainDns(r)
  assert.ok(lines.some((l) => /not authoritative: it comes from a recursive resolver/.test(l)))
  assert.ok(lines.some((l) => /DNSSEC/.test(l)))
  assert.ok(!lines.some((l) => /does not offer recursion/.test(l)))
})

test('NXDOMAIN and NODATA', async () => {
  const nx = await queryDns(`127.0.0.1:${port}`, 'nope.test', 'A')
  assert.equal(nx.rcode, 'NXDOMAIN')
  assert.deepEqual(nx.answers, [])
  assert.equal(explainDns(nx)[0], 'NXDOMAIN: the name does not exist')

  const nodata = await queryDns(`127.0.0.1:${port}`, 'big.test', 'AAAA')
  assert.equal(nodata.rcode, 'NOERROR')
  assert.ok(explainDns(nodata).some((l) => /big\.test exists but has no IPv6 address/.test(l)))
})

test('a truncated UDP answer is asked again over TCP', async () => {
  const before = tcpQueries
  const r = await queryDns(`127.0.0.1:${port}`, 'big.test', 'A')
  assert.equal(tcpQueries, before + 1)
  assert.equal(r.transport, 'tcp')
  assert.equal(r.flags.truncated, false)
  assert.deepEqual(
    r.answers.map((x) => x.data),
    BIG,
  )
  assert.ok(r.answers.every((x) => x.ttl === 60 && x.type === 'A'))
  const lines = explainDns(r)
  assert.ok(lines.includes('big.test has 40 IPv4 addresses, cached for up to 60 s by resolvers (TTL)'))
  assert.ok(lines.some((l) => /truncated \(TC flag\), so the query was repeated over TCP/.test(l)))
})

test('a server that never answers: a timeout naming the server', async () => {
  const started = performance.now()
  await assert.rejects(queryDns(`127.0.0.1:${silentPort}`, 'app.test', 'A', { timeoutMs: 300 }), {
    message: `DNS query to 127.0.0.1:${silentPort} timed out after 300 ms`,
  })
  const took = performance.now() - started
  assert.ok(took >= 250 && took < 2000, `took ${took} ms`)
})

test('an unparseable answer and a mismatched ID are errors naming the server', async () => {
  await assert.rejects(queryDns(`127.0.0.1:${port}`, 'junk.test', 'A', { timeoutMs: 1000 }), (err: Error) => {
    assert.match(err.message, new RegExp(`^DNS answer over UDP from 127\\.0\\.0\\.1:${port} could not be parsed`))
    return true
  })
  await assert.rejects(queryDns(`127.0.0.1:${port}`, 'badid.test', 'A', { timeoutMs: 1000 }), (err: Error) => {
    assert.match(err.message, new RegExp(`^DNS answer over UDP from 127\\.0\\.0\\.1:${port} has ID \\d+, not the query's \\d+`))
    return true
  })
})

test('names are checked before anything is sent', async () => {
  await assert.rejects(queryDns(`127.0.0.1:${port}`, 'a..b', 'A'), /not a DNS name/)
  await assert.rejects(queryDns(`127.0.0.1:${port}`, `${'x'.repeat(64)}.test`, 'A'), /not a DNS name/)
})

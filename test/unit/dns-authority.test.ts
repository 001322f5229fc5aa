import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parseName } from '../../src/dns/names.ts'
import { parseZoneText } from '../../src/dns/zone-file.ts'
import { Zone, ZoneError } from '../../src/dns/zone.ts'
import { Responder, type Outcome } from '../../src/dns/responder.ts'
import { query, lines, decode } from '../helpers/dns.ts'

const origin = parseName('example.test.')
const text = readFileSync(new URL('../fixtures/dns/example.test.zone', import.meta.url), 'latin1')
const parsed = parseZoneText(text, origin)
const zone = new Zone(origin, parsed.entries, 3600)
const responder = new Responder([zone], { maxUdpSize: 1232 })

/** The responder's answer; without a resolver, it answers at once. */
function answerNow(msg: Buffer, transport: 'udp' | 'tcp'): Outcome {
  const o = responder.answer(msg, transport)
  assert.ok(!(o instanceof Promise))
  return o
}

function ask(name: string, type: string, opts: Parameters<typeof query>[2] & { transport?: 'udp' | 'tcp' } = {}) {
  const o = answerNow(query(name, type, opts), opts.transport ?? 'tcp')
  assert.ok(o.reply, `an answer to ${name} ${type}`)
  return Object.assign(decode(o.reply), { outcome: o })
}

test('the zone file parses without problems', () => {
  assert.deepEqual(parsed.errors, [])
  assert.equal(zone.serial, 2026120601)
})

test('an exact answer: AA, NOERROR, RD echoed, RA not set, the records with their TTL', () => {
  const a = ask('www.example.test', 'A')
  assert.equal(a.rcode, 'NOERROR')
  assert.equal(a.flag_aa, true)
  assert.equal(a.flag_rd, true)
  assert.equal(a.flag_ra, false)
  assert.equal(a.id, 4242)
  assert.deepEqual(lines(a), ['www.example.test 60 A 192.0.2.1', 'www.example.test 60 A 192.0.2.2'])
  assert.deepEqual(ask('www.example.test', 'A', { rd: false }).flag_rd, false)
})

test('the letter case of the question comes back as sent, and owner names point to it', () => {
  const a = ask('WwW.ExAmPlE.TeSt', 'AAAA')
  assert.equal(a.questions[0]!.name, 'WwW.ExAmPlE.TeSt')
  assert.deepEqual(lines(a), ['WwW.ExAmPlE.TeSt 3600 AAAA 2001:db8::1'])
  // the owner is a two-byte pointer to the question (offset 12): RFC 1035 §4.1.4
  const qEnd = 12 + 'WwW.ExAmPlE.TeSt'.length + 2 + 4
  assert.equal(a.raw.readUInt16BE(qEnd), 0xc000 | 12)
})

test('NODATA: NOERROR, no answer, the SOA with TTL min(TTL, MINIMUM) in the authority section (RFC 2308)', () => {
  const a = ask('www.example.test', 'MX')
  assert.equal(a.rcode, 'NOERROR')
  assert.equal(a.flag_aa, true)
  assert.equal(a.answers.length, 0)
  assert.equal(a.authorities.length, 1)
  assert.equal(a.authorities[0]!.type, 'SOA')
  assert.equal(a.authorities[0]!.ttl, 300)
  assert.equal(a.authorities[0]!.name, 'example.test')
})

test('NXDOMAIN with the SOA; an empty non-terminal is NODATA, not NXDOMAIN (RFC 8020)', () => {
  const nx = ask('nope.example.test', 'A')
  assert.equal(nx.rcode, 'NXDOMAIN')
  assert.equal(nx.flag_aa, true)
  assert.equal(nx.authorities[0]!.type, 'SOA')
  const ent = ask('y.example.test', 'A')
  assert.equal(ent.rcode, 'NOERROR')
  assert.equal(ent.answers.length, 0)
  assert.equal(ent.authorities[0]!.type, 'SOA')
  assert.equal(ask('x.y.example.test', 'A').rcode, 'NOERROR')
  assert.deepEqual(lines(ask('deep.x.y.example.test', 'A')), ['deep.x.y.example.test 3600 A 192.0.2.90'])
})

test('CNAME chains are followed inside the zone; the rcode is the last name\'s (RFC 6604)', () => {
  assert.deepEqual(lines(ask('chain.example.test', 'A')), [
    'chain.example.test 3600 CNAME alias.example.test',
    'alias.example.test 3600 CNAME www.example.test',
    'www.example.test 60 A 192.0.2.1',
    'www.example.test 60 A 192.0.2.2',
  ])
  const gone = ask('gone.example.test', 'A')
  assert.equal(gone.rcode, 'NXDOMAIN')
  assert.deepEqual(lines(gone), ['gone.example.test 3600 CNAME missing.example.test'])
  assert.equal(gone.authorities[0]!.type, 'SOA')
  // asked for the CNAME itself: no chase
  assert.deepEqual(lines(ask('chain.example.test', 'CNAME')), ['chain.example.test 3600 CNAME alias.example.test'])
  // a target outside the zone ends the chain, NOERROR
  const ext = ask('ext.example.test', 'A')
  assert.equal(ext.rcode, 'NOERROR')
  assert.deepEqual(lines(ext), ['ext.example.test 3600 CNAME www.example.net'])
  // a loop stops when a name comes again
  const loop = ask('loop1.example.test', 'A')
  assert.deepEqual(lines(loop), ['loop1.example.test 3600 CNAME loop2.example.test', 'loop2.example.test 3600 CNAME loop1.example.test'])
})

test('wildcards (RFC 4592): the owner is the name asked; not below an existing name; not for the wildcard\'s own existing siblings', () => {
  assert.deepEqual(lines(ask('Foo.apps.example.test', 'A')), ['Foo.apps.example.test 3600 A 192.0.2.80'])
  assert.deepEqual(lines(ask('a.b.apps.example.test', 'TXT')), ['a.b.apps.example.test 3600 TXT ["wildcard","two strings"]'])
  const nodata = ask('foo.apps.example.test', 'AAAA')
  assert.equal(nodata.rcode, 'NOERROR')
  assert.equal(nodata.answers.length, 0)
  // apps itself is an empty non-terminal: the wildcard does not answer for it
  assert.equal(ask('apps.example.test', 'A').answers.length, 0)
  assert.equal(ask('apps.example.test', 'A').rcode, 'NOERROR')
  // the wildcard asked for by name is just a name
  assert.deepEqual(lines(ask('*.apps.example.test', 'A')), ['*.apps.example.test 3600 A 192.0.2.80'])
})

test('a delegation is a referral: AA off, the NS set in the authority section, in-domain glue in the additional section', () => {
  for (const name of ['sub.example.test', 'host.sub.example.test', 'a.b.sub.example.test']) {
    const r = ask(name, 'A')
    assert.equal(r.rcode, 'NOERROR')
    assert.equal(r.flag_aa, false, name)
    assert.equal(r.answers.length, 0)
    assert.deepEqual(lines(r, 'authorities'), ['sub.example.test 3600 NS ns.sub.example.test', 'sub.example.test 3600 NS ns.elsewhere.example'])
    assert.deepEqual(lines(r, 'additionals'), ['ns.sub.example.test 3600 A 192.0.2.99'])
  }
  // the NS set of the cut is the child's: a referral too
  assert.equal(ask('sub.example.test', 'NS').flag_aa, false)
  // DS is the parent's (RFC 4035 §3.1.4.1): an authoritative NODATA here
  const ds = ask('sub.example.test', 'DS')
  assert.equal(ds.flag_aa, true)
  assert.equal(ds.authorities[0]!.type, 'SOA')
})

test('additional section: the in-zone addresses of MX and SRV targets and of the apex NS', () => {
  const mx = ask('example.test', 'MX')
  assert.deepEqual(lines(mx), ['example.test 3600 MX {"preference":10,"exchange":"mail.example.test"}'])
  assert.deepEqual(lines(mx, 'additionals'), ['mail.example.test 3600 A 192.0.2.25'])
  assert.deepEqual(lines(ask('_sip._tcp.example.test', 'SRV'), 'additionals'), ['sip.example.test 3600 A 192.0.2.60'])
  const ns = ask('example.test', 'NS')
  assert.equal(ns.flag_aa, true)
  assert.deepEqual(lines(ns, 'additionals'), ['ns1.example.test 3600 A 192.0.2.53', 'ns2.example.test 3600 A 192.0.2.54'])
})

test('record types: TXT, CAA, SRV, HTTPS (RFC 9460 wire form)', () => {
  assert.deepEqual(lines(ask('txt.example.test', 'TXT')), ['txt.example.test 3600 TXT ["v=spf1 -all"]'])
  assert.deepEqual(lines(ask('caa.example.test', 'CAA')), ['caa.example.test 3600 CAA {"flags":0,"tag":"issue","value":"letsencrypt.org","issuerCritical":false}'])
  assert.deepEqual(lines(ask('_sip._tcp.example.test', 'SRV')), ['_sip._tcp.example.test 3600 SRV {"priority":10,"weight":60,"port":5060,"target":"sip.example.test"}'])
  const https = ask('svc.example.test', 'UNKNOWN_65') // dns-packet has no HTTPS type: asked by number
  const rr = https.answers[0] as unknown as { type: string; data: Buffer }
  // priority 1, target root, alpn (key 1) = h2,http/1.1; port (key 3) = 8443; ipv4hint (key 4) = 192.0.2.1
  assert.equal(Buffer.from(rr.data).toString('hex'), '0001' + '00' + '0001000c' + '026832' + '08687474702f312e31' + '00030002' + '20fb' + '00040004' + 'c0000201')
})

test('ANY gets one record set (RFC 8482 §4.1)', () => {
  const a = ask('www.example.test', 'ANY')
  assert.equal(a.rcode, 'NOERROR')
  assert.deepEqual(lines(a), ['www.example.test 60 A 192.0.2.1', 'www.example.test 60 A 192.0.2.2'])
})

test('a name in no zone served here is REFUSED, without AA', () => {
  const r = ask('www.example.net', 'A')
  assert.equal(r.rcode, 'REFUSED')
  assert.equal(r.flag_aa, false)
  assert.equal(r.questions[0]!.name, 'www.example.net')
})

test('opcodes, classes, meta types and transfers', () => {
  const notify = Buffer.from(query('example.test', 'SOA'))
  notify.writeUInt16BE((notify.readUInt16BE(2) & ~0x7800) | (2 << 11), 2) // opcode 2 (STATUS)
  const o = answerNow(notify, 'udp')
  const p = decode(o.reply!)
  assert.equal(p.rcode, 'NOTIMP')
  assert.equal(p.opcode, 'STATUS')
  assert.equal(ask('example.test', 'A', { klass: 'CH' }).rcode, 'REFUSED')
  assert.equal(ask('example.test', 'AXFR').rcode, 'REFUSED')
})

test('EDNS: the OPT record is answered; an unknown version gets BADVERS (RFC 6891 §6.1.3)', () => {
  const a = ask('www.example.test', 'A', { udpSize: 4096 })
  const opt = a.additionals.find((r) => r.type === 'OPT') as unknown as { udpPayloadSize: number; ednsVersion: number; extendedRcode: number }
  assert.equal(opt.udpPayloadSize, 1232)
  assert.equal(opt.ednsVersion, 0)
  const bad = ask('www.example.test', 'A', { udpSize: 4096, ednsVersion: 1 })
  const badOpt = bad.additionals.find((r) => r.type === 'OPT') as unknown as { extendedRcode: number; ednsVersion: number }
  // BADVERS = 16: the low four bits (0) in the header, the high eight (1) in the OPT record
  assert.equal(bad.rcode, 'NOERROR')
  assert.equal(badOpt.extendedRcode, 1)
  assert.equal(badOpt.ednsVersion, 0)
  assert.equal(bad.answers.length, 0)
})

test('UDP sizes: 512 without EDNS, the smaller of the client\'s size and maxUdpSize with it; TC when an answer does not fit', () => {
  const plain = ask('big.example.test', 'TXT', { transport: 'udp' })
  assert.equal(plain.flag_tc, true)
  assert.equal(plain.answers.length, 0)
  assert.ok(plain.raw.length <= 512)
  const edns = ask('big.example.test', 'TXT', { transport: 'udp', udpSize: 1232 })
  assert.equal(edns.flag_tc, false)
  assert.equal(edns.answers.length, 3)
  const small = ask('big.example.test', 'TXT', { transport: 'udp', udpSize: 100 })
  assert.equal(small.flag_tc, true, 'a size under 512 is read as 512')
  assert.ok(small.raw.length <= 512)
  assert.ok(small.additionals.some((r) => r.type === 'OPT'), 'the OPT record is kept in a truncated answer')
  const tcp = ask('big.example.test', 'TXT', { transport: 'tcp' })
  assert.equal(tcp.flag_tc, false)
  assert.equal(tcp.answers.length, 3)
})

test('malformed input: FORMERR with what was readable, or dropped', () => {
  const q = query('www.example.test', 'A')
  // shorter than a header, or a response: dropped
  assert.equal(answerNow(q.subarray(0, 11), 'udp').reply, null)
  const resp = Buffer.from(q)
  resp[2]! |= 0x80
  assert.equal(answerNow(resp, 'udp').reply, null)
  // a question cut short: FORMERR, id and RD kept, no question
  const cut = answerNow(q.subarray(0, q.length - 3), 'udp')
  const p = decode(cut.reply!)
  assert.equal(p.rcode, 'FORMERR')
  assert.equal(p.id, 4242)
  assert.equal(p.flag_rd, true)
  assert.equal(p.questions.length, 0)
  // two questions
  const two = Buffer.concat([q, q.subarray(12)])
  two.writeUInt16BE(2, 4)
  assert.equal(decode(answerNow(two, 'udp').reply!).rcode, 'FORMERR')
  // an additional count that lies
  const lie = Buffer.from(q)
  lie.writeUInt16BE(3, 10)
  const l = decode(answerNow(lie, 'udp').reply!)
  assert.equal(l.rcode, 'FORMERR')
  assert.equal(l.questions[0]!.name, 'www.example.test', 'the question is echoed when it was readable')
})

test('zone checks: what named-checkzone refuses, each named', () => {
  const build = (t: string) => {
    const p = parseZoneText(t, origin)
    if (p.errors.length) return p.errors
    try {
      new Zone(origin, p.entries, 3600)
      return []
    } catch (err) {
      return (err as ZoneError).problems
    }
  }
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n'), [])
  assert.deepEqual(build('@ NS ns\n'), ['the zone example.test. has no SOA record at its apex'])
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n'), ['the zone example.test. has no NS records at its apex'])
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n@ NS ns\nw CNAME x\nw A 192.0.2.1\n'), ['w.example.test. has a CNAME and A records; a CNAME is the only data at its name (RFC 1034 §3.6.2)'])
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n@ NS ns\nwww.example.net. A 192.0.2.1\n'), ['line 3: www.example.net. is outside the zone example.test.'])
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n@ NS ns\nsub NS ns.sub\nx.sub TXT "hidden"\n'), ['x.sub.example.test. is below the delegation sub.example.test and has TXT records; only addresses (glue) belong there'])
  assert.deepEqual(build('@ SOA ns h 1 2 3 4 5\n@ NS ns\nw A 300.1.1.1\nw AAAA nope\nw MX ten mail\n$INCLUDE other\nw BOGUS x\n'), [
    'line 3: A data is an IPv4 address, not "300.1.1.1"',
    'line 4: AAAA data is an IPv6 address, not "nope"',
    'line 5: MX preference is a whole number from 0 to 65535, not "ten"',
    'line 6: $INCLUDE is not supported: keep a zone in one file',
    'line 7: unknown record type "BOGUS"',
  ])
})

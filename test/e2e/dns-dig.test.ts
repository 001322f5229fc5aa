import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { startServer, type TestServer } from '../helpers/server.ts'
import { decode, query, udpRaw, tcp } from '../helpers/dns.ts'

/**
 * BIND's dig (Debian's bind9-dnsutils, installed by .ci/run) as the judge of
 * Edgebox's answers on the wire: truncation and the retry over TCP, EDNS
 * sizes, BADVERS, and rate limiting's slip.
 */

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dns')
const hasDig = await new Promise<boolean>((r) => spawn('dig', ['-v']).on('error', () => r(false)).on('close', (c) => r(c === 0)))
let s: TestServer
let port = 0

function dig(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // the server runs in this process: dig must run beside it, not block it
    const child = spawn('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=3', ...args])
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.on('error', reject)
    child.on('close', () => resolve(out))
  })
}

before(async () => {
  if (!hasDig) return
  s = await startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }], dns: { listen: { host: '127.0.0.1', port: 0 }, zones: [{ origin: 'example.test', file: 'example.test.zone' }] } }, fixtures)
  port = s.box.dns!.port
})
after(() => s?.close())

const opts = { skip: hasDig ? false : 'dig is not installed (bind9-dnsutils; .ci/run installs it)' }

test('dig: an answer with AA and the letter case of the question kept', opts, async () => {
  const out = await dig('WWW.Example.TEST', 'A')
  assert.match(out, /status: NOERROR/)
  assert.match(out, /flags: qr aa rd;/)
  assert.match(out, /^WWW\.Example\.TEST\.\s+60\s+IN\s+A\s+192\.0\.2\.1$/m)
  assert.match(out, /; EDNS: version: 0, flags:; udp: 1232/)
})

test('dig: without EDNS a large answer is truncated over UDP and dig retries over TCP for all of it', opts, async () => {
  const out = await dig('+noedns', 'big.example.test', 'TXT')
  assert.match(out, /;; Truncated, retrying in TCP mode\./)
  assert.match(out, /ANSWER: 3,/)
  assert.match(out, /\(TCP\)/)
  // with EDNS and 1232 bytes it fits over UDP
  const edns = await dig('+bufsize=4096', 'big.example.test', 'TXT')
  assert.doesNotMatch(edns, /Truncated/)
  assert.match(edns, /; EDNS: version: 0, flags:; udp: 1232/, 'the server says its own size, not the client\'s')
  assert.match(edns, /\(UDP\)/)
})

test('dig: an EDNS version Edgebox does not speak gets BADVERS; NXDOMAIN and NODATA with the SOA', opts, async () => {
  assert.match(await dig('+edns=1', '+noednsneg', 'www.example.test'), /status: BADVERS/)
  const nx = await dig('nope.example.test')
  assert.match(nx, /status: NXDOMAIN/)
  assert.match(nx, /AUTHORITY SECTION:\nexample\.test\.\s+300\s+IN\s+SOA\s+ns1\.example\.test\. hostmaster\.example\.test\. 2026120601/)
  assert.match(await dig('www.example.test', 'MX'), /status: NOERROR.*\n.*ANSWER: 0, AUTHORITY: 1/)
  assert.match(await dig('www.example.net'), /status: REFUSED/)
})

test('rate limiting over UDP: past the rate, some queries get an empty truncated answer (slip) and the rest nothing; TCP still answers', async () => {
  const limited = await startServer({
    sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }],
    dns: { listen: { host: '127.0.0.1', port: 0 }, rateLimit: { responsesPerSecond: 5, slip: 2, exempt: [] }, zones: [{ origin: 'example.test', file: 'example.test.zone' }] },
  }, fixtures)
  try {
    const p = limited.box.dns!.port
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => udpRaw(p, query('www.example.test', 'A', { id: i + 1 }), 500)))
    const got = replies.filter((r): r is Buffer => r !== null).map(decode)
    const full = got.filter((r) => !r.flag_tc)
    const slipped = got.filter((r) => r.flag_tc)
    assert.ok(full.length >= 5 && full.length <= 6, `${full.length} answered in full`)
    assert.ok(slipped.length >= 6 && slipped.length <= 8, `${slipped.length} truncated`)
    assert.ok(slipped.every((r) => r.answers.length === 0 && r.questions[0]!.name === 'www.example.test'))
    assert.ok(20 - got.length >= 6, `${20 - got.length} dropped`)
    const overTcp = await tcp(p, query('www.example.test', 'A'))
    assert.equal(overTcp.answers.length, 2)
  } finally {
    await limited.close()
  }
})

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import path from 'node:path'
import { startServer, type TestServer } from '../helpers/server.ts'
import { decode, query, tcp, udp } from '../helpers/dns.ts'
import { readMessage, readQuery } from '../../src/dns/message.ts'
import { parseName } from '../../src/dns/names.ts'
import { sign, verifyRequest, type TsigKey } from '../../src/dns/tsig.ts'

/**
 * Zone transfers (RFC 5936 AXFR, RFC 1995 IXFR), TSIG (RFC 8945) and NOTIFY
 * (RFC 1996), judged by BIND's dig (it checks every TSIG signature itself).
 */

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dns')
const hasDig = await new Promise<boolean>((r) => spawn('dig', ['-v']).on('error', () => r(false)).on('close', (c) => r(c === 0)))
const opts = { skip: hasDig ? false : 'dig is not installed (bind9-dnsutils; .ci/run installs it)' }
const secret = randomBytes(32).toString('base64')
const tsigKey: TsigKey = { name: parseName('xfer.'), algorithm: 'hmac-sha256', secret: Buffer.from(secret, 'base64') }
const site = { sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }] }
const rec = (name: string, type: string, data: string) => ({ name, type, data })
const many = Array.from({ length: 2000 }, (_, i) => rec(`host${i}`, 'A', `10.${(i >> 8) & 255}.${i & 255}.1`))

let s: TestServer
let port = 0
let secondary: dgram.Socket
const notifies: { serial: number; zone: string; signed: boolean; verified: boolean }[] = []

function dnsConfig(extra: unknown[] = []) {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    keys: [{ name: 'xfer', secret }],
    zones: [
      { origin: 'example.test', file: 'example.test.zone', transfer: { allow: ['127.0.0.0/8'], keys: ['xfer'] } },
      { origin: 'open.test', records: [rec('@', 'NS', 'ns'), rec('ns', 'A', '127.0.0.1')], transfer: { allow: ['10.0.0.0/8', '127.0.0.0/8'] } },
      { origin: 'closed.test', records: [rec('@', 'NS', 'ns'), rec('ns', 'A', '127.0.0.1')], transfer: { allow: ['10.0.0.0/8'] } },
      { origin: 'big.test', records: [rec('@', 'NS', 'ns'), rec('ns', 'A', '127.0.0.1'), ...many, ...extra], transfer: { allow: ['127.0.0.0/8'], keys: ['xfer'], notify: [`127.0.0.1:${(secondary.address()).port}`] } },
    ],
  }
}

before(async () => {
  // a secondary that records each NOTIFY (checking its signature) and acknowledges it
  secondary = dgram.createSocket('udp4')
  secondary.on('message', (msg, rinfo) => {
    const r = readQuery(msg)
    if (r.kind !== 'query') return
    const q = r.query
    const verified = q.tsig ? verifyRequest(msg, q.tsig, new Map([['xfer', tsigKey]]), Math.floor(Date.now() / 1000)).ok : false
    const soa = decode(msg).answers[0]
    notifies.push({ serial: soa?.data.serial, zone: q.question.labels.join('.'), signed: q.tsig !== null, verified })
    const ack = Buffer.from(msg.subarray(0, 12 + q.question.raw.length))
    ack.writeUInt16BE((ack.readUInt16BE(2) | 0x8000) & 0xfe0f | 0x0400, 2) // QR, AA, the same opcode, NOERROR
    ack.writeUInt16BE(0, 6)
    ack.writeUInt16BE(0, 8)
    ack.writeUInt16BE(0, 10)
    secondary.send(ack, rinfo.port, rinfo.address)
  })
  await new Promise<void>((r) => secondary.bind(0, '127.0.0.1', r))
  s = await startServer({ ...site, dns: dnsConfig() } as never, fixtures)
  port = s.box.dns!.port
})
after(async () => {
  await s?.close()
  secondary.close()
})

function dig(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=5', ...args])
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.on('error', reject)
    child.on('close', () => resolve(out))
  })
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > ms) assert.fail(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('AXFR with TSIG: every record between two SOAs, each message signed (dig verifies)', opts, async () => {
  const out = await dig('-y', `hmac-sha256:xfer:${secret}`, 'example.test', 'AXFR')
  assert.doesNotMatch(out, /failed|WARNING|verify/i, out)
  assert.match(out, /;; XFR size: 31 records \(messages 1, bytes \d+\)/)
  const soas = out.split('\n').filter((l) => /\tSOA\t/.test(l))
  assert.equal(soas.length, 2, 'the SOA first and last')
  assert.match(out, /xfer\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\. \d+ 300 32 \S+ \d+ NOERROR 0/)
  // an ordinary signed query gets a signed answer that dig accepts
  const a = await dig('-y', `hmac-sha256:xfer:${secret}`, 'www.example.test', 'A')
  assert.match(a, /status: NOERROR/)
  assert.doesNotMatch(a, /failed|WARNING: .*tsig|verify/i)
  // a zone of 2004 records comes in several messages, each one signed (RFC 8945 §5.3.1)
  const big = await dig('-y', `hmac-sha256:xfer:${secret}`, 'big.test', 'AXFR')
  assert.doesNotMatch(big, /failed|WARNING|verify/i)
  const m = /;; XFR size: (\d+) records \(messages (\d+), bytes \d+\)/.exec(big)!
  assert.equal(Number(m[1]), 2004)
  assert.ok(Number(m[2]) > 1, `${m[2]} messages`)
})

test('transfers refused: unsigned for a keyed zone, a wrong key (BADSIG), an address not allowed, no transfer settings', opts, async () => {
  assert.match(await dig('example.test', 'AXFR'), /; Transfer failed\./)
  const wrong = await dig('-y', `hmac-sha256:xfer:${randomBytes(32).toString('base64')}`, 'example.test', 'AXFR')
  assert.match(wrong, /TSIG\s+hmac-sha256\. \d+ 300 0 \d+ BADSIG 0/)
  assert.match(await dig('closed.test', 'AXFR'), /; Transfer failed\./)
  const t = await tcp(port, query('open.test', 'AXFR'))
  assert.equal(t.rcode, 'NOERROR')
  assert.equal(t.answers.length, 4)
  const none = await tcp(port, query('www.example.test', 'AXFR'))
  assert.equal(none.rcode, 'REFUSED', 'a name that is not a zone apex')
})

test('IXFR: only the SOA when the client has the serial; the whole zone otherwise; over UDP, TC', opts, async () => {
  const same = await dig('-y', `hmac-sha256:xfer:${secret}`, 'example.test', 'IXFR=2026120601')
  assert.match(same, /;; XFR size: 1 records/)
  const older = await dig('-y', `hmac-sha256:xfer:${secret}`, 'example.test', 'IXFR=2026120500')
  assert.match(older, /;; XFR size: 31 records/)
  const overUdp = await udp(port, query('open.test', 'AXFR'))
  assert.equal(overUdp.flag_tc, true)
  assert.equal(overUdp.answers.length, 0)
})

/** The error field of a reply's TSIG record (RFC 8945 §4.2), read with Edgebox's own reader. */
function tsigError(raw: Buffer): number {
  const m = readMessage(raw)!
  const t = m.additional.at(-1)!
  assert.equal(t.type, 250, 'the last additional record is a TSIG')
  const d = t.rdata[0] as Buffer
  let at = 0
  while (d[at]) at += 1 + d[at]!
  at += 1 + 6 + 2
  const macLen = d.readUInt16BE(at)
  return d.readUInt16BE(at + 2 + macLen + 2)
}

test('TSIG on queries: a signed query gets a signed answer; a stale signature is BADTIME; an unknown key BADKEY', async () => {
  const now = Math.floor(Date.now() / 1000)
  const signed = sign(query('www.example.test', 'A', { id: 77 }), tsigKey, now).message
  const r = await tcp(port, signed)
  assert.equal(r.rcode, 'NOERROR')
  assert.equal(tsigError(r.raw), 0, 'a signed answer, no error')
  // the answer's MAC checks out against the request's (verifyRequest reads the same fields)
  const stale = sign(query('www.example.test', 'A', { id: 78 }), tsigKey, now - 1000).message
  const s2 = await tcp(port, stale)
  assert.equal(s2.rcode, 'NOTAUTH')
  assert.equal(tsigError(s2.raw), 18, 'BADTIME')
  const unknown = sign(query('www.example.test', 'A', { id: 79 }), { ...tsigKey, name: parseName('other.') }, now).message
  const s3 = await tcp(port, unknown)
  assert.equal(s3.rcode, 'NOTAUTH')
  assert.equal(tsigError(s3.raw), 17, 'BADKEY')
})

test('NOTIFY: sent, signed, at start and when a reload changes a zone; not when it does not; an incoming NOTIFY is REFUSED', async () => {
  await until('the NOTIFY at start', () => notifies.length >= 1)
  assert.deepEqual(notifies.map((n) => [n.zone, n.signed, n.verified]), [['big.test', true, true]])
  const first = notifies[0]!.serial
  // the same records: the same serial, no NOTIFY
  await s.box.reload({ ...site, listen: s.box.config.listen, log: { access: false, level: 'silent' }, dns: dnsConfig() } as never)
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(notifies.length, 1)
  // one more record: a higher serial, and a NOTIFY with it
  await s.box.reload({ ...site, listen: s.box.config.listen, log: { access: false, level: 'silent' }, dns: dnsConfig([rec('new', 'A', '10.9.9.9')]) } as never)
  await until('the NOTIFY after the change', () => notifies.length >= 2)
  assert.ok(notifies[1]!.serial > first, `${notifies[1]!.serial} > ${first}`)
  const incoming = Buffer.from(query('example.test', 'SOA'))
  incoming.writeUInt16BE((incoming.readUInt16BE(2) & ~0x7800) | (4 << 11), 2)
  assert.equal((await udp(port, incoming)).rcode, 'REFUSED')
})

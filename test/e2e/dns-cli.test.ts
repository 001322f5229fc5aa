import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { startServer, type TestServer } from '../helpers/server.ts'
import { digCommand } from '../../src/cli/dig.ts'

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dns')
const site = { sites: [{ routes: [{ path: '/dns-query', doh: {} }, { path: '/', redirect: { to: 'https://example.test/' } }] }] }
const rec = (name: string, type: string, data: string) => ({ name, type, data })

let auth: TestServer
let root: TestServer
let child: TestServer
let port = 0

before(async () => {
  // a root on 127.0.0.2 delegating example.test. to 127.0.0.3, all on one port
  root = await startServer({ ...site, dns: { listen: { host: '127.0.0.2', port: 0 }, zones: [{ origin: '.', records: [rec('@', 'NS', 'a.root.'), rec('a.root.', 'A', '127.0.0.2'), rec('example.test.', 'NS', 'ns.example.test.'), rec('ns.example.test.', 'A', '127.0.0.3')] }] } } as never)
  port = root.box.dns!.port
  child = await startServer({ ...site, dns: { listen: { host: '127.0.0.3', port }, zones: [{ origin: 'example.test', file: 'example.test.zone' }] } } as never, fixtures)
  auth = await startServer({ ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, zones: [{ origin: 'example.test', file: 'example.test.zone' }] } } as never, fixtures)
})
after(async () => {
  await auth.close()
  await child.close()
  await root.close()
})

async function dig(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const sink = (f: (s: string) => void) => new Writable({ write(c, _e, cb) { f(String(c)); cb() } })
  const code = await digCommand(args, sink((s) => (out += s)), sink((s) => (err += s)))
  return { code, out, err }
}

test('edgebox dig asks like dig: the header, flags, sections, server and transport', async () => {
  const r = await dig('www.example.test', `@127.0.0.1:${auth.box.dns!.port}`)
  assert.equal(r.code, 0, r.err)
  assert.match(r.out, /status: NOERROR/)
  assert.match(r.out, /flags: qr aa rd; ANSWER: 2/)
  assert.match(r.out, /^www\.example\.test\.\t60\tIN\tA\t192\.0\.2\.1$/m)
  assert.match(r.out, new RegExp(`SERVER: 127\\.0\\.0\\.1:${auth.box.dns!.port} \\(udp\\)`))
  // without EDNS the answer is cut at 512 bytes (TC) and asked again over TCP; with EDNS (1232) it fits over UDP
  const big = JSON.parse((await dig('big.example.test', 'TXT', '@127.0.0.1', '-p', String(auth.box.dns!.port), '+noedns', '--json')).out)
  assert.equal(big.transport, 'tcp')
  assert.equal(big.answer.length, 3)
  const edns = JSON.parse((await dig('big.example.test', 'TXT', '@127.0.0.1', '-p', String(auth.box.dns!.port), '--json')).out)
  assert.equal(edns.transport, 'udp')
  assert.equal(edns.answer.length, 3)
  const tcp = JSON.parse((await dig('example.test', 'MX', `@127.0.0.1:${auth.box.dns!.port}`, '+tcp', '--json')).out)
  assert.equal(tcp.transport, 'tcp')
  assert.deepEqual(tcp.answer, ['example.test.\t3600\tIN\tMX\t10 mail.example.test.'])
  assert.deepEqual(tcp.additional, ['mail.example.test.\t3600\tIN\tA\t192.0.2.25'])
})

test('edgebox dig --explain: how the answer was found (loopback only)', async () => {
  const r = JSON.parse((await dig('Foo.apps.example.test', `@127.0.0.1:${auth.box.dns!.port}`, '--explain', '--json')).out)
  assert.deepEqual(r.explain, ['zone example.test. (serial 2026120601)', 'wildcard *.apps.example.test.', 'NOERROR, authoritative'])
  const chain = JSON.parse((await dig('gone.example.test', `@127.0.0.1:${auth.box.dns!.port}`, '--explain', '--json')).out)
  assert.deepEqual(chain.explain, ['zone example.test. (serial 2026120601)', 'exact gone.example.test.', 'cname to missing.example.test.', 'nxdomain missing.example.test.', 'NXDOMAIN, authoritative'])
})

test('edgebox dig +trace: each step of an iterative resolution from the given root', async () => {
  const r = JSON.parse((await dig('www.example.test', `@127.0.0.2:${port}`, '+trace', '--json')).out)
  assert.equal(r.rcode, 'NOERROR')
  assert.deepEqual(r.answer, ['www.example.test.\t60\tIN\tA\t192.0.2.1', 'www.example.test.\t60\tIN\tA\t192.0.2.2'])
  assert.deepEqual(
    r.trace.map((s: { server: string; zone: string; question: string; outcome: string }) => [s.server, s.zone, s.question, s.outcome]),
    [
      [`127.0.0.2:${port}`, '.', 'www.example.test. A', 'referral to example.test. (ns.example.test.), glue 127.0.0.3'],
      [`127.0.0.3:${port}`, 'example.test.', 'www.example.test. A', 'answer: A 192.0.2.1, A 192.0.2.2'],
    ],
  )
  const text = (await dig('www.example.test', `@127.0.0.2:${port}`, '+trace')).out
  assert.match(text, /;; iterative resolution from 127\.0\.0\.2/)
  assert.match(text, /zone \.\s+asked www\.example\.test\. A\s+-> referral to example\.test\./)
})

test('edgebox dig --doh: over DNS over HTTPS (POST)', async () => {
  const r = JSON.parse((await dig('www.example.test', '--doh', `${auth.url}/dns-query`, '--json')).out)
  assert.equal(r.transport, 'https')
  assert.equal(r.rcode, 'NOERROR')
  assert.equal(r.answer.length, 2)
})

test('edgebox dig: bad input is exit 2 with the problem named; an unreachable server exit 1', async () => {
  assert.deepEqual(await dig(), { code: 2, out: '', err: 'edgebox dig: a name to ask about\nusage: edgebox dig NAME [TYPE] [@SERVER[:PORT]] [+tcp] [+trace] [+norecurse] [+noedns] [+bufsize=N] [-p PORT] [--doh URL] [--explain] [--json] [--timeout MS]\n' })
  assert.match((await dig('example.test', 'BOGUS')).err, /BOGUS is not a record type/)
  assert.match((await dig('example.test', '+bogus')).err, /unknown option \+bogus/)
  assert.match((await dig('a..b')).err, /a\.\.b is not a domain name/)
  const closed = await dig('example.test', '@127.0.0.1:9', '--timeout', '300')
  assert.equal(closed.code, 1)
  assert.match(closed.err, /127\.0\.0\.1:9: (connection refused|no answer)/)
})

test('edgebox dns check: OK with the serial, or every problem with its line (the binary, as a user runs it)', () => {
  const ok = spawnSync(process.execPath, [BIN, 'dns', 'check', path.join(fixtures, 'example.test.zone')], { encoding: 'utf8', timeout: 20_000 })
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /^zone example\.test\/IN: loaded serial 2026120601 \(\d+ records\)\nOK\n$/)
  const dir = mkdtempSync(path.join(tmpdir(), 'edgebox-zone-'))
  try {
    const bad = path.join(dir, 'broken.zone')
    writeFileSync(bad, '@ SOA ns h 1 2 3 4 5\nw A 300.1.1.1\n')
    const r = spawnSync(process.execPath, [BIN, 'dns', 'check', bad, '--origin', 'example.test'], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(r.status, 1)
    assert.equal(r.stderr, `${bad}:2: A data is an IPv4 address, not "300.1.1.1"\nzone example.test/IN: not loaded due to errors (1)\n`)
    writeFileSync(bad, '@ SOA ns h 1 2 3 4 5\nw A 192.0.2.1\n')
    const r2 = spawnSync(process.execPath, [BIN, 'dns', 'check', bad, '--origin', 'example.test'], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(r2.status, 1)
    assert.equal(r2.stderr, `${bad}: the zone example.test. has no NS records at its apex\nzone example.test/IN: not loaded due to errors (1)\n`)
    const usage = spawnSync(process.execPath, [BIN, 'dns', 'check'], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(usage.status, 2)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('edgebox inspect --doh: the dns phase asks over DNS over HTTPS, with the same report', async () => {
  const { inspectCommand } = await import('../../src/cli/inspect.ts')
  const doh = await startServer({ ...site, dns: { listen: { host: '127.0.0.1', port: 0 }, zones: [{ origin: 'localhost', records: [rec('@', 'NS', '@'), rec('@', 'A', '127.0.0.1')] }] } } as never)
  try {
    let stdout = ''
    let stderr = ''
    const run = (args: string[]) => inspectCommand(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }, {})
    const code = await run([doh.url.replace('127.0.0.1', 'localhost') + '_edgebox/health', '--doh', `${doh.url}dns-query`, '--json'])
    assert.equal(code, 0, stderr)
    const report = JSON.parse(stdout)
    assert.equal(report.dnsServer[0].transport, 'https')
    assert.equal(report.dnsServer[0].server, `${doh.url}dns-query`)
    assert.deepEqual(report.dnsServer[0].answers.map((a: { data: string }) => a.data), ['127.0.0.1'])
    assert.equal(report.dnsServer[0].flags.authoritative, true)
    stdout = ''
    assert.equal(await run(['http://localhost/', '--doh', 'ftp://x', '--json']), 2)
    assert.match(stderr, /--doh ftp:\/\/x: a DNS-over-HTTPS URL/)
  } finally {
    await doh.close()
  }
})

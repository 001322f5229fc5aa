import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { test } from 'node:test'
import type { Context } from '../../src/core/context.ts'
import { accessLine, createAccessLog, writeJson } from '../../src/core/log.ts'

/** An access log (JSON) writing to a new file in a temporary folder. */
function fileAccessLog() {
  const file = `${mkdtempSync(`${tmpdir()}/eb-access-`)}/access.log`
  return { file, log: createAccessLog({ level: 'info', format: 'json', file, enabled: true }) }
}

function line(fields: Partial<Record<keyof Context, unknown>>): Record<string, unknown> {
  const ctx = { method: 'GET', host: 'example.test', rawPath: '/a', status: 200, bytes: 5, cache: 'HIT', protocol: 'http/1.1', clientAddress: '127.0.0.1', error: undefined, ...fields }
  const text = writeJson(ctx as unknown as Context, 1.23456)
  assert.ok(text.endsWith('}\n'))
  return JSON.parse(text) as Record<string, unknown>
}

test('the JSON access line carries every field', () => {
  const l = line({})
  assert.equal(l.msg, 'request')
  assert.equal(l.method, 'GET')
  assert.equal(l.host, 'example.test')
  assert.equal(l.path, '/a')
  assert.equal(l.status, 200)
  assert.equal(l.bytes, 5)
  assert.equal(l.ms, 1.235)
  assert.equal(l.cache, 'HIT')
  assert.equal(l.proto, 'http/1.1')
  assert.equal(l.client, '127.0.0.1')
  assert.equal(typeof l.time, 'number')
})

test('strings that need escaping stay valid JSON and keep their value', () => {
  for (const s of ['/a"b', '/back\\slash', '/ctl\u0001', '/ünïcode', '/"},"status":1,"x":"']) {
    const l = line({ rawPath: s, host: `h${s}` })
    assert.equal(l.path, s)
    assert.equal(l.host, `h${s}`)
    assert.equal(l.status, 200)
  }
})

test('the ms field is the duration rounded to three decimals, written as JavaScript writes that number', async () => {
  const { formatMs } = await import('../../src/core/log.ts')
  for (let us = 0; us < 200_000; us++) assert.equal(formatMs(us / 1000), String(us / 1000))
  for (const ms of [0, 0.0004, 0.0005, 0.0015, 0.1, 0.12, 1.2345, 1.9996, 999.9995, 1000, 12_345.678_9, 86_400_000.001, 2 ** 31 + 0.25, 1e12 + 0.123]) {
    assert.equal(formatMs(ms), String(Math.round(ms * 1000) / 1000), String(ms))
  }
  for (const ms of [Number.NaN, Infinity, 1e20]) assert.equal(formatMs(ms), String(Math.round(ms * 1000) / 1000))
  assert.equal(line({}).ms, 1.235)
})

test('consecutive lines carry their own method, host, path and time (nothing of a line before is reused wrongly)', () => {
  const seq = [
    { method: 'GET', host: 'a.test', rawPath: '/x' },
    { method: 'GET', host: 'a.test', rawPath: '/x' },
    { method: 'HEAD', host: 'a.test', rawPath: '/x"y' },
    { method: 'GET', host: 'b.test', rawPath: '/x' },
    { method: 'GET', host: 'b.test', rawPath: '/ü' },
    { method: 'PROPFIND', host: '', rawPath: '*' },
  ]
  for (const f of seq) {
    const before = Date.now()
    const l = line(f)
    assert.deepEqual([l.method, l.host, l.path], [f.method, f.host, f.rawPath])
    assert.ok((l.time as number) >= before && (l.time as number) <= Date.now())
  }
})

test('the access log file holds every line, in order, with the lines that need escaping and errors among them', async () => {
  const { file, log } = fileAccessLog()
  const paths: string[] = []
  for (let i = 0; i < 3000; i++) {
    const rawPath = i % 7 === 0 ? `/ü/${i}` : i % 11 === 0 ? `/${'z'.repeat(2000)}/${i}` : `/p/${i}`
    paths.push(rawPath)
    log.write({ method: 'GET', host: 'h.test', rawPath, status: 200, bytes: i, cache: '', protocol: 'http/1.1', clientAddress: '127.0.0.1', upstream: '', error: i % 13 === 0 ? new Error('e') : undefined, req: {} } as unknown as Context, i / 7)
  }
  log.flush()
  // the file opens asynchronously: its lines come once it is open
  for (let i = 0; i < 100 && !(existsSync(file) && readFileSync(file, 'utf8').split('\n').length > 3000); i++) {
    await new Promise((r) => setTimeout(r, 50))
    log.flush()
  }
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(lines.map((l) => l.path), paths)
  assert.deepEqual(lines.map((l) => l.bytes), paths.map((_, i) => i))
  assert.deepEqual(lines.map((l) => l.ms), paths.map((_, i) => Math.round((i / 7) * 1000) / 1000))
  assert.equal(lines.filter((l) => l.error === 'e').length, Math.ceil(3000 / 13))
})

test('close() returns once every line is in the file: a reader right after the server stopped sees them all', async () => {
  const { file, log } = fileAccessLog()
  const entry = (i: number) => ({ method: 'GET', host: 'h.test', rawPath: `/c/${i}`, status: 200, bytes: i, cache: '', protocol: 'http/1.1', clientAddress: '127.0.0.1', upstream: '', req: {} }) as unknown as Context
  // a first batch on its way to the file (the destination opened, a write in flight), then the last lines
  for (let i = 0; i < 400; i++) log.write(entry(i), 1)
  await new Promise((r) => setTimeout(r, 100))
  for (let i = 400; i < 800; i++) log.write(entry(i), 1)
  log.flush()
  for (let i = 800; i < 1000; i++) log.write(entry(i), 1)
  await log.close()
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(lines.map((l) => l.bytes), Array.from({ length: 1000 }, (_, i) => i))
})

test('an error message is included, escaped', () => {
  assert.equal(line({ error: new Error('disk "full"') }).error, 'disk "full"')
})

test('server faults and what the client caused are told apart', async () => {
  const { isServerFault } = await import('../../src/core/log.ts')
  const { httpError } = await import('../../src/core/errors.ts')
  const fault = (error: unknown, status: number) => isServerFault({ error, status } as unknown as Context)
  assert.equal(fault(httpError('EB_ERR_BAD_GATEWAY'), 502), true)
  assert.equal(fault(new TypeError('x is undefined'), 500), true)
  assert.equal(fault(Object.assign(new Error('EIO'), { code: 'EIO' }), 200), true, 'a file that fails mid-body')
  assert.equal(fault(httpError('EB_ERR_NOT_IMPLEMENTED'), 501), false)
  assert.equal(fault(httpError('EB_ERR_VERSION'), 505), false)
  assert.equal(fault(httpError('EB_ERR_SHUTTING_DOWN'), 503), false)
  assert.equal(fault(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 200), false)
  assert.equal(fault(httpError('EB_ERR_CLIENT_CLOSED'), 499), false, 'the client left first')
  assert.equal(fault(new TypeError('x is undefined'), 499), true, 'a bug stays a bug when the client has left too')
})

test('a connection that resets more than resetFlood streams a second: its 499 lines become one summary', async () => {
  const { resetSummaries, H2_CONNECTION } = await import('../../src/core/log.ts')
  type Conn = import('../../src/core/log.ts').H2Connection
  const written: unknown[] = []
  const resets = resetSummaries(3, (s) => written.push(s))
  const ctxOn = (conn: Conn) => ({ req: { [H2_CONNECTION]: conn } }) as unknown as Context
  const calm: Conn = { client: '10.0.0.1', proto: 'h2', resets: 2, peak: 3, closed: false, onClose: null }
  assert.equal(resets.absorb(ctxOn(calm)), false, 'at the threshold: lines of their own')
  assert.equal(resets.absorb({ req: {} } as unknown as Context), false, 'HTTP/1.1: not counted')
  const flood: Conn = { client: '10.0.0.2', proto: 'h2', resets: 50, peak: 40, closed: false, onClose: null }
  assert.equal(resets.absorb(ctxOn(flood)), true)
  assert.equal(resets.absorb(ctxOn(flood)), true)
  assert.deepEqual(written, [], 'nothing until the connection closes')
  flood.resets = 60
  flood.closed = true
  flood.onClose?.()
  assert.deepEqual(written, [{ client: '10.0.0.2', proto: 'h2', resets: 60 }])
  // a connection already closed when its first 499 arrives: summarized at once, once
  const gone: Conn = { client: '10.0.0.3', proto: 'h2c', resets: 500, peak: 500, closed: true, onClose: null }
  assert.equal(resets.absorb(ctxOn(gone)), true)
  assert.equal(resets.absorb(ctxOn(gone)), true)
  assert.deepEqual(written.at(-1), { client: '10.0.0.3', proto: 'h2c', resets: 500 })
  assert.equal(written.length, 2)
})

test('the JSON line is exactly the fields in order, the optional ones after client', () => {
  const base = { method: 'GET', host: 'example.test', rawPath: '/a', status: 200, bytes: 5, cache: 'HIT', protocol: 'http/1.1', clientAddress: '127.0.0.1', error: undefined }
  const plain = writeJson(base as unknown as Context, 1.23456)
  assert.match(plain, /^\{"time":\d{13},"msg":"request","method":"GET","host":"example\.test","path":"\/a","status":200,"bytes":5,"ms":1\.235,"cache":"HIT","proto":"http\/1\.1","client":"127\.0\.0\.1"\}\n$/)
  const all = { ...base, upstream: 'http://u:1', corsRefused: 'origin', rateLimited: true, csrfRefused: 'cross-site', error: new Error('x') }
  const text = writeJson(all as unknown as Context, 0.5)
  assert.ok(text.endsWith(',"client":"127.0.0.1","upstream":"http://u:1","cors":"refused: origin","rateLimited":true,"csrf":"refused: cross-site","error":"x"}\n'), text)
  // a DEL or a non-ASCII character goes through JSON.stringify, as before the line was built by hand
  assert.equal(JSON.parse(writeJson({ ...base, rawPath: '/\u007f\u00e9' } as unknown as Context, 1)).path, '/\u007f\u00e9')
})

test('accessLine hands out the line the access log just made for the same answer, and makes one for any other', () => {
  const base = { method: 'GET', host: 'example.test', rawPath: '/a', status: 200, bytes: 5, cache: 'HIT', protocol: 'http/1.1', clientAddress: '127.0.0.1', error: undefined }
  const a = { ...base } as unknown as Context
  const b = { ...base, rawPath: '/b' } as unknown as Context
  const written = writeJson(a, 1.5)
  // a line made again would say 500: the one handed out is the line already made
  ;(a as { status: number }).status = 500
  assert.equal(accessLine(a, 1.5), written)
  ;(a as { status: number }).status = 200
  const other = accessLine(b, 2)
  assert.equal((JSON.parse(other) as { path: string }).path, '/b')
  // b's line is now the last one: a's is made anew, with the same content but its own time
  const again = JSON.parse(accessLine(a, 1.5)) as Record<string, unknown>
  assert.equal(again.path, '/a')
  assert.equal(again.ms, 1.5)
})

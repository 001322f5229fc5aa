import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import type { EdgeboxConfigInput } from '../../src/config/schema.ts'
import { closedPort, request, startServer, statuses, tempDir, type TestServer } from '../helpers/server.ts'
import { FRAME, rawH2, type RawH2 } from '../helpers/h2raw.ts'
import { accessLines } from '../helpers/access-log.ts'

/**
 * Connection handling under hostile or broken clients: pipelined requests
 * followed by malformed ones, bare-LF line endings, log levels of
 * client-caused errors, HTTP/2 sessions that idle or stall, and streams the
 * client abandons.
 */

const site = tempDir()
writeFileSync(path.join(site.dir, 'a.txt'), 'AAAA')
writeFileSync(path.join(site.dir, 'b.txt'), 'BBBB')
// larger than a stream's initial flow-control window (65,535 bytes): its response waits for WINDOW_UPDATE
writeFileSync(path.join(site.dir, 'big.bin'), Buffer.alloc(1024 * 1024, 'z'))

let srv: TestServer
before(async () => {
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
})
after(async () => {
  await srv.close()
  site.cleanup()
})

/** Sends `bytes` in one write; resolves with everything received and whether the server closed within `ms`. */
function exchange(port: number, bytes: string, ms = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bytes, 'latin1'))
    let text = ''
    const timer = setTimeout(() => {
      sock.destroy()
      resolve({ text, closed: false })
    }, ms)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => (text += d))
    sock.on('error', () => {})
    sock.on('close', () => {
      clearTimeout(timer)
      resolve({ text, closed: true })
    })
  })
}

/** The bodies (UTF-8) of the responses in raw HTTP/1.1 text read as latin1 (each with a Content-Length). */
function bodies(text: string): string[] {
  const out: string[] = []
  const re = /HTTP\/1\.1 \d{3} [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n/g
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const len = Number(/content-length: (\d+)/i.exec(m[1]!)?.[1] ?? 0)
    out.push(Buffer.from(text.slice(re.lastIndex, re.lastIndex + len), 'latin1').toString('utf8'))
    re.lastIndex += len
  }
  return out
}

async function stillServes(port = srv.port): Promise<void> {
  const r = await exchange(port, 'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  assert.deepEqual(statuses(r.text), [200])
  assert.deepEqual(bodies(r.text), ['AAAA'])
}

describe('a valid pipelined request followed by a malformed one in the same write', () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ['a request line that is not a request line', 'GARBAGE\r\n\r\n', 400, /^400 Bad Request: malformed request line/],
    ['an unknown method token', 'FROB /b.txt HTTP/1.1\r\nHost: a\r\n\r\n', 501, /^501 Not Implemented: method FROB is not implemented\n$/],
    ['control bytes where the method should be', '\x01\x02 /b.txt HTTP/1.1\r\nHost: a\r\n\r\n', 400, /^400 Bad Request: malformed request line/],
    ['a method token glued to a known one', 'POSTX /b.txt HTTP/1.1\r\nHost: a\r\n\r\n', 501, /^501 Not Implemented: method POSTX is not implemented\n$/],
  ]
  for (const [name, bad, status, message] of cases) {
    test(`${name}: the valid response first, then ${status}, then close`, async () => {
      const r = await exchange(srv.port, `GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\n${bad}`)
      assert.deepEqual(statuses(r.text), [200, status], r.text)
      const [first, second] = bodies(r.text)
      assert.equal(first, 'AAAA')
      assert.match(second!, message)
      assert.doesNotMatch(second!, /GET/)
      assert.equal(r.closed, true, 'the connection is closed after the error')
      await stillServes()
    })
  }

  test('three valid requests, then a malformed one: three responses in order, then 400', async () => {
    const ok = 'GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: a\r\n\r\n'
    const r = await exchange(srv.port, `${ok}\x01 / HTTP/1.1\r\n\r\n`)
    assert.deepEqual(statuses(r.text), [200, 200, 200, 400], r.text)
    assert.deepEqual(bodies(r.text).slice(0, 3), ['AAAA', 'BBBB', 'AAAA'])
    assert.equal(r.closed, true)
    await stillServes()
  })

  test('an unknown method token alone still gets 501 naming it', async () => {
    const r = await exchange(srv.port, 'FROB / HTTP/1.1\r\nHost: a\r\n\r\n')
    assert.deepEqual(statuses(r.text), [501])
    assert.deepEqual(bodies(r.text), ['501 Not Implemented: method FROB is not implemented\n'])
    assert.equal(r.closed, true)
  })
})

describe('line endings (RFC 9112 §2.2: a server may reject a bare LF)', () => {
  const bareLf = /^400 Bad Request: bare LF line ending: HTTP\/1\.1 lines end with CRLF \(RFC 9112 §2\.2\)\n$/
  const bareCr = /^400 Bad Request: CR without LF: HTTP\/1\.1 lines end with CRLF \(RFC 9112 §2\.2\)\n$/
  const cases: Array<[string, string, number, RegExp]> = [
    ['bare LF everywhere', 'GET /a.txt HTTP/1.1\nHost: a\n\n', 400, bareLf],
    ['bare LF after a header value', 'GET /a.txt HTTP/1.1\r\nHost: a\n\r\n', 400, bareLf],
    ['bare LF ending the head', 'GET /a.txt HTTP/1.1\r\nHost: a\r\n\n', 400, bareLf],
    ['bare LF after an HTTP/1.0 request line', 'GET /a.txt HTTP/1.0\n\n', 400, bareLf],
    ['CR without LF after the request line', 'GET /a.txt HTTP/1.1\rHost: a\r\n\r\n', 400, bareCr],
    ['CR without LF after a header value', 'GET /a.txt HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', 400, bareCr],
    ['HTTP/3.0 is still a version problem', 'GET /a.txt HTTP/3.0\r\nHost: a\r\n\r\n', 505, /^505 HTTP Version Not Supported: /],
    ['HTTP/1.x is still a version problem', 'GET /a.txt HTTP/1.x\r\nHost: a\r\n\r\n', 505, /^505 HTTP Version Not Supported: /],
  ]
  for (const [name, bytes, status, message] of cases) {
    test(`${name} -> ${status}`, async () => {
      const r = await exchange(srv.port, bytes)
      assert.deepEqual(statuses(r.text), [status], r.text)
      assert.match(bodies(r.text)[0]!, message)
      assert.equal(r.closed, true)
      await stillServes()
    })
  }

  test('a bare LF in the body of a request already answered: that answer, then close, and no second answer', async () => {
    // POST on a static route is answered 405 at once, before its chunked body is parsed
    const r = await exchange(srv.port, 'POST /a.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n')
    assert.deepEqual(statuses(r.text), [405], r.text)
    assert.equal(r.closed, true)
    await stillServes()
  })

  test('a valid request, then one with bare LF: 200, then 400', async () => {
    const r = await exchange(srv.port, 'GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /b.txt HTTP/1.1\nHost: a\n\n')
    assert.deepEqual(statuses(r.text), [200, 400], r.text)
    assert.equal(bodies(r.text)[0], 'AAAA')
    assert.match(bodies(r.text)[1]!, bareLf)
  })
})

/** One application log record as pino writes it. */
interface LogRecord {
  level: number
  msg: string
  status?: number
  err?: { message: string; stack?: string }
  [key: string]: unknown
}

/** Edgebox on a free port with its application log (debug and up) kept in memory. */
async function startLogged(input: Omit<EdgeboxConfigInput, 'listen'>): Promise<{ box: Edgebox; port: number; records: LogRecord[] }> {
  const records: LogRecord[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as LogRecord)
      done()
    },
  })
  const box = await startEdgebox({ ...input, listen: [{ host: '127.0.0.1', port: 0 }], log: { access: false, level: 'debug' } }, { log: pino({ level: 'debug' }, sink) })
  return { box, port: Number(new URL(box.urls[0]!).port), records }
}

/** Polls until `find` matches a record (bounded), then returns it. */
async function logged(records: LogRecord[], find: (r: LogRecord) => boolean, ms = 5000): Promise<LogRecord> {
  const end = Date.now() + ms
  for (;;) {
    const r = records.find(find)
    if (r) return r
    if (Date.now() > end) throw new Error(`no such log record within ${ms} ms; got:\n${records.map((x) => JSON.stringify(x)).join('\n')}`)
    await new Promise((res) => setTimeout(res, 20))
  }
}

const INFO = 30
const WARN = 40
const ERROR = 50

describe('log levels: what the client caused is not an error of the server', () => {
  let box: Edgebox
  let port: number
  let records: LogRecord[]
  before(async () => {
    const dead = await closedPort()
    ;({ box, port, records } = await startLogged({
      sites: [{ routes: [{ path: '/dead/', proxy: { upstreams: [`http://127.0.0.1:${dead}`] } }, { path: '/', static: { root: site.dir } }] }],
    }))
  })
  after(() => box.close())

  const clientCaused = (r: LogRecord) => r.level === INFO || r.level === WARN

  test('a method Edgebox does not implement (501): info, without a stack', async () => {
    records.length = 0
    const r = await exchange(port, 'PROPFIND /a.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.deepEqual(statuses(r.text), [501])
    const rec = await logged(records, (x) => x.status === 501)
    assert.ok(clientCaused(rec), JSON.stringify(rec))
    assert.equal(rec.err, undefined)
    assert.doesNotMatch(JSON.stringify(rec), /\n\s+at /)
    assert.deepEqual(records.filter((x) => x.level >= ERROR), [])
  })

  test('a request the parser refuses: info with its status and reason, without a stack', async () => {
    records.length = 0
    const r = await exchange(port, 'GARBAGE\r\n\r\n')
    assert.deepEqual(statuses(r.text), [400])
    const rec = await logged(records, (x) => x.status === 400)
    assert.ok(clientCaused(rec), JSON.stringify(rec))
    assert.match(String(rec.reason), /malformed request line/)
    assert.equal(rec.err, undefined)
    assert.deepEqual(records.filter((x) => x.level >= ERROR), [])
  })

  test('an HTTP/2 protocol error from the client: info, without a stack', async () => {
    records.length = 0
    // a SETTINGS frame whose length is not a multiple of 6 (RFC 9113 §6.5: FRAME_SIZE_ERROR)
    const bad = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 8, 0x4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])])
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bad))
    sock.on('error', () => {})
    sock.resume()
    const rec = await logged(records, (x) => /HTTP\/2/.test(x.msg))
    sock.destroy()
    assert.ok(clientCaused(rec), JSON.stringify(rec))
    assert.equal(rec.err, undefined)
    assert.deepEqual(records.filter((x) => x.level >= ERROR), [])
    await stillServes(port)
  })

  test('a server fault (the upstream refuses, 502) is still an error, with its stack', async () => {
    records.length = 0
    const r = await exchange(port, 'GET /dead/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.deepEqual(statuses(r.text), [502])
    const rec = await logged(records, (x) => x.status === 502)
    assert.equal(rec.level, ERROR)
    assert.match(String(rec.err?.stack), /\n\s+at /)
  })
})

/** Resolves true once the raw client's connection has closed, false if it is still open after `ms`. */
function closesWithin(c: RawH2, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms)
    void c.closed.then(() => {
      clearTimeout(t)
      resolve(true)
    })
  })
}

describe('HTTP/2 sessions follow the HTTP/1.1 timeouts', () => {
  // idleTimeout stays at its 2 minutes: a session cut within seconds was cut by keepAliveTimeout or headersTimeout
  let h2srv: TestServer
  before(async () => {
    h2srv = await startServer({ limits: { keepAliveTimeout: '300ms', headersTimeout: '500ms' }, sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
  })
  after(() => h2srv.close())
  const BOUND = 5000

  test('a session with no open stream is closed with GOAWAY after keepAliveTimeout', async () => {
    const c = await rawH2(h2srv.port, { cleartext: true })
    try {
      c.get(1, '/a.txt')
      const data = await c.waitFor(FRAME.DATA, BOUND, 1)
      assert.equal(data?.payload.toString(), 'AAAA')
      assert.equal(await closesWithin(c, BOUND), true, 'the idle session was closed')
      const goaway = c.frames.find((f) => f.type === FRAME.GOAWAY)
      assert.ok(goaway, 'GOAWAY before the close')
      assert.equal(goaway.payload.readUInt32BE(4), 0, 'NO_ERROR')
      assert.equal(goaway.payload.readUInt32BE(0) & 0x7fffffff, 1, 'the last stream processed')
    } finally {
      c.destroy()
    }
  })

  test('a session that sends only the preface and SETTINGS, no request, is closed after headersTimeout', async () => {
    const c = await rawH2(h2srv.port, { cleartext: true })
    try {
      assert.ok(await c.waitFor(FRAME.SETTINGS, BOUND), 'the server greeted')
      assert.equal(await closesWithin(c, BOUND), true)
      assert.ok(c.frames.some((f) => f.type === FRAME.GOAWAY), 'GOAWAY before the close')
    } finally {
      c.destroy()
    }
  })

  test('a header block that is started and never finished (no CONTINUATION) is cut after headersTimeout', async () => {
    const c = await rawH2(h2srv.port, { cleartext: true })
    try {
      c.get(1, '/a.txt')
      assert.ok(await c.waitFor(FRAME.DATA, BOUND, 1))
      c.startHeaders(3, '/b.txt')
      assert.equal(await closesWithin(c, BOUND), true)
      assert.ok(c.frames.some((f) => f.type === FRAME.GOAWAY), 'GOAWAY before the close')
      assert.equal(c.frames.some((f) => f.streamId === 3), false, 'stream 3 was never answered')
    } finally {
      c.destroy()
    }
  })

  test('a session whose response is in progress stays open (idleTimeout rules it); an idle one beside it is closed', async () => {
    const busy = await rawH2(h2srv.port, { cleartext: true })
    const idle = await rawH2(h2srv.port, { cleartext: true })
    try {
      busy.get(1, '/big.bin')
      assert.ok(await busy.waitFor(FRAME.DATA, BOUND, 1))
      // the response now waits for flow-control credit: a stream in progress, the connection quiet
      idle.get(1, '/a.txt')
      assert.ok(await idle.waitFor(FRAME.DATA, BOUND, 1))
      assert.equal(await closesWithin(idle, BOUND), true, 'the idle session was closed')
      assert.equal(busy.frames.some((f) => f.type === FRAME.GOAWAY), false, 'no GOAWAY for the busy session')
      // the busy one still works: give credit, the rest of the body comes
      const before = busy.frames.filter((f) => f.type === FRAME.DATA).length
      busy.windowUpdate(0, 1 << 24)
      busy.windowUpdate(1, 1 << 24)
      const end = Date.now() + BOUND
      while (!busy.frames.some((f) => f.type === FRAME.DATA && f.streamId === 1 && f.flags & 0x1) && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
      assert.ok(busy.frames.filter((f) => f.type === FRAME.DATA).length > before, 'more DATA after WINDOW_UPDATE')
      assert.ok(busy.frames.some((f) => f.type === FRAME.DATA && f.streamId === 1 && f.flags & 0x1), 'the body ended (END_STREAM)')
    } finally {
      busy.destroy()
      idle.destroy()
    }
  })

  test('HTTP/1.1 on the same listener: an idle keep-alive connection is closed too', async () => {
    const r = await exchange(h2srv.port, 'GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\n', BOUND)
    assert.deepEqual(statuses(r.text), [200])
    assert.equal(r.closed, true)
  })
})


describe('requests the client abandons are logged as 499, and reset floods as one line', () => {
  const HUGE = 32 * 1024 * 1024
  const files = tempDir()
  const logFile = path.join(files.dir, 'access.log')
  let ab: TestServer
  before(async () => {
    writeFileSync(path.join(site.dir, 'huge.bin'), Buffer.alloc(HUGE, 'h'))
    writeFileSync(path.join(site.dir, 'fresh.txt'), 'FRESH')
    ab = await startServer({ log: { access: true, format: 'json', file: logFile, resetFlood: 5 }, sites: [{ routes: [{ path: '/', static: { root: site.dir } }] }] })
  })
  after(async () => {
    await ab.close()
    files.cleanup()
  })

  test('HTTP/1.1: a connection closed mid-download is a 499 with the bytes sent so far', async () => {
    await new Promise<void>((resolve) => {
      const c = net.connect(ab.port, '127.0.0.1', () => c.write('GET /huge.bin HTTP/1.1\r\nHost: a\r\n\r\n'))
      c.once('data', () => {
        c.destroy()
        resolve()
      })
    })
    const lines = await accessLines(logFile, (ls) => ls.some((l) => l.path === '/huge.bin'))
    const line = lines.find((l) => l.path === '/huge.bin')!
    assert.equal(line.status, 499, JSON.stringify(line))
    assert.ok(line.bytes! < HUGE, `bytes ${line.bytes} of ${HUGE}`)
  })

  test('HTTP/2: a stream reset before its answer is a 499 with 0 bytes; a complete one keeps its status', async () => {
    const c = await rawH2(ab.port, { cleartext: true })
    try {
      c.get(1, '/fresh.txt')
      c.reset(1)
      await c.flush()
      const done = await request('h2c', ab.url + 'a.txt')
      assert.equal(done.status, 200)
      const lines = await accessLines(logFile, (ls) => ls.some((l) => l.path === '/fresh.txt') && ls.some((l) => l.path === '/a.txt' && l.proto === 'h2c'))
      const reset = lines.find((l) => l.path === '/fresh.txt')!
      assert.deepEqual([reset.status, reset.bytes, reset.proto, reset.client], [499, 0, 'h2c', '127.0.0.1'])
      const ok = lines.find((l) => l.path === '/a.txt' && l.proto === 'h2c')!
      assert.deepEqual([ok.status, ok.bytes], [200, 4])
    } finally {
      c.destroy()
    }
  })

  test('more than log.resetFlood resets per second on one connection: one summary line when it closes', async () => {
    const c = await rawH2(ab.port, { cleartext: true })
    const N = 200
    // paths no other test asks for: each answer waits for the file system, after the reset
    for (let i = 0; i < N; i++) {
      const id = 1 + 2 * i
      c.get(id, `/flood-${i}.txt`)
      c.reset(id)
    }
    await c.flush()
    c.destroy()
    const lines = await accessLines(logFile, (ls) => ls.some((l) => l.msg === 'stream resets'))
    const own = lines.filter((l) => l.path?.startsWith('/flood-'))
    const summary = lines.find((l) => l.msg === 'stream resets')!
    // the server reads the resets long before the file system answers: the flood is known before any line is due
    assert.ok(own.length <= 5, `${own.length} lines of their own, at most log.resetFlood`)
    assert.ok(own.every((l) => l.status === 499 && l.bytes === 0))
    assert.deepEqual({ ...summary, time: 0 }, { time: 0, msg: 'stream resets', client: '127.0.0.1', proto: 'h2c', resets: N })
  })

  test('a rapid-reset flood gets GOAWAY with INTERNAL_ERROR from Node, and the access log stays small', async () => {
    const c = await rawH2(ab.port, { cleartext: true })
    try {
      for (let id = 1; id < 2 * 20_000 && !c.frames.some((f) => f.type === FRAME.GOAWAY); id += 2) {
        c.get(id, '/a.txt')
        c.reset(id)
        if (id % 1000 === 1) await c.flush()
      }
      const goaway = await c.waitFor(FRAME.GOAWAY, 10_000)
      assert.ok(goaway, 'the server sent GOAWAY')
      assert.equal(goaway.payload.readUInt32BE(4), http2.constants.NGHTTP2_INTERNAL_ERROR)
      assert.equal(await closesWithin(c, 10_000), true)
      const summaries = () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"stream resets"')).length
      const before = summaries()
      const lines = await accessLines(logFile, (ls) => ls.filter((l) => l.msg === 'stream resets').length > before)
      const last = lines.filter((l) => l.msg === 'stream resets').at(-1)!
      assert.ok(last.resets! > 0)
      assert.ok(lines.filter((l) => l.path === '/a.txt' && l.status === 499).length <= 5, 'no line per cancelled stream')
    } finally {
      c.destroy()
    }
    await stillServes(ab.port)
  })
})

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import dc from 'node:diagnostics_channel'
import { readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import zlib from 'node:zlib'
import { frame, PREFACE } from '../helpers/h2raw.ts'
import { listening, PROTOCOLS, startServer, tempDir, type Protocol, type TestServer } from '../helpers/server.ts'

/**
 * Slow readers: a client that asks for a large response and then reads
 * nothing must not make Edgebox hold more than a bounded number of bytes for
 * it, whatever the response's source (a file, a compressor, an upstream, the
 * shared cache). Backpressure has to reach the file or the upstream.
 *
 * What Edgebox holds is read from its own objects, found through Node's
 * public diagnostics channels: the HTTP/1 response and socket (their
 * writableLength), the HTTP/2 stream (its writableLength), and for the proxy
 * the upstream connection's bytesRead against the bytes that left Edgebox.
 * Never process memory, never timings: the test waits until the transfer
 * stops moving, then looks.
 */

const KiB = 1024
const MiB = 1024 * KiB
/** The static route's readChunk. */
const READ_CHUNK = 256 * KiB
/** Node's default high-water mark for sockets, responses and HTTP/2 streams. */
const HWM = 64 * KiB
/** A file response may hold one read chunk and one high-water mark (and the head). */
const FILE_BOUND = READ_CHUNK + HWM + 16 * KiB
/**
 * A proxied response may hold what the upstream socket buffers (one
 * high-water mark), one upstream chunk, and one high-water mark towards the
 * client.
 */
const PROXY_BOUND = 4 * HWM
/** The files and upstream bodies: far more than the kernel's socket buffers take on loopback. */
const SIZE = 24 * MiB
/** The shared cache's maxObjectSize in these tests. */
const MAX_OBJECT = 4 * MiB
/**
 * A response compressed on the fly may read ahead of what it sent by: a read
 * chunk waiting for the compressor and one inside it, the block the encoder
 * gathers before it emits anything (brotli's: 512 KiB), and its output on the
 * way (two high-water marks of compressed bytes, about twice that of text).
 */
const COMPRESS_BOUND = 2 * READ_CHUNK + 512 * KiB + 4 * 2 * HWM
/** HTTP/2 clients open this little flow-control window and never widen it (RFC 9113 §6.9.2). */
const H2_WINDOW = 16 * KiB

// ---- what Edgebox holds, seen through diagnostics channels ----

interface ServerSide {
  /** The status sent, 0 before the head. */
  status(): number
  /** Bytes written to the response and not yet taken by the kernel (HTTP/1) or the peer's window (HTTP/2). */
  buffered(): number
}

const h1Responses = new Map<string, { res: http.ServerResponse; socket: net.Socket }>()
const h2Streams = new Map<string, http2.ServerHttp2Stream>()
const outgoing: net.Socket[] = []
/** The test's own origin servers: their requests are not Edgebox's. */
const origins = new Set<unknown>()

dc.subscribe('http.server.request.start', (m) => {
  const { request, response, socket, server } = m as { request: http.IncomingMessage; response: http.ServerResponse; socket: net.Socket; server: unknown }
  if (!origins.has(server)) h1Responses.set(request.url!, { res: response, socket })
})
dc.subscribe('http2.server.stream.start', (m) => {
  const { stream, headers } = m as { stream: http2.ServerHttp2Stream; headers: http2.IncomingHttpHeaders }
  h2Streams.set(String(headers[':path']), stream)
})
dc.subscribe('net.client.socket', (m) => outgoing.push((m as { socket: net.Socket }).socket))

function serverSide(protocol: Protocol, target: string): ServerSide | undefined {
  if (protocol === 'h2c') {
    const stream = h2Streams.get(target)
    if (!stream) return undefined
    return {
      status: () => Number((stream.sentHeaders as http2.OutgoingHttpHeaders | undefined)?.[':status'] ?? 0),
      buffered: () => stream.writableLength,
    }
  }
  const h = h1Responses.get(target)
  if (!h) return undefined
  return {
    status: () => (h.res.headersSent ? h.res.statusCode : 0),
    // the response's own buffer plus its socket's (OutgoingMessage.writableLength counts both)
    buffered: () => h.res.writableLength,
  }
}

/** Bytes Edgebox has handed on towards the client: to the kernel (HTTP/1), or into the client's hands (HTTP/2, whose window is tiny). */
function delivered(protocol: Protocol, target: string, client: SlowClient): number {
  if (protocol === 'h2c') return client.received()
  const socket = h1Responses.get(target)!.socket
  return socket.bytesWritten - socket.writableLength
}

/** Bytes Edgebox read from connections to `port` since `base` (a snapshot from upstreamRead). */
function upstreamRead(port: number, base = new Map<net.Socket, number>()): { total: number; snapshot: Map<net.Socket, number> } {
  let total = 0
  const snapshot = new Map<net.Socket, number>()
  for (const s of outgoing) {
    if (s.remotePort !== port && !base.has(s)) continue
    snapshot.set(s, s.bytesRead)
    total += s.bytesRead - (base.get(s) ?? 0)
  }
  return { total, snapshot }
}

/** Polls `probe` until it returns the same value `stable` times in a row (bounded): the transfer has stopped moving. */
async function settle(probe: () => string, stable = 8, every = 25, limit = 400): Promise<void> {
  let last = probe()
  let same = 0
  for (let i = 0; i < limit && same < stable; i++) {
    await new Promise((r) => setTimeout(r, every))
    const now = probe()
    same = now === last ? same + 1 : 0
    last = now
  }
  assert.ok(same >= stable, `the transfer did not stop moving (last state ${last})`)
}

/** Polls until `ready` is true (bounded). */
async function until(ready: () => boolean, what: string, limit = 200): Promise<void> {
  for (let i = 0; i < limit && !ready(); i++) await new Promise((r) => setTimeout(r, 25))
  assert.ok(ready(), `timed out waiting for ${what}`)
}

/**
 * How far this process has read `file` through descriptors that read it in
 * sequence (a file stream's position, from /proc/self/fdinfo), summed over
 * every descriptor open on it but those in `except`; and which are open.
 */
function fileReads(file: string, except: ReadonlySet<string> = new Set()): { read: number; fds: Set<string> } {
  let read = 0
  const fds = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue // closed meanwhile
    }
    if (target !== file) continue
    fds.add(fd)
    if (except.has(fd)) continue
    try {
      read += Number(/^pos:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0)
    } catch {
      // closed meanwhile
    }
  }
  return { read, fds }
}

// ---- slow clients ----

interface SlowClient {
  /** Bytes the client holds (read from the network) while it is not reading. */
  received(): number
  /** Starts reading and resolves with the status, headers and decoded body. */
  readAll(): Promise<{ status: number; headers: Record<string, string>; body: Buffer }>
  close(): void
}

/** Sends a GET and reads nothing: an HTTP/1.1 raw socket kept paused, or an HTTP/2 stream never consumed with a tiny window. */
function slowGet(protocol: Protocol, port: number, target: string, headers: Record<string, string> = {}): SlowClient {
  return protocol === 'h2c' ? slowH2(port, target, headers) : slowH1(port, target, headers)
}

function slowH1(port: number, target: string, headers: Record<string, string>): SlowClient {
  const sock = net.connect(port, '127.0.0.1')
  sock.on('error', () => {})
  sock.pause()
  const fields = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  sock.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${fields}\r\n`)
  return {
    received: () => sock.readableLength,
    readAll: () =>
      new Promise((resolve, reject) => {
        // the request said Connection: close, so the response ends with the connection
        const chunks: Buffer[] = []
        sock.on('data', (c: Buffer) => chunks.push(c))
        sock.on('end', () => {
          const all = Buffer.concat(chunks)
          const end = all.indexOf('\r\n\r\n')
          const lines = all.subarray(0, Math.max(0, end)).toString('latin1').split('\r\n')
          const status = Number(lines[0]!.split(' ')[1])
          const head: Record<string, string> = {}
          for (const l of lines.slice(1)) head[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim()
          const rest = all.subarray(end + 4)
          const body = head['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest
          if (end < 0 || !body) return reject(new Error(`an incomplete response (${all.length} bytes)`))
          resolve({ status, headers: head, body: decode(head['content-encoding'], body) })
        })
        sock.resume()
      }),
    close: () => sock.destroy(),
  }
}

function slowH2(port: number, target: string, headers: Record<string, string>): SlowClient {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: H2_WINDOW } })
  session.on('error', () => {})
  const stream = session.request({ ':path': target, ...headers })
  stream.on('error', () => {})
  let status = 0
  let head: Record<string, string> = {}
  stream.on('response', (h) => {
    status = Number(h[':status'])
    head = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]))
  })
  return {
    received: () => stream.readableLength,
    readAll: () =>
      new Promise((resolve, reject) => {
        const chunks: Buffer[] = []
        stream.on('data', (c: Buffer) => chunks.push(c))
        stream.on('end', () => {
          session.close()
          resolve({ status, headers: head, body: decode(head['content-encoding'], Buffer.concat(chunks)) })
        })
        stream.on('close', () => setImmediate(() => reject(new Error('the stream closed before the whole response'))))
      }),
    close: () => session.destroy(),
  }
}

/**
 * An HTTP/2 client that opens the widest windows (RFC 9113 §6.9: 2^31-1 for
 * the stream and the connection), sends one GET, acknowledges the server's
 * SETTINGS and then stops reading its connection: only TCP holds the server
 * back. Frames are written by hand (RFC 9113 §4.1, HPACK literals RFC 7541).
 */
function stalledH2(port: number, target: string, encoding?: string, opts: { window?: number; drain?: boolean } = {}): { halfClose(): void; close(): void } {
  const settings = Buffer.alloc(6)
  settings.writeUInt16BE(0x4, 0) // SETTINGS_INITIAL_WINDOW_SIZE
  settings.writeUInt32BE(opts.window ?? 0x7fffffff, 2)
  const widen = Buffer.alloc(4)
  widen.writeUInt32BE(0x7fffffff - 65535, 0)
  const literal = (index: number, value: string) => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)])
  // :method GET (0x82), :scheme http (0x86), :authority and :path as literals without indexing
  const fields = [Buffer.from([0x82, 0x86]), literal(0x01, 'localhost'), literal(0x04, target)]
  if (encoding) fields.push(Buffer.from([0x00, 15]), Buffer.from('accept-encoding'), Buffer.from([encoding.length]), Buffer.from(encoding))
  const block = Buffer.concat(fields)
  const sock = net.connect(port, '127.0.0.1')
  sock.on('error', () => {})
  sock.write(
    Buffer.concat([
      PREFACE,
      frame(0x4, 0, 0, settings),
      frame(0x8, 0, 0, widen),
      frame(0x1, 0x5, 1, block), // HEADERS, END_STREAM | END_HEADERS
    ]),
  )
  // the server's SETTINGS come first: acknowledge them (RFC 9113 §6.5.3), then read nothing more
  sock.once('data', () => {
    if (!opts.drain) sock.pause()
    sock.write(frame(0x4, 0x1, 0, Buffer.alloc(0)))
  })
  return { halfClose: () => sock.end(), close: () => sock.destroy() }
}

/** RFC 9112 §7.1: the chunked coding, once the last chunk has arrived (else null). */
function dechunk(data: Buffer): Buffer | null {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = data.indexOf('\r\n', at)
    if (eol < 0) return null
    const n = parseInt(data.subarray(at, eol).toString('latin1'), 16)
    if (n === 0) return Buffer.concat(parts)
    if (data.length < eol + 2 + n + 2) return null
    parts.push(data.subarray(eol + 2, eol + 2 + n))
    at = eol + 2 + n + 2
  }
}

function decode(coding: string | undefined, body: Buffer): Buffer {
  if (coding === 'gzip') return zlib.gunzipSync(body)
  if (coding === 'br') return zlib.brotliDecompressSync(body)
  return body
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

// ---- an origin that counts what it managed to write ----

interface Written {
  /** Body bytes the origin handed to its socket, honouring backpressure (write() false: wait for 'drain'). */
  bytes: number
  done: boolean
}

/**
 * Answers `/<anything>?t=<token>[&chunked][&cc=<cache-control>]` with SIZE
 * bytes of `BODY`, written in 64 KiB pieces as fast as the proxy takes them.
 */
async function origin(body: Buffer): Promise<{ port: number; written: Map<string, Written>; close(): Promise<void> }> {
  const written = new Map<string, Written>()
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://origin')
    const w: Written = { bytes: 0, done: false }
    written.set(u.searchParams.get('t') ?? '', w)
    const head: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Cache-Control': u.searchParams.get('cc') ?? 'no-store' }
    if (!u.searchParams.has('chunked')) head['Content-Length'] = String(body.length)
    res.writeHead(200, head)
    let at = 0
    const more = () => {
      while (at < body.length && !res.destroyed) {
        const piece = body.subarray(at, at + 64 * KiB)
        at += piece.length
        w.bytes += piece.length
        if (!res.write(piece)) return void res.once('drain', more)
      }
      if (!res.destroyed) res.end(() => (w.done = true))
    }
    more()
  })
  origins.add(server)
  const { port, close } = await listening(server)
  return { port, written, close }
}

// ---- the suite ----

let srv: TestServer
let up: Awaited<ReturnType<typeof origin>>
let files: { dir: string; cleanup(): void }
let binary: Buffer
let text: Buffer
let seq = 0
/** How many bytes of the text one compressed byte stands for, per coding (measured on a sample). */
const ratio = { gzip: 0, br: 0 }

before(async () => {
  files = tempDir('edgebox-slow-')
  binary = randomBytes(SIZE)
  // text that compresses only so much (hex digits): the compressed stream is still far larger than socket buffers
  text = Buffer.from(randomBytes(SIZE / 2).toString('hex'))
  writeFileSync(path.join(files.dir, 'big.bin'), binary)
  writeFileSync(path.join(files.dir, 'big.txt'), text)
  const sample = text.subarray(0, 2 * MiB)
  ratio.gzip = sample.length / zlib.gzipSync(sample).length
  ratio.br = sample.length / zlib.brotliCompressSync(sample, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }).length
  up = await origin(binary)
  const upstream = `http://127.0.0.1:${up.port}`
  srv = await startServer({
    sites: [
      {
        routes: [
          { path: '/', static: { root: files.dir, readChunk: READ_CHUNK, compress: { precompressed: false } } },
          { path: '/plain/', proxy: { upstreams: [upstream], retries: { attempts: 0 } } },
          { path: '/cached/', proxy: { upstreams: [upstream], retries: { attempts: 0 }, cache: { maxObjectSize: MAX_OBJECT } } },
          { path: '/whole/', proxy: { upstreams: [upstream], retries: { attempts: 0 }, cache: { maxObjectSize: MAX_OBJECT, rangeMiss: 'whole' } } },
        ],
      },
    ],
  })
})

after(async () => {
  await srv?.close()
  await up?.close()
  files?.cleanup()
})

/** Resolves once this request's own descriptors on `file` (those not in `before`) are open, and returns them. */
async function ownDescriptors(file: string, before: ReadonlySet<string>): Promise<Set<string>> {
  let mine = new Set<string>()
  await until(() => (mine = new Set([...fileReads(file).fds].filter((fd) => !before.has(fd)))).size > 0, 'the file to be opened')
  return mine
}

/** Whether none of `fds` is open on `file` any more. */
function released(file: string, fds: ReadonlySet<string>): boolean {
  const open = fileReads(file).fds
  return [...fds].every((fd) => !open.has(fd))
}

/**
 * A slow reader that goes away while its response is blocked: the file's
 * descriptor (and the chunk read from it) is released with the response, not
 * left to the garbage collector or an idle timeout.
 */
async function leaveMidway(protocol: Protocol, target: string, name: string, headers: Record<string, string>): Promise<void> {
  const file = realpathSync(path.join(files.dir, name))
  const before = fileReads(file).fds
  const client = slowGet(protocol, srv.port, target, headers)
  const mine = await ownDescriptors(file, before)
  await until(() => serverSide(protocol, target) !== undefined && serverSide(protocol, target)!.status() === 200, 'the response head')
  const side = serverSide(protocol, target)!
  await settle(() => `${side.buffered()} ${client.received()}`)
  client.close()
  await until(() => released(file, mine), 'the file to be closed')
}

/**
 * Asks for `target` as a slow reader, waits until nothing moves, checks the
 * status and what Edgebox holds, then reads the whole response and checks
 * every byte.
 */
async function slowFile(protocol: Protocol, target: string, headers: Record<string, string>, expect: { status: number; encoding?: string; body: Buffer }): Promise<void> {
  const client = slowGet(protocol, srv.port, target, headers)
  try {
    await until(() => serverSide(protocol, target) !== undefined && serverSide(protocol, target)!.status() > 0, 'the response head')
    const side = serverSide(protocol, target)!
    await settle(() => `${side.buffered()} ${client.received()} ${protocol === 'h2c' ? 0 : delivered(protocol, target, client)}`)
    assert.equal(side.status(), expect.status)
    // the reader was really slow: the response is far from sent
    assert.ok(client.received() + (protocol === 'h2c' ? 0 : delivered(protocol, target, client)) < expect.body.length / 2, 'the response must not be all sent')
    const held = side.buffered()
    assert.ok(held <= FILE_BOUND, `Edgebox holds ${held} bytes for one slow reader (bound ${FILE_BOUND})`)
    const got = await client.readAll()
    assert.equal(got.status, expect.status)
    assert.equal(got.headers['content-encoding'], expect.encoding)
    assert.equal(got.body.length, expect.body.length)
    assert.equal(sha(got.body), sha(expect.body))
  } finally {
    client.close()
  }
}

for (const protocol of PROTOCOLS) {
  describe(`slow readers (${protocol})`, () => {
    test('a large static file (sendFile) holds at most one read chunk', async () => {
      const t = `/big.bin?t=${++seq}`
      await slowFile(protocol, t, {}, { status: 200, body: binary })
    })

    test('a client that leaves a large file response closes the file at once', async () => {
      await leaveMidway(protocol, `/big.bin?t=${++seq}`, 'big.bin', {})
    })

    test('a single range of a large file (206 through sendFile) holds at most one read chunk', async () => {
      const t = `/big.bin?t=${++seq}`
      await slowFile(protocol, t, { range: 'bytes=1000-20000000' }, { status: 206, body: binary.subarray(1000, 20000001) })
    })

    test('several ranges of a large file (206 multipart, streamed) hold at most one read chunk', async () => {
      const t = `/big.bin?t=${++seq}`
      const client = slowGet(protocol, srv.port, t, { range: 'bytes=0-9999999,12000000-23999999' })
      try {
        await until(() => serverSide(protocol, t) !== undefined && serverSide(protocol, t)!.status() > 0, 'the response head')
        const side = serverSide(protocol, t)!
        await settle(() => `${side.buffered()} ${client.received()} ${protocol === 'h2c' ? 0 : delivered(protocol, t, client)}`)
        assert.equal(side.status(), 206)
        assert.ok(side.buffered() <= FILE_BOUND, `Edgebox holds ${side.buffered()} bytes for one slow reader (bound ${FILE_BOUND})`)
        const got = await client.readAll()
        assert.equal(got.status, 206)
        assert.match(got.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/)
        // both parts arrive whole: the first range's last bytes and the second's, each followed by the next delimiter
        assert.ok(got.body.includes(binary.subarray(9999000, 10000000)))
        assert.ok(got.body.includes(binary.subarray(23999000, 24000000)))
        assert.equal(got.body.length, Number(got.headers['content-length'] ?? got.body.length))
      } finally {
        client.close()
      }
    })

    for (const encoding of ['gzip', 'br'] as const) {
      test(`a large text compressed on the fly (${encoding}, Context.stream) holds at most the compressor's window and a read chunk`, async () => {
        const t = `/big.txt?t=${++seq}`
        const file = realpathSync(path.join(files.dir, 'big.txt'))
        const others = fileReads(file).fds // descriptors of other requests are not this one's reading
        const client = slowGet(protocol, srv.port, t, { 'accept-encoding': encoding })
        try {
          await until(() => serverSide(protocol, t) !== undefined && serverSide(protocol, t)!.status() > 0, 'the response head')
          const side = serverSide(protocol, t)!
          const out = () => client.received() + (protocol === 'h2c' ? 0 : delivered(protocol, t, client))
          await until(() => out() > 0, 'the first compressed bytes')
          await settle(() => `${side.buffered()} ${out()} ${fileReads(file, others).read}`)
          assert.equal(side.status(), 200)
          assert.ok(side.buffered() <= FILE_BOUND, `Edgebox holds ${side.buffered()} bytes for one slow reader (bound ${FILE_BOUND})`)
          assert.ok(fileReads(file, others).read < text.length / 2, 'the file must not be read to its end')
          if (protocol === 'h2c') {
            // What was read from the file beyond what the bytes sent were compressed from. Measured
            // over HTTP/2, whose tiny window leaves next to nothing in flight: every byte read from the
            // file is either in the client's hands or held by Edgebox (over HTTP/1.1 the kernel's
            // socket buffers take megabytes, and the ratio's error over them would hide the answer).
            const ahead = fileReads(file, others).read - Math.round(out() * ratio[encoding])
            assert.ok(ahead <= COMPRESS_BOUND, `Edgebox read ${ahead} bytes of the file ahead of what it sent (bound ${COMPRESS_BOUND})`)
          }
          const got = await client.readAll()
          assert.equal(got.status, 200)
          assert.equal(got.headers['content-encoding'], encoding)
          assert.equal(sha(got.body), sha(text))
        } finally {
          client.close()
        }
      })

      test(`a client that leaves a response compressed on the fly (${encoding}) closes the file at once`, async () => {
        await leaveMidway(protocol, `/big.txt?t=${++seq}`, 'big.txt', { 'accept-encoding': encoding })
      })
    }

    /**
     * A proxied response: the origin must be held back. What Edgebox read
     * from the upstream and has not handed on stays within PROXY_BOUND
     * (plus, for the shared cache, what it may keep to store).
     */
    async function slowProxy(target: string, token: string, extraHeld: number, headers: Record<string, string> = {}): Promise<void> {
      const base = upstreamRead(up.port)
      const client = slowGet(protocol, srv.port, target, headers)
      try {
        await until(() => serverSide(protocol, target) !== undefined && serverSide(protocol, target)!.status() > 0 && up.written.has(token), 'the response head')
        const side = serverSide(protocol, target)!
        const w = up.written.get(token)!
        await settle(() => `${side.buffered()} ${client.received()} ${delivered(protocol, target, client)} ${upstreamRead(up.port, base.snapshot).total} ${w.bytes}`)
        assert.equal(side.status(), 200)
        const read = upstreamRead(up.port, base.snapshot).total
        const out = delivered(protocol, target, client)
        const held = read - out
        assert.ok(side.buffered() <= PROXY_BOUND, `the response holds ${side.buffered()} bytes for one slow reader (bound ${PROXY_BOUND})`)
        assert.ok(held <= PROXY_BOUND + extraHeld, `Edgebox read ${read} bytes from the upstream and handed on ${out}: it holds ${held} (bound ${PROXY_BOUND + extraHeld})`)
        assert.equal(w.done, false, 'the origin must be held back, not allowed to finish')
        assert.ok(w.bytes < binary.length / 2, `the origin wrote ${w.bytes} of ${binary.length} bytes`)
        const got = await client.readAll()
        assert.equal(got.status, 200)
        assert.equal(got.body.length, binary.length)
        assert.equal(sha(got.body), sha(binary))
        await until(() => w.done, 'the origin to finish')
      } finally {
        client.close()
      }
    }

    test('a proxied large response without cache (Context.relay) holds the upstream back', async () => {
      const token = `p${++seq}`
      await slowProxy(`/plain/file?t=${token}`, token, 0)
    })

    test('a proxied large response through the shared cache on a miss (tee) holds the upstream back', async () => {
      // storable, of unknown length: the cache keeps what passes (up to maxObjectSize) but reads no faster than the client
      const token = `c${++seq}`
      await slowProxy(`/cached/file?t=${token}&chunked&cc=max-age=60`, token, 0)
    })

    test('rangeMiss whole on an object larger than maxObjectSize (collect) reads at most maxObjectSize ahead, then holds the upstream back', async () => {
      const token = `w${++seq}`
      await slowProxy(`/whole/file?t=${token}&chunked&cc=max-age=60`, token, MAX_OBJECT, { range: 'bytes=0-99' })
    })
  })
}

describe('slow readers (h2c, raw connections: wide-open windows, a half-closed connection)', () => {
  test('a large static file holds at most one read chunk, and the file is not read ahead', async () => {
    const t = `/big.bin?t=${++seq}`
    const file = realpathSync(path.join(files.dir, 'big.bin'))
    const before = fileReads(file).fds
    const client = stalledH2(srv.port, t)
    try {
      const mine = await ownDescriptors(file, before)
      await until(() => serverSide('h2c', t) !== undefined && serverSide('h2c', t)!.status() > 0, 'the response head')
      const stream = h2Streams.get(t)!
      await settle(() => `${stream.writableLength} ${stream.writableEnded}`)
      assert.equal(serverSide('h2c', t)!.status(), 200)
      assert.ok(stream.writableLength <= FILE_BOUND, `the stream holds ${stream.writableLength} bytes (bound ${FILE_BOUND})`)
      assert.equal(stream.writableEnded, false, 'the whole file must not have been read into the stream')
      client.close()
      await until(() => released(file, mine), 'the file to be closed')
    } finally {
      client.close()
    }
  })

  test('a client that closes its side of the connection (TCP FIN) while its window is shut releases the stream and its file at once', async () => {
    const t = `/big.bin?t=${++seq}`
    const file = realpathSync(path.join(files.dir, 'big.bin'))
    const before = fileReads(file).fds
    // reads everything the server sends, but opens only a 16 KiB window and never widens it
    const client = stalledH2(srv.port, t, undefined, { window: H2_WINDOW, drain: true })
    try {
      const mine = await ownDescriptors(file, before)
      await until(() => serverSide('h2c', t) !== undefined && serverSide('h2c', t)!.status() === 200, 'the response head')
      const stream = h2Streams.get(t)!
      await settle(() => `${stream.writableLength} ${stream.writableEnded}`)
      // nothing is unread, so the kernel sends FIN, not RST; an HTTP/2 client that closed its side
      // can send no WINDOW_UPDATE any more, and the server has nothing left it could send
      client.halfClose()
      await until(() => stream.destroyed && released(file, mine), 'the stream and the file to be closed')
    } finally {
      client.close()
    }
  })

  test('a large text compressed on the fly holds at most one read chunk', async () => {
    const t = `/big.txt?t=${++seq}`
    const client = stalledH2(srv.port, t, 'gzip')
    try {
      await until(() => serverSide('h2c', t) !== undefined && serverSide('h2c', t)!.status() > 0, 'the response head')
      const stream = h2Streams.get(t)!
      await settle(() => `${stream.writableLength} ${stream.writableEnded}`)
      assert.ok(stream.writableLength <= FILE_BOUND, `the stream holds ${stream.writableLength} bytes (bound ${FILE_BOUND})`)
      assert.equal(stream.writableEnded, false, 'the whole file must not have been compressed into the stream')
    } finally {
      client.close()
    }
  })

  test('a proxied large response holds the upstream back', async () => {
    const token = `s${++seq}`
    const t = `/plain/file?t=${token}`
    const base = upstreamRead(up.port)
    const client = stalledH2(srv.port, t)
    try {
      await until(() => serverSide('h2c', t) !== undefined && serverSide('h2c', t)!.status() > 0 && up.written.has(token), 'the response head')
      const stream = h2Streams.get(t)!
      const w = up.written.get(token)!
      await settle(() => `${stream.writableLength} ${upstreamRead(up.port, base.snapshot).total} ${w.bytes}`)
      assert.ok(stream.writableLength <= PROXY_BOUND, `the stream holds ${stream.writableLength} bytes (bound ${PROXY_BOUND})`)
      assert.equal(w.done, false, 'the origin must be held back, not allowed to finish')
      assert.ok(w.bytes < binary.length / 2, `the origin wrote ${w.bytes} of ${binary.length} bytes`)
    } finally {
      client.close()
    }
  })
})

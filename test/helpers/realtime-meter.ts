import dc from 'node:diagnostics_channel'
import type { ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'

/**
 * What a server running in this process writes on each connection, counted
 * in bytes, so tests can assert buffering bounds by byte counts instead of
 * timing. Node's diagnostics channels hand over every accepted TCP socket
 * (`net.server.socket`: HTTP/1.1 and WebSocket connections, found by the
 * client's local port) and every HTTP/2 stream (`http2.server.stream.created`:
 * found by an `x-meter` request header). Each gets its `write` wrapped: the
 * bytes written, the most left unsent after a write (`writableLength`: what
 * the server buffers because the client does not read), the last chunks,
 * and when it closes.
 */

export interface Meter {
  /** Bytes the server wrote (handed to `write`), sent or not. */
  written: number
  /** The most bytes left unsent right after one of the server's writes. */
  peak: number
  /** The high-water mark of the socket or stream (its writes return false beyond it). */
  readonly highWaterMark: number
  /** The last chunks written, newest last (a few KiB). */
  readonly tail: Buffer[]
  closed: boolean
  /** Resolves when the socket or stream closes. */
  readonly close: Promise<void>
}

/** What the meter uses of a socket or an HTTP/2 stream. */
interface Writable {
  write(...args: unknown[]): boolean
  end(...args: unknown[]): unknown
  readonly writableLength: number
  readonly writableHighWaterMark: number
  once(event: 'close', listener: () => void): unknown
}

function meter(w: Writable): Meter {
  let done: () => void = () => {}
  const m: Meter = { written: 0, peak: 0, highWaterMark: w.writableHighWaterMark, tail: [], closed: false, close: new Promise<void>((r) => (done = r)) }
  const count = (self: Writable, chunk: unknown, encoding: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array)
    m.written += buf.length
    m.peak = Math.max(m.peak, self.writableLength)
    m.tail.push(buf)
    if (m.tail.length > 8) m.tail.shift()
  }
  const { write, end } = w
  w.write = function meteredWrite(this: Writable, ...args: unknown[]): boolean {
    const ok = write.apply(this, args)
    count(this, args[0], args[1])
    return ok
  }
  // end(chunk) writes its chunk without going through write (an HTTP/2 response's body, for one).
  w.end = function meteredEnd(this: Writable, ...args: unknown[]) {
    const ret = end.apply(this, args)
    count(this, args[0], args[1])
    return ret
  }
  w.once('close', () => {
    m.closed = true
    done()
  })
  return m
}

export interface Meters {
  /** The server's side of the TCP connection whose client end has local port `port` (waits for it to be accepted). */
  socket(port: number): Promise<Meter>
  /** The HTTP/2 stream of the request sent with `x-meter: <id>` (waits for it to arrive). */
  stream(id: string): Promise<Meter>
  stop(): void
}

async function found<T>(get: () => T | undefined, what: string): Promise<T> {
  const end = Date.now() + 3000
  for (;;) {
    const v = get()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`${what}: not seen by the server within 3 s`)
    await new Promise((r) => setImmediate(r))
  }
}

/** Meters every connection and HTTP/2 stream the servers in this process accept from now on, until `stop`. */
export function meterServerWrites(): Meters {
  const sockets = new Map<number, Meter>()
  const streams = new Map<string, Meter>()
  const onSocket = (msg: unknown) => {
    const socket = (msg as { socket: Socket }).socket
    if (socket.remotePort !== undefined) sockets.set(socket.remotePort, meter(socket as unknown as Writable))
  }
  const onStream = (msg: unknown) => {
    const { stream, headers } = msg as { stream: ServerHttp2Stream; headers: Record<string, string | undefined> }
    const id = headers['x-meter']
    if (id !== undefined) streams.set(id, meter(stream as unknown as Writable))
  }
  dc.subscribe('net.server.socket', onSocket)
  dc.subscribe('http2.server.stream.created', onStream)
  return {
    socket: (port) => found(() => sockets.get(port), `a connection from port ${port}`),
    stream: (id) => found(() => streams.get(id), `a stream with x-meter: ${id}`),
    stop() {
      dc.unsubscribe('net.server.socket', onSocket)
      dc.unsubscribe('http2.server.stream.created', onStream)
    },
  }
}

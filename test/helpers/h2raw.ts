import net from 'node:net'
import tls from 'node:tls'

/**
 * A raw HTTP/2 client, over TLS or cleartext (h2c with prior knowledge), for
 * tests that must send what a well-behaved client library never would (a
 * flood of opened and reset streams, more streams than the server allows, a
 * header block that never ends): frames are written byte by byte (RFC 9113
 * §4.1) and every frame the server sends is recorded.
 */

export interface Frame {
  type: number
  flags: number
  streamId: number
  payload: Buffer
}

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/** One frame: the 9-byte header (RFC 9113 §4.1), then the payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(streamId & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** A GET of `path` for `authority` as an HPACK block: static-table entries and literals without indexing (RFC 7541). */
function requestBlock(authority: string, path: string, scheme: 'http' | 'https'): Buffer {
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex]), Buffer.from([value.length]), Buffer.from(value)])
  // 0x82 :method GET, 0x86/0x87 :scheme http/https; literal without indexing (0000 xxxx) for :authority (1) and :path (4)
  return Buffer.concat([Buffer.from([0x82, scheme === 'https' ? 0x87 : 0x86]), literal(0x01, authority), literal(0x04, path)])
}

export interface RawH2 {
  readonly frames: Frame[]
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>
  /** Opens stream `id` with a GET (END_STREAM unless `open`), without waiting. */
  get(id: number, path: string, open?: boolean): void
  /** Opens these streams with GETs of `path` in one write (so the server reads them together). */
  getAll(ids: number[], path: string): void
  /** Starts stream `id`'s header block (HEADERS without END_HEADERS) and never finishes it: no CONTINUATION follows. */
  startHeaders(id: number, path: string): void
  /** RST_STREAM with `code` (8 = CANCEL). */
  reset(id: number, code?: number): void
  /** WINDOW_UPDATE on stream `id` (0: the connection). */
  windowUpdate(id: number, increment: number): void
  /** Writes now-queued frames and waits until the socket drains. */
  flush(): Promise<void>
  /** The first received frame of this type (and stream), waiting up to `ms`. */
  waitFor(type: number, ms: number, streamId?: number): Promise<Frame | null>
  destroy(): void
}

/** `ca`: over TLS (ALPN h2) trusting it; `cleartext: true`: h2c with prior knowledge. */
export type RawH2Options = { ca: string; servername?: string; authority?: string } | { cleartext: true; authority?: string }

export async function rawH2(port: number, opts: RawH2Options): Promise<RawH2> {
  let socket: net.Socket
  if ('cleartext' in opts) {
    socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
  } else {
    const secure = tls.connect({ host: '127.0.0.1', port, ca: opts.ca, servername: opts.servername ?? 'localhost', ALPNProtocols: ['h2'] })
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve())
      secure.once('error', reject)
    })
    if (secure.alpnProtocol !== 'h2') throw new Error(`ALPN gave ${String(secure.alpnProtocol)}`)
    socket = secure
  }
  const scheme = 'cleartext' in opts ? 'http' : 'https'
  const frames: Frame[] = []
  let buffered = Buffer.alloc(0)
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 9) {
      const len = buffered.readUIntBE(0, 3)
      if (buffered.length < 9 + len) break
      const f = { type: buffered[3]!, flags: buffered[4]!, streamId: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + len) }
      buffered = buffered.subarray(9 + len)
      frames.push(f)
      // acknowledge the server's SETTINGS, as RFC 9113 §6.5.3 requires
      if (f.type === FRAME.SETTINGS && !(f.flags & 0x1)) socket.write(frame(FRAME.SETTINGS, 0x1, 0))
    }
  })
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]))
  const authority = opts.authority ?? 'localhost'
  return {
    frames,
    closed,
    get(id, path, open = false) {
      if (!socket.destroyed) socket.write(frame(FRAME.HEADERS, 0x4 | (open ? 0 : 0x1), id, requestBlock(authority, path, scheme)))
    },
    getAll(ids, path) {
      if (!socket.destroyed) socket.write(Buffer.concat(ids.map((id) => frame(FRAME.HEADERS, 0x4 | 0x1, id, requestBlock(authority, path, scheme)))))
    },
    startHeaders(id, path) {
      // END_STREAM (0x1) without END_HEADERS (0x4): the server must wait for CONTINUATION (RFC 9113 §6.10)
      if (!socket.destroyed) socket.write(frame(FRAME.HEADERS, 0x1, id, requestBlock(authority, path, scheme)))
    },
    windowUpdate(id, increment) {
      const payload = Buffer.alloc(4)
      payload.writeUInt32BE(increment & 0x7fffffff)
      if (!socket.destroyed) socket.write(frame(FRAME.WINDOW_UPDATE, 0, id, payload))
    },
    reset(id, code = 8) {
      const payload = Buffer.alloc(4)
      payload.writeUInt32BE(code)
      if (!socket.destroyed) socket.write(frame(FRAME.RST_STREAM, 0, id, payload))
    },
    flush() {
      return new Promise((resolve) => {
        if (socket.destroyed || !socket.writableNeedDrain) return resolve()
        socket.once('drain', () => resolve())
        socket.once('close', () => resolve())
      })
    },
    async waitFor(type, ms, streamId) {
      const end = Date.now() + ms
      for (;;) {
        const f = frames.find((x) => x.type === type && (streamId === undefined || x.streamId === streamId))
        if (f) return f
        if (Date.now() > end) return null
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    destroy() {
      socket.destroy()
    },
  }
}

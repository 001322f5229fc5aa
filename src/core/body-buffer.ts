import { createReadStream, type ReadStream } from 'node:fs'
import { lstat, mkdir, open, rm, type FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { Writable, type Readable } from 'node:stream'
import type { Context } from './context.ts'
import { pipeBody, type BodyLimits } from './body.ts'
import { EdgeboxError, httpError } from './errors.ts'

/**
 * Request buffering, as nginx (`proxy_request_buffering`), Apache and
 * HAProxy do it: a request body is read completely before the request takes
 * an upstream connection, so clients that upload slowly hold only their own
 * connection to Edgebox, never one of the upstream's pooled connections.
 *
 * The body stays in memory up to `limits.bodyBuffer`, then goes to a
 * temporary file in an Edgebox folder of the system's temporary directory.
 * The temporary bytes of the whole process are capped by
 * `limits.bodyTempMax`: a body that would go beyond gets 503 with
 * Retry-After, so buffering never fills the disk. Reading goes through
 * `pipeBody`, so the size, idle and minimum-rate limits apply as bytes
 * arrive. The file is removed when the request is over, however it ends.
 */

/** Temporary body bytes held by the whole process (reserved before they are written). */
let tempBytes = 0

/** Temporary body bytes the process holds now. */
export function tempBodyBytes(): number {
  return tempBytes
}

/** Where temporary body files go: a folder of the system's temporary directory, one per user (it is private, 0700). */
export function bodyTempDir(): string {
  const uid = process.getuid?.()
  return path.join(os.tmpdir(), uid === undefined ? 'edgebox-bodies' : `edgebox-bodies-${uid}`)
}

/** A request body read whole, in memory or in a temporary file. */
export interface BufferedBody {
  /** Its size in bytes. */
  readonly length: number
  /** The temporary file holding it, or null when it is in memory. */
  readonly file: string | null
  /** The body for one upstream attempt: the bytes, or a fresh read of the temporary file. */
  source(): Buffer | Readable
}

/**
 * Reads the whole request body (limits: 413 beyond `maxBodySize`, 408 for a
 * stalled or trickling body, 503 when the temporary space is taken). The
 * temporary file, if any, is removed when the response closes.
 */
export async function bufferBody(ctx: Context, limits: BodyLimits): Promise<BufferedBody> {
  const body = new SpilledBody(limits)
  // Whatever ends the request (the answer sent, the client gone, an error), the file goes with it.
  ctx.res.once('close', () => body.release())
  const declared = Number(ctx.req.headers['content-length'] ?? 0)
  // A declared size that will not fit is refused before the client sends it (and before 100 Continue);
  // a size over maxBodySize is left to pipeBody's 413.
  if (declared > limits.bodyBuffer && declared <= limits.maxBodySize) body.reserve(declared)
  try {
    await pipeBody(ctx, body, limits)
  } catch (err) {
    body.release()
    throw err
  }
  return body
}

/** The Writable the body is piped into: memory first, then the temporary file. */
class SpilledBody extends Writable implements BufferedBody {
  private readonly limits: BodyLimits
  private chunks: Buffer[] = []
  private bytes: Buffer | null = null
  private handle: FileHandle | null = null
  private path: string | null = null
  private reserved = 0
  private released = false
  private readonly readers: ReadStream[] = []
  length = 0

  constructor(limits: BodyLimits) {
    super()
    this.limits = limits
  }

  get file(): string | null {
    return this.path
  }

  /** Claims `total` bytes of the process's temporary space for this body (503 when they are not there). */
  reserve(total: number): void {
    const more = total - this.reserved
    if (more <= 0) return
    if (tempBytes + more > this.limits.bodyTempMax) {
      throw httpError(
        'EB_ERR_BODY_BUFFER_FULL',
        `the request body (${total} bytes so far or declared) does not fit in the temporary space for request bodies: ${tempBytes} of ${this.limits.bodyTempMax} bytes (limits.bodyTempMax) are in use`,
        { 'Retry-After': '5' },
      )
    }
    tempBytes += more
    this.reserved += more
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.take(chunk).then(() => cb(), cb)
  }

  override _final(cb: (err?: Error | null) => void): void {
    // the file is complete: reads go through fresh streams, the writing handle is done
    const handle = this.handle
    this.handle = null
    if (!handle) return cb()
    handle.close().then(() => cb(), cb)
  }

  private async take(chunk: Buffer): Promise<void> {
    if (this.released) throw httpError('EB_ERR_CLIENT_CLOSED')
    if (this.path === null && this.reserved === 0 && this.length + chunk.length <= this.limits.bodyBuffer) {
      this.chunks.push(chunk)
      this.length += chunk.length
      return
    }
    // the file holds the whole body: what was in memory goes first
    this.reserve(this.length + chunk.length)
    if (this.path === null) await this.openFile()
    try {
      for (const c of this.chunks) await writeAll(this.handle!, c)
      this.chunks = []
      await writeAll(this.handle!, chunk)
    } catch (err) {
      throw noSpace(err)
    }
    this.length += chunk.length
  }

  private async openFile(): Promise<void> {
    const dir = bodyTempDir()
    await ownFolder(dir)
    const file = path.join(dir, `${process.pid}-${randomBytes(8).toString('hex')}`)
    this.path = file
    let handle: FileHandle
    try {
      handle = await open(file, 'wx', 0o600)
    } catch (err) {
      throw noSpace(err)
    }
    if (this.released) {
      // the request ended while the file was being created
      await handle.close().catch(() => {})
      await rm(file, { force: true })
      throw httpError('EB_ERR_CLIENT_CLOSED')
    }
    this.handle = handle
  }

  source(): Buffer | Readable {
    if (this.path === null) return (this.bytes ??= Buffer.concat(this.chunks, this.length))
    const reader = createReadStream(this.path)
    this.readers.push(reader)
    return reader
  }

  /** Removes the temporary file and gives its bytes back; the first call does it, later ones nothing. */
  release(): void {
    if (this.released) return
    this.released = true
    tempBytes -= this.reserved
    this.reserved = 0
    this.chunks = []
    this.bytes = null
    for (const r of this.readers) r.destroy()
    const handle = this.handle
    this.handle = null
    const file = this.path
    if (file === null) return
    // close waits for a write in flight; the file goes after it
    void (handle ? handle.close().catch(() => {}) : Promise.resolve()).then(() => rm(file, { force: true })).catch(() => {})
  }
}

/** Writes the whole buffer (a write may take fewer bytes than asked). */
async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let done = 0
  while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten
}

const madeFolders = new Set<string>()

/**
 * Creates the private folder once, and refuses one that another user owns
 * or others can write to (someone could then swap the files).
 */
async function ownFolder(dir: string): Promise<void> {
  if (madeFolders.has(dir)) return
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  const uid = process.getuid?.()
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    // a plain error: the log gets it, the client a bare 500 without the path
    throw new Error(`the temporary folder for request bodies ${dir} is not a private folder of this user`)
  }
  madeFolders.add(dir)
}

/** A full disk (or quota) is a 503 like a full budget; other file errors stay as they are. */
function noSpace(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code
  if (err instanceof EdgeboxError || (code !== 'ENOSPC' && code !== 'EDQUOT')) return err
  return httpError('EB_ERR_BODY_BUFFER_FULL', `no space left on the device for temporary request bodies (${bodyTempDir()})`, { 'Retry-After': '5' })
}

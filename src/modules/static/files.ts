import { constants as fsc, type Stats } from 'node:fs'
import { open, readFile, stat, type FileHandle } from 'node:fs/promises'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { LRUCache } from 'lru-cache'
import { formatHttpDate } from '../../http/date.ts'
import { isCompressible, mimeType } from '../../http/mime.ts'
import type { PreparedResponse } from '../../core/context.ts'

/**
 * What the static handler knows about a file: validators, headers, and for
 * small files the bytes themselves (and their compressed forms). An entry is
 * trusted for `revalidateMs` (1 s by default); after that the next request
 * stats the file again, so a file replaced on disk is served with its new
 * ETag and bytes within a second. Bytes and validators in an entry always
 * belong together: they come from the same open file descriptor.
 */
export interface FileEntry {
  readonly fsPath: string
  readonly size: number
  readonly mtimeMs: number
  readonly ino: number
  /** Strong validator of the identity representation (RFC 9110 §8.8.3). */
  readonly etag: string
  readonly lastModified: string
  /** Last-Modified in whole seconds, as sent (RFC 9110 §8.8.2). */
  readonly lastModifiedMs: number
  readonly contentType: string
  readonly compressible: boolean
  /** The file's bytes, when small enough to keep in memory, ... */
  body: Buffer | undefined
  /** ... and the same bytes as a latin1 string, which Node writes together with the head in one call. */
  wire: string | undefined
  /** Precompressed siblings (`file.br`, `file.gz`) or in-memory compressed copies. */
  readonly variants: Map<Encoding, Variant>
  checkedAt: number
  /** Set by the handler on first use: the Cache-Control value for this path. */
  cacheControl: string | undefined
  /** Set by the handler on first use: its 200 and 304 answers, prepared once (a new entry when the file changes). */
  ok: PreparedResponse | undefined
  notModified: PreparedResponse | undefined
}

export type Encoding = 'br' | 'gzip'

export interface Variant {
  readonly encoding: Encoding
  readonly etag: string
  /** Precompressed sibling file (streamed), or */
  readonly fsPath?: string
  /** compressed bytes kept in memory (and as a latin1 string, see FileEntry.wire). */
  readonly body?: Buffer
  readonly wire?: string
  readonly size: number
  /** Set by the handler on first use, as FileEntry's. */
  ok?: PreparedResponse
  notModified?: PreparedResponse
}

export interface FileCacheOptions {
  maxFileSize: number
  maxBytes: number
  revalidateMs: number
  precompressed: boolean
  compress: { enabled: boolean; minSize: number; brotliQuality: number; gzipLevel: number }
}

const SIBLING: Record<Encoding, string> = { br: '.br', gzip: '.gz' }
const brotli = promisify(zlib.brotliCompress)
const gzip = promisify(zlib.gzip)

/**
 * Strong ETag from size and modification time (to the microsecond). Not the
 * inode: several origins serving the same deployed files behind a balancer
 * must give the same validator, or every revalidation across nodes misses.
 */
export function etagOf(st: Pick<Stats, 'size' | 'mtimeMs'>): string {
  return `"${st.size.toString(36)}-${Math.round(st.mtimeMs * 1000).toString(36)}"`
}

/** `"abc"` + `br` -> `"abc-br"`: each encoding is a different representation with its own ETag. */
function variantTag(etag: string, enc: Encoding): string {
  return `${etag.slice(0, -1)}-${enc === 'gzip' ? 'gz' : 'br'}"`
}

export class FileCache {
  private readonly entries: LRUCache<string, FileEntry>
  private readonly opts: FileCacheOptions
  private readonly pending = new Map<string, Promise<FileEntry>>()

  constructor(opts: FileCacheOptions) {
    this.opts = opts
    this.entries = new LRUCache<string, FileEntry>({
      max: 10_000,
      maxSize: Math.max(opts.maxBytes, 1),
      // bytes + their latin1 copy, for the file and its compressed forms
      sizeCalculation: (e) => 1024 + 2 * (e.body?.length ?? 0) + [...e.variants.values()].reduce((n, v) => n + 2 * (v.body?.length ?? 0), 0),
    })
  }

  /**
   * The cached entry for a request path if it was checked recently; else
   * undefined (resolve the path and call `load`). Entries are keyed by the
   * path below the route, so `/` and `/index.html` are separate keys.
   */
  fresh(key: string, now: number): FileEntry | undefined {
    const e = this.entries.get(key)
    return e && now - e.checkedAt < this.opts.revalidateMs ? e : undefined
  }

  /** Returns the entry for a freshly stat'ed file, reusing the old one when nothing changed. */
  async load(key: string, fsPath: string, st: Stats, now: number): Promise<FileEntry> {
    const old = this.entries.get(key)
    if (old && old.fsPath === fsPath && old.size === st.size && old.mtimeMs === st.mtimeMs && old.ino === st.ino) {
      old.checkedAt = now
      return old
    }
    const id = `${key}\0${fsPath}\0${st.ino}-${st.size}-${st.mtimeMs}`
    let p = this.pending.get(id)
    if (!p) {
      p = this.build(key, fsPath, st, now).finally(() => this.pending.delete(id))
      this.pending.set(id, p)
    }
    return p
  }

  private async build(key: string, fsPath: string, st: Stats, now: number): Promise<FileEntry> {
    const contentType = mimeType(fsPath)
    const lastModifiedMs = Math.floor(st.mtimeMs / 1000) * 1000
    let body: Buffer | undefined
    let stats: Stats = st
    if (st.size <= this.opts.maxFileSize) {
      // Read bytes and validators from one descriptor so they always match.
      const fh = await open(fsPath, fsc.O_RDONLY)
      try {
        stats = await fh.stat()
        if (stats.size <= this.opts.maxFileSize) body = await readFile(fh)
      } finally {
        await fh.close()
      }
      if (body && body.length !== stats.size) body = undefined // changed while reading
    }
    const entry: FileEntry = {
      fsPath,
      size: stats.size,
      mtimeMs: stats.mtimeMs,
      ino: stats.ino,
      etag: etagOf(stats),
      lastModified: formatHttpDate(lastModifiedMs),
      lastModifiedMs: Math.floor(stats.mtimeMs / 1000) * 1000,
      contentType,
      compressible: isCompressible(contentType),
      body,
      wire: body?.toString('latin1'),
      variants: new Map(),
      checkedAt: now,
      cacheControl: undefined,
      ok: undefined,
      notModified: undefined,
    }
    if (this.opts.precompressed) await this.findSiblings(entry)
    this.entries.set(key, entry)
    return entry
  }

  private async findSiblings(entry: FileEntry): Promise<void> {
    for (const enc of ['br', 'gzip'] as const) {
      const sib = entry.fsPath + SIBLING[enc]
      try {
        const st = await stat(sib)
        // A sibling older than the file would serve stale content: ignore it.
        if (st.isFile() && st.mtimeMs >= entry.mtimeMs) {
          entry.variants.set(enc, { encoding: enc, etag: variantTag(entry.etag, enc), fsPath: sib, size: st.size })
        }
      } catch {
        // no sibling
      }
    }
  }

  /**
   * The representation for `enc`: a precompressed sibling, or (for files
   * kept in memory) a compressed copy made once and kept with the entry.
   * Returns undefined when the encoding must be produced while streaming.
   */
  async variant(key: string, entry: FileEntry, enc: Encoding): Promise<Variant | undefined> {
    const v = entry.variants.get(enc)
    if (v || !entry.body || !this.opts.compress.enabled) return v
    const c = this.opts.compress
    const bytes =
      enc === 'br'
        ? await brotli(entry.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: c.brotliQuality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: entry.body.length } })
        : await gzip(entry.body, { level: c.gzipLevel })
    const made: Variant = { encoding: enc, etag: variantTag(entry.etag, enc), body: bytes, wire: bytes.toString('latin1'), size: bytes.length }
    entry.variants.set(enc, made)
    if (this.entries.peek(key) === entry) this.entries.set(key, entry) // account for the new bytes
    return made
  }

  /** The ETag the given encoding of this entry has (also for streamed compression). */
  tagFor(entry: FileEntry, enc: Encoding | 'identity'): string {
    return enc === 'identity' ? entry.etag : variantTag(entry.etag, enc)
  }

  /**
   * Opens the file and checks it is still the version described by `entry`;
   * undefined when it changed (the caller reloads), so a response never mixes
   * the headers of one version with the bytes of another.
   */
  async openChecked(entry: FileEntry): Promise<FileHandle | undefined> {
    let fh: FileHandle
    try {
      fh = await open(entry.fsPath, fsc.O_RDONLY)
    } catch {
      return undefined
    }
    const st = await fh.stat()
    if (st.size === entry.size && st.mtimeMs === entry.mtimeMs && st.ino === entry.ino) return fh
    await fh.close()
    return undefined
  }

  invalidate(key: string): void {
    this.entries.delete(key)
  }

  clear(): void {
    this.entries.clear()
  }
}

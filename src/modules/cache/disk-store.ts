/**
 * DiskStore: an optional CacheStore that survives restarts.
 *
 * Design
 * - Index in memory: an LRUCache of key -> the key's variants (metadata only:
 *   status, headers, times, tags, vary/variant, the held ranges of a
 *   partial entry, body length and file name).
 *   Its maxSize is the byte budget, counted as the sum of body sizes plus a
 *   fixed 512 bytes per variant for the head and metadata (the same rule as
 *   MemoryStore for large bodies). When the LRU evicts a key, its `dispose`
 *   callback unlinks that key's files; `delete`, `deletePrefix`, `deleteTag`
 *   and replacing a variant remove files explicitly.
 * - One file per entry, named `sha256(JSON [key, variant, vary]).entry`
 *   (vary is part of the identity, exactly as in MemoryStore). Layout:
 *     0  8 bytes  magic "EBXCACHE"
 *     8  u32 BE   format version: 1, or 2 for a partial entry (RFC 9111
 *                 §3.3), whose metadata also has `partial` (complete length
 *                 and held ranges; the body is their bytes in order), so that
 *                 a build that does not know partial entries drops the file
 *     12 u32 BE   metadata length (UTF-8 JSON)
 *     16 u64 BE   body length
 *     24 u32 BE   CRC-32 of metadata + body
 *     28 ...      metadata JSON, then the body bytes
 * - Writes are atomic: the whole file is written with writeFileSync to
 *   `<name>.tmp-<random>` in the same directory, then renameSync'd into
 *   place, so a reader never sees a half-written entry. (No fsync: a crash can
 *   lose recent writes, and a torn file fails its checksum on the next load.)
 * - Bodies up to 64 KiB stay in memory (the StoredEntry object itself, so its
 *   lazily computed `wire` string is kept too); larger bodies are read from
 *   disk on every `variants()` call, with their length and CRC verified. A
 *   file that went missing or bad is dropped from the index.
 * - On construction `dir` is created (recursive) and the index is rebuilt
 *   from every `*.entry` file, oldest mtime first so recency roughly
 *   survives. Leftover temp files, and entry files whose magic, version,
 *   lengths, checksum, metadata or file name do not check out, are deleted.
 *   Files with other names are left alone. If the budget is now smaller
 *   than what is on disk, the least recently written keys are evicted.
 * - Everything is synchronous (the CacheStore interface is). Disk errors in
 *   `put` never throw (it runs from stream callbacks): the variant is simply
 *   not stored and `onError` (if given) hears about it.
 * - One process per directory: two stores on the same dir are not coordinated.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { LRUCache } from 'lru-cache'
import type { Headers } from '../../http/cache-control.ts'
import type { CacheStore, PartialContent, StoredEntry } from './store.ts'

const MAGIC = Buffer.from('EBXCACHE', 'latin1')
const VERSION = 1
/** The format version of partial entries. */
const VERSION_PARTIAL = 2
const HEADER_BYTES = 28
const ENTRY_SUFFIX = '.entry'
const ENTRY_NAME = /^[0-9a-f]{64}\.entry$/
const TEMP_MARK = '.tmp-'
/** Bodies up to this size are kept in memory as well as on disk. */
export const DISK_MEMORY_BODY_LIMIT = 64 * 1024
/** Budget charged per variant on top of its body (head + metadata). */
const VARIANT_OVERHEAD = 512

/** Everything of a StoredEntry except the body (and `wire`), as stored in the file. */
interface Meta {
  readonly key: string
  readonly variant: string
  readonly vary: string | undefined
  readonly status: number
  readonly headers: Headers
  readonly requestTime: number
  readonly responseTime: number
  readonly tags: readonly string[]
  readonly partial?: PartialContent
}

/** One variant in the index. */
interface Slot {
  /** File name (no directory). */
  readonly file: string
  readonly meta: Meta
  readonly bodyLength: number
  /** The whole entry, for bodies up to DISK_MEMORY_BODY_LIMIT. */
  readonly entry: StoredEntry | undefined
  /** Answers served from a large entry (read anew from disk each time): its copies count here (StoredEntry.hits). */
  hits: number
}

export interface DiskStoreOptions {
  /** Told about disk errors that `put`, `variants` and deletions swallow. */
  onError?: (err: unknown) => void
}

/** The file name of a key + variant (+ vary). */
export function entryFileName(key: string, variant: string, vary: string | undefined): string {
  return createHash('sha256').update(JSON.stringify([key, variant, vary ?? null])).digest('hex') + ENTRY_SUFFIX
}

function encode(meta: Meta, body: Buffer): Buffer {
  const json = Buffer.from(
    JSON.stringify({
      key: meta.key,
      variant: meta.variant,
      vary: meta.vary ?? null,
      status: meta.status,
      headers: meta.headers,
      requestTime: meta.requestTime,
      responseTime: meta.responseTime,
      tags: meta.tags,
      ...(meta.partial ? { partial: { size: meta.partial.size, ranges: meta.partial.ranges.map((r) => [r.start, r.end]) } } : {}),
    }),
    'utf8',
  )
  const head = Buffer.alloc(HEADER_BYTES)
  MAGIC.copy(head, 0)
  head.writeUInt32BE(meta.partial ? VERSION_PARTIAL : VERSION, 8)
  head.writeUInt32BE(json.length, 12)
  head.writeBigUInt64BE(BigInt(body.length), 16)
  head.writeUInt32BE(crc32(body, crc32(json)), 24)
  return Buffer.concat([head, json, body], HEADER_BYTES + json.length + body.length)
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string')

function parseMeta(json: string): Meta | undefined {
  let m: unknown
  try {
    m = JSON.parse(json)
  } catch {
    return undefined
  }
  if (!isObject(m)) return undefined
  const { key, variant, vary, status, headers, requestTime, responseTime, tags, partial } = m
  if (typeof key !== 'string' || typeof variant !== 'string' || (vary !== null && typeof vary !== 'string')) return undefined
  if (typeof status !== 'number' || !Number.isInteger(status)) return undefined
  if (typeof requestTime !== 'number' || typeof responseTime !== 'number' || !isStringArray(tags)) return undefined
  if (!isObject(headers)) return undefined
  const h: Headers = {}
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string' || isStringArray(value)) h[name] = value
    else return undefined
  }
  const meta: Meta = { key, variant, vary: vary ?? undefined, status, headers: h, requestTime, responseTime, tags }
  if (partial === undefined) return meta
  const p = parsePartial(partial)
  return p === undefined ? undefined : { ...meta, partial: p }
}

/** `{ size, ranges: [[start, end], ...] }`: ranges sorted, disjoint, non-adjacent, inside the complete length, and not all of it. */
function parsePartial(v: unknown): PartialContent | undefined {
  if (!isObject(v) || !Number.isSafeInteger(v.size) || !Array.isArray(v.ranges) || v.ranges.length === 0) return undefined
  const size = v.size as number
  const ranges: { start: number; end: number }[] = []
  for (const r of v.ranges as unknown[]) {
    if (!Array.isArray(r) || r.length !== 2 || !Number.isSafeInteger(r[0]) || !Number.isSafeInteger(r[1])) return undefined
    const [start, end] = r as [number, number]
    const prev = ranges[ranges.length - 1]
    if (start < (prev === undefined ? 0 : prev.end + 2) || end < start || end >= size) return undefined
    ranges.push({ start, end })
  }
  if (ranges.length === 1 && ranges[0]!.start === 0 && ranges[0]!.end === size - 1) return undefined
  return { size, ranges }
}

const heldBytes = (p: PartialContent): number => p.ranges.reduce((n, r) => n + r.end - r.start + 1, 0)

/** Decodes and verifies a whole entry file; undefined when anything does not check out. */
function decode(buf: Buffer): { meta: Meta; body: Buffer } | undefined {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined
  const version = buf.readUInt32BE(8)
  if (version !== VERSION && version !== VERSION_PARTIAL) return undefined
  const metaLength = buf.readUInt32BE(12)
  const bodyLength = buf.readBigUInt64BE(16)
  if (BigInt(HEADER_BYTES + metaLength) + bodyLength !== BigInt(buf.length)) return undefined
  if (crc32(buf.subarray(HEADER_BYTES)) !== buf.readUInt32BE(24)) return undefined
  const meta = parseMeta(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + metaLength))
  if (meta === undefined || (meta.partial !== undefined) !== (version === VERSION_PARTIAL)) return undefined
  const body = buf.subarray(HEADER_BYTES + metaLength)
  if (meta.partial !== undefined && heldBytes(meta.partial) !== body.length) return undefined
  return { meta, body }
}

const slotSize = (list: readonly Slot[]): number => list.reduce((n, s) => n + s.bodyLength + VARIANT_OVERHEAD, 0) || 1

export class DiskStore implements CacheStore {
  readonly dir: string
  private readonly lru: LRUCache<string, Slot[]>
  private readonly onError: (err: unknown) => void

  constructor(dir: string, maxBytes: number, options: DiskStoreOptions = {}) {
    this.dir = dir
    this.onError = options.onError ?? (() => {})
    this.lru = new LRUCache<string, Slot[]>({
      maxSize: Math.max(1, Math.floor(maxBytes)),
      sizeCalculation: slotSize,
      // Only evictions: deletions and replacements remove their files themselves.
      dispose: (list, _key, reason) => {
        if (reason === 'evict') for (const s of list) this.unlink(s.file)
      },
    })
    mkdirSync(dir, { recursive: true })
    this.load()
  }

  get size(): number {
    return this.lru.size
  }

  variants(key: string): readonly StoredEntry[] {
    const list = this.lru.get(key)
    if (list === undefined) return []
    const out: StoredEntry[] = []
    let lost: Slot[] | undefined
    for (const s of list) {
      const e = s.entry ?? this.readLarge(s)
      if (e !== undefined) out.push(e)
      else (lost ??= []).push(s)
    }
    if (lost !== undefined) {
      const gone = lost
      for (const s of gone) this.unlink(s.file)
      const keep = list.filter((s) => !gone.includes(s))
      if (keep.length) this.install(key, keep)
      else this.lru.delete(key)
    }
    return out
  }

  put(entry: StoredEntry): void {
    const file = entryFileName(entry.key, entry.variant, entry.vary)
    const old = this.lru.peek(entry.key) ?? []
    const others = old.filter((s) => s.file !== file)
    const meta: Meta = {
      key: entry.key,
      variant: entry.variant,
      vary: entry.vary,
      status: entry.status,
      headers: entry.headers,
      requestTime: entry.requestTime,
      responseTime: entry.responseTime,
      tags: entry.tags,
      ...(entry.partial ? { partial: entry.partial } : {}),
    }
    const slot: Slot = {
      file,
      meta,
      bodyLength: entry.body.length,
      entry: entry.body.length <= DISK_MEMORY_BODY_LIMIT ? entry : undefined,
      hits: entry.hits ?? 0,
    }
    const list = [...others, slot]
    if (slotSize(list) > this.lru.maxSize) {
      // Can never fit: like MemoryStore (lru-cache), the key is dropped altogether.
      this.delete(entry.key)
      return
    }
    try {
      this.writeAtomic(file, encode(meta, entry.body))
    } catch (err) {
      this.onError(err)
      // The old file for this variant (if any) is intact, but it is no longer what the caller wants served.
      if (others.length !== old.length) {
        this.unlink(file)
        if (others.length) this.install(entry.key, others)
        else this.lru.delete(entry.key)
      }
      return
    }
    this.install(entry.key, list)
  }

  delete(key: string): number {
    const list = this.lru.peek(key)
    if (list === undefined) return 0
    this.lru.delete(key)
    for (const s of list) this.unlink(s.file)
    return list.length
  }

  scan(fn: (key: string, hits: number, bytes: number) => void): void {
    for (const list of this.lru.rvalues()) if (list !== undefined) for (const s of list) fn(s.meta.key, s.entry ? (s.entry.hits ?? 0) : s.hits, s.bodyLength)
  }

  deletePrefix(prefix: string): number {
    let n = 0
    for (const key of [...this.lru.keys()]) if (key.startsWith(prefix)) n += this.delete(key)
    return n
  }

  deleteTag(tag: string): number {
    let n = 0
    for (const [key, list] of [...this.lru.entries()]) {
      const keep = list.filter((s) => !s.meta.tags.includes(tag))
      if (keep.length === list.length) continue
      for (const s of list) if (!keep.includes(s)) this.unlink(s.file)
      n += list.length - keep.length
      if (keep.length) this.install(key, keep)
      else this.lru.delete(key)
    }
    return n
  }

  /** Sets a key's list; if lru-cache refused it (too big), its files go too. */
  private install(key: string, list: Slot[]): void {
    this.lru.set(key, list)
    if (this.lru.peek(key) !== list) for (const s of list) this.unlink(s.file)
  }

  private readLarge(s: Slot): StoredEntry | undefined {
    let buf: Buffer
    try {
      buf = readFileSync(join(this.dir, s.file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err)
      return undefined
    }
    const decoded = decode(buf)
    if (decoded === undefined || decoded.body.length !== s.bodyLength) return undefined
    const entry: StoredEntry = { ...s.meta, body: decoded.body }
    // this copy's hits are the slot's, so they survive the next read
    Object.defineProperty(entry, 'hits', { get: () => s.hits, set: (n: number) => (s.hits = n), enumerable: false })
    return entry
  }

  private writeAtomic(file: string, data: Buffer): void {
    const final = join(this.dir, file)
    const tmp = `${final}${TEMP_MARK}${randomBytes(6).toString('hex')}`
    try {
      writeFileSync(tmp, data)
      renameSync(tmp, final)
    } catch (err) {
      try {
        unlinkSync(tmp)
      } catch {
        // never created, or already renamed
      }
      throw err
    }
  }

  private unlink(file: string): void {
    try {
      unlinkSync(join(this.dir, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err)
    }
  }

  /** Rebuilds the index from the directory (see the top comment). */
  private load(): void {
    const found = new Map<string, { slots: Slot[]; mtime: number }>()
    for (const d of readdirSync(this.dir, { withFileTypes: true })) {
      if (!d.isFile()) continue
      const name = d.name
      if (name.includes(ENTRY_SUFFIX + TEMP_MARK)) {
        this.unlink(name)
        continue
      }
      if (!ENTRY_NAME.test(name)) continue
      let buf: Buffer
      let mtime: number
      try {
        buf = readFileSync(join(this.dir, name))
        mtime = statSync(join(this.dir, name)).mtimeMs
      } catch (err) {
        this.onError(err)
        continue
      }
      const decoded = decode(buf)
      if (decoded === undefined || entryFileName(decoded.meta.key, decoded.meta.variant, decoded.meta.vary) !== name) {
        this.unlink(name)
        continue
      }
      const { meta, body } = decoded
      const small = body.length <= DISK_MEMORY_BODY_LIMIT
      const slot: Slot = {
        file: name,
        meta,
        bodyLength: body.length,
        entry: small ? { ...meta, body: Buffer.from(body) } : undefined,
        hits: 0,
      }
      const group = found.get(meta.key)
      if (group === undefined) found.set(meta.key, { slots: [slot], mtime })
      else {
        group.slots.push(slot)
        group.mtime = Math.max(group.mtime, mtime)
      }
    }
    const ordered = [...found.entries()].sort((a, b) => a[1].mtime - b[1].mtime || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    for (const [key, { slots }] of ordered) this.install(key, slots)
  }
}

/**
 * DiskStore: an optional CacheStore that survives restarts, shared by every
 * process that opens the same folder (the workers of a node, docs/scale.md):
 * an object one process stores is a hit for the others.
 *
 * Design
 * - Entry files: one per stored variant, named `<ident>-<16 hex>.entry`,
 *   where ident = sha256(JSON [key, variant, vary]) (vary is part of the
 *   identity, exactly as in MemoryStore) and the 16 hex digits are random and
 *   new on every write. A file's name is therefore a version: once written,
 *   the bytes under a name never change, and no two writes share a name.
 *   Layout (unchanged from the format before the shared index):
 *     0  8 bytes  magic "EBXCACHE"
 *     8  u32 BE   format version: 1, or 2 for a partial entry (RFC 9111
 *                 §3.3), whose metadata also has `partial` (complete length
 *                 and held ranges; the body is their bytes in order), so that
 *                 a build that does not know partial entries drops the file
 *     12 u32 BE   metadata length (UTF-8 JSON)
 *     16 u64 BE   body length
 *     24 u32 BE   CRC-32 of metadata + body
 *     28 ...      metadata JSON, then the body bytes
 * - The index: `index.sqlite` in the same folder (node:sqlite, WAL journal so
 *   that lookups never wait for a writer, synchronous=NORMAL, a 500 ms busy
 *   timeout). Tables: `entries` (file, ident, key, body length: one row per
 *   variant), `tags` (Surrogate-Key values, for deleteTag), `keys` (one row per
 *   key with its last use, for LRU by key as MemoryStore) and `state` (the
 *   bytes counted, the number of keys, the LRU clock). Triggers keep `state`,
 *   `tags` and `keys` in step with `entries`, so the byte budget counts every
 *   variant on disk exactly once, whichever process wrote it.
 * - The byte budget is the sum of body sizes plus a fixed 512 bytes per
 *   variant (the same rule as MemoryStore for large bodies). A put that takes
 *   the total over it evicts least recently used keys (all their variants),
 *   in the same transaction.
 * - A lookup (`variants`) is one prepared statement, `SELECT file FROM entries
 *   WHERE key = ?`, whose answer is kept until the next commit by any process:
 *   once per turn of the event loop the store reads the WAL-index header
 *   (`index.sqlite-shm`), which every commit changes (see `lookup`). So a
 *   delete, purge, eviction or replacement by any process is seen by every
 *   lookup of a request that arrived after it, and a hit on an unchanged
 *   index costs no query (a query is a read transaction: two file-lock
 *   system calls, a few microseconds).
 * - Writes are atomic: the whole file is written to `<name>.tmp-<pid>-<hex>`
 *   (outside any lock), then, in one write transaction (BEGIN IMMEDIATE),
 *   renamed into place and given its row; the variant's previous row goes in
 *   the same transaction. A file is unlinked only after the transaction that
 *   removed its row has committed: as names are never reused, no row can refer
 *   to it any more. (No fsync: a crash can lose recent writes; a torn file
 *   fails its checksum and is dropped.)
 * - Bodies up to 64 KiB are also kept in this process's memory (the StoredEntry
 *   itself, so its lazily computed `wire` string is kept too), by file name:
 *   as a name's bytes never change, the copy is valid exactly as long as the
 *   index lists that name. Larger bodies are read from disk on every lookup,
 *   with their length and CRC verified. A file that went missing or bad is
 *   dropped from the index.
 * - Last use: a hit does not write. The keys hit are noted in memory and
 *   written (in the order they were hit) at the start of this process's next
 *   write transaction, or by the next hit once 5 s have passed since the last
 *   such write, or once 10,000 keys are noted: LRU is exact for one process and
 *   up to 5 s behind for what the other processes hit. The order comes from a
 *   counter in `state`, not from clocks.
 * - Opening: `dir` is created (recursive) and the index opened (created when
 *   missing). Every entry file is read and verified (outside any lock); then,
 *   in one write transaction: a new index imports every valid entry file
 *   (so a folder of the previous format, one process's `<hash>.entry` files
 *   without an index, keeps its entries: oldest mtime first so recency roughly
 *   survives); rows whose file is missing or bad go; entry files with no row
 *   are deleted, and so are temp files whose writing process is gone (or
 *   that have no process id: the previous format's); if the budget is now
 *   smaller than what is counted, least recently used keys are evicted.
 *   Files with other names are left alone.
 * - Everything is synchronous (the CacheStore interface is; so is node:sqlite).
 *   Disk and index errors in `put`, `variants` and the deletions never throw
 *   (they run from stream callbacks): the variant is simply not stored, or
 *   treated as absent, and `onError` (if given) hears about it. Errors when
 *   opening throw, naming the index file.
 * - `hits` (for the operator's view, `scan`) are this process's own.
 */
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { crc32 } from 'node:zlib'
import { LRUCache } from 'lru-cache'
import type { Headers } from '../../http/cache-control.ts'
import type { CacheStore, PartialContent, StoredEntry } from './store.ts'

const MAGIC = Buffer.from('EBXCACHE', 'latin1')
const VERSION = 1
/** The format version of partial entries. */
const VERSION_PARTIAL = 2
const HEADER_BYTES = 28
/** An entry file: its ident, then (since the index) a random suffix. The previous format had none. */
const ENTRY_NAME = /^([0-9a-f]{64})(?:-[0-9a-f]{16})?\.entry$/
/** A temp file: `.tmp-<pid>-<hex>` after the entry name, or `.tmp-<hex>` in the previous format. */
const TEMP_NAME = /^[0-9a-f]{64}(?:-[0-9a-f]{16})?\.entry\.tmp-(?:([1-9][0-9]*)-)?[0-9a-f]+$/
/** The index file, in the cache folder. */
export const INDEX_FILE = 'index.sqlite'
/** The WAL-index header's size: one copy of WalIndexHdr (https://www.sqlite.org/walformat.html §2.1). */
const WAL_HEADER_BYTES = 48
/** Lookups answered from memory between two commits, at most. */
const LOOKUPS_KEPT = 10_000
/** The index's schema version (its `user_version`). */
const SCHEMA_VERSION = 1
/** Bodies up to this size are kept in memory as well as on disk. */
export const DISK_MEMORY_BODY_LIMIT = 64 * 1024
/** Budget charged per variant on top of its body (head + metadata). */
const VARIANT_OVERHEAD = 512
/**
 * How long a write waits for another process's write transaction. Those are
 * short (a rename and a few rows), and a wait blocks this process's event loop.
 */
const BUSY_MS = 500
/** While opening, a process may wait for another one's import of a previous format's folder. */
const OPEN_BUSY_MS = 30_000
/** Last uses noted by hits are written at most this often (unless TOUCH_MAX pile up first). */
const TOUCH_FLUSH_MS = 5_000
const TOUCH_MAX = 10_000

const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (
  file TEXT PRIMARY KEY,
  ident TEXT NOT NULL UNIQUE,
  key TEXT NOT NULL,
  body INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_key ON entries (key);
CREATE TABLE IF NOT EXISTS tags (
  tag TEXT NOT NULL,
  file TEXT NOT NULL,
  PRIMARY KEY (tag, file)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_file ON tags (file);
CREATE TABLE IF NOT EXISTS keys (
  key TEXT PRIMARY KEY,
  used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_use ON keys (used);
CREATE TABLE IF NOT EXISTS state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  bytes INTEGER NOT NULL,
  keys INTEGER NOT NULL,
  clock INTEGER NOT NULL,
  imported INTEGER NOT NULL
);
INSERT OR IGNORE INTO state (id, bytes, keys, clock, imported) VALUES (1, 0, 0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entry_added AFTER INSERT ON entries BEGIN
  UPDATE state SET bytes = bytes + new.body + ${VARIANT_OVERHEAD};
END;
CREATE TRIGGER IF NOT EXISTS entry_removed AFTER DELETE ON entries BEGIN
  UPDATE state SET bytes = bytes - old.body - ${VARIANT_OVERHEAD};
  DELETE FROM tags WHERE file = old.file;
  DELETE FROM keys WHERE key = old.key AND NOT EXISTS (SELECT 1 FROM entries WHERE key = old.key);
END;
CREATE TRIGGER IF NOT EXISTS key_added AFTER INSERT ON keys BEGIN
  UPDATE state SET keys = keys + 1;
END;
CREATE TRIGGER IF NOT EXISTS key_removed AFTER DELETE ON keys BEGIN
  UPDATE state SET keys = keys - 1;
END;
`

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

/** What this process holds of one entry file. */
interface Held {
  /** The whole entry, for bodies up to DISK_MEMORY_BODY_LIMIT. */
  readonly entry: StoredEntry | undefined
  /** Answers served from a large entry (read anew from disk each time): its copies count here (StoredEntry.hits). */
  hits: number
}

/** An entry file read and verified at open. */
interface Checked {
  readonly meta: Meta
  readonly bodyLength: number
  readonly mtime: number
}

export interface DiskStoreOptions {
  /** Told about disk and index errors that `put`, `variants` and deletions swallow. */
  onError?: (err: unknown) => void
}

/** The identity of a key + variant (+ vary): the first 64 hex digits of its entry files' names. */
export function entryIdent(key: string, variant: string, vary: string | undefined): string {
  return createHash('sha256').update(JSON.stringify([key, variant, vary ?? null])).digest('hex')
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

/** Decodes a file and checks that it is what its name says (its ident) and, when given, holds `key`. */
function decodeNamed(buf: Buffer, file: string, key?: string): { meta: Meta; body: Buffer } | undefined {
  const decoded = decode(buf)
  if (decoded === undefined || (key !== undefined && decoded.meta.key !== key)) return undefined
  const { meta } = decoded
  return file.startsWith(entryIdent(meta.key, meta.variant, meta.vary)) ? decoded : undefined
}

/** Whether a temp file's writer is gone: no process id in its name (the previous format's), or no such process. */
function orphanTemp(pid: string | undefined): boolean {
  if (pid === undefined || Number(pid) === process.pid) return true
  try {
    process.kill(Number(pid), 0)
    return false
  } catch (err) {
    // EPERM: the process exists, under another user
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** Counted as the budget counts (a large body's copy is only its hit counter): a process can hold every small entry the budget allows. */
const heldSize = (held: ReadonlyMap<string, Held>): number => {
  let n = 0
  for (const h of held.values()) n += (h.entry ? h.entry.body.length : 0) + VARIANT_OVERHEAD
  return n || 1
}

type Row = Record<string, SQLOutputValue>

export class DiskStore implements CacheStore {
  readonly dir: string
  readonly shared = true
  private readonly maxBytes: number
  private readonly onError: (err: unknown) => void
  private readonly db: DatabaseSync
  /** This process's copies, by key then file name (see the top comment); only a memory bound, never an authority. */
  private readonly held: LRUCache<string, ReadonlyMap<string, Held>>
  /** Keys hit since the last write of last uses, in the order of their latest hit. */
  private readonly touched = new Map<string, true>()
  private lastTouched: string | undefined
  private nextFlush = 0
  /** The LRU counter while a write transaction runs. */
  private clock = 0
  private readonly sLookup: StatementSync
  /** The WAL-index (`index.sqlite-shm`), read for its header before lookups; null: not available, every lookup queries. */
  private shm: number | null = null
  /** The header as last read, and the lookups answered since it last changed. */
  private readonly header = Buffer.alloc(WAL_HEADER_BYTES)
  private readonly seen = Buffer.alloc(WAL_HEADER_BYTES)
  private readonly answers = new LRUCache<string, readonly [string][]>({ max: LOOKUPS_KEPT })
  private closed = false
  /** The header was read in this turn of the event loop (see lookup). */
  private checked = false
  private readonly uncheck = () => {
    this.checked = false
  }
  private readonly sBegin: StatementSync
  private readonly sCommit: StatementSync
  private readonly sRollback: StatementSync
  private readonly sState: StatementSync
  private readonly sSetClock: StatementSync
  private readonly sTouch: StatementSync
  private readonly sKeyUsed: StatementSync
  private readonly sInsert: StatementSync
  private readonly sTag: StatementSync
  private readonly sOthers: StatementSync
  private readonly sDeleteIdent: StatementSync
  private readonly sDeleteKey: StatementSync
  private readonly sDeleteFile: StatementSync
  private readonly sDeletePrefix: StatementSync
  private readonly sDeleteTag: StatementSync
  private readonly sOldest: StatementSync
  private readonly sAll: StatementSync

  /** Opens (creating when missing) the folder and its index; throws naming the index file. */
  constructor(dir: string, maxBytes: number, options: DiskStoreOptions = {}) {
    this.dir = dir
    this.maxBytes = Math.max(1, Math.floor(maxBytes))
    this.onError = options.onError ?? (() => {})
    this.held = new LRUCache<string, ReadonlyMap<string, Held>>({ maxSize: this.maxBytes, sizeCalculation: heldSize })
    mkdirSync(dir, { recursive: true })
    const file = join(dir, INDEX_FILE)
    let db: DatabaseSync
    try {
      db = new DatabaseSync(file)
    } catch (err) {
      throw new Error(`cannot open the cache index ${file}: ${(err as Error).message}`, { cause: err })
    }
    this.db = db
    try {
      db.exec(`PRAGMA busy_timeout = ${OPEN_BUSY_MS}`)
      const found = Number((db.prepare('PRAGMA user_version').get() as Row).user_version)
      if (found > SCHEMA_VERSION) throw new Error(`it has schema version ${found}, newer than this Edgebox knows (${SCHEMA_VERSION}); upgrade Edgebox or remove the file`)
      db.exec('PRAGMA journal_mode = WAL')
      db.exec('PRAGMA synchronous = NORMAL')
      if (found < SCHEMA_VERSION) {
        db.exec('BEGIN IMMEDIATE')
        try {
          db.exec(SCHEMA)
          db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
          db.exec('COMMIT')
        } catch (err) {
          if (db.isTransaction) db.exec('ROLLBACK')
          throw err
        }
      }
    } catch (err) {
      db.close()
      throw new Error(`cannot open the cache index ${file}: ${(err as Error).message}`, { cause: err })
    }
    this.sLookup = db.prepare('SELECT file FROM entries WHERE key = ?')
    this.sLookup.setReturnArrays(true)
    this.sBegin = db.prepare('BEGIN IMMEDIATE')
    this.sCommit = db.prepare('COMMIT')
    this.sRollback = db.prepare('ROLLBACK')
    this.sState = db.prepare('SELECT bytes, keys, clock, imported FROM state')
    this.sSetClock = db.prepare('UPDATE state SET clock = ?')
    this.sTouch = db.prepare('UPDATE keys SET used = ? WHERE key = ?')
    this.sKeyUsed = db.prepare('INSERT INTO keys (key, used) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET used = excluded.used')
    this.sInsert = db.prepare('INSERT INTO entries (file, ident, key, body) VALUES (?, ?, ?, ?)')
    this.sTag = db.prepare('INSERT OR IGNORE INTO tags (tag, file) VALUES (?, ?)')
    this.sOthers = db.prepare(`SELECT coalesce(sum(body + ${VARIANT_OVERHEAD}), 0) AS bytes FROM entries WHERE key = ? AND ident != ?`)
    this.sDeleteIdent = db.prepare('DELETE FROM entries WHERE ident = ? RETURNING file')
    this.sDeleteKey = db.prepare('DELETE FROM entries WHERE key = ? RETURNING file')
    this.sDeleteFile = db.prepare('DELETE FROM entries WHERE file = ?')
    // substr and length both count characters, so this is "starts with" for any text
    this.sDeletePrefix = db.prepare('DELETE FROM entries WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 RETURNING key, file')
    this.sDeleteTag = db.prepare('DELETE FROM entries WHERE file IN (SELECT file FROM tags WHERE tag = ?) RETURNING key, file')
    this.sOldest = db.prepare('SELECT key FROM keys WHERE key IS NOT ? ORDER BY used LIMIT 1')
    this.sAll = db.prepare('SELECT key, file, body FROM entries')
    try {
      this.open()
      db.exec(`PRAGMA busy_timeout = ${BUSY_MS}`)
    } catch (err) {
      db.close()
      throw new Error(`cannot open the cache index ${file}: ${(err as Error).message}`, { cause: err })
    }
    this.nextFlush = Date.now() + TOUCH_FLUSH_MS
    try {
      this.shm = openSync(`${file}-shm`, 'r')
    } catch {
      // no WAL-index to read: every lookup asks the index
      this.shm = null
    }
  }

  get size(): number {
    try {
      return Number((this.sState.get() as Row).keys)
    } catch (err) {
      this.onError(err)
      return 0
    }
  }

  variants(key: string): readonly StoredEntry[] {
    let rows: readonly [string][]
    try {
      rows = this.lookup(key)
    } catch (err) {
      this.onError(err)
      return []
    }
    if (rows.length === 0) {
      this.held.delete(key)
      return []
    }
    const held = this.held.get(key)
    const out: StoredEntry[] = []
    let matched = 0
    let added: Map<string, Held> | undefined
    let lost: string[] | undefined
    for (const [file] of rows) {
      const h = held?.get(file)
      if (h !== undefined) matched++
      if (h?.entry !== undefined) {
        out.push(h.entry)
        continue
      }
      const e = this.read(key, file, h)
      if (e === undefined) (lost ??= []).push(file)
      else {
        out.push(e.entry)
        if (h === undefined) (added ??= new Map()).set(file, e.held)
      }
    }
    // What this process holds of the key changes only when a file is new to it, or went
    if (added !== undefined || lost !== undefined || matched !== (held?.size ?? 0)) {
      const next = new Map<string, Held>()
      for (const [file] of rows) {
        const h = added?.get(file) ?? held?.get(file)
        if (h !== undefined && !lost?.includes(file)) next.set(file, h)
      }
      if (next.size) this.held.set(key, next)
      else this.held.delete(key)
    }
    if (lost !== undefined) this.drop(lost)
    if (out.length) this.touch(key)
    return out
  }

  put(entry: StoredEntry): void {
    const { key } = entry
    if (entry.body.length + VARIANT_OVERHEAD > this.maxBytes) {
      // Can never fit: like MemoryStore (lru-cache), the key is dropped altogether.
      this.delete(key)
      return
    }
    const ident = entryIdent(key, entry.variant, entry.vary)
    const file = `${ident}-${randomBytes(8).toString('hex')}.entry`
    const final = join(this.dir, file)
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
    const meta: Meta = {
      key,
      variant: entry.variant,
      vary: entry.vary,
      status: entry.status,
      headers: entry.headers,
      requestTime: entry.requestTime,
      responseTime: entry.responseTime,
      tags: entry.tags,
      ...(entry.partial ? { partial: entry.partial } : {}),
    }
    try {
      writeFileSync(tmp, encode(meta, entry.body))
    } catch (err) {
      this.onError(err)
      this.removeQuietly(tmp)
      // The previous file of this variant (if any) is intact, but it is no longer what the caller wants served.
      this.forget(ident, key)
      return
    }
    const gone: string[] = []
    let stored = false
    try {
      this.write(() => {
        if (Number((this.sOthers.get(key, ident) as Row).bytes) + entry.body.length + VARIANT_OVERHEAD > this.maxBytes) {
          // The key's other variants and this one cannot fit together: as above, the key goes.
          for (const r of this.sDeleteKey.all(key)) gone.push(String(r.file))
          return
        }
        for (const r of this.sDeleteIdent.all(ident)) gone.push(String(r.file))
        renameSync(tmp, final)
        this.sInsert.run(file, ident, key, entry.body.length)
        for (const tag of entry.tags) this.sTag.run(tag, file)
        this.sKeyUsed.run(key, ++this.clock)
        this.evict(key, gone)
        stored = true
      })
    } catch (err) {
      this.onError(err)
      // rolled back: neither name has a row
      this.removeQuietly(tmp)
      this.removeQuietly(final)
      this.held.delete(key)
      return
    }
    if (!stored) this.removeQuietly(tmp)
    const held = this.held.peek(key)
    const next = new Map<string, Held>()
    if (stored && held !== undefined) for (const [f, h] of held) if (!gone.includes(f)) next.set(f, h)
    if (stored) next.set(file, { entry: entry.body.length <= DISK_MEMORY_BODY_LIMIT ? entry : undefined, hits: entry.hits ?? 0 })
    if (next.size) this.held.set(key, next)
    else this.held.delete(key)
    for (const f of gone) this.unlink(f)
  }

  delete(key: string): number {
    return this.remove(() => this.sDeleteKey.all(key).map((r) => ({ key, file: r.file })))
  }

  deletePrefix(prefix: string): number {
    return this.remove(() => this.sDeletePrefix.all(prefix))
  }

  deleteTag(tag: string): number {
    return this.remove(() => this.sDeleteTag.all(tag))
  }

  scan(fn: (key: string, hits: number, bytes: number) => void): void {
    let rows: Row[]
    try {
      rows = this.sAll.all()
    } catch (err) {
      this.onError(err)
      return
    }
    for (const r of rows) {
      const key = String(r.key)
      // peek: the walk reads without touching recency
      const h = this.held.peek(key)?.get(String(r.file))
      fn(key, h === undefined ? 0 : h.entry !== undefined ? (h.entry.hits ?? 0) : h.hits, Number(r.body))
    }
  }

  /** Runs `fn` in one write transaction, after writing the last uses noted so far; the LRU counter is `this.clock` meanwhile. */
  private write(fn: () => void): void {
    // Taken whatever happens: a transaction that fails loses these notes, which are only a hint, rather than retrying them on every hit.
    const notes = [...this.touched.keys()]
    this.touched.clear()
    this.lastTouched = undefined
    this.nextFlush = Date.now() + TOUCH_FLUSH_MS
    this.sBegin.run()
    try {
      this.clock = Number((this.sState.get() as Row).clock)
      for (const key of notes) this.sTouch.run(++this.clock, key)
      fn()
      this.sSetClock.run(this.clock)
      this.sCommit.run()
    } catch (err) {
      if (this.db.isTransaction) this.sRollback.run()
      throw err
    } finally {
      // this process's own change: its next lookup asks the index
      this.answers.clear()
      this.checked = false
    }
  }

  /**
   * The files of a key's variants. The index's answer is kept until the
   * next commit by any process: SQLite's WAL-index header (the first 48
   * bytes of `index.sqlite-shm`, https://www.sqlite.org/walformat.html §2.1)
   * changes with every transaction committed (its `iChange` counter, the
   * frame count, the salts after a checkpoint), so one read of it tells
   * whether anything may have changed since the answers kept were read; the
   * header is read before the query, so an answer is never older than the
   * header it is kept under. A torn read differs from the last one and only
   * costs a query. The header is read once per turn of the event loop: a
   * commit by another process that came before a request arrived (a purge
   * answered before the client asked again) came before the turn that reads
   * the request began, so the lookup sees it; this process's own writes
   * clear the answers kept at once.
   */
  private lookup(key: string): readonly [string][] {
    if (this.shm !== null) {
      if (!this.checked) {
        let same = false
        try {
          same = readSync(this.shm, this.header, 0, WAL_HEADER_BYTES, 0) === WAL_HEADER_BYTES && this.header.equals(this.seen)
        } catch {
          // the header cannot be read: this lookup asks the index
        }
        if (!same) {
          this.answers.clear()
          this.header.copy(this.seen)
        }
        // once per turn of the event loop: a commit that came before a request arrived came before this turn began
        this.checked = true
        setImmediate(this.uncheck)
      }
      const kept = this.answers.get(key)
      if (kept !== undefined) return kept
    }
    const rows = this.sLookup.all(key) as unknown as [string][]
    if (this.shm !== null) this.answers.set(key, rows)
    return rows
  }

  /** Closes the index and what the store holds open; lookups then miss and writes are not stored (each error goes to `onError`). */
  close(): void {
    if (this.closed) return
    this.closed = true
    // the last uses noted go in before the index closes (a write of nothing but them)
    if (this.touched.size > 0) {
      try {
        this.write(() => {})
      } catch (err) {
        this.onError(err)
      }
    }
    if (this.shm !== null) closeSync(this.shm)
    this.shm = null
    this.answers.clear()
    this.db.close()
  }

  /** Notes a hit on `key`; writes the notes when due (see the top comment). */
  private touch(key: string): void {
    // a key hit again and again (the hot object) is already the latest note
    if (key !== this.lastTouched) {
      this.touched.delete(key)
      this.touched.set(key, true)
      this.lastTouched = key
    }
    if (this.touched.size < TOUCH_MAX && Date.now() < this.nextFlush) return
    try {
      this.write(() => {})
    } catch (err) {
      this.onError(err)
    }
  }

  /** Removes rows in one transaction (`fn` deletes them and returns their keys and files), then their files; returns how many went. */
  private remove(fn: () => Row[]): number {
    let rows: Row[] = []
    try {
      this.write(() => {
        rows = fn()
      })
    } catch (err) {
      this.onError(err)
      return 0
    }
    for (const r of rows) {
      this.held.delete(String(r.key))
      this.unlink(String(r.file))
    }
    return rows.length
  }

  /** Evicts least recently used keys other than `keep` until the budget holds; their files go to `gone`. */
  private evict(keep: string | null, gone: string[]): void {
    while (Number((this.sState.get() as Row).bytes) > this.maxBytes) {
      const oldest = this.sOldest.get(keep) as Row | undefined
      if (oldest === undefined) return
      const key = String(oldest.key)
      for (const r of this.sDeleteKey.all(key)) gone.push(String(r.file))
      this.held.delete(key)
    }
  }

  /** After a failed write: the variant's previous row and file go, as the caller no longer wants them served. */
  private forget(ident: string, key: string): void {
    this.held.delete(key)
    const gone: string[] = []
    try {
      this.write(() => {
        for (const r of this.sDeleteIdent.all(ident)) gone.push(String(r.file))
      })
    } catch (err) {
      this.onError(err)
      return
    }
    for (const f of gone) this.unlink(f)
  }

  /** Drops the rows of files found missing or bad, then the files. */
  private drop(files: readonly string[]): void {
    try {
      this.write(() => {
        for (const f of files) this.sDeleteFile.run(f)
      })
    } catch (err) {
      this.onError(err)
      return
    }
    for (const f of files) this.unlink(f)
  }

  /** Reads an entry file for a lookup of `key`; undefined when it is missing or does not check out. */
  private read(key: string, file: string, h: Held | undefined): { entry: StoredEntry; held: Held } | undefined {
    let buf: Buffer
    try {
      buf = readFileSync(join(this.dir, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err)
      return undefined
    }
    const decoded = decodeNamed(buf, file, key)
    if (decoded === undefined) return undefined
    const { meta, body } = decoded
    if (body.length <= DISK_MEMORY_BODY_LIMIT) {
      const entry: StoredEntry = { ...meta, body: Buffer.from(body), hits: 0 }
      return { entry, held: { entry, hits: 0 } }
    }
    const held = h ?? { entry: undefined, hits: 0 }
    const entry: StoredEntry = { ...meta, body }
    // this copy's hits are the held record's, so they survive the next read
    Object.defineProperty(entry, 'hits', { get: () => held.hits, set: (n: number) => (held.hits = n), enumerable: false })
    return { entry, held }
  }

  private unlink(file: string): void {
    try {
      unlinkSync(join(this.dir, file))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err)
    }
  }

  /** Unlinks a file that may well not exist (a temp file already renamed, a final name never reached). */
  private removeQuietly(path: string): void {
    try {
      unlinkSync(path)
    } catch {
      // not there: nothing to clean up
    }
  }

  /** The folder's regular files. */
  private files(): string[] {
    return readdirSync(this.dir, { withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => d.name)
  }

  /** Reads and verifies an entry file at open: its contents, or null when bad; undefined when it vanished or cannot be read. */
  private check(file: string): Checked | null | undefined {
    let buf: Buffer
    let mtime: number
    try {
      const path = join(this.dir, file)
      buf = readFileSync(path)
      mtime = statSync(path).mtimeMs
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err)
      return undefined
    }
    const decoded = decodeNamed(buf, file)
    return decoded === undefined ? null : { meta: decoded.meta, bodyLength: decoded.body.length, mtime }
  }

  /** Reconciles the index and the folder at open (see the top comment). */
  private open(): void {
    // Read outside the lock: the other processes go on writing meanwhile.
    const checked = new Map<string, Checked | null>()
    for (const name of this.files()) {
      if (!ENTRY_NAME.test(name)) continue
      const c = this.check(name)
      if (c !== undefined) checked.set(name, c)
    }
    const gone: string[] = []
    this.write(() => {
      // Listed under the lock: a file is renamed into place only in a write transaction, so an entry file without a row now is an orphan.
      const names = new Set(this.files())
      if (!Number((this.sState.get() as Row).imported)) this.importFiles(checked, names)
      for (const r of this.sAll.all()) {
        const file = String(r.file)
        if (!names.has(file) || checked.get(file) === null) {
          this.sDeleteFile.run(file)
          gone.push(file)
        }
      }
      const rows = new Set(this.sAll.all().map((r) => String(r.file)))
      for (const name of names) {
        if (ENTRY_NAME.test(name)) {
          if (!rows.has(name)) gone.push(name)
          continue
        }
        const temp = TEMP_NAME.exec(name)
        if (temp !== null && orphanTemp(temp[1])) gone.push(name)
      }
      this.evict(null, gone)
    })
    for (const f of new Set(gone)) this.unlink(f)
  }

  /** A new index takes in every valid entry file (the previous format's, or the files of an index removed by hand): oldest mtime first. */
  private importFiles(checked: ReadonlyMap<string, Checked | null>, names: ReadonlySet<string>): void {
    const byKey = new Map<string, { files: [string, Checked][]; mtime: number }>()
    const idents = new Set<string>()
    // newest first, so that of two files of one variant the newer is kept
    const valid = [...checked].filter((c): c is [string, Checked] => c[1] !== null && names.has(c[0])).sort((a, b) => b[1].mtime - a[1].mtime)
    for (const [file, c] of valid) {
      const ident = file.slice(0, 64)
      if (idents.has(ident)) continue
      idents.add(ident)
      const group = byKey.get(c.meta.key)
      if (group === undefined) byKey.set(c.meta.key, { files: [[file, c]], mtime: c.mtime })
      else group.files.push([file, c])
    }
    const ordered = [...byKey.entries()].sort((a, b) => a[1].mtime - b[1].mtime || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    for (const [key, { files }] of ordered) {
      for (const [file, c] of files) {
        this.sInsert.run(file, file.slice(0, 64), key, c.bodyLength)
        for (const tag of c.meta.tags) this.sTag.run(tag, file)
      }
      this.sKeyUsed.run(key, ++this.clock)
    }
    this.db.exec('UPDATE state SET imported = 1')
  }
}

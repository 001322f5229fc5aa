import { LRUCache } from 'lru-cache'
import type { Headers } from '../../http/cache-control.ts'
import type { ByteRange } from '../../http/range.ts'
import type { ServedHead } from './serve.ts'

/**
 * What the shared cache keeps for one response: the status, the headers as
 * they will be served (hop-by-hop fields and fields the origin excluded
 * already removed), the complete body, and the times RFC 9111's age
 * calculation needs.
 *
 * A partial entry (RFC 9111 §3.3) has `partial`: status 206, headers without
 * Content-Range and Content-Length, and as body the bytes of `partial.ranges`
 * concatenated in order. It only answers range requests wholly within it.
 */
export interface StoredEntry {
  /** Primary key: scheme + host + path + query (RFC 9111 §2). */
  readonly key: string
  /** The request's values for the fields the response's Vary names (RFC 9111 §4.1). */
  readonly variant: string
  readonly vary: string | undefined
  status: number
  headers: Headers
  readonly body: Buffer
  /** The body as a latin1 string (small bodies), which Node writes with the head in one call. */
  wire?: string
  requestTime: number
  responseTime: number
  /** Surrogate-Key / Cache-Tag values, for purging by tag. */
  readonly tags: readonly string[]
  /** The head every answer from this response shares, prepared on first use (serve.ts); never persisted. */
  served?: ServedHead
  /** Answers served from this entry (`hit` in Cache-Status), for the operator's most-hit keys; never persisted. */
  hits?: number
  /** Only for an incomplete response: the complete length and the byte ranges held (sorted, disjoint, non-adjacent). */
  readonly partial?: PartialContent
}

/** What a partial entry holds of a representation of `size` bytes. */
export interface PartialContent {
  readonly size: number
  readonly ranges: readonly ByteRange[]
}

/** Every store (memory now, disk later) passes the same contract tests. */
export interface CacheStore {
  /** All stored variants of a key. */
  variants(key: string): readonly StoredEntry[]
  put(entry: StoredEntry): void
  /** Removes every variant of a key; returns how many entries went. */
  delete(key: string): number
  deletePrefix(prefix: string): number
  deleteTag(tag: string): number
  readonly size: number
  /**
   * Calls `fn` with every stored entry's key, hits and body bytes (the
   * operator's view, core/observe.ts CacheView): run when asked, never per
   * request, and without reading bodies from disk or changing recency.
   */
  scan(fn: (key: string, hits: number, bytes: number) => void): void
  /** Every process of the machine sees this same store (the disk store, shared by the workers): a node's total counts it once. */
  readonly shared?: boolean
  /** Lets go of what the store holds open (files, an index), when its route is replaced by a reload or Edgebox stops. */
  close?(): void
}

/** An in-memory store: LRU over keys, with a byte budget (bodies and headers). */
export class MemoryStore implements CacheStore {
  private readonly lru: LRUCache<string, StoredEntry[]>

  constructor(maxBytes: number) {
    this.lru = new LRUCache<string, StoredEntry[]>({
      maxSize: Math.max(1, maxBytes),
      // body, its latin1 copy for small bodies, and headers
      sizeCalculation: (list) => list.reduce((n, e) => n + (e.body.length <= 64 * 1024 ? 2 : 1) * e.body.length + 512, 0) || 1,
    })
  }

  get size(): number {
    return this.lru.size
  }

  variants(key: string): readonly StoredEntry[] {
    return this.lru.get(key) ?? []
  }

  put(entry: StoredEntry): void {
    const others = (this.lru.peek(entry.key) ?? []).filter((e) => e.variant !== entry.variant || e.vary !== entry.vary)
    this.lru.set(entry.key, [...others, entry])
  }

  delete(key: string): number {
    const n = this.lru.peek(key)?.length ?? 0
    this.lru.delete(key)
    return n
  }

  scan(fn: (key: string, hits: number, bytes: number) => void): void {
    // the walk reads without touching recency
    for (const list of this.lru.rvalues()) if (list !== undefined) for (const e of list) fn(e.key, e.hits ?? 0, e.body.length)
  }

  deletePrefix(prefix: string): number {
    let n = 0
    for (const key of [...this.lru.keys()]) if (key.startsWith(prefix)) n += this.delete(key)
    return n
  }

  deleteTag(tag: string): number {
    let n = 0
    for (const [key, list] of [...this.lru.entries()]) {
      const keep = list.filter((e) => !e.tags.includes(tag))
      if (keep.length === list.length) continue
      n += list.length - keep.length
      if (keep.length) this.lru.set(key, keep)
      else this.lru.delete(key)
    }
    return n
  }
}

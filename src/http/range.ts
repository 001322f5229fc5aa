/**
 * Byte range requests (RFC 9110 §14). Pure functions.
 *
 * parseRange policy:
 * - 'none' (serve the whole representation with 200): no header, a unit
 *   other than `bytes` (§14.2: a server MAY ignore Range), a syntactically
 *   invalid header (one bad range-spec spoils the whole set), or more than
 *   `maxRanges` range-specs (default 64).
 * - Satisfiable ranges are kept in request order, with `last-pos` clamped to
 *   size - 1 (§14.1.2). Unsatisfiable specs are dropped; if none is left the
 *   result is 'unsatisfiable' (416), as it always is for an empty
 *   representation.
 * - Abuse resistance (§14.2 allows a server to ignore, reject or coalesce
 *   such sets; §15.3.7.2 warns about many small, overlapping or unordered
 *   ranges): if any two ranges overlap, or if there are more than two ranges
 *   and any are adjacent or out of order, all ranges are sorted and merged
 *   (overlapping and adjacent ones become one). Two disjoint ranges in any
 *   order are served as asked, e.g. a reader fetching a file's end first.
 * - The result may be a single range covering the whole representation
 *   (e.g. after merging); the caller decides whether to send 206 or 200.
 *
 * Range only applies to GET (§14.2); the caller checks the method and If-Range.
 */

import { Buffer } from 'node:buffer'

export type ByteRange = { start: number; end: number }

export type RangeResult = { kind: 'none' } | { kind: 'unsatisfiable' } | { kind: 'ranges'; ranges: ByteRange[] }

const NONE: RangeResult = { kind: 'none' }
const UNSATISFIABLE: RangeResult = { kind: 'unsatisfiable' }

// §14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length
const RANGE_SPEC = /^(\d*)-(\d*)$/

/** Parses a Range header against a representation of `size` bytes (end inclusive). */
export function parseRange(header: string | undefined, size: number, opts?: { maxRanges?: number }): RangeResult {
  if (header === undefined) return NONE
  const maxRanges = opts?.maxRanges ?? 64
  // ranges-specifier = range-unit "=" range-set; range units are case-insensitive (§14.1).
  const value = header.trim()
  const eq = value.indexOf('=')
  if (eq === -1 || value.slice(0, eq).toLowerCase() !== 'bytes') return NONE

  // range-set = 1#range-spec: elements separated by OWS "," OWS; empty elements are skipped (§5.6.1.2).
  const specs = value
    .slice(eq + 1)
    .split(',')
    .map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((s) => s !== '')
  if (specs.length === 0 || specs.length > maxRanges) return NONE

  const ranges: ByteRange[] = []
  for (const spec of specs) {
    const m = RANGE_SPEC.exec(spec)
    if (!m || (m[1] === '' && m[2] === '')) return NONE
    if (m[1] === '') {
      // suffix-range: the last n bytes, all of them if the representation is shorter (§14.1.1).
      const n = Number(m[2])
      if (n > 0 && size > 0) ranges.push({ start: Math.max(0, size - n), end: size - 1 })
      continue
    }
    const first = Number(m[1])
    const last = m[2] === '' ? Infinity : Number(m[2])
    // A last-pos below first-pos makes the range-spec invalid, not just unsatisfiable (§14.1.1).
    if (last < first) return NONE
    // Satisfiable iff first-pos < size (§14.1.1); last-pos is clamped to size - 1.
    if (first < size) ranges.push({ start: first, end: Math.min(last, size - 1) })
  }
  if (ranges.length === 0) return UNSATISFIABLE
  return { kind: 'ranges', ranges: needsCoalescing(ranges) ? coalesce(ranges) : ranges }
}

function needsCoalescing(ranges: ByteRange[]): boolean {
  if (ranges.length < 2) return false
  const sorted = [...ranges].sort((a, b) => a.start - b.start)
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.start <= sorted[i - 1]!.end) return true // overlap
  }
  if (ranges.length <= 2) return false
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]!.start < ranges[i - 1]!.start) return true // out of order
    if (sorted[i]!.start === sorted[i - 1]!.end + 1) return true // adjacent
  }
  return false
}

/** Sorts ranges and merges the ones that overlap or touch. */
function coalesce(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start)
  const out: ByteRange[] = [{ ...sorted[0]! }]
  for (const r of sorted.slice(1)) {
    const last = out[out.length - 1]!
    if (r.start <= last.end + 1) last.end = Math.max(last.end, r.end)
    else out.push({ ...r })
  }
  return out
}

/** §14.4 Content-Range for a satisfied range: `bytes 0-99/1000`. */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`
}

/** §14.4 Content-Range for a 416 response (unsatisfied-range): an asterisk, then `/size`. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`
}

// RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/

/**
 * Builds the framing of a multipart/byteranges body (§14.6). The body is
 * each part's `head` followed by its bytes `start..end` of the file, then
 * `tail`. The first head starts directly with the delimiter (no preamble,
 * as in the §14.6 example); later heads start with the CRLF that ends the
 * previous part's data. `length` is the exact body length, for Content-Length.
 * Throws on a boundary or content type that could break the framing.
 */
export function multipartByteranges(
  ranges: readonly ByteRange[],
  size: number,
  contentType: string,
  boundary: string,
): { parts: Array<{ head: Buffer; start: number; end: number }>; tail: Buffer; length: number } {
  if (!BOUNDARY.test(boundary)) throw new TypeError(`invalid multipart boundary: ${JSON.stringify(boundary)}`)
  if (/[\r\n\0]/.test(contentType)) throw new TypeError('invalid content type')
  let length = 0
  const parts = ranges.map(({ start, end }, i) => {
    const head = Buffer.from(
      (i === 0 ? '' : '\r\n') +
        `--${boundary}\r\n` +
        (contentType === '' ? '' : `Content-Type: ${contentType}\r\n`) +
        `Content-Range: ${contentRange(start, end, size)}\r\n\r\n`,
      'latin1',
    )
    length += head.length + (end - start + 1)
    return { head, start, end }
  })
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')
  length += tail.length
  return { parts, tail, length }
}

/**
 * §14.4: the Content-Range of a single-part 206, `bytes first-last/complete`
 * (unit case-insensitive), with first <= last < complete. Anything else is
 * undefined: an unknown complete length (`bytes 0-9/*`), an unsatisfied-range
 * (`bytes *\/1000`), another unit, or a malformed or inconsistent value.
 */
export function parseContentRange(value: string | undefined): { start: number; end: number; size: number } | undefined {
  if (value === undefined) return undefined
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/i.exec(value.trim())
  if (!m) return undefined
  const start = Number(m[1])
  const end = Number(m[2])
  const size = Number(m[3])
  return start <= end && end < size ? { start, end, size } : undefined
}

/**
 * Bytes held of one representation (RFC 9111 §3.3, §3.4): sorted, disjoint,
 * non-adjacent ranges, and their bytes concatenated in that order (`body`
 * has exactly the sum of the ranges' lengths).
 */
export interface HeldRanges {
  readonly ranges: readonly ByteRange[]
  readonly body: Buffer
}

/**
 * The union of `held` and `bytes` placed at `start` (RFC 9111 §3.4). Where
 * they overlap, the new bytes win. Ranges that end up touching are merged,
 * so the result is again sorted, disjoint and non-adjacent. Pure: `held` is
 * not changed. `bytes` must not be empty.
 */
export function mergeRange(held: HeldRanges, start: number, bytes: Buffer): HeldRanges {
  if (bytes.length === 0) throw new RangeError('mergeRange: no bytes')
  const end = start + bytes.length - 1
  const pieces: Array<{ start: number; end: number; data: Buffer }> = [{ start, end, data: bytes }]
  let offset = 0
  for (const r of held.ranges) {
    const data = held.body.subarray(offset, offset + (r.end - r.start + 1))
    offset += r.end - r.start + 1
    // What this held range has outside the new one: before it, after it, or all of it.
    if (r.start < start) {
      const last = Math.min(r.end, start - 1)
      pieces.push({ start: r.start, end: last, data: data.subarray(0, last - r.start + 1) })
    }
    if (r.end > end) {
      const first = Math.max(r.start, end + 1)
      pieces.push({ start: first, end: r.end, data: data.subarray(first - r.start) })
    }
  }
  pieces.sort((a, b) => a.start - b.start)
  const ranges: ByteRange[] = []
  for (const p of pieces) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && p.start === last.end + 1) last.end = p.end
    else ranges.push({ start: p.start, end: p.end })
  }
  return { ranges, body: Buffer.concat(pieces.map((p) => p.data)) }
}

/** Bytes `start..end` (inclusive) if `held` has all of them, else undefined. */
export function sliceHeld(held: HeldRanges, start: number, end: number): Buffer | undefined {
  if (start > end) return undefined
  let offset = 0
  for (const r of held.ranges) {
    if (start >= r.start && end <= r.end) return held.body.subarray(offset + start - r.start, offset + end - r.start + 1)
    offset += r.end - r.start + 1
  }
  return undefined
}

/** Whether `held` is the whole representation of `size` bytes. */
export function holdsAll(held: HeldRanges, size: number): boolean {
  const only = held.ranges.length === 1 ? held.ranges[0]! : undefined
  return only !== undefined && only.start === 0 && only.end === size - 1 && held.body.length === size
}

/**
 * The bytes of `start..end` that `ranges` (sorted, disjoint, non-adjacent)
 * does not hold, as one span from the first missing byte to the last one
 * (held bytes between them included), or undefined when all are held.
 */
export function missingSpan(ranges: readonly ByteRange[], start: number, end: number): ByteRange | undefined {
  let first = start
  for (const r of ranges) if (r.start <= first && first <= r.end) first = r.end + 1
  if (first > end) return undefined
  let last = end
  for (let i = ranges.length - 1; i >= 0; i--) {
    const r = ranges[i]!
    if (r.start <= last && last <= r.end) last = r.start - 1
  }
  return { start: first, end: last }
}

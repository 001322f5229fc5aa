import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Buffer } from 'node:buffer'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { holdsAll, mergeRange, missingSpan, parseContentRange, sliceHeld, type ByteRange, type HeldRanges } from '../../src/http/range.ts'
import { DiskStore } from '../../src/modules/cache/disk-store.ts'
import type { StoredEntry } from '../../src/modules/cache/store.ts'

/** RFC 9111 §3.3-3.4 helpers: Content-Range parsing and merging held byte ranges; partial entries in the disk store. */

const REF = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37 + 11) & 0xff))
const EMPTY: HeldRanges = { ranges: [], body: Buffer.alloc(0) }
const add = (held: HeldRanges, start: number, end: number, src = REF) => mergeRange(held, start, src.subarray(start, end + 1))
const held = (...pairs: Array<[number, number]>) => pairs.reduce((h, [s, e]) => add(h, s, e), EMPTY)
const ranges = (h: HeldRanges) => h.ranges.map((r) => [r.start, r.end])

test('parseContentRange: only a single range with a known complete length', () => {
  assert.deepEqual(parseContentRange('bytes 0-9/100'), { start: 0, end: 9, size: 100 })
  assert.deepEqual(parseContentRange('BYTES 99-99/100'), { start: 99, end: 99, size: 100 })
  assert.deepEqual(parseContentRange(' bytes 5-5/6 '), { start: 5, end: 5, size: 6 })
  for (const bad of [undefined, '', 'bytes 0-9/*', 'bytes */100', 'bytes 9-0/100', 'bytes 0-100/100', 'bytes 0-9', 'items 0-9/100', 'bytes=0-9/100', 'bytes 0-9/100, bytes 10-19/100', 'bytes -1-9/100', 'bytes 0-9/1e3', 'bytes  0-9/100', 'bytes 0-9999999999999999/99999999999999999']) {
    assert.equal(parseContentRange(bad), undefined, String(bad))
  }
})

describe('mergeRange', () => {
  test('adjacent ranges become one; gaps stay', () => {
    assert.deepEqual(ranges(held([0, 9], [10, 19])), [[0, 19]])
    assert.deepEqual(ranges(held([10, 19], [0, 9])), [[0, 19]])
    assert.deepEqual(ranges(held([0, 9], [20, 29])), [[0, 9], [20, 29]])
    assert.deepEqual(ranges(held([20, 29], [0, 9], [50, 59])), [[0, 9], [20, 29], [50, 59]])
    const h = held([20, 29], [0, 9], [50, 59])
    assert.ok(h.body.equals(Buffer.concat([REF.subarray(0, 10), REF.subarray(20, 30), REF.subarray(50, 60)])))
  })

  test('a range bridging several held ones, overlapping them, unites them', () => {
    const h = held([0, 9], [20, 29], [40, 49], [5, 44])
    assert.deepEqual(ranges(h), [[0, 49]])
    assert.ok(h.body.equals(REF.subarray(0, 50)))
    assert.deepEqual(ranges(held([10, 19], [0, 100])), [[0, 100]])
    assert.deepEqual(ranges(held([0, 100], [10, 19])), [[0, 100]])
    assert.ok(held([0, 100], [10, 19]).body.equals(REF.subarray(0, 101)))
  })

  test('where they overlap, the new bytes win; held is not changed', () => {
    const before = held([0, 9])
    const copy = Buffer.from(before.body)
    const other = Buffer.alloc(200, 0x2a)
    const after = add(before, 5, 14, other)
    assert.deepEqual(ranges(after), [[0, 14]])
    assert.ok(after.body.equals(Buffer.concat([REF.subarray(0, 5), other.subarray(5, 15)])))
    assert.ok(before.body.equals(copy))
    assert.deepEqual(ranges(before), [[0, 9]])
  })

  test('sliceHeld answers only ranges wholly inside one held range', () => {
    const h = held([0, 9], [20, 29])
    assert.ok(sliceHeld(h, 0, 9)!.equals(REF.subarray(0, 10)))
    assert.ok(sliceHeld(h, 22, 25)!.equals(REF.subarray(22, 26)))
    assert.ok(sliceHeld(h, 29, 29)!.equals(REF.subarray(29, 30)))
    assert.equal(sliceHeld(h, 5, 22), undefined)
    assert.equal(sliceHeld(h, 9, 10), undefined)
    assert.equal(sliceHeld(h, 25, 30), undefined)
    assert.equal(sliceHeld(EMPTY, 0, 0), undefined)
  })

  test('holdsAll: exactly 0..size-1', () => {
    assert.equal(holdsAll(held([0, 99]), 100), true)
    assert.equal(holdsAll(held([0, 49], [50, 99]), 100), true)
    assert.equal(holdsAll(held([0, 98]), 100), false)
    assert.equal(holdsAll(held([1, 99]), 100), false)
    assert.equal(holdsAll(held([0, 9], [11, 99]), 100), false)
    assert.equal(holdsAll(EMPTY, 0), false)
  })

  test('property: any sequence of ranges holds exactly their union, with the right bytes', () => {
    const rangeArb = fc.tuple(fc.nat(REF.length - 1), fc.nat(REF.length - 1)).map(([a, b]): ByteRange => ({ start: Math.min(a, b), end: Math.max(a, b) }))
    fc.assert(
      fc.property(fc.array(rangeArb, { minLength: 1, maxLength: 12 }), (list) => {
        const h = list.reduce((acc, r) => add(acc, r.start, r.end), EMPTY)
        const covered = new Set<number>()
        for (const r of list) for (let i = r.start; i <= r.end; i++) covered.add(i)
        // sorted, disjoint, non-adjacent; union exact; body = the bytes in order
        let count = 0
        for (let i = 0; i < h.ranges.length; i++) {
          const r = h.ranges[i]!
          assert.ok(r.start <= r.end)
          if (i > 0) assert.ok(r.start > h.ranges[i - 1]!.end + 1)
          for (let b = r.start; b <= r.end; b++) assert.ok(covered.has(b))
          count += r.end - r.start + 1
        }
        assert.equal(count, covered.size)
        assert.ok(h.body.equals(Buffer.concat(h.ranges.map((r) => REF.subarray(r.start, r.end + 1)))))
        for (const r of list) assert.ok(sliceHeld(h, r.start, r.end)!.equals(REF.subarray(r.start, r.end + 1)))
      }),
    )
  })
})

describe('missingSpan', () => {
  test('missingSpan: from the first to the last byte of a range that is not held', () => {
    const h: ByteRange[] = [
      { start: 0, end: 99 },
      { start: 300, end: 399 },
    ]
    assert.deepEqual(missingSpan(h, 0, 499), { start: 100, end: 499 })
    assert.deepEqual(missingSpan(h, 50, 349), { start: 100, end: 299 })
    assert.deepEqual(missingSpan(h, 150, 250), { start: 150, end: 250 })
    assert.deepEqual(missingSpan(h, 350, 450), { start: 400, end: 450 })
    assert.deepEqual(missingSpan(h, 0, 100), { start: 100, end: 100 })
    assert.deepEqual(missingSpan(h, 99, 300), { start: 100, end: 299 })
    assert.deepEqual(missingSpan([{ start: 300, end: 399 }], 0, 499), { start: 0, end: 499 })
    assert.deepEqual(missingSpan([], 5, 9), { start: 5, end: 9 })
    assert.equal(missingSpan(h, 0, 99), undefined)
    assert.equal(missingSpan(h, 310, 320), undefined)
  })

  test('property: missingSpan starts and ends on bytes not held and leaves none of them out', () => {
    const rangeArb = fc.tuple(fc.nat(REF.length - 1), fc.nat(REF.length - 1)).map(([a, b]): ByteRange => ({ start: Math.min(a, b), end: Math.max(a, b) }))
    fc.assert(
      fc.property(fc.array(rangeArb, { maxLength: 8 }), rangeArb, (list, asked) => {
        const h = list.reduce((acc, r) => add(acc, r.start, r.end), EMPTY)
        const isHeld = (b: number) => h.ranges.some((r) => r.start <= b && b <= r.end)
        const missing: number[] = []
        for (let b = asked.start; b <= asked.end; b++) if (!isHeld(b)) missing.push(b)
        const span = missingSpan(h.ranges, asked.start, asked.end)
        if (missing.length === 0) return assert.equal(span, undefined)
        assert.deepEqual(span, { start: missing[0], end: missing[missing.length - 1] })
      }),
    )
  })
})

describe('DiskStore keeps partial entries', () => {
  const dirs: string[] = []
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'edgebox-partial-'))
    dirs.push(d)
    return d
  }
  const partialEntry = (body: Buffer, over: Partial<StoredEntry> = {}): StoredEntry => {
    const h = held([0, 9], [20, 29])
    return {
      key: 'http://a/p',
      variant: '',
      vary: undefined,
      status: 206,
      headers: { etag: '"p1"', 'cache-control': 'max-age=60' },
      body,
      requestTime: 1_000,
      responseTime: 1_050,
      tags: [],
      partial: { size: 100, ranges: h.ranges },
      ...over,
    }
  }

  test('a partial entry survives a restart, ranges and bytes intact (format version 2)', () => {
    const d = dir()
    const e = partialEntry(held([0, 9], [20, 29]).body)
    new DiskStore(d, 1 << 20).put(e)
    const [file] = readdirSync(d).filter((n) => n.endsWith('.entry'))
    assert.equal(readFileSync(join(d, file!)).readUInt32BE(8), 2)
    const [got] = new DiskStore(d, 1 << 20).variants('http://a/p')
    assert.equal(got!.status, 206)
    assert.deepEqual(got!.partial, { size: 100, ranges: [{ start: 0, end: 9 }, { start: 20, end: 29 }] })
    assert.ok(got!.body.equals(e.body))
    // a complete entry is still version 1, without `partial`
    new DiskStore(d, 1 << 20).put({ ...e, key: 'http://a/c', status: 200, body: REF, partial: undefined })
    const again = new DiskStore(d, 1 << 20)
    assert.equal(again.variants('http://a/c')[0]!.partial, undefined)
    assert.equal(again.variants('http://a/p')[0]!.partial!.ranges.length, 2)
  })

  test('a partial entry file whose ranges do not match its body is dropped at load', () => {
    const d = dir()
    // body one byte short of the 20 bytes the ranges hold
    const store = new DiskStore(d, 1 << 20)
    store.put(partialEntry(held([0, 9], [20, 28]).body))
    assert.equal(new DiskStore(d, 1 << 20).variants('http://a/p').length, 0)
    assert.equal(readdirSync(d).filter((n) => n.endsWith('.entry')).length, 0)
  })

  test('a version 1 file claiming partial content is dropped at load', () => {
    const d = dir()
    new DiskStore(d, 1 << 20).put(partialEntry(held([0, 9], [20, 29]).body))
    const [file] = readdirSync(d).filter((n) => n.endsWith('.entry'))
    const buf = readFileSync(join(d, file!))
    buf.writeUInt32BE(1, 8) // the CRC covers metadata and body, not the version
    writeFileSync(join(d, file!), buf)
    assert.equal(new DiskStore(d, 1 << 20).variants('http://a/p').length, 0)
  })
})

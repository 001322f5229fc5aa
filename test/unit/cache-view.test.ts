import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, type CacheStore, type StoredEntry } from '../../src/modules/cache/store.ts'
import { DiskStore } from '../../src/modules/cache/disk-store.ts'
import { storeSummary } from '../../src/modules/cache/cache.ts'

/** What the cache view reads of a store (CacheStore.scan, storeSummary): entries, bytes, the most-hit keys. */

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function entry(key: string, body: Buffer, variant = ''): StoredEntry {
  return { key, variant, vary: variant ? 'accept' : undefined, status: 200, headers: { 'content-type': 'text/plain' }, body, requestTime: 1, responseTime: 2, tags: [], hits: 0 }
}

/** A hit as the cache counts it (serve.ts): on the entry the store handed out. */
function hit(store: CacheStore, key: string, times = 1): void {
  for (let i = 0; i < times; i++) {
    const e = store.variants(key)[0]!
    e.hits = (e.hits ?? 0) + 1
  }
}

const stores: Array<[string, () => CacheStore]> = [
  ['MemoryStore', () => new MemoryStore(10 * 1024 * 1024)],
  [
    'DiskStore',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'edgebox-cache-view-'))
      dirs.push(dir)
      return new DiskStore(dir, 10 * 1024 * 1024)
    },
  ],
]

for (const [name, make] of stores) {
  describe(name, () => {
    test('objects count every variant, bytes their bodies; topKeys the most hit first, ties by key, entries never hit left out', () => {
      const s = make()
      s.put(entry('http://h/a', Buffer.alloc(10)))
      s.put(entry('http://h/b', Buffer.alloc(20)))
      s.put(entry('http://h/c', Buffer.alloc(30)))
      s.put(entry('http://h/v', Buffer.alloc(5), 'text/html'))
      s.put(entry('http://h/v', Buffer.alloc(6), 'application/json'))
      hit(s, 'http://h/c', 3)
      hit(s, 'http://h/b', 1)
      hit(s, 'http://h/a', 1)
      const sum = storeSummary(s, 20)
      assert.equal(sum.objects, 5)
      assert.equal(sum.bytes, 71)
      assert.deepEqual(sum.topKeys, [
        { key: 'http://h/c', hits: 3, bytes: 30 },
        { key: 'http://h/a', hits: 1, bytes: 10 },
        { key: 'http://h/b', hits: 1, bytes: 20 },
      ])
      assert.deepEqual(storeSummary(s, 2).topKeys.map((k) => k.key), ['http://h/c', 'http://h/a'])
      assert.deepEqual(storeSummary(s, 0).topKeys, [])
      assert.equal(storeSummary(s, 0).objects, 5)
    })

    test('a large entry (read anew each time) keeps its hits across reads; replacing the entry with itself keeps them', () => {
      const s = make()
      const big = Buffer.alloc(100 * 1024, 7)
      s.put(entry('http://h/big', big))
      hit(s, 'http://h/big', 4)
      assert.deepEqual(storeSummary(s, 5).topKeys, [{ key: 'http://h/big', hits: 4, bytes: big.length }])
      // a 304 refresh puts the entry it read back (revalidation.ts freshen)
      const e = s.variants('http://h/big')[0]!
      e.requestTime = 5
      s.put(e)
      assert.equal(storeSummary(s, 5).topKeys[0]!.hits, 4)
      hit(s, 'http://h/big')
      assert.equal(storeSummary(s, 5).topKeys[0]!.hits, 5)
      // a new response for the key starts again
      s.put(entry('http://h/big', big))
      assert.deepEqual(storeSummary(s, 5).topKeys, [])
    })

    test('deleted entries leave the view', () => {
      const s = make()
      s.put(entry('http://h/a', Buffer.alloc(10)))
      s.put(entry('http://h/b', Buffer.alloc(20)))
      hit(s, 'http://h/a', 2)
      s.delete('http://h/a')
      assert.deepEqual(storeSummary(s, 5), { objects: 1, bytes: 20, topKeys: [] })
    })
  })
}

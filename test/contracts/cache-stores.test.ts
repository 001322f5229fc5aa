import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, type CacheStore, type StoredEntry } from '../../src/modules/cache/store.ts'
import { DiskStore, entryFileName } from '../../src/modules/cache/disk-store.ts'

const KiB = 1024
const BIG = 100 * KiB // above the 64 KiB in-memory body limit of both stores: each entry costs body + 512

const tempDirs: string[] = []
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'edgebox-disk-store-'))
  tempDirs.push(dir)
  return dir
}
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17) & 0xff
  return b
}

function entry(key: string, over: Partial<StoredEntry> = {}): StoredEntry {
  return {
    key,
    variant: '',
    vary: undefined,
    status: 200,
    headers: { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] },
    body: Buffer.from(`body of ${key}`),
    requestTime: 1_000,
    responseTime: 1_050,
    tags: [],
    ...over,
  }
}

/** Compares what matters (not `wire`, which a store may or may not have computed). */
function plain(e: StoredEntry) {
  return {
    key: e.key,
    variant: e.variant,
    vary: e.vary,
    status: e.status,
    headers: e.headers,
    body: Buffer.from(e.body).toString('base64'),
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    tags: [...e.tags],
  }
}
const sortByVariant = (list: readonly StoredEntry[]) => [...list].sort((a, b) => (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0))

const stores: Array<{ name: string; make: (maxBytes: number) => CacheStore }> = [
  { name: 'MemoryStore', make: (maxBytes) => new MemoryStore(maxBytes) },
  { name: 'DiskStore', make: (maxBytes) => new DiskStore(tempDir(), maxBytes) },
]

// ---------------------------------------------------------------------------
// Contract: every CacheStore behaves the same.
// ---------------------------------------------------------------------------

for (const { name, make } of stores) {
  describe(`cache store contract: ${name}`, () => {
    test('put / variants round trip: status, headers with arrays, exact body bytes', () => {
      const store = make(10 * 1024 * KiB)
      const small = entry('http://a/small', {
        status: 203,
        headers: { etag: '"x"', 'set-cookie': ['a=1', 'b=2'], link: ['</a>; rel=preload', '</b>; rel=preload'] },
        body: bytes(1000, 1),
        tags: ['t1', 't2'],
        vary: 'accept-encoding',
        variant: 'gzip',
      })
      const big = entry('http://a/big', { body: bytes(BIG, 2) })
      const empty = entry('http://a/empty', { status: 204, body: Buffer.alloc(0) })
      for (const e of [small, big, empty]) store.put(e)
      for (const e of [small, big, empty]) {
        const got = store.variants(e.key)
        assert.equal(got.length, 1)
        assert.deepEqual(plain(got[0]!), plain(e))
        assert.ok(Buffer.from(got[0]!.body).equals(e.body))
      }
      assert.deepEqual(store.variants('http://a/none'), [])
    })

    test('put replaces the same key + variant', () => {
      const store = make(10 * 1024 * KiB)
      store.put(entry('http://a/x', { body: Buffer.from('one'), status: 200 }))
      store.put(entry('http://a/x', { body: Buffer.from('two'), status: 404, headers: { 'x-v': '2' } }))
      const got = store.variants('http://a/x')
      assert.equal(got.length, 1)
      assert.equal(got[0]!.body.toString(), 'two')
      assert.equal(got[0]!.status, 404)
      assert.deepEqual(got[0]!.headers, { 'x-v': '2' })
      assert.equal(store.size, 1)
    })

    test('a stored entry changed and put again (304 refresh) keeps its body', () => {
      const store = make(10 * 1024 * KiB)
      store.put(entry('http://a/r', { body: bytes(BIG, 3) }))
      const [stored] = store.variants('http://a/r')
      stored!.headers = { ...stored!.headers, 'x-refreshed': '1' }
      stored!.responseTime = 9_999
      store.put(stored!)
      const [again] = store.variants('http://a/r')
      assert.equal(again!.headers['x-refreshed'], '1')
      assert.equal(again!.responseTime, 9_999)
      assert.ok(again!.body.equals(bytes(BIG, 3)))
    })

    test('several variants per key', () => {
      const store = make(10 * 1024 * KiB)
      const gz = entry('http://a/v', { vary: 'accept-encoding', variant: 'gzip', body: Buffer.from('gz') })
      const br = entry('http://a/v', { vary: 'accept-encoding', variant: 'br', body: bytes(BIG, 4) })
      const id = entry('http://a/v', { vary: 'accept-encoding', variant: '', body: Buffer.from('identity') })
      for (const e of [gz, br, id]) store.put(e)
      assert.deepEqual(sortByVariant(store.variants('http://a/v')).map(plain), sortByVariant([gz, br, id]).map(plain))
      assert.equal(store.size, 1)
      store.put(entry('http://a/v', { vary: 'accept-encoding', variant: 'br', body: Buffer.from('br2') }))
      const got = store.variants('http://a/v')
      assert.equal(got.length, 3)
      assert.equal(got.find((e) => e.variant === 'br')!.body.toString(), 'br2')
    })

    test('delete removes every variant and returns the count', () => {
      const store = make(10 * 1024 * KiB)
      store.put(entry('http://a/d', { variant: '1' }))
      store.put(entry('http://a/d', { variant: '2' }))
      store.put(entry('http://a/keep'))
      assert.equal(store.delete('http://a/d'), 2)
      assert.deepEqual(store.variants('http://a/d'), [])
      assert.equal(store.delete('http://a/d'), 0)
      assert.equal(store.variants('http://a/keep').length, 1)
      assert.equal(store.size, 1)
    })

    test('deletePrefix', () => {
      const store = make(10 * 1024 * KiB)
      store.put(entry('http://a/p/1'))
      store.put(entry('http://a/p/2', { variant: 'x' }))
      store.put(entry('http://a/p/2', { variant: 'y' }))
      store.put(entry('http://a/q/1'))
      assert.equal(store.deletePrefix('http://a/p/'), 3)
      assert.deepEqual(store.variants('http://a/p/1'), [])
      assert.deepEqual(store.variants('http://a/p/2'), [])
      assert.equal(store.variants('http://a/q/1').length, 1)
      assert.equal(store.deletePrefix('http://nothing/'), 0)
    })

    test('deleteTag removes only the tagged variants', () => {
      const store = make(10 * 1024 * KiB)
      store.put(entry('http://a/t1', { tags: ['red', 'blue'] }))
      store.put(entry('http://a/t2', { variant: 'x', tags: ['red'] }))
      store.put(entry('http://a/t2', { variant: 'y', tags: ['green'] }))
      store.put(entry('http://a/t3', { tags: ['green'] }))
      assert.equal(store.deleteTag('red'), 2)
      assert.deepEqual(store.variants('http://a/t1'), [])
      assert.deepEqual(
        store.variants('http://a/t2').map((e) => e.variant),
        ['y'],
      )
      assert.equal(store.variants('http://a/t3').length, 1)
      assert.equal(store.size, 2)
      assert.equal(store.deleteTag('red'), 0)
    })

    test('size counts keys', () => {
      const store = make(10 * 1024 * KiB)
      assert.equal(store.size, 0)
      store.put(entry('http://a/1'))
      store.put(entry('http://a/2'))
      store.put(entry('http://a/2', { variant: 'other' }))
      assert.equal(store.size, 2)
      store.delete('http://a/1')
      assert.equal(store.size, 1)
    })

    test('byte budget: the least recently used key is evicted first', () => {
      const store = make(350 * KiB) // three 100 KiB entries fit, four do not
      store.put(entry('http://a/1', { body: bytes(BIG, 1) }))
      store.put(entry('http://a/2', { body: bytes(BIG, 2) }))
      store.put(entry('http://a/3', { body: bytes(BIG, 3) }))
      assert.equal(store.size, 3)
      assert.equal(store.variants('http://a/1').length, 1) // 1 is now the most recently used
      store.put(entry('http://a/4', { body: bytes(BIG, 4) }))
      assert.equal(store.size, 3)
      assert.deepEqual(store.variants('http://a/2'), [])
      for (const k of [1, 3, 4]) assert.ok(store.variants(`http://a/${k}`)[0]!.body.equals(bytes(BIG, k)), `key ${k} kept`)
      store.put(entry('http://a/5', { body: bytes(BIG, 5) })) // LRU now: 1 (read before 3 and 4 above)
      assert.deepEqual(store.variants('http://a/1'), [])
      assert.equal(store.size, 3)
    })

    test('an entry larger than the whole budget is not stored', () => {
      const store = make(50 * KiB)
      store.put(entry('http://a/huge', { body: bytes(BIG, 1) }))
      assert.deepEqual(store.variants('http://a/huge'), [])
      assert.equal(store.size, 0)
    })
  })
}

// ---------------------------------------------------------------------------
// DiskStore only: persistence and file hygiene.
// ---------------------------------------------------------------------------

describe('DiskStore on disk', () => {
  const entryFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.entry'))
  const fileOf = (e: StoredEntry) => entryFileName(e.key, e.variant, e.vary)

  test('creates its directory (recursive) when missing', () => {
    const dir = join(tempDir(), 'a', 'b', 'cache')
    const store = new DiskStore(dir, 1024 * KiB)
    store.put(entry('http://a/1'))
    assert.equal(entryFiles(dir).length, 1)
  })

  test('entries survive a restart (a new DiskStore on the same dir)', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * 1024 * KiB)
    const list = [
      entry('http://a/small', { tags: ['x'], headers: { 'set-cookie': ['a=1', 'b=2'], etag: '"1"' } }),
      entry('http://a/big', { body: bytes(BIG, 7), vary: 'accept', variant: 'text/html' }),
      entry('http://a/big', { body: bytes(2 * BIG, 8), vary: 'accept', variant: 'application/json', status: 201 }),
      entry('http://a/empty', { body: Buffer.alloc(0), status: 204, headers: {} }),
    ]
    for (const e of list) first.put(e)
    first.put(entry('http://a/gone'))
    first.delete('http://a/gone')

    const second = new DiskStore(dir, 10 * 1024 * KiB)
    assert.equal(second.size, 3)
    for (const key of ['http://a/small', 'http://a/big', 'http://a/empty']) {
      assert.deepEqual(
        sortByVariant(second.variants(key)).map(plain),
        sortByVariant(list.filter((e) => e.key === key)).map(plain),
      )
    }
    assert.deepEqual(second.variants('http://a/gone'), [])
    assert.equal(second.deleteTag('x'), 1)
    assert.equal(new DiskStore(dir, 10 * 1024 * KiB).size, 2)
  })

  test('a restart with a smaller budget evicts and removes files', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * 1024 * KiB)
    for (let k = 1; k <= 4; k++) first.put(entry(`http://a/${k}`, { body: bytes(BIG, k) }))
    assert.equal(entryFiles(dir).length, 4)
    const second = new DiskStore(dir, 250 * KiB)
    assert.equal(second.size, 2)
    assert.equal(entryFiles(dir).length, 2)
  })

  test('corrupt or truncated files are ignored and removed on load', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * 1024 * KiB)
    const truncated = entry('http://a/truncated', { body: bytes(BIG, 1) })
    const flipped = entry('http://a/flipped', { body: bytes(1000, 2) })
    const badMagic = entry('http://a/magic')
    const good = entry('http://a/good')
    for (const e of [truncated, flipped, badMagic, good]) first.put(e)

    const t = join(dir, fileOf(truncated))
    writeFileSync(t, readFileSync(t).subarray(0, 5000))
    const f = join(dir, fileOf(flipped))
    const fb = readFileSync(f)
    fb[fb.length - 10]! ^= 0xff
    writeFileSync(f, fb)
    const m = join(dir, fileOf(badMagic))
    const mb = readFileSync(m)
    mb.write('XXXXXXXX', 0, 'latin1')
    writeFileSync(m, mb)
    const garbage = join(dir, `${'0'.repeat(64)}.entry`)
    writeFileSync(garbage, 'not an entry at all')
    const empty = join(dir, `${'1'.repeat(64)}.entry`)
    writeFileSync(empty, '')
    // a valid entry under the wrong file name
    const misnamed = join(dir, `${'2'.repeat(64)}.entry`)
    writeFileSync(misnamed, readFileSync(join(dir, fileOf(good))))
    const unrelated = join(dir, 'README.txt')
    writeFileSync(unrelated, 'not ours')

    const second = new DiskStore(dir, 10 * 1024 * KiB)
    assert.equal(second.size, 1)
    assert.deepEqual(second.variants('http://a/good').map(plain), [plain(good)])
    for (const e of [truncated, flipped, badMagic]) assert.deepEqual(second.variants(e.key), [])
    for (const p of [t, f, m, garbage, empty, misnamed]) assert.equal(existsSync(p), false, p)
    assert.equal(existsSync(unrelated), true, 'files with other names are left alone')
  })

  test('a large body damaged while running is dropped on read', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 10 * 1024 * KiB)
    const e = entry('http://a/big', { body: bytes(BIG, 9) })
    store.put(e)
    const p = join(dir, fileOf(e))
    writeFileSync(p, readFileSync(p).subarray(0, 100))
    assert.deepEqual(store.variants(e.key), [])
    assert.equal(store.size, 0)
    assert.equal(existsSync(p), false)
  })

  test('leftover temp files are removed on load', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * 1024 * KiB)
    const e = entry('http://a/1')
    first.put(e)
    const tmp = join(dir, `${fileOf(e)}.tmp-deadbeef0000`)
    writeFileSync(tmp, readFileSync(join(dir, fileOf(e))).subarray(0, 10))
    const second = new DiskStore(dir, 10 * 1024 * KiB)
    assert.equal(existsSync(tmp), false)
    assert.equal(second.variants(e.key).length, 1)
    assert.deepEqual(readdirSync(dir), [fileOf(e)])
  })

  test('put writes exactly one file per key + variant and leaves no temp files', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 10 * 1024 * KiB)
    store.put(entry('http://a/1', { body: Buffer.from('one') }))
    store.put(entry('http://a/1', { body: Buffer.from('two') }))
    store.put(entry('http://a/1', { variant: 'b' }))
    assert.deepEqual(readdirSync(dir).sort(), entryFiles(dir).sort())
    assert.equal(entryFiles(dir).length, 2)
  })

  test('no file is left after delete, deletePrefix and deleteTag', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 10 * 1024 * KiB)
    const a = entry('http://a/1', { variant: 'x', body: bytes(BIG, 1) })
    const b = entry('http://a/1', { variant: 'y' })
    const c = entry('http://b/1')
    const d = entry('http://b/2')
    const e = entry('http://c/1', { tags: ['t'] })
    const f = entry('http://c/2', { tags: ['t'], variant: 'z' })
    const g = entry('http://c/2', { tags: ['u'], variant: 'w' })
    for (const x of [a, b, c, d, e, f, g]) store.put(x)
    assert.equal(entryFiles(dir).length, 7)
    assert.equal(store.delete('http://a/1'), 2)
    for (const x of [a, b]) assert.equal(existsSync(join(dir, fileOf(x))), false)
    assert.equal(store.deletePrefix('http://b/'), 2)
    for (const x of [c, d]) assert.equal(existsSync(join(dir, fileOf(x))), false)
    assert.equal(store.deleteTag('t'), 2)
    for (const x of [e, f]) assert.equal(existsSync(join(dir, fileOf(x))), false)
    assert.deepEqual(entryFiles(dir), [fileOf(g)])
    store.delete(g.key)
    assert.deepEqual(readdirSync(dir), [])
  })

  test("evicted entries' files are removed", () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 350 * KiB)
    const list = [1, 2, 3, 4, 5].map((k) => entry(`http://a/${k}`, { body: bytes(BIG, k) }))
    for (const e of list) store.put(e)
    assert.equal(store.size, 3)
    assert.deepEqual(entryFiles(dir).sort(), list.slice(2).map(fileOf).sort())
  })

  test('an entry too big for the budget replaces nothing and leaves no file', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 50 * KiB)
    store.put(entry('http://a/1'))
    store.put(entry('http://a/1', { variant: 'v', body: bytes(BIG, 1) }))
    assert.deepEqual(store.variants('http://a/1'), []) // like MemoryStore: the key goes
    assert.deepEqual(readdirSync(dir), [])
  })

  test('a failing write does not throw and reports through onError', () => {
    const dir = tempDir()
    const errors: unknown[] = []
    const store = new DiskStore(dir, 10 * 1024 * KiB, { onError: (err) => errors.push(err) })
    store.put(entry('http://a/1', { body: Buffer.from('old') }))
    rmSync(dir, { recursive: true, force: true }) // the directory vanishes under the store
    assert.doesNotThrow(() => store.put(entry('http://a/1', { body: Buffer.from('new') })))
    assert.equal(errors.length, 1)
    assert.deepEqual(store.variants('http://a/1'), [])
  })
})

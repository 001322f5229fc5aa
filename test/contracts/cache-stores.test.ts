import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { crc32 } from 'node:zlib'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, type CacheStore, type StoredEntry } from '../../src/modules/cache/store.ts'
import { DiskStore, entryIdent, INDEX_FILE } from '../../src/modules/cache/disk-store.ts'
import { peer, randomOps, toWire, type Peer, type WireEntry } from '../helpers/disk-store-peer.ts'

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
  /** The folder less the index (and its WAL and shared-memory files). */
  const cacheFiles = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith(INDEX_FILE))
  /** The one entry file of a key + variant (its name is the variant's ident and a random suffix). */
  const fileOf = (e: StoredEntry, dir: string) => {
    const ident = entryIdent(e.key, e.variant, e.vary)
    const found = entryFiles(dir).filter((n) => n.startsWith(ident))
    assert.equal(found.length, 1, `one file for ${e.key} ${e.variant}: ${found.join(', ')}`)
    return found[0]!
  }

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

    const t = join(dir, fileOf(truncated, dir))
    writeFileSync(t, readFileSync(t).subarray(0, 5000))
    const f = join(dir, fileOf(flipped, dir))
    const fb = readFileSync(f)
    fb[fb.length - 10]! ^= 0xff
    writeFileSync(f, fb)
    const m = join(dir, fileOf(badMagic, dir))
    const mb = readFileSync(m)
    mb.write('XXXXXXXX', 0, 'latin1')
    writeFileSync(m, mb)
    const garbage = join(dir, `${'0'.repeat(64)}.entry`)
    writeFileSync(garbage, 'not an entry at all')
    const empty = join(dir, `${'1'.repeat(64)}.entry`)
    writeFileSync(empty, '')
    // a valid entry under the wrong file name
    const misnamed = join(dir, `${'2'.repeat(64)}.entry`)
    writeFileSync(misnamed, readFileSync(join(dir, fileOf(good, dir))))
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
    const p = join(dir, fileOf(e, dir))
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
    const name = fileOf(e, dir)
    // the previous format's temp name (no process id), and one of a process that is gone
    const tmp = join(dir, `${name}.tmp-deadbeef0000`)
    writeFileSync(tmp, readFileSync(join(dir, name)).subarray(0, 10))
    const dead = spawnSync(process.execPath, ['-e', '']).pid!
    const deadTmp = join(dir, `${name}.tmp-${dead}-deadbeef0000`)
    writeFileSync(deadTmp, 'half')
    const second = new DiskStore(dir, 10 * 1024 * KiB)
    assert.equal(existsSync(tmp), false)
    assert.equal(existsSync(deadTmp), false)
    assert.equal(second.variants(e.key).length, 1)
    assert.deepEqual(cacheFiles(dir), [name])
  })

  test('put writes exactly one file per key + variant and leaves no temp files', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 10 * 1024 * KiB)
    store.put(entry('http://a/1', { body: Buffer.from('one') }))
    store.put(entry('http://a/1', { body: Buffer.from('two') }))
    store.put(entry('http://a/1', { variant: 'b' }))
    assert.deepEqual(cacheFiles(dir).sort(), entryFiles(dir).sort())
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
    const names = new Map([a, b, c, d, e, f, g].map((x) => [x, fileOf(x, dir)]))
    assert.equal(store.delete('http://a/1'), 2)
    for (const x of [a, b]) assert.equal(existsSync(join(dir, names.get(x)!)), false)
    assert.equal(store.deletePrefix('http://b/'), 2)
    for (const x of [c, d]) assert.equal(existsSync(join(dir, names.get(x)!)), false)
    assert.equal(store.deleteTag('t'), 2)
    for (const x of [e, f]) assert.equal(existsSync(join(dir, names.get(x)!)), false)
    assert.deepEqual(entryFiles(dir), [names.get(g)])
    store.delete(g.key)
    assert.deepEqual(cacheFiles(dir), [])
  })

  test("evicted entries' files are removed", () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 350 * KiB)
    const list = [1, 2, 3, 4, 5].map((k) => entry(`http://a/${k}`, { body: bytes(BIG, k) }))
    for (const e of list) store.put(e)
    assert.equal(store.size, 3)
    assert.deepEqual(entryFiles(dir).sort(), list.slice(2).map((e) => fileOf(e, dir)).sort())
  })

  test('an entry too big for the budget replaces nothing and leaves no file', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 50 * KiB)
    store.put(entry('http://a/1'))
    store.put(entry('http://a/1', { variant: 'v', body: bytes(BIG, 1) }))
    assert.deepEqual(store.variants('http://a/1'), []) // like MemoryStore: the key goes
    assert.deepEqual(cacheFiles(dir), [])
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

// ---------------------------------------------------------------------------
// DiskStore only: the index (index.sqlite) across restarts and upgrades.
// ---------------------------------------------------------------------------

describe('DiskStore index', () => {
  const entryFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.entry'))
  const fileOf = (e: StoredEntry, dir: string) => entryFiles(dir).find((n) => n.startsWith(entryIdent(e.key, e.variant, e.vary)))

  /** An entry file as the store wrote it before the index: `<ident>.entry`, the same layout (see disk-store.ts), with `mtime`. */
  function legacyFile(dir: string, e: StoredEntry, mtime: Date): string {
    const json = Buffer.from(JSON.stringify({ key: e.key, variant: e.variant, vary: e.vary ?? null, status: e.status, headers: e.headers, requestTime: e.requestTime, responseTime: e.responseTime, tags: e.tags }))
    const head = Buffer.alloc(28)
    head.write('EBXCACHE', 0, 'latin1')
    head.writeUInt32BE(1, 8)
    head.writeUInt32BE(json.length, 12)
    head.writeBigUInt64BE(BigInt(e.body.length), 16)
    head.writeUInt32BE(crc32(e.body, crc32(json)), 24)
    const name = `${entryIdent(e.key, e.variant, e.vary)}.entry`
    writeFileSync(join(dir, name), Buffer.concat([head, json, e.body]))
    utimesSync(join(dir, name), mtime, mtime)
    return name
  }

  test('a folder of the previous format (entry files, no index) is imported: oldest first, tags kept, bad files and temp files removed', () => {
    const dir = tempDir()
    const list = [3, 1, 4, 2].map((k) => entry(`http://a/${k}`, { body: bytes(BIG, k), tags: [`t${k}`] }))
    // written in the order 3, 1, 4, 2: key 3 is the least recently used
    const names = list.map((e, i) => legacyFile(dir, e, new Date(Date.UTC(2024, 0, 1 + i))))
    const temp = join(dir, `${names[0]}.tmp-0123456789ab`)
    writeFileSync(temp, 'half written')
    const bad = join(dir, `${entryIdent('http://a/bad', '', undefined)}.entry`)
    writeFileSync(bad, 'EBXCACHE but nothing else')

    const store = new DiskStore(dir, 350 * KiB) // three fit, not four
    assert.ok(existsSync(join(dir, INDEX_FILE)))
    assert.equal(store.size, 3)
    assert.deepEqual(store.variants('http://a/3'), [], 'the oldest went')
    assert.equal(existsSync(join(dir, names[0]!)), false)
    for (const k of [1, 4, 2]) assert.deepEqual(store.variants(`http://a/${k}`).map(plain), [plain(list.find((e) => e.key === `http://a/${k}`)!)])
    assert.deepEqual(entryFiles(dir).sort(), names.slice(1).sort(), 'the imported files keep their names')
    for (const p of [temp, bad]) assert.equal(existsSync(p), false, p)
    assert.equal(store.deleteTag('t4'), 1)
    assert.equal(existsSync(join(dir, names[2]!)), false)
    // a put replaces an imported file with one of the new names
    store.put(entry('http://a/1', { body: Buffer.from('new') }))
    assert.equal(existsSync(join(dir, names[1]!)), false)
    assert.match(fileOf(entry('http://a/1'), dir)!, /^[0-9a-f]{64}-[0-9a-f]{16}\.entry$/)
    // and the next open does not import again: the index is the authority
    const stray = legacyFile(dir, entry('http://a/stray'), new Date())
    const again = new DiskStore(dir, 350 * KiB)
    assert.deepEqual(again.variants('http://a/stray'), [])
    assert.equal(existsSync(join(dir, stray)), false, 'an entry file with no row is deleted')
    assert.equal(again.variants('http://a/1')[0]!.body.toString(), 'new')
  })

  test('at open, a row whose file is missing goes, and so does a valid entry file that no row names', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * KiB * KiB)
    const gone = entry('http://a/gone', { body: bytes(BIG, 1) })
    const kept = entry('http://a/kept', { body: bytes(1000, 2), tags: ['k'] })
    first.put(gone)
    first.put(kept)
    rmSync(join(dir, fileOf(gone, dir)!))
    // a valid entry, written by a store on another folder: no row names it here
    const elsewhere = tempDir()
    const stray = entry('http://a/stray')
    new DiskStore(elsewhere, 10 * KiB * KiB).put(stray)
    const strayName = fileOf(stray, elsewhere)!
    writeFileSync(join(dir, strayName), readFileSync(join(elsewhere, strayName)))

    const second = new DiskStore(dir, 10 * KiB * KiB)
    assert.equal(second.size, 1)
    assert.deepEqual(second.variants(gone.key), [])
    assert.deepEqual(second.variants(stray.key), [])
    assert.equal(existsSync(join(dir, strayName)), false)
    assert.deepEqual(second.variants(kept.key).map(plain), [plain(kept)])
    assert.equal(second.deleteTag('k'), 1, 'the tags of a kept entry are kept')
  })

  test('an index removed by hand is rebuilt from the entry files', () => {
    const dir = tempDir()
    const first = new DiskStore(dir, 10 * KiB * KiB)
    const list = [entry('http://a/1', { body: bytes(BIG, 1) }), entry('http://a/2', { vary: 'accept', variant: 'text/html', tags: ['x'] })]
    for (const e of list) first.put(e)
    for (const n of readdirSync(dir)) if (n.startsWith(INDEX_FILE)) rmSync(join(dir, n))
    const second = new DiskStore(dir, 10 * KiB * KiB)
    for (const e of list) assert.deepEqual(second.variants(e.key).map(plain), [plain(e)])
    assert.equal(second.deleteTag('x'), 1)
  })

  test('an index of a newer schema, or not an index at all, is refused with an error naming the file', () => {
    const dir = tempDir()
    new DiskStore(dir, KiB * KiB).put(entry('http://a/1'))
    const db = new DatabaseSync(join(dir, INDEX_FILE))
    db.exec('PRAGMA user_version = 99')
    db.close()
    assert.throws(() => new DiskStore(dir, KiB * KiB), (err: Error) => err.message.includes(join(dir, INDEX_FILE)) && /schema version 99, newer than this Edgebox knows/.test(err.message))
    const other = tempDir()
    writeFileSync(join(other, INDEX_FILE), Buffer.alloc(4096, 'not sqlite '))
    assert.throws(() => new DiskStore(other, KiB * KiB), (err: Error) => err.message.startsWith(`cannot open the cache index ${join(other, INDEX_FILE)}: `))
  })

  test('hits do not write: their last use goes in with the next write, before it', () => {
    const dir = tempDir()
    const store = new DiskStore(dir, 10 * KiB * KiB)
    store.put(entry('http://a/1'))
    store.put(entry('http://a/2'))
    const index = new DatabaseSync(join(dir, INDEX_FILE), { readOnly: true })
    const used = () => Object.fromEntries(index.prepare('SELECT key, used FROM keys').all().map((r) => [r.key, Number(r.used)]))
    const version = () => Number(index.prepare('PRAGMA data_version').get()!.data_version)
    const before = used()
    const v = version()
    for (let i = 0; i < 20; i++) assert.equal(store.variants('http://a/1').length, 1)
    assert.equal(version(), v, 'no write by the hits')
    assert.deepEqual(used(), before)
    store.put(entry('http://a/3'))
    const after = used()
    assert.ok(after['http://a/1']! > after['http://a/2']!, 'the hit on 1 counts')
    assert.ok(after['http://a/3']! > after['http://a/1']!, 'before the put')
    index.close()
  })
})

// ---------------------------------------------------------------------------
// Contract: one DiskStore folder, two processes. A child process
// (test/helpers/disk-store-peer.ts) acts on the folder; this process's store
// sees the result on its next call.
// ---------------------------------------------------------------------------

describe('cache store contract: DiskStore shared by two processes', () => {
  const entryFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.entry'))
  const fromPeer = (w: WireEntry) => entry(w.key, { ...w, vary: w.vary ?? undefined, body: Buffer.from(w.body, 'base64') })
  const peers: Peer[] = []
  after(async () => {
    await Promise.all(peers.map((p) => p.stop()))
  })
  /** This process's store and the peer's, on one new folder. */
  async function pair(maxBytes = 10 * KiB * KiB) {
    const dir = tempDir()
    const errors: unknown[] = []
    const here = new DiskStore(dir, maxBytes, { onError: (err) => errors.push(err) })
    const there = await peer(dir, maxBytes)
    peers.push(there)
    return { dir, here, there, errors }
  }

  test('a put in either process is a hit in the other: status, headers, exact bytes, variants, partial content', async () => {
    const { here, there, errors } = await pair()
    const small = entry('http://a/small', { status: 203, body: bytes(1000, 1), tags: ['t'], headers: { etag: '"s"', 'set-cookie': ['a=1', 'b=2'] } })
    const big = entry('http://a/big', { body: bytes(BIG, 2), vary: 'accept', variant: 'text/html' })
    const part = entry('http://a/part', { status: 206, body: bytes(20, 3), partial: { size: 100, ranges: [{ start: 0, end: 9 }, { start: 20, end: 29 }] } })
    for (const e of [small, big, part]) await there.call('put', toWire(e))
    for (const e of [small, big]) assert.deepEqual(here.variants(e.key).map(plain), [plain(e)])
    assert.deepEqual(here.variants(part.key)[0]!.partial, part.partial)
    assert.ok(here.variants(part.key)[0]!.body.equals(part.body))
    const mine = entry('http://a/big', { body: bytes(BIG, 4), vary: 'accept', variant: 'application/json' })
    here.put(mine)
    assert.deepEqual(sortByVariant((await there.call('variants', mine.key)).map(fromPeer)).map(plain), sortByVariant([big, mine]).map(plain))
    assert.equal(here.size, 3)
    assert.equal(await there.call('size'), 3)
    assert.deepEqual(errors, [])
    assert.deepEqual(await there.call('errors'), [])
  })

  test('delete, deletePrefix and deleteTag in the other process are misses here on the next lookup, copies held in memory too', async () => {
    const { dir, here, there } = await pair()
    const list = [
      entry('http://a/d'),
      entry('http://a/d', { variant: 'x', body: bytes(BIG, 1) }),
      entry('http://a/p/1'),
      entry('http://a/p/2', { body: bytes(BIG, 2) }),
      entry('http://a/q/1'),
      entry('http://a/t/1', { tags: ['red'] }),
      entry('http://a/t/2', { variant: 'x', tags: ['red', 'blue'] }),
      entry('http://a/t/2', { variant: 'y', tags: ['green'] }),
    ]
    for (const e of list) here.put(e)
    for (const e of list) assert.ok(here.variants(e.key).length > 0)
    assert.equal(await there.call('delete', 'http://a/d'), 2)
    assert.deepEqual(here.variants('http://a/d'), [])
    assert.equal(await there.call('deletePrefix', 'http://a/p/'), 2)
    assert.deepEqual(here.variants('http://a/p/1'), [])
    assert.deepEqual(here.variants('http://a/p/2'), [])
    assert.equal(here.variants('http://a/q/1').length, 1)
    assert.equal(await there.call('deleteTag', 'red'), 2)
    assert.deepEqual(here.variants('http://a/t/1'), [])
    assert.deepEqual(
      here.variants('http://a/t/2').map((e) => e.variant),
      ['y'],
    )
    // and the other way round
    assert.equal(here.deleteTag('green'), 1)
    assert.deepEqual(await there.call('variants', 'http://a/t/2'), [])
    assert.equal(here.size, 1)
    assert.equal(await there.call('size'), 1)
    assert.deepEqual(entryFiles(dir), [entryFiles(dir).find((n) => n.startsWith(entryIdent('http://a/q/1', '', undefined)))])
  })

  test('a variant replaced in the other process is the new one here; the old file goes', async () => {
    const { dir, here, there } = await pair()
    for (const body of [Buffer.from('one'), bytes(BIG, 1)]) {
      const key = `http://a/r${body.length}`
      here.put(entry(key, { body }))
      assert.ok(here.variants(key)[0]!.body.equals(body))
      await there.call('put', toWire(entry(key, { body: Buffer.from('two'), status: 404 })))
      const got = here.variants(key)
      assert.equal(got.length, 1)
      assert.equal(got[0]!.body.toString(), 'two')
      assert.equal(got[0]!.status, 404)
    }
    assert.equal(entryFiles(dir).length, 2)
  })

  test('the byte budget counts the entries of both processes once; eviction takes the least recently used, whoever wrote it', async () => {
    const { dir, here, there } = await pair(350 * KiB) // three 100 KiB entries fit, four do not
    here.put(entry('http://a/1', { body: bytes(BIG, 1) }))
    await there.call('put', toWire(entry('http://a/2', { body: bytes(BIG, 2) })))
    here.put(entry('http://a/3', { body: bytes(BIG, 3) }))
    assert.equal(entryFiles(dir).length, 3)
    await there.call('put', toWire(entry('http://a/4', { body: bytes(BIG, 4) })))
    assert.equal(here.size, 3)
    assert.deepEqual(here.variants('http://a/1'), [])
    assert.equal(entryFiles(dir).length, 3)
    here.put(entry('http://a/5', { body: bytes(BIG, 5) }))
    assert.deepEqual(await there.call('variants', 'http://a/2'), [])
    assert.equal(await there.call('size'), 3)
    for (const k of [3, 4, 5]) assert.ok(here.variants(`http://a/${k}`)[0]!.body.equals(bytes(BIG, k)), `key ${k} kept`)
    assert.equal(entryFiles(dir).length, 3)
  })

  test('concurrent puts of the same key from both processes leave exactly one valid entry per variant and no orphan files', async () => {
    const { dir, here, there, errors } = await pair()
    const key = 'http://a/hot'
    const ours = [entry(key, { body: bytes(BIG, 1) }), entry(key, { vary: 'accept-encoding', variant: 'gzip', body: bytes(500, 1) })]
    const theirs = [entry(key, { body: bytes(BIG, 2) }), entry(key, { vary: 'accept-encoding', variant: 'gzip', body: bytes(500, 2) })]
    const rounds = 150
    const peerDone = there.call('putRounds', theirs.map(toWire), rounds)
    for (let i = 0; i < rounds; i++) for (const e of ours) here.put(e)
    await peerDone
    const got = sortByVariant(here.variants(key))
    assert.equal(got.length, 2)
    for (const [i, e] of got.entries()) {
      const candidates = [ours[i === 0 ? 0 : 1]!, theirs[i === 0 ? 0 : 1]!]
      assert.ok(
        candidates.some((c) => c.variant === e.variant && c.body.equals(e.body)),
        `variant ${JSON.stringify(e.variant)} holds one of the bodies written`,
      )
    }
    assert.deepEqual(sortByVariant((await there.call('variants', key)).map(fromPeer)).map(plain), got.map(plain), 'both see the same')
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => !n.startsWith(INDEX_FILE))
        .map((n) => n.slice(0, 64))
        .sort(),
      [...new Set(got.map((e) => entryIdent(e.key, e.variant, e.vary)))].sort(),
      'one file per variant, no temp files',
    )
    assert.equal(here.size, 1)
    assert.deepEqual(errors, [])
    assert.deepEqual(await there.call('errors'), [])
  })

  test('random operations from both processes at once keep the index and the folder in step', async () => {
    const budget = 1024 * KiB // about ten large bodies: evictions happen too
    const { dir, here, there, errors } = await pair(budget)
    const peerDone = there.call('randomOps', 7, 600)
    randomOps(here, 11, 600)
    await peerDone
    assert.deepEqual(errors, [])
    assert.deepEqual(await there.call('errors'), [])
    const index = new DatabaseSync(join(dir, INDEX_FILE), { readOnly: true })
    const rows = index.prepare('SELECT file, key, body FROM entries').all()
    const state = index.prepare('SELECT bytes, keys FROM state').get()!
    const keys = index.prepare('SELECT key FROM keys ORDER BY key').all().map((r) => r.key)
    const tagged = index.prepare('SELECT DISTINCT file FROM tags ORDER BY file').all().map((r) => r.file)
    index.close()
    assert.equal(Number(state.bytes), rows.reduce((n, r) => n + Number(r.body) + 512, 0), 'the bytes counted are the bytes indexed')
    assert.ok(Number(state.bytes) <= budget, 'within the budget')
    assert.deepEqual(keys, [...new Set(rows.map((r) => r.key))].sort(), 'one keys row per key with entries')
    assert.equal(Number(state.keys), keys.length)
    assert.equal(here.size, keys.length)
    assert.deepEqual(tagged, rows.map((r) => r.file).sort(), 'tags only for entries (each put had one)')
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => !n.startsWith(INDEX_FILE))
        .sort(),
      rows.map((r) => String(r.file)).sort(),
      'every file has its row, every row its file, no temp files',
    )
    let variants = 0
    for (const key of keys) {
      const got = here.variants(String(key))
      variants += got.length
      for (const e of got) assert.ok(e.body.every((b) => b === e.body[0]), 'a whole body, one writer')
      assert.deepEqual(sortByVariant((await there.call('variants', String(key))).map(fromPeer)).map(plain), sortByVariant(got).map(plain))
    }
    assert.equal(variants, rows.length)
  })

  test("at open, a temp file of a running process is left alone; once that process is gone, it goes", async () => {
    const { dir, there } = await pair()
    const name = `${entryIdent('http://a/1', '', undefined)}-0123456789abcdef.entry.tmp-${there.pid}-00aa11bb22cc`
    writeFileSync(join(dir, name), 'being written')
    new DiskStore(dir, KiB * KiB)
    assert.equal(existsSync(join(dir, name)), true)
    await there.stop()
    new DiskStore(dir, KiB * KiB)
    assert.equal(existsSync(join(dir, name)), false)
  })
})

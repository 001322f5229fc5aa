import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import vm from 'node:vm'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { pino } from 'pino'
import type { Context } from '../../src/core/context.ts'
import type { Endpoint } from '../../src/core/endpoints.ts'
import type { Handler, ModuleDeps } from '../../src/core/types.ts'
import { staticFiles, staticModule } from '../../src/modules/static/index.ts'
import { createCollector } from '../../src/rum/collector.ts'
import { fingerprint, type RumRow, type RumStore } from '../../src/rum/store.ts'
import { parseFrames, resolveReference, SourceMaps, Symbolicator } from '../../src/rum/symbolicate.ts'
import { systemClock } from '../../src/core/clock.ts'
import { tempDir } from '../helpers/server.ts'
import { SAMPLE_BOOM, SAMPLE_MAIN } from '../helpers/rum.ts'

/**
 * Symbolication (src/rum/symbolicate.ts) against real files: a small
 * TypeScript program bundled and minified by esbuild, with its source map,
 * served by real static routes (their own rules decide what is read). The
 * stacks are the ones V8 really throws running the minified code.
 */

const ORIGIN = 'https://shop.example'
const silent = pino({ level: 'silent' })

const BOOM = SAMPLE_BOOM
const MAIN = SAMPLE_MAIN
/** A second program, deployed over the first at the same URL. */
const BLAST = `export function detonate(n: number): never {
  throw new Error('blast ' + n)
}
`
const MAIN2 = `import { detonate } from './blast.ts'
detonate(7)
`

let dir: string
let cleanup: () => void
let www: string
/** The first build's script and map, as esbuild wrote them. */
let js = ''
let map = ''
/** The V8 stack of the first build run as /js/app.js on ORIGIN. */
let v8 = ''

/** Bundles and minifies `entry` to `outfile` with a linked map beside it. */
async function bundle(entry: string, outfile: string): Promise<void> {
  await build({ entryPoints: [entry], outfile, bundle: true, minify: true, sourcemap: true, format: 'iife', logLevel: 'silent' })
}

/** The stack V8 throws running a script as `url`. */
function stackOf(code: string, url: string): string {
  try {
    vm.runInNewContext(code, {}, { filename: url, displayErrors: false })
  } catch (err) {
    return (err as Error).stack!
  }
  throw new Error('the script did not throw')
}

/** The same frames in SpiderMonkey's form (`name@url:line:col`), the engine's own frames left out. */
function asGecko(stack: string): string {
  return stack
    .split('\n')
    .filter((l) => !/^\s*at\s/.test(l) || !/node:/.test(l))
    .map((l) => l.replace(/^\s*at (\S+) \((.*)\)$/, '$1@$2').replace(/^\s*at (.*)$/, '@$1'))
    .join('\n')
}

/** A real static route's handler over `root` (its schema's defaults and `extra`). */
function staticRoute(root: string, extra: Record<string, unknown> = {}): Handler {
  const cfg = staticModule.schema.parse({ root, ...extra })
  return staticModule.create(cfg, { configPath: 'sites[0].routes[0].static', baseDir: '/' } as unknown as ModuleDeps)
}

interface Setup {
  readonly routes?: ReadonlyArray<{ prefix: string; handler: Handler | null }>
  readonly maxMapSize?: number
  readonly keep?: string | null
  readonly releases?: number
}

/** A symbolicator of a site whose only route is a static route over `www` at `/` (or the given routes). */
function symbolicator(s: Setup = {}): { sym: Symbolicator; maps: SourceMaps } {
  const routes = s.routes ?? [{ prefix: '/', handler: staticRoute(www) }]
  const maps = new SourceMaps({ dir: s.keep === undefined ? null : s.keep, log: silent, ...(s.releases ? { releases: s.releases } : {}) })
  const sym = new Symbolicator({ routes: routes.map((r) => ({ prefix: r.prefix, files: r.handler ? staticFiles(r.handler) : null })), maxMapSize: s.maxMapSize ?? 20 * 1024 ** 2, maps, scope: 'shop.example' })
  return { sym, maps }
}

/** The script at www/js/<name> with its last line (the annotation) replaced by `annotation` ('' drops it). */
function variant(name: string, annotation: string): void {
  const code = js.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n')
  writeFileSync(path.join(www, 'js', name), annotation ? `${code}${annotation}\n` : code)
}

/** The V8 stack of the first build, as if served at /js/<name>. */
const stackAt = (name: string, origin = ORIGIN): string => v8.replaceAll(`${ORIGIN}/js/app.js`, `${origin}/js/${name}`)

before(async () => {
  ;({ dir, cleanup } = tempDir())
  www = path.join(dir, 'www')
  mkdirSync(path.join(dir, 'src'))
  writeFileSync(path.join(dir, 'src', 'boom.ts'), BOOM)
  writeFileSync(path.join(dir, 'src', 'main.ts'), MAIN)
  writeFileSync(path.join(dir, 'src', 'blast.ts'), BLAST)
  writeFileSync(path.join(dir, 'src', 'main2.ts'), MAIN2)
  // www/js/app.js, and the sources beside www as a build's `src/` would be
  await bundle(path.join(dir, 'src', 'main.ts'), path.join(www, 'js', 'app.js'))
  js = readFileSync(path.join(www, 'js', 'app.js'), 'utf8')
  map = readFileSync(path.join(www, 'js', 'app.js.map'), 'utf8')
  v8 = stackOf(js, `${ORIGIN}/js/app.js`)
  // the maps elsewhere: one outside the root, one in a dot folder, one linked out of the root
  mkdirSync(path.join(dir, 'outside'))
  writeFileSync(path.join(dir, 'outside', 'app.js.map'), map)
  mkdirSync(path.join(www, 'js', '.maps'))
  writeFileSync(path.join(www, 'js', '.maps', 'dot.js.map'), map)
  mkdirSync(path.join(www, 'maps'))
  writeFileSync(path.join(www, 'maps', 'moved.js.map'), map)
})

after(() => cleanup?.())

/** Where a V8 stack's frames of the program should land. */
function assertMapped(stack: string): void {
  const lines = stack.split('\n')
  assert.equal(lines[0], 'Error: boom: GO')
  assert.match(lines[1]!, /^ {4}at explode \(\/src\/boom\.ts:3:\d+\)$/)
  assert.match(lines[2]!, /^ {4}at handleClick \(\/src\/main\.ts:3:\d+\)$/)
  assert.match(lines[3]!, /^ {4}at start \(\/src\/main\.ts:6:\d+\)$/)
}

describe('frames', () => {
  test('V8 frames of the site\'s own script: source, line, column and the original function; other frames as they were', async () => {
    const { sym } = symbolicator()
    assert.equal(sym.wants(v8, ORIGIN), true)
    const r = await sym.symbolicate(v8, { origin: ORIGIN, release: null })
    assertMapped(r.stack)
    // the throw itself: line 3, at `new Error` (column 9, 1-based) of `  throw new Error(...)`
    assert.match(r.stack.split('\n')[1]!, /boom\.ts:3:9\)$/)
    // node's own frames are not the site's: kept as they were
    const theirs = v8.split('\n').filter((l) => l.includes('node:'))
    assert.ok(theirs.length > 0)
    for (const l of theirs) assert.ok(r.stack.split('\n').includes(l), l)
    assert.equal(r.frames, v8.split('\n').filter((l) => l.includes('/js/app.js')).length)
    assert.equal(r.missing, 0)
    // fingerprinted as the unminified code's stack would be
    assert.equal(fingerprint('Error: boom: GO', r.stack), fingerprint('Error: boom: GO', 'Error: boom: GO\n    at explode (/src/boom.ts:3:9)'))
  })

  test('a function\'s name comes from its caller\'s call site only when the caller is the very next frame', async () => {
    const { sym } = symbolicator()
    const lines = v8.split('\n')
    // a built-in between handleClick's frame and its caller's: the caller's call site no longer names it
    const broken = [...lines.slice(0, 3), '    at Array.forEach (<anonymous>)', ...lines.slice(3)].join('\n')
    const out = (await sym.symbolicate(broken, { origin: ORIGIN, release: null })).stack.split('\n')
    assert.match(out[1]!, /^ {4}at explode \(\/src\/boom\.ts:3:9\)$/)
    const minified = /^\s*at (\w+) /.exec(lines[2]!)![1]!
    assert.match(out[2]!, new RegExp(`^ {4}at ${minified} \\(/src/main\\.ts:3:\\d+\\)$`))
    assert.equal(out[3], '    at Array.forEach (<anonymous>)')
  })

  test('SpiderMonkey/JavaScriptCore frames (name@url:line:col) keep their form', async () => {
    const { sym } = symbolicator()
    const gecko = asGecko(v8)
    assert.equal(parseFrames(gecko)[0]!.style, 'gecko')
    const r = await sym.symbolicate(gecko, { origin: ORIGIN, release: null })
    const lines = r.stack.split('\n')
    assert.match(lines[1]!, /^explode@\/src\/boom\.ts:3:9$/)
    assert.match(lines[2]!, /^handleClick@\/src\/main\.ts:3:\d+$/)
    assert.match(lines[3]!, /^start@\/src\/main\.ts:6:\d+$/)
    // the anonymous top level stays anonymous
    assert.match(lines[4]!, /^@\/src\/main\.ts:\d+:\d+$/)
  })

  test('a bare path is the site\'s own; another origin, a non-script and an unsafe path are not (no file is read)', async () => {
    const { sym } = symbolicator()
    const bare = v8.replaceAll(`${ORIGIN}/js/app.js`, '/js/app.js')
    assertMapped((await sym.symbolicate(bare, { origin: ORIGIN, release: null })).stack)
    // a query (as scrubbing leaves it) is not part of the path
    assertMapped((await sym.symbolicate(v8.replaceAll('/js/app.js', '/js/app.js?v=[redacted]'), { origin: ORIGIN, release: null })).stack)
    for (const other of [stackAt('app.js', 'https://cdn.example'), v8.replaceAll('/js/app.js', '/js/app.html'), v8.replaceAll('/js/app.js', '/../js/app.js'), v8.replaceAll('/js/app.js', '/js%2fapp.js')]) {
      assert.equal(sym.wants(other, ORIGIN), false, other.split('\n')[1])
      const r = await sym.symbolicate(other, { origin: ORIGIN, release: null })
      assert.deepEqual(r, { stack: other, frames: 0, missing: 0, tooLarge: 0 })
    }
  })

  test('a path another (non-static) route serves is not the site\'s script', async () => {
    const { sym } = symbolicator({ routes: [{ prefix: '/', handler: staticRoute(www) }, { prefix: '/js/', handler: null }] })
    assert.equal(sym.wants(v8, ORIGIN), false)
  })

  test('a static route under a prefix: the path below it names the file', async () => {
    const { sym } = symbolicator({ routes: [{ prefix: '/assets/', handler: staticRoute(www) }] })
    const below = v8.replaceAll('/js/app.js', '/assets/js/app.js')
    assert.equal(sym.wants(below, ORIGIN), true)
    assert.equal(sym.wants(v8, ORIGIN), false, '/js/app.js is not under /assets/')
    // the map is /assets/js/app.js.map; its sources (../../src/boom.ts) resolve against it, no higher than the origin's root
    assertMapped((await sym.symbolicate(below, { origin: ORIGIN, release: null })).stack)
  })
})

describe('finding the map', () => {
  test('a relative sourceMappingURL, resolved against the script\'s URL', async () => {
    variant('moved.js', '//# sourceMappingURL=../maps/moved.js.map')
    const r = await symbolicator().sym.symbolicate(stackAt('moved.js'), { origin: ORIGIN, release: null })
    assert.match(r.stack.split('\n')[1]!, /at explode \(\/src\/boom\.ts:3:9\)$/)
    assert.equal(resolveReference('../maps/moved.js.map', '/js/moved.js', ORIGIN), '/maps/moved.js.map')
    assert.equal(resolveReference('/maps/x.map?v=1#f', '/js/moved.js', ORIGIN), '/maps/x.map')
  })

  test('an inline data: map (application/json, base64)', async () => {
    variant('inline.js', `//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(map).toString('base64')}`)
    const { sym } = symbolicator()
    assertMapped((await sym.symbolicate(stackAt('inline.js'), { origin: ORIGIN, release: null })).stack)
    // and again, from what was kept of it
    assertMapped((await sym.symbolicate(stackAt('inline.js'), { origin: ORIGIN, release: null })).stack)
  })

  test('an absolute URL of another origin is never fetched; the same origin\'s is read from disk', async () => {
    let asked = 0
    const server = createServer((_req, res) => {
      asked++
      res.setHeader('content-type', 'application/json')
      res.end(map)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const remote = `http://127.0.0.1:${(server.address() as AddressInfo).port}/js/remote.js.map`
      variant('remote.js', `//# sourceMappingURL=${remote}`)
      const { sym } = symbolicator()
      const r = await sym.symbolicate(stackAt('remote.js'), { origin: ORIGIN, release: null })
      assert.equal(r.frames, 0)
      assert.equal(r.missing, 1)
      assert.equal(r.stack, stackAt('remote.js'))
      // even when the beacon came to that very address, a protocol-relative or absolute URL is only a path on this site's disk
      const again = await sym.symbolicate(stackAt('remote.js', `http://127.0.0.1:${(server.address() as AddressInfo).port}`), { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, release: null })
      assert.equal(again.frames, 0)
      assert.equal(asked, 0, 'nothing is fetched over the network')
      variant('same.js', `//# sourceMappingURL=${ORIGIN}/maps/moved.js.map`)
      assertMapped((await sym.symbolicate(stackAt('same.js'), { origin: ORIGIN, release: null })).stack)
    } finally {
      server.close()
    }
  })

  test('no annotation: <script>.map beside it; none there: counted as missing', async () => {
    variant('plain.js', '')
    copyFileSync(path.join(www, 'js', 'app.js.map'), path.join(www, 'js', 'plain.js.map'))
    const { sym } = symbolicator()
    assertMapped((await sym.symbolicate(stackAt('plain.js'), { origin: ORIGIN, release: null })).stack)
    variant('bare.js', '')
    const r = await sym.symbolicate(stackAt('bare.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([r.frames, r.missing, r.stack], [0, 1, stackAt('bare.js')])
    // a frame of a script that is not on disk
    const gone = await sym.symbolicate(stackAt('gone.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([gone.frames, gone.missing], [0, 1])
  })
})

describe('the static route\'s rules decide what is read', () => {
  test('`../` above the root is refused, never joined to the disk path', async () => {
    // www/../outside/app.js.map exists: a path join would reach it
    variant('escape.js', '//# sourceMappingURL=../../../outside/app.js.map')
    assert.equal(resolveReference('../../../outside/app.js.map', '/js/escape.js', ORIGIN), null)
    assert.equal(resolveReference('..%2f..%2foutside/app.js.map', '/js/escape.js', ORIGIN), null)
    const r = await symbolicator().sym.symbolicate(stackAt('escape.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([r.frames, r.missing], [0, 1])
  })

  test('a dot name is refused by `dotfiles: ignore`, read with `dotfiles: allow`', async () => {
    variant('dot.js', '//# sourceMappingURL=.maps/dot.js.map')
    const refused = await symbolicator().sym.symbolicate(stackAt('dot.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([refused.frames, refused.missing], [0, 1])
    const allowed = await symbolicator({ routes: [{ prefix: '/', handler: staticRoute(www, { dotfiles: 'allow' }) }] }).sym.symbolicate(stackAt('dot.js'), { origin: ORIGIN, release: null })
    assertMapped(allowed.stack)
  })

  test('a link out of the root is refused by `symlinks: inside`, followed with `symlinks: follow`', async () => {
    variant('linked.js', '')
    symlinkSync(path.join(dir, 'outside', 'app.js.map'), path.join(www, 'js', 'linked.js.map'))
    const refused = await symbolicator().sym.symbolicate(stackAt('linked.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([refused.frames, refused.missing], [0, 1])
    const followed = await symbolicator({ routes: [{ prefix: '/', handler: staticRoute(www, { symlinks: 'follow' }) }] }).sym.symbolicate(stackAt('linked.js'), { origin: ORIGIN, release: null })
    assertMapped(followed.stack)
    // the script itself linked out of the root
    copyFileSync(path.join(www, 'js', 'app.js'), path.join(dir, 'outside', 'out.js'))
    copyFileSync(path.join(www, 'js', 'app.js.map'), path.join(dir, 'outside', 'out.js.map'))
    symlinkSync(path.join(dir, 'outside', 'out.js'), path.join(www, 'js', 'out.js'))
    const script = await symbolicator().sym.symbolicate(stackAt('out.js'), { origin: ORIGIN, release: null })
    assert.deepEqual([script.frames, script.missing], [0, 1])
  })
})

test('maps over maxMapSize are not read (a file or inline), and counted', async () => {
  const small = map.length - 1
  const { sym } = symbolicator({ maxMapSize: small })
  const r = await sym.symbolicate(v8, { origin: ORIGIN, release: null })
  assert.deepEqual([r.frames, r.missing, r.tooLarge, r.stack], [0, 0, 1, v8])
  variant('inline-big.js', `//# sourceMappingURL=data:application/json;base64,${Buffer.from(map).toString('base64')}`)
  const inline = await sym.symbolicate(stackAt('inline-big.js'), { origin: ORIGIN, release: null })
  assert.deepEqual([inline.frames, inline.tooLarge], [0, 1])
  // at the limit exactly it is read
  assertMapped((await symbolicator({ maxMapSize: map.length }).sym.symbolicate(v8, { origin: ORIGIN, release: null })).stack)
})

describe('releases', () => {
  test('the first use for a release keeps a copy; after a deploy that release still maps with it, others with the new files', async () => {
    const site = path.join(dir, 'release-www')
    mkdirSync(path.join(site, 'js'), { recursive: true })
    copyFileSync(path.join(www, 'js', 'app.js'), path.join(site, 'js', 'app.js'))
    copyFileSync(path.join(www, 'js', 'app.js.map'), path.join(site, 'js', 'app.js.map'))
    const keep = path.join(dir, 'data', 'rum', 'maps')
    const { sym } = symbolicator({ routes: [{ prefix: '/', handler: staticRoute(site) }], keep })
    assertMapped((await sym.symbolicate(v8, { origin: ORIGIN, release: 'r1' })).stack)
    const kept = path.join(keep, sha256('r1'), `${sha256('shop.example\n/js/app.js')}.map`)
    assert.ok(existsSync(kept), 'a copy is kept for r1')
    assert.equal(statSync(kept).mode & 0o777, 0o600)
    assert.equal(statSync(keep).mode & 0o777, 0o700)
    const header = (JSON.parse(readFileSync(kept, 'utf8')) as { x_edgebox: Record<string, unknown> }).x_edgebox
    assert.deepEqual(header, { release: 'r1', url: '/js/app.js', mapUrl: '/js/app.js.map', script: { size: statSync(path.join(site, 'js', 'app.js')).size, mtimeMs: statSync(path.join(site, 'js', 'app.js')).mtimeMs } })
    assert.deepEqual(readdirSync(path.dirname(kept)).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left')

    // a deploy replaces the script and its map at the same URL
    await bundle(path.join(dir, 'src', 'main2.ts'), path.join(site, 'js', 'app.js'))
    const newJs = readFileSync(path.join(site, 'js', 'app.js'), 'utf8')
    const newStack = stackOf(newJs, `${ORIGIN}/js/app.js`)
    // r1's events still map with r1's map
    assertMapped((await sym.symbolicate(v8, { origin: ORIGIN, release: 'r1' })).stack)
    // events without a release, and of a new release, use the files on disk now (the changed file is read again)
    for (const release of [null, 'r2']) {
      const r = await sym.symbolicate(newStack, { origin: ORIGIN, release })
      assert.match(r.stack.split('\n')[1]!, /^ {4}at detonate \(\/src\/blast\.ts:2:9\)$/, String(release))
    }
  })

  test('at most `releases` releases are kept: the oldest folder goes', async () => {
    const keep = path.join(dir, 'data-prune', 'maps')
    const { sym } = symbolicator({ keep, releases: 2 })
    for (const [i, release] of ['a', 'b', 'c'].entries()) {
      await sym.symbolicate(v8, { origin: ORIGIN, release })
      // folder times a second apart, oldest first
      const t = new Date(Date.now() - (10 - i) * 1000)
      utimesSync(path.join(keep, sha256(release)), t, t)
    }
    assert.deepEqual(readdirSync(keep).sort(), [sha256('b'), sha256('c')].sort())
  })
})

describe('the collector\'s symbolication stage', () => {
  /** The collector's GIF endpoint, and a fake request to it (what the endpoint reads of a Context). */
  function gifRequest(endpoint: Endpoint, batch: unknown): Promise<void> | void {
    const ctx = {
      method: 'GET',
      query: `?d=${Buffer.from(JSON.stringify(batch)).toString('base64url')}`,
      clientAddress: '127.0.0.1',
      origin: ORIGIN,
      header: () => undefined,
      send: () => undefined,
    }
    return endpoint.handle(ctx as unknown as Context)
  }
  /** A store that keeps what it is given (the collector only inserts and closes). */
  function capture(): { store: RumStore; rows: RumRow[] } {
    const rows: RumRow[] = []
    const store = { insert: async (r: readonly RumRow[]) => void rows.push(...r), close: async () => undefined } as unknown as RumStore
    return { store, rows }
  }
  const batchWith = (pv: string, stack: string, release?: string) => ({ v: 1, pv, page: '/', ...(release ? { release } : {}), events: [{ t: 'error', at: 5, kind: 'error', message: 'Error: boom: GO', stack, count: 1 }] })

  test('error rows are made from the mapped stack (fingerprint too), the stack as sent kept as rawStack; counted', async () => {
    const { store, rows } = capture()
    const collector = createCollector({ store, log: silent, clock: systemClock, limits: {} as never })
    const { sym } = symbolicator()
    const gif = collector.endpointsFor({ allows: () => false } as never, { symbolicator: sym }).find((e) => e.path === '/_edgebox/rum/beacon.gif')!
    await gifRequest(gif, batchWith('p1', v8, 'r1'))
    await gifRequest(gif, batchWith('p2', stackAt('bare.js')))
    await gifRequest(gif, batchWith('p3', stackAt('app.js', 'https://cdn.example')))
    await collector.flush()
    assert.equal(rows.length, 3)
    const p1 = rows.find((r) => r.pv === 'p1')!
    assert.equal(p1.fingerprint, fingerprint('Error: boom: GO', 'x\n    at explode (/src/boom.ts:1:1)'), 'the mapped stack\'s fingerprint is the source\'s')
    assert.notEqual(p1.fingerprint, fingerprint('Error: boom: GO', v8))
    assertMapped(p1.stack!)
    assert.deepEqual(JSON.parse(p1.json!), { rawStack: v8 })
    assert.equal(rows.find((r) => r.pv === 'p2')!.json, null, 'nothing mapped: no rawStack')
    assert.equal(rows.find((r) => r.pv === 'p3')!.stack, stackAt('app.js', 'https://cdn.example'))
    const frames = v8.split('\n').filter((l) => l.includes('/js/app.js')).length
    assert.deepEqual(collector.stats.symbolication, { events: 1, frames, missing: 1, tooLarge: 0, skipped: 0 })
    assert.equal(collector.stats.accepted, 3)
    await collector.close()
  })

  test('a full symbolication queue stores the event as sent and counts it as skipped', async () => {
    const { store, rows } = capture()
    const collector = createCollector({ store, log: silent, clock: systemClock, limits: {} as never, maxSymbolicationQueue: 1 })
    const { sym } = symbolicator()
    const gif = collector.endpointsFor({ allows: () => false } as never, { symbolicator: sym }).find((e) => e.path === '/_edgebox/rum/beacon.gif')!
    // both arrive before the first is mapped: the second finds the queue full
    await Promise.all([gifRequest(gif, batchWith('first', v8)), gifRequest(gif, batchWith('second', v8))])
    await collector.flush()
    assertMapped(rows.find((r) => r.pv === 'first')!.stack!)
    assert.equal(rows.find((r) => r.pv === 'second')!.stack, v8)
    assert.equal(collector.stats.symbolication.skipped, 1)
    assert.equal(collector.stats.symbolication.events, 1)
    await collector.close()
  })
})

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

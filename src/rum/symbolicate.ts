import { createHash } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { FlattenMap, originalPositionFor, type TraceMap } from '@jridgewell/trace-mapping'
import { LRUCache } from 'lru-cache'
import { ensurePrivateDir, writePrivateFile } from '../core/data-dir.ts'
import type { Logger } from '../core/log.ts'
import { encodePath, normalizePath, originOf } from '../http/target.ts'
import type { StaticFile, StaticFiles } from '../core/types.ts'
import { MAX_STACK } from './schema.ts'

/**
 * Symbolication (docs/monitoring.md): the frames of an error's stack that
 * point at a site's own scripts are mapped back to their sources with the
 * source maps the site's static routes have on disk.
 *
 * A frame is the site's own when its URL is the page's origin (the origin
 * the beacon came to) or a bare path, names a script (`.js`, `.mjs`,
 * `.cjs`), and the route that path reaches is a static route. The script is
 * found on disk by that route's own rules (its root, dot names, links:
 * `StaticFiles.resolve`), then its map:
 *
 * 1. the script's last `//# sourceMappingURL=` comment (ECMA-426 §11.1.2):
 *    a `data:application/json;base64,` URL is read inline; a relative URL
 *    is resolved against the script's URL (RFC 3986 §5.2) and must again be
 *    a file a static route of the site serves; an absolute URL is taken only
 *    when it is the same origin. Nothing is ever fetched over the network;
 * 2. else `<script>.map` beside it, by the same rules.
 *
 * Maps larger than `maxMapSize` are not read. Parsed maps are kept in a
 * least-recently-used cache bounded by their bytes, keyed by the file and
 * its validator, so a file changed on disk is read again.
 *
 * Releases: a stack must be mapped with the code the browser ran. The first
 * time a map serves an event of a release, a copy is kept under
 * `<dataDir>/rum/maps/<sha256 of release>/<sha256 of site and URL path>.map`
 * and later events of that release use the copy, even after a deploy
 * replaced the file on disk. The newest releases are kept (20 by default).
 */

/** Scripts a frame may name: what browsers run. */
const SCRIPT = /\.(?:m|c)?js$/i
/** How much of a script's end is read first for its `sourceMappingURL` comment. */
const TAIL_BYTES = 64 * 1024
/** The annotation comment (ECMA-426 §11.1.2; `//@` is the legacy form), alone on its line. */
const ANNOTATION = /(?:^|[\r\n])[ \t]*\/\/[#@][ \t]*sourceMappingURL[ \t]*=[ \t]*([^\s'"`]+)[ \t]*(?=[\r\n]|$)/g
/** An inline map: JSON in base64 (RFC 2397), the only inline form taken. */
const DATA_JSON = /^data:application\/json(?:;[a-z0-9-]+=[^;,]*)*;base64,([A-Za-z0-9+/=_-]*)$/i
/** The base an origin-relative resolution is made against: never looked up. */
const PLACEHOLDER = 'http://edgebox.invalid'
/** The releases whose copies are kept, by default. */
export const KEPT_RELEASES = 20
/** The parsed maps kept in memory, by default: their bytes. */
export const MAP_CACHE_BYTES = 64 * 1024 ** 2

/** One frame of a stack text, as parsed from its line. */
export interface Frame {
  /** The line's index in the stack text. */
  readonly index: number
  /** `v8`: `    at name (url:line:col)`; `gecko` (SpiderMonkey, JavaScriptCore): `name@url:line:col`. */
  readonly style: 'v8' | 'gecko'
  /** V8: the line up to and including `at `. */
  readonly lead: string
  /** V8: `async ` or `new ` before the name. */
  readonly modifier: string
  /** The function's name, '' when anonymous. */
  readonly name: string
  readonly url: string
  /** 1-based. */
  readonly line: number
  /** 1-based (V8, SpiderMonkey and JavaScriptCore alike). */
  readonly column: number
}

/** A V8 frame's line. */
const V8_LINE = /^(\s*at\s+)(.*)$/
/** A location's trailing `:line:column`. */
const LOCATION = /^(.*):(\d+):(\d+)$/
/** A SpiderMonkey/JavaScriptCore frame: the first `@` before a URL (with a scheme) or a path. */
const GECKO_LINE = /^(.*?)@((?:[A-Za-z][A-Za-z0-9+.-]*:|\/).*):(\d+):(\d+)$/

/** The frames of a stack text, the way `firstFrame` (store.ts) reads it: V8 lines when there are any, else `name@url` lines. */
export function parseFrames(stack: string): Frame[] {
  const lines = stack.split('\n')
  const v8 = lines.some((l) => /^\s*at\s/.test(l))
  const frames: Frame[] = []
  for (const [index, text] of lines.entries()) {
    const line = text.replace(/\r$/, '')
    if (v8) {
      const m = V8_LINE.exec(line)
      if (!m) continue
      const rest = m[2]!.trim()
      const open = rest.indexOf(' (')
      const named = open !== -1 && rest.endsWith(')')
      const loc = LOCATION.exec(named ? rest.slice(open + 2, -1) : rest)
      if (!loc) continue
      let name = named ? rest.slice(0, open) : ''
      const mod = /^(?:async|new) /.exec(name)?.[0] ?? ''
      name = name.slice(mod.length)
      frames.push({ index, style: 'v8', lead: m[1]!, modifier: mod, name, url: loc[1]!, line: Number(loc[2]), column: Number(loc[3]) })
      continue
    }
    const g = GECKO_LINE.exec(line)
    if (g) frames.push({ index, style: 'gecko', lead: '', modifier: '', name: g[1]!, url: g[2]!, line: Number(g[3]), column: Number(g[4]) })
  }
  return frames
}

/** A frame written back in its own style, at a new place and name. */
function formatFrame(f: Frame, name: string, where: string): string {
  if (f.style === 'gecko') return `${name}@${where}`
  return name ? `${f.lead}${f.modifier}${name} (${where})` : `${f.lead}${f.modifier}${where}`
}

/**
 * The decoded path a URL names on the page's own origin: a bare path
 * (`/app.js`), or an absolute URL of that very origin; its query and
 * fragment dropped. Null for another origin, or a path that is not safe
 * (normalizePath: encoded slashes, `..` above the root...).
 */
export function ownPath(url: string, origin: string): string | null {
  let rest: string
  if (url.startsWith('/') && !url.startsWith('//')) rest = url
  else {
    const o = originOf(url)
    if (o === null || o.toLowerCase() !== origin.toLowerCase()) return null
    rest = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, '')
    if (rest === '' || rest[0] !== '/') rest = '/' + rest.replace(/^[?#].*$/, '')
  }
  return normalizePath(rest.replace(/[?#].*$/, ''))
}

/** A site's route as symbolication sees it: its prefix, and its files when it is a static route. */
export interface SymbolicationRoute {
  readonly prefix: string
  readonly files: StaticFiles | null | undefined
}

/** The static route serving a path, and the path below its prefix; null when the route that path reaches (longest prefix, core/router.ts) is not static. */
function routeFor(routes: readonly SymbolicationRoute[], p: string): { files: StaticFiles; rel: string } | null {
  for (const r of routes) {
    const pre = r.prefix
    if (!p.startsWith(pre)) continue
    if (!(pre.endsWith('/') || p.length === pre.length || p[pre.length] === '/')) continue
    if (!r.files) return null
    // the path below the prefix, from its `/` (as the pipeline computes ctx.routePath)
    const n = pre.length
    const rel = p[n] === '/' ? p.slice(n) : p[n - 1] === '/' ? (n === 1 ? p : p.slice(n - 1)) : '/' + p.slice(n)
    return { files: r.files, rel }
  }
  return null
}

/** What a map lookup found. */
type Found = { readonly map: TraceMap } | { readonly problem: 'missing' | 'tooLarge' }

/** A parsed map with the text it came from (what a release's copy is made of) and the URL path its sources resolve against. */
interface Parsed {
  readonly trace: TraceMap
  readonly text: string
  readonly mapUrl: string
}

/** What a script's end says of its map. */
type Annotation = { readonly kind: 'none' } | { readonly kind: 'url'; readonly ref: string } | { readonly kind: 'inline'; readonly base64?: string } | { readonly kind: 'tooLarge' }

/** What `symbolicate` made of a stack. */
export interface SymbolicateResult {
  /** The stack with each mapped frame at its source; the input when none was. */
  readonly stack: string
  /** Frames mapped. */
  readonly frames: number
  /** Scripts of the site's own whose map was not found (or could not be read). */
  readonly missing: number
  /** Scripts whose map was over `maxMapSize`. */
  readonly tooLarge: number
}

/** What a stack's symbolication needs of the request that brought it. */
export interface StackContext {
  /** The origin the beacon came to (`ctx.origin`): a frame of this origin, or a bare path, is the site's own. */
  readonly origin: string
  /** The event's release: its map copies are used and kept; null: the files on disk. */
  readonly release: string | null
}

export interface SourceMapsOptions {
  /** Where release copies are kept (`<dataDir>/rum/maps`); null: none kept. */
  readonly dir: string | null
  readonly log: Logger
  /** Releases kept at most (the oldest folders by modification time go first). */
  readonly releases?: number
  /** The parsed maps kept in memory at most, in bytes of map text. */
  readonly cacheBytes?: number
}

/**
 * What every site's symbolicator shares: the parsed maps (an LRU bounded by
 * their bytes), the scripts' annotations, and the release copies on disk.
 */
export class SourceMaps {
  private readonly dir: string | null
  private readonly log: Logger
  private readonly maxReleases: number
  private readonly parsed: LRUCache<string, Parsed>
  /** A script's annotation by its path and validator (an inline map's text is not kept here: its parsed map is). */
  private readonly annotations = new LRUCache<string, Annotation>({ max: 10_000 })
  private readonly loading = new Map<string, Promise<Parsed | null>>()
  private dirReady = false
  private lastWarning = 0

  constructor(opts: SourceMapsOptions) {
    this.dir = opts.dir
    this.log = opts.log
    this.maxReleases = opts.releases ?? KEPT_RELEASES
    this.parsed = new LRUCache<string, Parsed>({ maxSize: Math.max(1, opts.cacheBytes ?? MAP_CACHE_BYTES), sizeCalculation: (p) => Math.max(1, p.text.length) })
  }

  /** A parsed map by its key, made once by `make` while it stays cached (concurrent asks share one read). Null: `make` found nothing usable. */
  async parse(key: string, make: () => Promise<{ text: string; mapUrl: string } | null>): Promise<Parsed | null> {
    const hit = this.parsed.get(key)
    if (hit) return hit
    let p = this.loading.get(key)
    if (!p) {
      p = (async () => {
        const got = await make()
        if (got === null) return null
        const parsed = parseMap(got.text, got.mapUrl)
        if (parsed) this.parsed.set(key, parsed)
        return parsed
      })().finally(() => this.loading.delete(key))
      this.loading.set(key, p)
    }
    return p
  }

  /** A script's annotation, read once per version of the file. */
  async annotation(file: StaticFile, maxMapSize: number): Promise<Annotation> {
    const key = `${file.fsPath}\0${file.etag}`
    const hit = this.annotations.get(key)
    if (hit) return hit
    const found = await readAnnotation(file, maxMapSize)
    // an inline map is kept parsed, not as text
    this.annotations.set(key, found.kind === 'inline' ? { kind: 'inline' } : found)
    return found
  }

  /** The file a release's copy of a script's map is kept in. */
  private keptFile(release: string, key: string): string | null {
    if (this.dir === null) return null
    return path.join(this.dir, sha256(release), `${sha256(key)}.map`)
  }

  /** The kept copy of a map for (release, key), parsed, or null when there is none. */
  async kept(release: string, key: string): Promise<Parsed | null> {
    const file = this.keptFile(release, key)
    if (file === null) return null
    let st
    try {
      st = await stat(file)
    } catch {
      return null
    }
    if (!st.isFile()) return null
    return this.parse(`kept:${file}\0${st.size}-${st.mtimeMs}`, async () => {
      const text = await readWhole(file, Number.MAX_SAFE_INTEGER)
      if (text === null) return null
      const kept = keptHeader(text)
      return kept ? { text, mapUrl: kept.mapUrl } : null
    })
  }

  /**
   * Keeps a copy of a map for (release, key), once: written whole (a
   * temporary file, then renamed), private (0600 in 0700 folders). A new
   * release's folder makes the oldest beyond the limit go. A failure is
   * logged (once a minute at most) and changes nothing else.
   */
  async keep(release: string, key: string, map: Parsed, script: { readonly url: string; readonly size: number; readonly mtimeMs: number }): Promise<void> {
    const file = this.keptFile(release, key)
    if (file === null || this.dir === null) return
    try {
      if (!this.dirReady) {
        await ensurePrivateDir(this.dir)
        this.dirReady = true
      }
      const folder = path.dirname(file)
      const isNew = !(await exists(folder))
      if (isNew) {
        await mkdir(folder, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err
        })
      } else if (await exists(file)) return
      const json = JSON.parse(map.text) as Record<string, unknown>
      json['x_edgebox'] = { release, url: script.url, mapUrl: map.mapUrl, script: { size: script.size, mtimeMs: script.mtimeMs } }
      await writePrivateFile(file, JSON.stringify(json))
      if (isNew) await this.prune(path.basename(folder))
    } catch (err) {
      this.warn(err, 'a source map could not be kept for its release; the file on disk is used')
    }
  }

  /** Removes the oldest release folders beyond the limit (never `current`). */
  private async prune(current: string): Promise<void> {
    const dir = this.dir!
    const names = (await readdir(dir)).filter((n) => /^[0-9a-f]{64}$/.test(n))
    if (names.length <= this.maxReleases) return
    const dated = await Promise.all(names.map(async (n) => ({ n, t: (await stat(path.join(dir, n)).catch(() => null))?.mtimeMs ?? 0 })))
    dated.sort((a, b) => b.t - a.t || (a.n < b.n ? -1 : 1))
    const keep = new Set([current, ...dated.filter((d) => d.n !== current).slice(0, this.maxReleases - 1).map((d) => d.n)])
    for (const d of dated) if (!keep.has(d.n)) await rm(path.join(dir, d.n), { recursive: true, force: true })
  }

  private warn(err: unknown, message: string): void {
    if (Date.now() - this.lastWarning < 60_000) return
    this.lastWarning = Date.now()
    this.log.warn({ why: (err as Error).message }, message)
  }
}

export interface SymbolicatorOptions {
  /** The site's routes, longest prefix first (as the site's route table). */
  readonly routes: readonly SymbolicationRoute[]
  /** Maps larger than this are not read (`sites[].rum.maxMapSize`). */
  readonly maxMapSize: number
  readonly maps: SourceMaps
  /** What tells this site's release copies from another's with the same release and paths (its hosts). */
  readonly scope: string
}

/** Maps the stacks of one site's errors with the source maps its static routes have. */
export class Symbolicator {
  private readonly routes: readonly SymbolicationRoute[]
  private readonly maxMapSize: number
  private readonly maps: SourceMaps
  private readonly scope: string

  constructor(opts: SymbolicatorOptions) {
    this.routes = [...opts.routes].sort((a, b) => b.prefix.length - a.prefix.length)
    this.maxMapSize = opts.maxMapSize
    this.maps = opts.maps
    this.scope = opts.scope
  }

  /** The script a frame's URL names on this site, or null: another origin, not a script, not a static route's. No I/O. */
  private script(url: string, origin: string): { path: string; files: StaticFiles; rel: string } | null {
    const p = ownPath(url, origin)
    if (p === null || !SCRIPT.test(p)) return null
    const r = routeFor(this.routes, p)
    return r ? { path: p, ...r } : null
  }

  /** Whether a stack has a frame of this site's own scripts (so mapping it needs the disk). No I/O: the collector asks it on the request. */
  wants(stack: string, origin: string): boolean {
    return parseFrames(stack).some((f) => this.script(f.url, origin) !== null)
  }

  /**
   * The stack with the frames of the site's own scripts mapped to their
   * sources, in the same text form (V8 or `name@url`). A frame's source is
   * the map's source resolved against the map's URL path (`/src/cart.ts`),
   * its line and column 1-based. Its function is the name the map gives the
   * call in its caller's frame (the function as its source calls it; minified
   * names are meaningless), else the name the browser gave.
   */
  async symbolicate(stack: string, ctx: StackContext): Promise<SymbolicateResult> {
    const frames = parseFrames(stack)
    const byPath = new Map<string, Promise<Found> | null>()
    for (const f of frames) {
      const s = this.script(f.url, ctx.origin)
      if (s && !byPath.has(s.path)) byPath.set(s.path, this.mapFor(s, ctx.release, ctx.origin))
    }
    let missing = 0
    let tooLarge = 0
    const found = new Map<string, TraceMap>()
    for (const [p, pending] of byPath) {
      const r = await pending
      if (!r) continue
      if ('map' in r) found.set(p, r.map)
      else if (r.problem === 'missing') missing++
      else tooLarge++
    }
    // each frame's original position (with the name the map has there)
    const positions = frames.map((f) => {
      const s = this.script(f.url, ctx.origin)
      const map = s ? found.get(s.path) : undefined
      if (!map || f.line < 1 || f.column < 1) return null
      try {
        const o = originalPositionFor(map, { line: f.line, column: f.column - 1 })
        return o.source === null || o.line === null || o.column === null ? null : o
      } catch {
        return null // mappings that do not decode
      }
    })
    const lines = stack.split('\n')
    let mapped = 0
    for (const [i, f] of frames.entries()) {
      const o = positions[i]
      if (!o) continue
      // the caller is the next line's frame (a frame without a location between them breaks the chain)
      const caller = frames[i + 1]?.index === f.index + 1 ? positions[i + 1] : null
      const name = f.name === '' ? '' : (caller?.name ?? f.name)
      lines[f.index] = formatFrame(f, name, `${o.source}:${o.line}:${o.column + 1}`)
      mapped++
    }
    if (mapped === 0) return { stack, frames: 0, missing, tooLarge }
    return { stack: cap(lines.join('\n')), frames: mapped, missing, tooLarge }
  }

  /** The map for a script, for a release: its kept copy, else the one on disk now (then kept for the release). */
  private async mapFor(s: { path: string; files: StaticFiles; rel: string }, release: string | null, origin: string): Promise<Found> {
    const key = `${this.scope}\n${s.path}`
    if (release !== null) {
      const kept = await this.maps.kept(release, key)
      if (kept) return { map: kept.trace }
    }
    const js = await s.files.resolve(s.rel)
    if (!js) return { problem: 'missing' }
    const r = await this.fromDisk(s.path, js, origin)
    if ('parsed' in r) {
      if (release !== null) await this.maps.keep(release, key, r.parsed, { url: s.path, size: js.size, mtimeMs: js.mtimeMs })
      return { map: r.parsed.trace }
    }
    return r
  }

  /** The map of a script on disk: its annotation's, else `<script>.map`. */
  private async fromDisk(scriptPath: string, js: StaticFile, origin: string): Promise<{ parsed: Parsed } | { problem: 'missing' | 'tooLarge' }> {
    const note = await this.maps.annotation(js, this.maxMapSize)
    if (note.kind === 'tooLarge') return { problem: 'tooLarge' }
    if (note.kind === 'inline') {
      const max = this.maxMapSize
      const parsed = await this.maps.parse(`inline:${js.fsPath}\0${js.etag}`, async () => {
        // the payload of this read, or (its parsed map since evicted) the script's end read again
        const again = note.base64 === undefined ? await readAnnotation(js, max) : note
        return again.kind === 'inline' && again.base64 !== undefined ? { text: Buffer.from(again.base64, 'base64').toString('utf8'), mapUrl: scriptPath } : null
      })
      return parsed ? { parsed } : { problem: 'missing' }
    }
    if (note.kind === 'none') return this.mapFile(`${scriptPath}.map`)
    // the annotation's map if it is the site's own, else the one beside the script
    const named = resolveReference(note.ref, scriptPath, origin)
    if (named !== null) {
      const r = await this.mapFile(named)
      if (!('problem' in r) || r.problem === 'tooLarge') return r
    }
    return named === `${scriptPath}.map` ? { problem: 'missing' } : this.mapFile(`${scriptPath}.map`)
  }

  /** A map file at a URL path of the site, through the static route serving it. */
  private async mapFile(mapPath: string): Promise<{ parsed: Parsed } | { problem: 'missing' | 'tooLarge' }> {
    const r = routeFor(this.routes, mapPath)
    const file = r ? await r.files.resolve(r.rel) : null
    if (!file) return { problem: 'missing' }
    if (file.size > this.maxMapSize) return { problem: 'tooLarge' }
    const max = this.maxMapSize
    const parsed = await this.maps.parse(`file:${file.fsPath}\0${file.etag}`, async () => {
      const text = await readWhole(file.fsPath, max)
      return text === null ? null : { text, mapUrl: mapPath }
    })
    return parsed ? { parsed } : { problem: 'missing' }
  }
}

/**
 * Where an annotation's URL points on the site: a path-absolute or relative
 * reference resolved against the script's path (RFC 3986 §5.2.2, with
 * normalizePath refusing `..` above the root), or an absolute URL of the
 * page's own origin; null for anything else (another origin, another
 * scheme, not a safe path): such a map is never fetched.
 */
export function resolveReference(ref: string, scriptPath: string, origin: string): string | null {
  if (ref.startsWith('//')) return ownPath(`${origin.slice(0, origin.indexOf(':'))}:${ref}`, origin)
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(ref)) return ownPath(ref, origin)
  const bare = ref.replace(/[?#].*$/, '')
  if (bare === '') return null
  const base = encodePath(scriptPath)
  const joined = bare.startsWith('/') ? bare : base.slice(0, base.lastIndexOf('/') + 1) + bare
  return normalizePath(joined)
}

/** A map's text parsed (regular or with sections), or null when it is not a source map. */
function parseMap(text: string, mapUrl: string): Parsed | null {
  try {
    const json = JSON.parse(text) as unknown
    if (typeof json !== 'object' || json === null || (json as { version?: unknown }).version !== 3) return null
    const trace = FlattenMap(json as Parameters<typeof FlattenMap>[0], `${PLACEHOLDER}${encodePath(mapUrl)}`)
    // sources resolve against the placeholder origin: show them as the site's paths
    const resolved = trace.resolvedSources as Array<string | null>
    for (const [i, s] of resolved.entries()) if (s?.startsWith(`${PLACEHOLDER}/`)) resolved[i] = decodeOrKeep(s.slice(PLACEHOLDER.length))
    return { trace, text, mapUrl }
  } catch {
    return null
  }
}

/** A percent-encoded path decoded, or as it is when it does not decode. */
function decodeOrKeep(p: string): string {
  try {
    return decodeURIComponent(p)
  } catch {
    return p
  }
}

/** A kept copy's header (`x_edgebox`): the URL path its sources resolve against. */
function keptHeader(text: string): { mapUrl: string } | null {
  try {
    const h = (JSON.parse(text) as { x_edgebox?: { mapUrl?: unknown } }).x_edgebox
    return typeof h?.mapUrl === 'string' ? { mapUrl: h.mapUrl } : null
  } catch {
    return null
  }
}

/**
 * A script's last `sourceMappingURL` annotation: its end is read first
 * (64 KiB); when the last line is longer than that (an inline map), up to
 * the largest inline map allowed is read (base64: 4/3 of maxMapSize).
 */
async function readAnnotation(file: StaticFile, maxMapSize: number): Promise<Annotation> {
  const fh = await open(file.fsPath, fsc.O_RDONLY).catch(() => null)
  if (!fh) return { kind: 'none' }
  try {
    const size = (await fh.stat()).size
    const tail = async (n: number): Promise<string> => {
      const len = Math.min(n, size)
      const buf = Buffer.alloc(len)
      const { bytesRead } = await fh.read(buf, 0, len, size - len)
      return buf.subarray(0, bytesRead).toString('utf8')
    }
    let text = await tail(TAIL_BYTES)
    let last = lastAnnotation(text)
    // no annotation, and the last line may begin before what was read: a long inline map?
    if (last === null && size > TAIL_BYTES && !/[\r\n]/.test(text.trimEnd())) {
      const most = Math.ceil((maxMapSize * 4) / 3) + 1024
      text = await tail(most)
      last = lastAnnotation(text)
      const trimmed = text.trimEnd()
      if (last === null && size > most && !/[\r\n]/.test(trimmed) && /^[A-Za-z0-9+/=_-]+$/.test(trimmed.slice(-1024))) return { kind: 'tooLarge' }
    }
    if (last === null) return { kind: 'none' }
    if (!last.startsWith('data:')) return { kind: 'url', ref: last }
    const m = DATA_JSON.exec(last)
    if (!m) return { kind: 'none' }
    // 3 bytes for each 4 base64 characters (RFC 4648 §4)
    if (Math.floor((m[1]!.length * 3) / 4) > maxMapSize) return { kind: 'tooLarge' }
    return { kind: 'inline', base64: m[1]! }
  } finally {
    await fh.close()
  }
}

/** The URL of the last annotation in a text, or null. */
function lastAnnotation(text: string): string | null {
  let last: string | null = null
  for (const m of text.matchAll(ANNOTATION)) last = m[1]!
  return last
}

/** A file's whole text when it is at most `max` bytes (read from one descriptor), else null. */
async function readWhole(file: string, max: number): Promise<string | null> {
  const fh = await open(file, fsc.O_RDONLY).catch(() => null)
  if (!fh) return null
  try {
    const st = await fh.stat()
    if (!st.isFile() || st.size > max) return null
    return (await fh.readFile()).toString('utf8')
  } finally {
    await fh.close()
  }
}

/** A stack cut to the longest a row keeps, at a line's end. */
function cap(stack: string): string {
  if (stack.length <= MAX_STACK) return stack
  const cut = stack.lastIndexOf('\n', MAX_STACK)
  return stack.slice(0, cut > 0 ? cut : MAX_STACK)
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}

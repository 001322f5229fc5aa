import { realpathSync, statSync } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { z } from 'zod'
import { PreparedResponse, type Context, type Headers } from '../../core/context.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import type { Handler, HandlerModule, ModuleDeps, StaticFile, StaticFiles } from '../../core/types.ts'
import { duration, size } from '../../config/units.ts'
import { evaluatePreconditions, ifRangeMatches } from '../../http/conditional.ts'
import { formatHttpDate } from '../../http/date.ts'
import { contentDisposition } from '../../http/disposition.ts'
import { compileGlob } from '../../http/glob.ts'
import { encodePath } from '../../http/target.ts'
import { chooseEncoding } from '../../http/negotiate.ts'
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange, type ByteRange } from '../../http/range.ts'
import { createPathRule, realOrNull, within } from './access.ts'
import { etagOf, FileCache, type Encoding, type FileEntry } from './files.ts'
import { renderListing } from './listing.ts'
import { createUploads, uploadSchema } from './upload.ts'

/**
 * `static`: serves a directory with exact HTTP semantics (docs/static.md).
 *
 * Request flow: resolve the path to a file entry (memory, or stat + cache,
 * rechecked every second) -> choose the representation (content coding) ->
 * preconditions (RFC 9110 §13.2.2: 412 / 304) -> Range and If-Range
 * (RFC 9110 §14: 206 / 416) -> send from memory or stream from one open
 * descriptor. PUT and DELETE go to uploads (upload.ts) when enabled.
 */

const cacheControlSchema = z.strictObject({
  /** HTML documents: always revalidate, so a deploy is seen at once. */
  html: z.string().default('no-cache'),
  /** Fingerprinted assets (`app.3f9a1c.js`, `index-BxK3a9Qz.js`): cache for a year, never revalidate. */
  fingerprinted: z.string().default('public, max-age=31536000, immutable'),
  /** Everything else. */
  default: z.string().default('public, max-age=300'),
  /** Checked first, in order: `{ match: 'downloads/**', value: 'no-store' }`. */
  rules: z.array(z.strictObject({ match: z.string().min(1), value: z.string() })).default([]),
})

const schema = z.strictObject({
  /** Directory to serve (relative to the configuration file). */
  root: z.string().min(1),
  /** Files tried for a directory request, in order; false to disable. */
  index: z.union([z.array(z.string().min(1)), z.literal(false)]).default(['index.html']),
  /** Single-page-app fallback: unknown paths without a file extension serve this file (true: `/index.html`). */
  spa: z.union([z.boolean(), z.string().startsWith('/')]).default(false),
  /** HTML listing of directories that have no index file. */
  listing: z.boolean().default(false),
  /** Names starting with a dot: `ignore` (404), `deny` (403) or `allow`. `/.well-known/` is always served. */
  dotfiles: z.enum(['ignore', 'deny', 'allow']).default('ignore'),
  /** Symbolic links that lead outside root: refused (`inside`) or followed (`follow`). */
  symlinks: z.enum(['inside', 'follow']).default('inside'),
  cacheControl: cacheControlSchema.prefault({}),
  /** Also send `Expires` (now + max-age) for HTTP/1.0 caches. */
  expires: z.boolean().default(false),
  /** `Content-Disposition: attachment` for these path globs, and for any request with `?download`. */
  download: z.strictObject({ paths: z.array(z.string().min(1)).default([]), query: z.union([z.string().min(1), z.literal(false)]).default('download') }).prefault({}),
  compress: z
    .strictObject({
      /** On-the-fly brotli/gzip for compressible types. */
      enabled: z.boolean().default(true),
      /** Serve `file.br` / `file.gz` siblings when present and not older than the file. */
      precompressed: z.boolean().default(true),
      /** Smaller files are sent as they are. */
      minSize: size().default(1024),
      brotliQuality: z.number().int().min(0).max(11).default(5),
      gzipLevel: z.number().int().min(1).max(9).default(6),
    })
    .prefault({}),
  memoryCache: z
    .strictObject({
      /** Files up to this size are kept in memory (with their compressed forms). */
      maxFileSize: size().default(64 * 1024),
      /** Memory budget for cached files (LRU). */
      maxBytes: size().default(64 * 1024 * 1024),
      /** How long file metadata is trusted before the file is checked again. */
      revalidate: duration().default(1000),
    })
    .prefault({}),
  /** Read size when streaming large files. */
  readChunk: size().default(1024 * 1024),
  upload: uploadSchema.prefault({}),
})

type StaticConfig = z.output<typeof schema>

const FINGERPRINT = /[.-](?=[0-9a-f]*\d)[0-9a-f]{6,}\.[a-z0-9]+$|[.-](?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{8}\.[a-z0-9]+$/
const HAS_EXTENSION = /\.[^/]*$/
const MAX_RANGES = 64
/** Frozen: chooseEncoding keeps its answers for a frozen list. */
const BOTH_ENCODINGS: readonly Encoding[] = Object.freeze(['br', 'gzip'])
/**
 * Brotli's window for on-the-fly compression: 2^19 = 512 KiB (RFC 7932 §9.1),
 * nginx's brotli default. The encoder then holds at most about 512 KiB of a
 * file a client is slow to read, where the default 4 MiB window took 4 MiB
 * before it emitted a byte. Files up to the window compress the same.
 */
const BROTLI_WINDOW_BITS = 19

/**
 * A source map's name (ECMA-426 §11.1: `app.js.map`), or its precompressed
 * sibling (`app.js.map.br`, `app.js.map.gz`): hidden from GET and HEAD when
 * a site keeps its maps for symbolication (`sites[].rum.serveMaps: false`).
 */
const SOURCE_MAP = /\.map(?:\.(?:br|gz))?$/i

/** A file a static route would serve, as found on disk now. */
/** The files of each static route's handler. */
const filesOf = new WeakMap<Handler, StaticFiles>()

/** The files of a handler when it is a static route's, else undefined. */
export function staticFiles(handler: Handler): StaticFiles | undefined {
  return filesOf.get(handler)
}

export const staticModule = {
  kind: 'static',
  schema,
  create(cfg, deps) {
    const root = path.resolve(deps.baseDir, cfg.root)
    let rootReal: string
    try {
      if (!statSync(root).isDirectory()) throw new ConfigError([`${deps.configPath}.root: ${cfg.root} is not a directory`])
      rootReal = realpathSync(root)
    } catch (err) {
      if (err instanceof ConfigError) throw err
      throw new ConfigError([`${deps.configPath}.root: directory ${cfg.root} does not exist`])
    }
    return createStatic(cfg, root, rootReal, deps)
  },
} as const satisfies HandlerModule<typeof schema>

function createStatic(cfg: StaticConfig, root: string, rootReal: string, deps: ModuleDeps): Handler {
  const cache = new FileCache({
    maxFileSize: cfg.memoryCache.maxFileSize,
    maxBytes: cfg.memoryCache.maxBytes,
    revalidateMs: cfg.memoryCache.revalidate,
    precompressed: cfg.compress.precompressed,
    compress: cfg.compress,
  })
  const rules = cfg.cacheControl.rules.map((r) => ({ test: compileGlob(r.match), value: r.value }))
  const downloads = cfg.download.paths.map(compileGlob)
  const downloadQuery = cfg.download.query ? new RegExp(`[?&]${cfg.download.query.replace(/[^\w-]/g, '\\$&')}(?:[=&]|$)`) : null
  const spaPath = cfg.spa === true ? '/index.html' : cfg.spa || null
  // One rule for every method: what GET hides, PUT and DELETE cannot touch.
  const reach = createPathRule({ root, rootReal, dotfiles: cfg.dotfiles, symlinks: cfg.symlinks })
  const uploads = cfg.upload.enabled ? createUploads(cfg.upload, reach, rootReal, cache, deps.configPath, deps.limits) : null
  const methods = uploads ? ['GET', 'HEAD', 'PUT', 'DELETE'] : ['GET', 'HEAD']
  let hideMaps = false

  function cacheControlFor(relPath: string, contentType: string): string {
    for (const r of rules) if (r.test(relPath)) return r.value
    if (contentType.startsWith('text/html')) return cfg.cacheControl.html
    if (FINGERPRINT.test(relPath)) return cfg.cacheControl.fingerprinted
    return cfg.cacheControl.default
  }

  /**
   * Whether a file Edgebox picks itself (an index file, the SPA file) may be
   * served: the link half of the path rule, for names that come from the
   * configuration rather than from the request.
   */
  function reachable(p: string): boolean | Promise<boolean> {
    return cfg.symlinks === 'follow' || realOrNull(p).then((real) => within(real, rootReal))
  }

  function handle(ctx: Context): void | Promise<void> {
    if (ctx.method === 'PUT' || ctx.method === 'DELETE') return uploads!.handle(ctx)
    if (hideMaps && SOURCE_MAP.test(ctx.routePath)) throw httpError('EB_ERR_NOT_FOUND')
    const entry = cache.fresh(ctx.routePath, Date.now())
    if (entry !== undefined) {
      ctx.cache = entry.body ? 'HIT' : 'MISS'
      return serve(ctx, ctx.routePath, entry)
    }
    return resolveAndServe(ctx)
  }

  /**
   * A path with no entry, or whose entry's time is over: the requests for it
   * in flight at that moment share one look at the disk (path rule, stat,
   * cache.load), each answered from what it found. `alone`: a look of its own
   * (a request served again because its file changed while it was opened).
   */
  async function resolveAndServe(ctx: Context, alone = false): Promise<void> {
    ctx.cache = 'MISS'
    const rel = ctx.routePath
    let shared = alone ? undefined : looks.get(rel)
    if (shared === undefined) {
      shared = look(rel)
      if (!alone) {
        const mine = shared
        looks.set(rel, mine)
        const done = () => {
          if (looks.get(rel) === mine) looks.delete(rel)
        }
        mine.then(done, done)
      }
    }
    const found = await shared
    if (found.entry !== undefined) return serve(ctx, rel, found.entry)
    if (found.error !== undefined) throw found.error // a hidden dot name: 404 or 403
    if (found.directory !== undefined) return directory(ctx, rel, found.directory)
    if (spaPath && !HAS_EXTENSION.test(rel)) return spaFallback(ctx)
    throw httpError('EB_ERR_NOT_FOUND')
  }
  const looks = new Map<string, Promise<Look>>()

  /** What a request path is on disk: a file's entry, a directory, nothing, or the path rule's refusal. Never rejects. */
  async function look(rel: string): Promise<Look> {
    try {
      const at = await reach(rel)
      const st = at.visible && at.exists ? await statOrNull(at.fsPath) : null
      if (st?.isFile()) return { entry: await cache.load(rel, at.fsPath, st, Date.now()) }
      return st?.isDirectory() ? { directory: at.fsPath } : {}
    } catch (err) {
      return { error: err }
    }
  }

  async function directory(ctx: Context, rel: string, fsPath: string): Promise<void> {
    if (!rel.endsWith('/')) {
      // `/docs` -> `/docs/`, so relative links in the index resolve (like nginx and Apache).
      // Built from the normalized path: the raw one could start with `//` (another host).
      ctx.send(301, { Location: encodePath(ctx.path) + '/' + ctx.query, 'Content-Type': 'text/plain; charset=utf-8' }, 'Moved Permanently\n')
      return
    }
    if (cfg.index) {
      for (const name of cfg.index) {
        const file = path.join(fsPath, name)
        const st = await statOrNull(file)
        if (st?.isFile() && (await reachable(file))) {
          return serve(ctx, rel, await cache.load(rel, file, st, Date.now()))
        }
      }
    }
    if (cfg.listing) {
      const html = await renderListing(fsPath, ctx.path, cfg.dotfiles === 'allow', ctx.nonce())
      // Its nonce makes each listing unique: never stored by a shared cache, and no validator to claim otherwise.
      ctx.send(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }, html)
      return
    }
    if (spaPath) return spaFallback(ctx)
    throw httpError('EB_ERR_NOT_FOUND')
  }

  async function spaFallback(ctx: Context): Promise<void> {
    // The fallback answers navigations. A WebSocket handshake is never one: a 200
    // with the app's HTML would only confuse the client, so it gets a 404 saying
    // why (a static route takes no upgrades; RFC 9110 §7.8 lets a server ignore
    // Upgrade, which it still does for files that exist).
    if (ctx.req.headers.upgrade !== undefined) throw httpError('EB_ERR_NOT_FOUND', `no WebSocket endpoint at ${ctx.path}`)
    const file = path.join(root, spaPath!)
    const st = await statOrNull(file)
    if (!st?.isFile() || !(await reachable(file))) throw httpError('EB_ERR_NOT_FOUND')
    return serve(ctx, spaPath!, await cache.load(ctx.routePath, file, st, Date.now()))
  }

  /** Headers of a 200 or 206 answer for this representation. */
  function baseHeaders(entry: FileEntry, rel: string, etag: string, vary: boolean): Headers {
    const cc = (entry.cacheControl ??= cacheControlFor(rel, entry.contentType))
    const h: Headers = {
      'Content-Type': entry.contentType,
      ETag: etag,
      'Last-Modified': entry.lastModified,
      'Cache-Control': cc,
      'Accept-Ranges': 'bytes',
    }
    if (vary) h.Vary = 'Accept-Encoding'
    if (cfg.expires) expires(h, cc)
    return h
  }

  /** RFC 9110 §15.4.5: a 304 carries the validators and caching fields a 200 would have carried. */
  function notModifiedHeaders(entry: FileEntry, rel: string, etag: string, vary: boolean): Headers {
    const cc = (entry.cacheControl ??= cacheControlFor(rel, entry.contentType))
    const h: Headers = { ETag: etag, 'Last-Modified': entry.lastModified, 'Cache-Control': cc }
    if (vary) h.Vary = 'Accept-Encoding'
    if (cfg.expires) expires(h, cc)
    return h
  }

  function expires(h: Headers, cc: string): void {
    const m = /(?:^|[,\s])max-age=(\d+)/.exec(cc)
    if (m) h.Expires = formatHttpDate(Date.now() + Number(m[1]) * 1000)
  }

  function serve(ctx: Context, rel: string, entry: FileEntry): void | Promise<void> {
    const h = ctx.req.headers
    const range = ctx.method === 'GET' ? h.range : undefined
    // Representation: a request with Range always gets the identity coding
    // (a range of a compressed stream is useless to the client).
    const dynamic = cfg.compress.enabled && entry.size >= cfg.compress.minSize
    const negotiable = entry.compressible && (dynamic || entry.variants.size > 0)
    let enc: Encoding | 'identity' = 'identity'
    if (negotiable && range === undefined) {
      const available = dynamic ? BOTH_ENCODINGS : [...entry.variants.keys()]
      enc = chooseEncoding(h['accept-encoding'], available) as Encoding | 'identity'
    }
    const etag = cache.tagFor(entry, enc)

    // RFC 9110 §13.2.2: preconditions before anything else.
    const inm = h['if-none-match']
    const ims = h['if-modified-since']
    const im = h['if-match']
    const ius = h['if-unmodified-since']
    if (inm !== undefined || ims !== undefined || im !== undefined || ius !== undefined) {
      // The common revalidation (If-None-Match: <exactly our tag>) needs no parsing.
      const result =
        inm === etag && im === undefined && ius === undefined
          ? 'not-modified'
          : evaluatePreconditions(ctx.method, { ifMatch: im, ifNoneMatch: inm, ifModifiedSince: ims, ifUnmodifiedSince: ius }, { etag, lastModified: entry.lastModifiedMs, exists: true })
      if (result === 'not-modified') {
        // prepared once per representation, unless a field changes per request (Expires)
        const held = enc === 'identity' ? entry : entry.variants.get(enc)
        if (held === undefined || cfg.expires) return ctx.send(304, notModifiedHeaders(entry, rel, etag, negotiable))
        return ctx.sendPrepared((held.notModified ??= new PreparedResponse(304, notModifiedHeaders(entry, rel, etag, negotiable))))
      }
      if (result === 'failed') throw httpError('EB_ERR_PRECONDITION_FAILED', 'the file does not match the request\'s preconditions')
    }
    const download = (downloads.length > 0 && downloads.some((t) => t(rel))) || (downloadQuery !== null && ctx.query !== '' && downloadQuery.test(ctx.query))

    // The whole representation from memory, with no field that changes per request (Expires,
    // Content-Disposition): its head prepared once and kept with it.
    if (range === undefined && !download && !cfg.expires) {
      const held = enc === 'identity' ? entry : entry.variants.get(enc)
      if (held?.body !== undefined) {
        if (held.ok === undefined) {
          const h = baseHeaders(entry, rel, etag, negotiable)
          if (enc !== 'identity') h['Content-Encoding'] = enc
          held.ok = new PreparedResponse(200, h, held.body, held.wire)
        }
        return ctx.sendPrepared(held.ok)
      }
    }
    const headers = baseHeaders(entry, rel, etag, negotiable)
    if (download) headers['Content-Disposition'] = contentDisposition(path.basename(entry.fsPath))

    if (range !== undefined && ifRangeMatches(ctx.header('if-range'), { etag: entry.etag, lastModified: entry.lastModifiedMs })) {
      const r = parseRange(range, entry.size, { maxRanges: MAX_RANGES })
      if (r.kind === 'unsatisfiable') {
        throw httpError('EB_ERR_RANGE_NOT_SATISFIABLE', `the range does not overlap the file's ${entry.size} bytes`, { 'Content-Range': unsatisfiedRange(entry.size) })
      }
      if (r.kind === 'ranges') return sendRanges(ctx, entry, headers, r.ranges)
    }

    if (enc !== 'identity') return sendEncoded(ctx, rel, entry, enc, headers)
    headers['Content-Length'] = entry.size
    if (entry.wire !== undefined) return ctx.send(200, headers, entry.wire, 'latin1')
    if (ctx.isHead) return ctx.send(200, headers)
    return streamFile(ctx, entry, headers, 200, 0, entry.size - 1)
  }

  async function sendEncoded(ctx: Context, rel: string, entry: FileEntry, enc: Encoding, headers: Headers): Promise<void> {
    headers['Content-Encoding'] = enc
    const v = await cache.variant(rel, entry, enc)
    if (v?.wire !== undefined) return ctx.send(200, headers, v.wire, 'latin1')
    if (v?.fsPath) {
      // Length from the descriptor that is read, so they always agree.
      const fh = await open(v.fsPath).catch(() => null)
      const st = await fh?.stat()
      if (fh && st?.isFile()) {
        headers['Content-Length'] = st.size
        ctx.sendFile(200, headers, fh, 0, st.size - 1, cfg.readChunk)
        return
      }
      await fh?.close()
    }
    // Compressed while streaming: length unknown in advance.
    if (ctx.isHead) return ctx.send(200, headers)
    const fh = await openEntry(ctx, entry)
    if (!fh) return
    const z =
      enc === 'br'
        ? zlib.createBrotliCompress({
            params: {
              [zlib.constants.BROTLI_PARAM_QUALITY]: Math.min(cfg.compress.brotliQuality, 5),
              [zlib.constants.BROTLI_PARAM_SIZE_HINT]: entry.size,
              // what a slow reader makes the encoder hold (see BROTLI_WINDOW_BITS)
              [zlib.constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS,
            },
          })
        : zlib.createGzip({ level: cfg.compress.gzipLevel })
    const src = fh.createReadStream({ highWaterMark: cfg.readChunk })
    src.on('error', (err) => z.destroy(err))
    // The response owns the compressor only: when it goes (the client left,
    // an error), pipe() merely unhooks the file, which would keep its
    // descriptor and buffered chunk until garbage collection.
    z.once('close', () => src.destroy())
    ctx.stream(200, headers, src.pipe(z))
  }

  async function sendRanges(ctx: Context, entry: FileEntry, headers: Headers, ranges: ByteRange[]): Promise<void> {
    if (ranges.length === 1) {
      const { start, end } = ranges[0]!
      headers['Content-Range'] = contentRange(start, end, entry.size)
      headers['Content-Length'] = end - start + 1
      if (entry.body) return ctx.send(206, headers, entry.body.subarray(start, end + 1))
      if (ctx.isHead) return ctx.send(206, headers)
      return streamFile(ctx, entry, headers, 206, start, end)
    }
    // RFC 9110 §14.6: multipart/byteranges, each part with its own Content-Range.
    const boundary = `edgebox-${entry.etag.slice(1, -1)}-${ranges.length}`
    const mp = multipartByteranges(ranges, entry.size, entry.contentType, boundary)
    headers['Content-Type'] = `multipart/byteranges; boundary=${boundary}`
    headers['Content-Length'] = mp.length
    if (entry.body) {
      const body = entry.body
      return ctx.send(206, headers, Buffer.concat([...mp.parts.flatMap((p) => [p.head, body.subarray(p.start, p.end + 1)]), mp.tail]))
    }
    if (ctx.isHead) return ctx.send(206, headers)
    const opened = await openEntry(ctx, entry)
    if (!opened) return
    const fh = opened
    const chunk = cfg.readChunk
    async function* parts() {
      try {
        for (const p of mp.parts) {
          yield p.head
          for (let pos = p.start; pos <= p.end; ) {
            const n = Math.min(chunk, p.end - pos + 1)
            const buf = Buffer.allocUnsafe(n)
            const { bytesRead } = await fh.read(buf, 0, n, pos)
            if (bytesRead === 0) throw new Error('file shrank while sending ranges')
            yield bytesRead === n ? buf : buf.subarray(0, bytesRead)
            pos += bytesRead
          }
        }
        yield mp.tail
      } finally {
        await fh.close()
      }
    }
    ctx.stream(206, headers, Readable.from(parts(), { objectMode: false }))
  }

  /**
   * Opens the entry's file. If the file changed since the entry was made,
   * the request is served again from the new version (headers, conditionals
   * and all) rather than mixing one version's headers with another's bytes.
   */
  async function openEntry(ctx: Context, entry: FileEntry): Promise<FileHandle | null> {
    const fh = await cache.openChecked(entry)
    if (fh) return fh
    if (retried.has(ctx)) throw httpError('EB_ERR_INTERNAL', 'the file keeps changing while being served')
    retried.add(ctx)
    cache.invalidate(ctx.routePath)
    await resolveAndServe(ctx, true)
    return null
  }
  const retried = new WeakSet<Context>()

  async function streamFile(ctx: Context, entry: FileEntry, headers: Headers, status: number, start: number, end: number): Promise<void> {
    const fh = await openEntry(ctx, entry)
    if (fh) ctx.sendFile(status, headers, fh, start, end, cfg.readChunk)
  }

  /** The file a GET of `rel` would serve: the same path rule, then a regular file. */
  async function resolveFile(rel: string): Promise<StaticFile | null> {
    let at
    try {
      at = await reach(rel)
    } catch {
      return null // a hidden dot name
    }
    const st = at.visible && at.exists ? await statOrNull(at.fsPath) : null
    return st?.isFile() ? { fsPath: at.fsPath, size: st.size, mtimeMs: st.mtimeMs, etag: etagOf(st) } : null
  }

  const handler: Handler = {
    kind: 'static',
    methods,
    handle,
    close() {
      cache.clear()
    },
  }
  filesOf.set(handler, {
    resolve: resolveFile,
    hideSourceMaps() {
      hideMaps = true
    },
  })
  return handler
}

/** What resolveAndServe's look at the disk found (at most one of these; none: nothing there). */
interface Look {
  readonly entry?: FileEntry
  readonly directory?: string
  readonly error?: unknown
}

async function statOrNull(p: string) {
  try {
    return await stat(p)
  } catch {
    return null
  }
}

import { Transform, type TransformCallback } from 'node:stream'
import zlib from 'node:zlib'
import type { BodyTransform, Context, Headers } from '../core/context.ts'
import type { FilterModule, ResponseFilter } from '../core/types.ts'
import { parseCacheControl } from '../http/cache-control.ts'
import { parseEntityTags } from '../http/conditional.ts'
import { parseCspList, scriptAllowed, type CspPolicy } from '../http/csp.ts'
import { headerKey, headerValue } from '../http/header-map.ts'
import { escapeHtml } from '../http/html.ts'
import { siteRum } from './config.ts'

/**
 * SDK injection (`sites[].rum.inject`, docs/monitoring.md): the HTML a site
 * serves or proxies gets the RUM SDK's script tag,
 * `<script src="/_edgebox/rum/sdk.js" defer data-release=".." ...></script>`,
 * just before its first `</head>`. Done as the response leaves (a response
 * filter and a body transform, core/respond.ts), after any cache: a stored
 * response keeps the origin's bytes, and every answer made from it is
 * injected on the way out.
 *
 * Only a 2xx HTML answer to a request other than HEAD, not a 206, gets it;
 * never one marked `Cache-Control: no-transform` (RFC 9111 §5.2.2.6 and
 * §5.2.1.6, RFC 9110 §7.7), one whose content coding is not gzip, deflate
 * or br, one whose Content-Security-Policy would block the tag, or one with
 * no `</head>` in its first 64 KiB. The body is streamed: at most those
 * first 64 KiB are held while looking, never the whole body.
 */

/** Where the collector serves the SDK's script build on every site with `rum` (rum/collector.ts). */
export const SDK_PATH = '/_edgebox/rum/sdk.js'

/** A `</head>` must start within this many bytes of (decoded) HTML. */
export const HEAD_LIMIT = 64 * 1024

/** Compressed bytes held at most while the decoded HTML is searched (a body that inflates very little). */
const RAW_LIMIT = 1024 * 1024

/** Why an HTML answer was left without the tag. */
export type InjectSkip = 'no-transform' | 'encoding' | 'no-head' | 'csp'

/**
 * What SDK injection did since Edgebox started, over every site: answers
 * that got the tag, and HTML answers left alone, by reason. Read by the
 * collector and the query API; reset only by a restart (not by a reload).
 */
export const rumInjectStats: { injected: number; readonly skipped: Record<InjectSkip, number> } = {
  injected: 0,
  skipped: { 'no-transform': 0, encoding: 0, 'no-head': 0, csp: 0 },
}

/** The content codings a body is decoded, injected and encoded again in; identity needs neither. */
type Coding = 'identity' | 'gzip' | 'deflate' | 'br'

/**
 * The opening of the tag, the same for every answer of a route: its source,
 * `defer` (it runs after the document is parsed and never holds up the
 * page), and `data-*` attributes the SDK starts itself from (client/rum.ts),
 * only those configured, their values HTML-escaped.
 */
export function tagOpening(inject: { readonly release?: string | undefined; readonly env?: string | undefined; readonly sampleRate?: number | undefined }): string {
  let tag = `<script src="${SDK_PATH}" defer`
  if (inject.release !== undefined) tag += ` data-release="${escapeHtml(inject.release)}"`
  if (inject.env !== undefined) tag += ` data-env="${escapeHtml(inject.env)}"`
  if (inject.sampleRate !== undefined) tag += ` data-sample-rate="${escapeHtml(String(inject.sampleRate))}"`
  return tag
}

/** The whole tag, with the response's CSP nonce when it has one. */
function tagBytes(opening: string, nonce: string | undefined): Buffer {
  return Buffer.from(nonce === undefined ? `${opening}></script>` : `${opening} nonce="${escapeHtml(nonce)}"></script>`, 'latin1')
}

const HTML_TYPE = /^text\/html[\t ]*(?:;|$)/i

function isHtml(headers: Readonly<Headers>): boolean {
  const type = headerValue(headers, 'content-type')
  return type !== undefined && HTML_TYPE.test(type)
}

/** The coding to decode and encode the body in, or null for one Edgebox leaves alone (a list of codings, compress, zstd...). */
function codingOf(headers: Readonly<Headers>): Coding | null {
  const value = headerValue(headers, 'content-encoding')
  if (value === undefined) return 'identity'
  const coding = value.trim().toLowerCase()
  if (coding === '' || coding === 'identity') return 'identity'
  // RFC 9110 §8.4.1.3: x-gzip is gzip
  if (coding === 'gzip' || coding === 'x-gzip') return 'gzip'
  if (coding === 'deflate' || coding === 'br') return coding
  return null
}

/** RFC 9111 §5.2.2.6 (the response) and §5.2.1.6 (the request): no-transform forbids changing the content (RFC 9110 §7.7). */
function noTransform(ctx: Context, headers: Readonly<Headers>): boolean {
  if (parseCacheControl(headerValue(headers, 'cache-control')).noTransform) return true
  const asked = ctx.req.headers['cache-control']
  return asked !== undefined && parseCacheControl(asked).noTransform === true
}

function skip(reason: InjectSkip): void {
  rumInjectStats.skipped[reason]++
}

/**
 * RFC 9110 §8.8.1: the injected bytes are not the origin's representation,
 * so its strong validator becomes weak (still good for If-None-Match, which
 * compares weakly, §13.1.2; never for If-Match or If-Range, which compare
 * strongly). The length is known only once the body is out (HTTP/1.1 then
 * sends it chunked), and ranges of it are not served (§14.3: `none`).
 */
function describeInjected(headers: Headers): void {
  for (const key of Object.keys(headers)) {
    const lower = key.toLowerCase()
    if (lower === 'content-length' || lower === 'accept-ranges') delete headers[key]
    else if (lower === 'etag') {
      const tag = String(headers[key])
      if (!tag.startsWith('W/')) headers[key] = `W/${tag}`
    }
  }
  headers['accept-ranges'] = 'none'
}

/**
 * RFC 9110 §15.4.5: a 304 carries the ETag the 200 would have. A client
 * whose If-None-Match names the weak form of the response's strong tag
 * holds the injected page: the 304 names that weak tag too.
 */
function weakenNotModified(ctx: Context, headers: Headers): void {
  const key = headerKey(headers, 'etag')
  if (key === undefined) return
  const tag = String(headers[key])
  if (tag.startsWith('W/')) return
  const asked = ctx.req.headers['if-none-match']
  if (asked === undefined) return
  const list = parseEntityTags(Array.isArray(asked) ? asked.join(', ') : asked)
  if (list !== null && list.tags.includes(`W/${tag}`)) headers[key] = `W/${tag}`
}

/** The response fields a prepared response is checked with: whether the filter may do anything to it. */
function mayApply(status: number, headers: Readonly<Headers>): boolean {
  if (status === 304) {
    const etag = headerValue(headers, 'etag')
    return etag !== undefined && !etag.startsWith('W/')
  }
  return status >= 200 && status < 300 && status !== 206 && isHtml(headers)
}

/** What a route's filter needs: the tag's opening, and the CSP the security headers add when the response has none. */
interface RouteInjection {
  readonly opening: string
  /** The strict preset is on: the tag carries the response's nonce, which the preset's policy allows. */
  readonly strict: boolean
  /** The policies of a `headers.csp` string of the route's (enforced on answers without their own). */
  readonly configured: readonly CspPolicy[]
}

/** The route's response filter: decides per answer, and arms the body transform. */
function injectFilter(route: RouteInjection): ResponseFilter {
  const filter = function rumInject(ctx: Context, headers: Headers): void {
    const status = ctx.status
    if (status === 304) return weakenNotModified(ctx, headers)
    if (status < 200 || status > 299 || status === 206 || ctx.isHead || ctx.transform !== null || !isHtml(headers)) return
    if (noTransform(ctx, headers)) return skip('no-transform')
    const coding = codingOf(headers)
    if (coding === null) return skip('encoding')
    const nonce = route.strict ? ctx.nonce() : undefined
    const own = headerValue(headers, 'content-security-policy')
    const policies = own !== undefined ? parseCspList(own) : route.configured
    if (policies.length > 0 && !scriptAllowed(policies, { origin: ctx.origin, path: SDK_PATH, nonce })) return skip('csp')
    ctx.transform = new Injection(tagBytes(route.opening, nonce), coding)
  }
  return Object.assign(filter, { prepared: { kind: 'selective' as const, applies: mayApply } })
}

/**
 * Where `</head` followed by `>`, `/` or ASCII whitespace starts in `data`
 * (ASCII case-insensitive, as the HTML tokenizer reads an end tag), or -1.
 */
export function findHeadEnd(data: Buffer): number {
  let from = 0
  for (;;) {
    const lt = data.indexOf(0x3c, from) // '<'
    if (lt === -1 || lt + 6 >= data.length) return -1
    if (data[lt + 1] === 0x2f && (data[lt + 2]! | 0x20) === 0x68 && (data[lt + 3]! | 0x20) === 0x65 && (data[lt + 4]! | 0x20) === 0x61 && (data[lt + 5]! | 0x20) === 0x64) {
      const next = data[lt + 6]!
      if (next === 0x3e || next === 0x2f || next === 0x20 || next === 0x09 || next === 0x0a || next === 0x0c || next === 0x0d) return lt
    }
    from = lt + 1
  }
}

/** Bytes kept back from a searched piece: a `</head>` may start in them and end in the next. */
const KEEP = 6
const EMPTY = Buffer.alloc(0)

/** The body transform of one answer: the tag before its `</head>`. */
class Injection implements BodyTransform {
  readonly #tag: Buffer
  readonly #coding: Coding
  constructor(tag: Buffer, coding: Coding) {
    this.#tag = tag
    this.#coding = coding
  }

  /** A complete body in identity coding, at once; a compressed one goes in pieces (decoding and encoding run off the event loop). */
  whole(body: Buffer, headers: Headers): Buffer | null | undefined {
    if (this.#coding !== 'identity') return undefined
    const at = findHeadEnd(body.length > HEAD_LIMIT + KEEP ? body.subarray(0, HEAD_LIMIT + KEEP) : body)
    if (at === -1 || at >= HEAD_LIMIT) {
      skip('no-head')
      return null
    }
    describeInjected(headers)
    rumInjectStats.injected++
    return Buffer.concat([body.subarray(0, at), this.#tag, body.subarray(at)])
  }

  stream(headers: Headers): Transform {
    describeInjected(headers)
    return new InjectStage(this.#tag, this.#coding)
  }
}

type Decoder = zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress
type Encoder = zlib.Gzip | zlib.Deflate | zlib.BrotliCompress

/** A zlib stream (RFC 1950) starts with CM 8 and a header whose 16-bit value is a multiple of 31; anything else sent as deflate is read as raw deflate. */
function zlibHeader(chunk: Buffer): boolean {
  return chunk.length < 2 || ((chunk[0]! & 0x0f) === 8 && ((chunk[0]! << 8) | chunk[1]!) % 31 === 0)
}

function decoderFor(coding: Exclude<Coding, 'identity'>, first: Buffer): Decoder {
  if (coding === 'gzip') return zlib.createGunzip()
  if (coding === 'br') return zlib.createBrotliDecompress()
  return zlibHeader(first) ? zlib.createInflate() : zlib.createInflateRaw()
}

/** Encoding again as the origin did (deflate as RFC 9110 §8.4.1.2 defines it: the zlib format), at a level meant for doing it on every answer. */
function encoderFor(coding: Exclude<Coding, 'identity'>): Encoder {
  if (coding === 'gzip') return zlib.createGzip()
  if (coding === 'deflate') return zlib.createDeflate()
  return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_LGWIN]: 19 } })
}

/**
 * The streamed form. Identity: each piece goes out as it is searched, but
 * the last 6 bytes, which wait for the next piece; the tag goes in where
 * `</head>` starts, and everything after passes straight through.
 * Compressed: the body is decoded and searched, the compressed pieces held
 * meanwhile; once `</head>` is found, the decoded HTML with the tag is
 * encoded again (each piece flushed, so a page the origin streams still
 * streams); if it is not found in the first 64 KiB, or the body cannot be
 * decoded, the held and the following pieces go out exactly as they came.
 */
class InjectStage extends Transform {
  readonly #tag: Buffer
  readonly #coding: Coding
  #state: 'search' | 'injected' | 'untouched' = 'search'
  /** Decoded bytes searched so far, before `#carry`. */
  #searched = 0
  #carry: Buffer = EMPTY
  #decoder: Decoder | null = null
  #encoder: Encoder | null = null
  /** Compressed pieces received while searching, and their size. */
  #raw: Buffer[] = []
  #rawBytes = 0
  /** Decoded bytes searched while the compressed ones are held. */
  #held: Buffer[] = []
  /** The callback of the piece the decoder is working on. */
  #pending: TransformCallback | null = null
  /** The flush callback, once the body has ended. */
  #flushed: TransformCallback | null = null

  constructor(tag: Buffer, coding: Coding) {
    super()
    this.#tag = tag
    this.#coding = coding
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#state === 'untouched') return callback(null, chunk)
    if (this.#coding === 'identity') {
      this.#decoded(chunk)
      return callback()
    }
    if (this.#state === 'search') {
      this.#raw.push(chunk)
      this.#rawBytes += chunk.length
      if (this.#rawBytes > RAW_LIMIT) {
        this.#leave('no-head')
        return callback()
      }
    }
    const decoder = (this.#decoder ??= this.#openDecoder(chunk))
    this.#pending = callback
    decoder.write(chunk, () => this.#written())
  }

  override _flush(callback: TransformCallback): void {
    if (this.#coding === 'identity') {
      if (this.#state === 'search') {
        this.#state = 'untouched'
        skip('no-head')
        if (this.#carry.length > 0) this.push(this.#carry)
      }
      return callback()
    }
    if (this.#state === 'untouched' || this.#decoder === null) {
      if (this.#state === 'search') this.#leave('no-head')
      return callback()
    }
    this.#flushed = callback
    this.#decoder.end()
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#decoder?.destroy()
    this.#encoder?.destroy()
    callback(err)
  }

  #openDecoder(first: Buffer): Decoder {
    const decoder = decoderFor(this.#coding as Exclude<Coding, 'identity'>, first)
    decoder.on('data', (chunk: Buffer) => this.#decoded(chunk))
    decoder.once('end', () => this.#decoderEnded())
    decoder.once('error', (err) => {
      // not decodable while searching: sent as it came; after the tag went in: the body is cut
      if (this.#state === 'search') this.#leave('encoding')
      else if (this.#state === 'injected') this.destroy(err)
    })
    return decoder
  }

  /** The decoder took the piece: the next may come, and what the encoder has goes out now. */
  #written(): void {
    const callback = this.#pending
    this.#pending = null
    if (this.#state === 'injected') this.#encoder?.flush(this.#coding === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH)
    callback?.()
  }

  #decoderEnded(): void {
    if (this.#state === 'search') return this.#leave('no-head')
    if (this.#state === 'injected') this.#encoder!.end()
  }

  /** Decoded HTML (or, in identity coding, the body itself): searched, held, or sent on. */
  #decoded(chunk: Buffer): void {
    if (this.#state === 'untouched') return
    if (this.#state === 'injected') return this.#send(chunk)
    const data = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk])
    const at = findHeadEnd(data)
    if (at !== -1 && this.#searched + at < HEAD_LIMIT) {
      this.#carry = EMPTY
      return this.#inject(data.subarray(0, at), data.subarray(at))
    }
    const keep = Math.min(KEEP, data.length)
    if (this.#searched + data.length - keep >= HEAD_LIMIT) {
      // no `</head>` can start within the limit any more
      if (this.#coding === 'identity') {
        this.#carry = EMPTY
        this.#state = 'untouched'
        skip('no-head')
        this.push(data)
        return
      }
      return this.#leave('no-head')
    }
    const ready = data.subarray(0, data.length - keep)
    this.#carry = Buffer.from(data.subarray(data.length - keep))
    this.#searched += ready.length
    if (this.#coding === 'identity') {
      if (ready.length > 0) this.push(ready)
    } else this.#held.push(ready)
  }

  /** The tag goes in before `after` (which starts with `</head>`). */
  #inject(before: Buffer, after: Buffer): void {
    this.#state = 'injected'
    rumInjectStats.injected++
    if (this.#coding === 'identity') {
      if (before.length > 0) this.push(before)
      this.push(this.#tag)
      this.push(after)
      return
    }
    const encoder = (this.#encoder = encoderFor(this.#coding))
    encoder.on('data', (chunk: Buffer) => this.push(chunk))
    encoder.once('end', () => this.#finish())
    encoder.once('error', (err) => this.destroy(err))
    for (const piece of this.#held) encoder.write(piece)
    this.#held = []
    this.#raw = []
    encoder.write(before)
    encoder.write(this.#tag)
    encoder.write(after)
  }

  #send(chunk: Buffer): void {
    if (this.#coding === 'identity') this.push(chunk)
    else this.#encoder!.write(chunk)
  }

  /** A compressed body left alone: the pieces held go out as they came, and so does the rest. */
  #leave(reason: 'no-head' | 'encoding'): void {
    this.#state = 'untouched'
    skip(reason)
    for (const piece of this.#raw) this.push(piece)
    this.#raw = []
    this.#held = []
    this.#carry = EMPTY
    const decoder = this.#decoder
    this.#decoder = null
    decoder?.removeAllListeners('data')
    decoder?.on('error', ignore)
    decoder?.destroy()
    const pending = this.#pending
    this.#pending = null
    pending?.()
    this.#finish()
  }

  /** Once the body has ended and the last bytes are out: the stage ends. */
  #finish(): void {
    const flushed = this.#flushed
    this.#flushed = null
    flushed?.()
  }
}

function ignore(): void {}

/**
 * `sites[].rum.inject`: the SDK's tag in the HTML answers of the site's
 * routes (not in Edgebox's own pages or the site's 404s). With the strict
 * CSP preset (the route's `headers.csp`, else the site's) the tag carries
 * the response's nonce; a `headers.csp` string is checked like a policy the
 * response brings.
 */
export const rumInjectModule: FilterModule = {
  name: 'rumInject',
  start: () => ({
    route(route, site) {
      const rum = siteRum(site.rum)
      if (route === null || rum === null || rum.inject === false) return null
      const csp = route.headers?.csp !== undefined ? route.headers.csp : site.headers.csp
      return {
        filter: injectFilter({
          opening: tagOpening(rum.inject),
          strict: csp === 'strict',
          configured: typeof csp === 'string' && csp !== 'strict' ? parseCspList(csp) : [],
        }),
      }
    },
  }),
}

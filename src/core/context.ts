import http2 from 'node:http2'
import { read } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import { EdgeboxError } from './errors.ts'
import { headerKey } from '../http/header-map.ts'
import type { ClientView, Forwarding } from './forwarding.ts'
import { randomBytes } from 'node:crypto'
import type { BodySource, Handler, Req, Res, ResponseFilter, RouteStep } from './types.ts'
import type { EndpointTable } from './endpoints.ts'
import type { Authority, RequestTarget } from '../http/target.ts'

/** Before the pipeline has parsed the target (a Context made for a refusal). */
const NO_TARGET: RequestTarget = { form: 'origin', scheme: null, authority: null, rawPath: '/', path: '/', encodedPath: '/', query: '' }

export type Headers = Record<string, string | number | string[]>

/**
 * What a matched route gives the pipeline: its prefix, its handler, and its
 * filter modules' steps and response filters, in the pipeline's order
 * (assembled once at start by `routeChain` in pipeline.ts).
 */
export interface Route {
  readonly prefix: string
  readonly handler: Handler
  /** Phase 8, access control: rate limit, CORS, JSONP, CSRF (each where configured). */
  readonly access: readonly RouteStep[]
  /** Phase 10, once the method is allowed, just before the handler: 103 Early Hints. */
  readonly beforeHandler: readonly RouteStep[]
  /** Phase 11: what runs on every response head of this route. */
  readonly filters: readonly ResponseFilter[]
  /** Index in the configuration, for logs: `sites[0].routes[2]`. */
  readonly id: string
}

/** What every Context shares: response filters, and what happens when a response is done. */
export interface ResponseHooks {
  readonly filters: readonly ResponseFilter[]
  /** Called exactly once per request, when the response is complete or the client has gone (the access log). */
  finished(ctx: Context): void
  /** A streamed response that makes no progress for this long is cut (a client that stopped reading). */
  readonly streamIdleTimeout: number
  /** The one client-address and forwarding service (trustedProxies, clientAddressHeader). */
  readonly forwarding: Forwarding
}

export interface Site {
  readonly id: string
  readonly hosts: readonly string[]
  readonly routes: readonly Route[]
  /** The response filters of answers no route gave (a 404, an Edgebox endpoint): the site's security headers. */
  readonly filters: readonly ResponseFilter[]
  /** Edgebox's own endpoints on this site, under /_edgebox/ (core/endpoints.ts). */
  readonly endpoints: EndpointTable
}

/**
 * Per-request state, created by the pipeline for every request and handed to
 * exactly one handler. It also owns the ways a handler answers (`send`,
 * `stream`, `fail`), so that response filters, HEAD handling, byte counting
 * and connection management happen in one place whatever the protocol.
 */
export class Context {
  readonly req: Req
  readonly res: Res
  readonly start: number
  readonly method: string
  readonly protocol: string
  /** The parsed request target (src/http/target.ts); set once by the pipeline, before anything reads it. */
  target: RequestTarget = NO_TARGET
  /**
   * The authority the request is for: an absolute-form target's, else Host
   * or HTTP/2's `:authority` (RFC 9112 §3.2.2); null when the client named none.
   */
  hostAuthority: Authority | null = null
  /** Host without port, lower case, IPv6 without brackets; '' when the client named none. */
  get host(): string {
    return this.hostAuthority?.host ?? ''
  }
  /** The request target's path as sent (still percent-encoded), without the query: for the access log. */
  get rawPath(): string {
    return this.target.rawPath
  }
  /** The decoded, normalized path (dot segments resolved). Routing and handlers use it. */
  get path(): string {
    return this.target.path
  }
  /** The routed path in the client's own percent-encoding: what goes upstream and into cache keys. */
  get encodedPath(): string {
    return this.target.encodedPath
  }
  /** The query string including its `?`, or ''. */
  get query(): string {
    return this.target.query
  }
  site: Site | null = null
  route: Route | null = null
  /** The path below the route's prefix, always starting with `/`. */
  routePath = '/'
  /** For the access log. */
  status = 0
  bytes = 0
  cache = ''
  /** The upstream that answered (proxy), for the access log. */
  upstream = ''
  error: unknown = undefined
  /** The client sent `Expect: 100-continue` and has not been told to go on yet. */
  expectContinue = false
  /** Extra Server-Timing metrics a handler adds (`, fs;dur=0.2`). */
  timing = ''
  /** Request fields the response varies on besides the handler's own (`Origin` under a CORS policy). */
  vary = ''
  /** CORS headers for this response (an allowed cross-origin request). */
  corsHeaders: Record<string, string> | null = null
  /** Why a cross-origin request got no CORS headers, for the access log. */
  corsRefused = ''
  /** Where the client stands under the route's rate limit (RateLimit-* fields), for the response. */
  rateLimitHeaders: Record<string, string> | null = null
  /** The request was refused by a rate limit (for the access log). */
  rateLimited = false
  /** Why a request was refused as cross-site (CSRF), for the access log. */
  csrfRefused = ''
  /** Cookies Edgebox itself sets on this response (the CSRF token); null: none (no array per request). */
  setCookies: string[] | null = null
  /** A 103 Early Hints response was sent before the final one. */
  earlyHints = false
  /** A CSP nonce for this response's inline code (see nonce()). */
  cspNonce = ''
  /**
   * Bytes a response filter put around the body (JSONP's `/**\/ cb(` and
   * `);`, modules/security/jsonp.ts): every send path writes them, whatever
   * the body, and the filter has already counted them in Content-Length.
   */
  envelope: { readonly prefix: Buffer; readonly suffix: Buffer } | null = null
  private readonly hooks: ResponseHooks
  private done = false

  constructor(req: Req, res: Res, hooks: ResponseHooks, protocol: string, start: number) {
    this.req = req
    this.res = res
    this.hooks = hooks
    this.method = req.method ?? 'GET'
    this.protocol = protocol
    this.start = start
  }

  private clientView: ClientView | undefined

  /** The client as trusted proxies describe it: address, scheme and host (core/forwarding.ts). */
  get client(): ClientView {
    return (this.clientView ??= this.hooks.forwarding.view(this.req, { scheme: this.secure ? 'https' : 'http', authority: this.authority }))
  }

  /** The client's address: the peer's, or through trusted proxies the one they forwarded. */
  get clientAddress(): string {
    return this.client.address
  }

  /** Adds the forwarding fields (X-Forwarded-*, Forwarded) to headers going upstream. */
  addForwardingFields(out: Record<string, string | string[] | undefined>): void {
    this.hooks.forwarding.addUpstreamFields(out, this.client, { scheme: this.secure ? 'https' : 'http', authority: this.authority })
  }

  /**
   * A nonce for inline `<style>`/`<script>` in HTML this response renders
   * itself (a directory listing): the strict Content-Security-Policy then
   * allows exactly those elements, and only in this response.
   */
  nonce(): string {
    return (this.cspNonce ||= randomBytes(16).toString('base64'))
  }

  /** Marks the response as done (once) and runs the finish hook: the access log. */
  private finish(): void {
    if (this.done) return
    this.done = true
    this.hooks.finished(this)
  }

  /** The client has gone: its connection closed, or (HTTP/2) it reset the stream. */
  private clientGone(): boolean {
    const stream = (this.res as { stream?: http2.ServerHttp2Stream }).stream
    if (stream !== undefined) return stream.destroyed || stream.closed
    return this.req.socket?.destroyed === true
  }

  /** Nothing was sent: the client left before the answer (logged as 499, as nginx does). */
  private abandoned(): void {
    this.status = 499
    this.bytes = 0
    this.finish()
  }

  /**
   * The response has closed, complete or not. One the client cut short (a
   * connection closed mid-response, an HTTP/2 RST_STREAM) is logged as 499
   * with the bytes it had taken; one the server cut (an error) keeps its status.
   */
  private closed(): void {
    if (this.error === undefined) {
      const stream = (this.res as { stream?: http2.ServerHttp2Stream }).stream
      const complete = stream !== undefined ? stream.writableFinished : (this.res as ServerResponse).writableFinished
      if (!complete) {
        // HTTP/2: what the stream still held was never sent
        this.bytes = Math.max(0, this.bytes - (stream?.writableLength ?? 0))
        this.status = 499
      }
    }
    this.finish()
  }

  get isHead(): boolean {
    return this.method === 'HEAD'
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name]
    return Array.isArray(v) ? v.join(', ') : v
  }

  /** Whether the request came over TLS. */
  get secure(): boolean {
    return (this.req.socket as { encrypted?: boolean } | null)?.encrypted === true
  }

  /** The scheme the client used: `https` over TLS, or as a trusted proxy in front says. */
  get scheme(): 'http' | 'https' {
    return this.client.scheme
  }

  /** The authority the client addressed, with its port if it gave one (`example.test:8443`, `[::1]:8080`). */
  get authority(): string {
    return this.hostAuthority?.text ?? ''
  }

  /** This request's own origin, as a browser on the same page would send it: `https://example.test:8443`. */
  get origin(): string {
    const c = this.client
    return `${c.scheme}://${c.host}`
  }

  /**
   * Tells a client that sent `Expect: 100-continue` to send its body. Handlers
   * call it (through readBody or directly) only once they have decided to
   * accept the request; a final status sent without it closes the connection
   * instead of waiting for a body that may never come.
   */
  continue(): void {
    if (!this.expectContinue) return
    this.expectContinue = false
    this.res.writeContinue()
  }

  private applyFilters(status: number, headers: Headers): void {
    this.status = status
    const filters = this.route?.filters ?? this.site?.filters ?? this.hooks.filters
    for (let i = 0; i < filters.length; i++) filters[i]!(this, headers)
    if (this.setCookies) {
      // Cookies Edgebox sets itself (the CSRF token) join any the handler or upstream set.
      const key = headerKey(headers, 'set-cookie')
      const current = key === undefined ? [] : ([] as string[]).concat(headers[key] as string | string[])
      if (key !== undefined) delete headers[key]
      headers['set-cookie'] = [...current, ...this.setCookies]
    }
    // RFC 9110 §10.1.1: a final response sent before the announced body was
    // read leaves the connection out of sync; close it (HTTP/1.x only).
    const req = this.req as Req & { complete?: boolean }
    if (!req.complete && requestHasBody(req)) {
      const res = this.res
      if ('shouldKeepAlive' in res) res.shouldKeepAlive = false
      // HTTP/2: end the stream once the response is out, or the client's
      // half stays open (RFC 9113 §8.1 allows RST_STREAM with NO_ERROR).
      else res.once('finish', () => res.stream.close(http2.constants.NGHTTP2_NO_ERROR))
    }
  }

  /**
   * Sends a complete response. HEAD gets the same headers and no body.
   * A `latin1` string body is sent byte for byte (one char per byte): Node
   * then writes head and body in one write call instead of two.
   */
  send(status: number, headers: Headers, body?: Buffer | string, encoding?: 'latin1'): void {
    const res = this.res
    if (this.clientGone()) return this.abandoned()
    if (body !== undefined) {
      const len = typeof body !== 'string' || encoding === 'latin1' ? body.length : Buffer.byteLength(body)
      headers['Content-Length'] = len
      if (!this.isHead) this.bytes = len
    }
    this.applyFilters(status, headers)
    const envelope = this.envelope
    if (envelope && body !== undefined) {
      body = Buffer.concat([envelope.prefix, typeof body === 'string' ? Buffer.from(body, encoding ?? 'utf8') : body, envelope.suffix])
      encoding = undefined
      if (!this.isHead) this.bytes = body.length
    }
    const stream = (res as { stream?: http2.ServerHttp2Stream }).stream
    if (stream !== undefined && !stream.headersSent && !stream.destroyed) {
      // HTTP/2: one call to the stream instead of the compatibility layer's
      // writeHead, setHeader per field and end (the hot path for small answers)
      const fields: http2.OutgoingHttpHeaders = { ':status': status }
      for (const name in headers) fields[name.toLowerCase()] = headers[name]
      const empty = body === undefined || this.isHead
      stream.respond(fields, { endStream: empty })
      if (!empty) stream.end(encoding ? Buffer.from(body as string, encoding) : body)
      // logged when the stream closes: a client may reset it before the answer is out
      stream.once('close', () => this.closed())
      return
    }
    ;(res as ServerResponse).writeHead(status, headers)
    if (body === undefined || this.isHead) res.end()
    else if (encoding) (res as ServerResponse).end(body, encoding)
    else res.end(body)
    // Handed to the kernel whole: done. Still buffered (a large body, a slow
    // client): whether it completes is known when the response closes.
    const socket = (res as ServerResponse).socket
    if (socket && socket.writableLength > 0) res.once('close', () => this.closed())
    else this.finish()
  }

  /**
   * Sends headers, then pipes `source` to the client. If the client goes
   * away, the source is destroyed (its file descriptor closed) at once.
   */
  stream(status: number, headers: Headers, source: Readable): void {
    const res = this.res
    this.applyFilters(status, headers)
    const envelope = this.envelope
    if (envelope) {
      const inner = source
      source = Readable.from(
        (async function* () {
          yield envelope.prefix
          for await (const chunk of inner) yield chunk as Buffer
          yield envelope.suffix
        })(),
        { objectMode: false },
      )
      source.once('close', () => inner.destroy())
    }
    ;(res as ServerResponse).writeHead(status, headers)
    if (this.isHead) {
      source.once('error', () => {}) // a destroyed source may report its own abort
      source.destroy()
      res.end()
      this.finish()
      return
    }
    source.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length
    })
    source.on('error', (err) => {
      this.error = err
      res.destroy()
    })
    this.untilClosed(() => {
      if (!source.destroyed) source.destroy()
    })
    source.pipe(res as NodeJS.WritableStream)
  }

  /**
   * Sends headers, then the chunks `source` pushes, with backpressure: a
   * write the socket cannot take at once pauses the source until 'drain'.
   * A source that fails mid-body cuts the connection (the client must not
   * take a truncated body for a whole one); a client that leaves destroys
   * the source.
   */
  relay(status: number, headers: Headers, source: BodySource): void {
    const res = this.res as ServerResponse
    this.applyFilters(status, headers)
    const envelope = this.envelope
    if (envelope) {
      const inner = source
      source = {
        attach: (sink) =>
          inner.attach({
            data: (c) => sink.data(c),
            end: () => {
              sink.data(envelope.suffix)
              sink.end()
            },
            error: (err) => sink.error(err),
          }),
        resume: () => inner.resume(),
        destroy: (err) => inner.destroy(err),
      }
    }
    res.writeHead(status, headers)
    if (this.isHead) {
      source.destroy()
      res.end()
      this.finish()
      return
    }
    this.untilClosed(() => source.destroy())
    if (envelope) {
      this.bytes += envelope.prefix.length
      res.write(envelope.prefix)
    }
    const resume = () => source.resume()
    source.attach({
      data: (chunk) => {
        this.bytes += chunk.length
        if (res.write(chunk)) return true
        res.once('drain', resume)
        return false
      },
      end: () => res.end(),
      error: (err) => {
        this.error = err
        res.destroy()
      },
    })
  }

  /**
   * Sends headers, then bytes `start..end` (inclusive) of an open file, read
   * in `chunk`-sized pieces with the callback API (less overhead per chunk
   * than a stream) and written with backpressure. The file is closed when the
   * range is sent or the client goes away, whichever comes first.
   */
  sendFile(status: number, headers: Headers, file: FileHandle, start: number, end: number, chunk: number): void {
    const res = this.res
    this.applyFilters(status, headers)
    const envelope = this.envelope
    ;(res as ServerResponse).writeHead(status, headers)
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      file.close().catch(() => {})
    }
    this.untilClosed(close)
    if (this.isHead || end < start) {
      close()
      res.end()
      return
    }
    const fd = file.fd
    // One buffer per response, reused: the next read starts only once the
    // previous chunk has been handed to the kernel (the write callback), which
    // is also the backpressure. A fresh buffer per chunk costs more in GC
    // than the copy itself.
    const buf = Buffer.allocUnsafeSlow(Math.min(chunk, end - start + 1))
    let pos = start
    if (envelope) (res as ServerResponse).write(envelope.prefix)
    const next = (): void => {
      if (closed) return
      const n = Math.min(buf.length, end - pos + 1)
      read(fd, buf, 0, n, pos, (err, got) => {
        if (closed) return
        if (err || got === 0) {
          this.error = err ?? new Error(`file ended early at byte ${pos}`)
          close()
          res.destroy()
          return
        }
        pos += got
        this.bytes += got
        if (pos <= end) {
          ;(res as ServerResponse).write(got === buf.length ? buf : buf.subarray(0, got), written)
        } else {
          close()
          if (envelope) {
            ;(res as ServerResponse).write(buf.subarray(0, got))
            ;(res as ServerResponse).end(envelope.suffix)
          } else (res as ServerResponse).end(buf.subarray(0, got))
        }
      })
    }
    const written = (err?: Error | null): void => {
      if (!err) next()
    }
    next()
  }

  /**
   * For streamed responses: arms the idle timer (a client that stops reading
   * must not hold a file and a connection forever) and runs `cleanup`, then
   * the access log, once the response is complete or the client has gone.
   */
  private untilClosed(cleanup: () => void): void {
    const res = this.res
    const socket = 'shouldKeepAlive' in res ? res.socket : null
    socket?.setTimeout(this.hooks.streamIdleTimeout)
    // No reset afterwards: once the response is finished Node sets the
    // keep-alive timeout on the socket itself (and a reset would clear it).
    res.once('close', () => {
      cleanup()
      this.closed()
    })
  }

  /** Turns any error into a clean response (or, after headers went out, a cut connection). */
  fail(err: unknown): void {
    const res = this.res
    const known = err instanceof EdgeboxError
    if (!known || err.status >= 500) this.error = err
    if (res.headersSent) {
      if (this.clientGone()) this.status = 499
      res.destroy()
      this.finish()
      return
    }
    const status = known ? err.status : 500
    const message = known ? err.message : 'Internal Server Error'
    const headers: Headers = {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
      ...(known ? err.headers : {}),
    }
    this.send(status, headers, status === 304 ? undefined : `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`)
  }
}

/**
 * Whether the request carries a body. HTTP/1.1: Content-Length or
 * Transfer-Encoding (RFC 9112 §6.1). HTTP/2: the HEADERS frame did not end
 * the stream (RFC 9113 §8.1); Content-Length is optional there.
 */
export function requestHasBody(req: Req): boolean {
  const h = req.headers
  if (h['content-length'] !== undefined) return h['content-length'] !== '0'
  if (h['transfer-encoding'] !== undefined) return true
  return 'stream' in req && !req.stream.endAfterHeaders
}

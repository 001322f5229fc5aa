import type { FileHandle } from 'node:fs/promises'
import type { Readable, Transform } from 'node:stream'
import { randomBytes } from 'node:crypto'
import type { ClientView, Forwarding } from './forwarding.ts'
import type { BodySource, Identity, Req, Res, ResponseFilter } from './types.ts'
import type { Route, Site } from './route.ts'
import type { Authority, RequestTarget } from '../http/target.ts'
import { sendComplete, sendError, sendFileRange, sendPrepared, sendRelay, sendStream, type PreparedResponse } from './respond.ts'

export { PreparedResponse } from './respond.ts'

/** Before the pipeline has parsed the target (a Context made for a refusal). */
const NO_TARGET: RequestTarget = { form: 'origin', scheme: null, authority: null, rawPath: '/', path: '/', encodedPath: '/', query: '' }

export type Headers = Record<string, string | number | string[]>

/**
 * A change a response filter makes to a body, whichever way the handler
 * sends it (`Context.transform`). Both methods run once the filters have
 * run and before the head is written, so they may still change `headers`
 * (Content-Length, ETag).
 */
export interface BodyTransform {
  /**
   * A complete body (`send`, a prepared response): the bytes to send
   * instead (Content-Length, where the head still has one, becomes their
   * length), null to send the body as it is, or undefined to send it in
   * pieces through `stream` (work that should not block, such as
   * recompressing).
   */
  whole(body: Buffer, headers: Headers): Buffer | null | undefined
  /**
   * A body sent in pieces (a stream, a relay, a file range): the stream its
   * chunks go through on their way to the client, or null to send them as
   * they are. The caller owns it: it is destroyed when the client goes.
   */
  stream(headers: Headers): Transform | null
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

/**
 * Per-request state, created by the pipeline for every request and handed to
 * exactly one handler: the target, the authority, the client as trusted
 * proxies describe it, the route, and what the access log reports. Its
 * answering methods (`send`, `stream`, `relay`, `sendFile`, `fail`) are thin:
 * response filters, HEAD, byte counting, idle timers and 499s are in
 * respond.ts, in one place whatever the protocol.
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
  /** Who the request comes from, once a sign-on gate knew them (src/auth/); null: nobody signed in, or no gate. */
  identity: Identity | null = null
  /** What the sign-on gate decided (`allow rule 0`, `deny rule 2`, `login`, `unauthenticated`), for the access log. */
  auth = ''
  /** The signed-in subject (`sub`), for the access log. */
  user = ''
  /** The page-view id of an HTML answer on a site with `rum` (src/rum/page-view.ts), for the access log. */
  pageView = ''
  /** Cookies Edgebox itself sets on this response (the CSRF token); null: none (no array per request). */
  setCookies: string[] | null = null
  /** A 103 Early Hints response was sent before the final one. */
  earlyHints = false
  /** A CSP nonce for this response's inline code (see nonce()). */
  cspNonce = ''
  /**
   * What a response filter does to this response's body on its way out
   * (JSONP's envelope, modules/security/jsonp.ts; the RUM SDK's script tag,
   * rum/inject.ts): every send path hands the body through it (respond.ts).
   * null, the common case: the body goes out as the handler gave it.
   */
  transform: BodyTransform | null = null
  /** Shared with every request of this configuration; respond.ts runs its filters and its finish hook. */
  readonly hooks: ResponseHooks
  /** The finish hook (the access log) has run; set only by respond.ts. */
  done = false

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
    // without trusted proxies (the common case) the peer, with no view built: the access log asks on every request
    const forwarding = this.hooks.forwarding
    return this.clientView?.address ?? (forwarding.trusting ? this.client.address : forwarding.peer(this.req))
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

  /**
   * The request announced a body that has not been read to its end: a final
   * response now leaves an HTTP/1.x connection out of sync (RFC 9110 §10.1.1).
   */
  get bodyUnread(): boolean {
    const req = this.req as Req & { complete?: boolean }
    return !req.complete && requestHasBody(req)
  }

  /**
   * Sends a complete response. HEAD gets the same headers and no body.
   * A `latin1` string body is sent byte for byte (one char per byte): Node
   * then writes head and body in one write call instead of two.
   */
  send(status: number, headers: Headers, body?: Buffer | string, encoding?: 'latin1'): void {
    sendComplete(this, status, headers, body, encoding)
  }

  /**
   * Sends a response prepared once (a static file's representation, a
   * stored response): the route's constant filters are applied to it once,
   * and per response only `values` (one per name in its `varying`) and the
   * filters' per-response fields are set (respond.ts sendPrepared).
   */
  sendPrepared(prepared: PreparedResponse, values?: readonly string[]): void {
    sendPrepared(this, prepared, values)
  }

  /**
   * Sends headers, then pipes `source` to the client. If the client goes
   * away, the source is destroyed (its file descriptor closed) at once.
   */
  stream(status: number, headers: Headers, source: Readable): void {
    sendStream(this, status, headers, source)
  }

  /**
   * Sends headers, then the chunks `source` pushes, with backpressure. A
   * source that fails mid-body cuts the connection; a client that leaves
   * destroys the source.
   */
  relay(status: number, headers: Headers, source: BodySource): void {
    sendRelay(this, status, headers, source)
  }

  /**
   * Sends headers, then bytes `start..end` (inclusive) of an open file in
   * `chunk`-sized reads, with backpressure. The file is closed when the
   * range is sent or the client goes away.
   */
  sendFile(status: number, headers: Headers, file: FileHandle, start: number, end: number, chunk: number): void {
    sendFileRange(this, status, headers, file, start, end, chunk)
  }

  /** Turns any error into a clean response (or, after headers went out, a cut connection). */
  fail(err: unknown): void {
    sendError(this, err)
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

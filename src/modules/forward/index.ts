import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'
import { Agent, errors as undiciErrors } from 'undici'
import { requestBody } from '../../core/body.ts'
import { requestHasBody, type Context, type Headers as ResponseHeaders } from '../../core/context.ts'
import { httpError, type EdgeboxError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Handler } from '../../core/types.ts'
import type { EdgeboxConfig } from '../../config/schema.ts'
import { Exchange } from '../proxy/exchange.ts'
import { relayInterim } from '../proxy/interim.ts'
import { withoutHopByHop } from '../../http/freshness.ts'
import { createAccess, PROXY_AUTHENTICATE } from './access.ts'
import { connectTunnel } from './connect.ts'
import { answerAndClose } from '../../core/raw-socket.ts'
import { rawAnswer } from '../../http/raw-answer.ts'

/**
 * Forward proxy mode (docs/forward-proxy.md), opt-in with `forwardProxy.enabled`.
 *
 * - absolute-form requests (`GET http://host/path`) for hosts that are not
 *   one of our sites (the rule is in pipeline.ts, phase 3) come to `handle`:
 *   access check, then the request is sent to that origin through one undici
 *   Agent (keep-alive pools per origin), bodies streamed both ways, hop-by-hop
 *   fields and Proxy-Authorization removed, `Via` added both ways, the
 *   origin's 1xx interim responses passed on (../proxy/interim.ts);
 * - CONNECT requests come to `connect`: access check, allowed port and host,
 *   then a raw TCP tunnel (connect.ts).
 *
 * Access (access.ts): an allowed client address, or a valid Basic credential;
 * otherwise 407 (credentials configured) or 403.
 */

export type ForwardProxyConfig = EdgeboxConfig['forwardProxy']

export function createForwardProxy(cfg: ForwardProxyConfig, log: Logger): Handler {
  const access = createAccess(cfg)
  const ports = new Set(cfg.connectPorts)
  const agent = new Agent({
    connectTimeout: cfg.timeouts.connect,
    headersTimeout: cfg.timeouts.idle,
    bodyTimeout: cfg.timeouts.idle,
    keepAliveTimeout: 4_000,
    connections: 64,
  })
  const tunnels = new Set<Duplex>()

  async function handle(ctx: Context): Promise<void> {
    const verdict = access.check(ctx.clientAddress, ctx.header('proxy-authorization'))
    if (verdict !== 'allowed') return refuseRequest(ctx, verdict)
    // The pipeline's one parse of the target: the allow list, the connection and the log all read it.
    const authority = ctx.hostAuthority
    if (ctx.target.form !== 'absolute' || authority === null) throw httpError('EB_ERR_BAD_REQUEST', 'the request target is not an absolute URI')
    if (!access.hostAllowed(authority.host)) throw httpError('EB_ERR_FORBIDDEN', `${authority.host} is not an allowed destination`)
    const origin = `${ctx.target.scheme}://${authority.text}`
    ctx.upstream = origin

    const req = ctx.req
    const hasBody = requestHasBody(req)
    const headers = withoutHopByHop(req.headers) as Record<string, string | string[] | undefined>
    for (const name of Object.keys(headers)) if (name.charCodeAt(0) === 58 /* : */) delete headers[name]
    delete headers.expect // answered here (100-continue)
    headers.host = authority.text // the URI's authority (RFC 9112 §3.2.2)
    headers.via = via(req.headers.via, ctx.protocol.startsWith('h2') ? '2' : ctx.protocol.slice(5))
    if (hasBody) ctx.continue()
    const exchange = Exchange.start(agent, { origin, method: ctx.method as 'GET', path: ctx.encodedPath + ctx.query, headers: headers as Record<string, string | string[]>, body: hasBody ? requestBody(req) : null })
    // RFC 9110 §15.2: the origin's 1xx (103 Early Hints, 102) go to the client before the final response, as on proxy routes.
    exchange.onInterim = (status, fields) => relayInterim(ctx, status, fields)
    const res = ctx.res
    res.once('close', () => {
      if (!res.writableFinished) exchange.abandon()
    })
    let head
    try {
      head = await exchange.head
    } catch (err) {
      if (exchange.wasAbandoned) throw httpError('EB_ERR_CLIENT_CLOSED')
      throw originError(err, origin, cfg)
    }
    const out = withoutHopByHop(head.headers) as Record<string, string | string[] | undefined>
    out.via = via(head.headers.via, '1.1')
    ctx.relay(head.status, out as ResponseHeaders, head.body)
  }

  function connect(ctx: Context, socket: Duplex, head: Buffer): void {
    const target = ctx.hostAuthority as { host: string; port: number } | null
    const refuse = (status: number, message: string, fields: Record<string, string> = {}) => {
      ctx.status = status
      answerAndClose(socket, rawAnswer(status, fields, `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`))
    }
    const verdict = access.check(ctx.clientAddress, ctx.header('proxy-authorization'))
    if (verdict === 'authenticate') return refuse(407, 'proxy credentials missing or wrong', { 'Proxy-Authenticate': PROXY_AUTHENTICATE })
    if (verdict === 'forbidden') return refuse(403, 'this client may not use the proxy')
    if (!target) return refuse(400, 'CONNECT needs a host:port target')
    if (!ports.has(target.port)) return refuse(403, `tunnels to port ${target.port} are not allowed`)
    if (!access.hostAllowed(target.host)) return refuse(403, `${target.host} is not an allowed destination`)
    ctx.upstream = ctx.authority
    tunnels.add(socket)
    const upstream = connectTunnel({
      client: socket,
      head,
      host: target.host,
      port: target.port,
      connectTimeout: cfg.timeouts.connect,
      idleTimeout: cfg.timeouts.idle,
      onAnswer(status) {
        ctx.status = status
      },
      onDone(status, detail) {
        tunnels.delete(socket)
        tunnels.delete(upstream)
        if (status >= 500) log.debug({ target: ctx.upstream, status, detail }, 'CONNECT failed')
      },
    })
    tunnels.add(upstream)
  }

  return {
    kind: 'forwardProxy',
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    handle,
    connect,
    async close() {
      for (const s of tunnels) s.destroy()
      tunnels.clear()
      await agent.close().catch(() => agent.destroy())
    },
  }
}

/** 407 with a challenge (the client may authenticate) or 403. */
function refuseRequest(ctx: Context, verdict: 'authenticate' | 'forbidden'): void {
  if (verdict === 'forbidden') throw httpError('EB_ERR_FORBIDDEN', 'this client may not use the proxy')
  const body = '407 Proxy Authentication Required: proxy credentials missing or wrong\n'
  ctx.send(
    407,
    { 'Proxy-Authenticate': PROXY_AUTHENTICATE, 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' },
    body,
  )
}

/** Adds this hop to a Via field (RFC 9110 §7.6.3). */
function via(incoming: string | string[] | undefined, version: string): string {
  const prev = Array.isArray(incoming) ? incoming.join(', ') : incoming
  return prev ? `${prev}, ${version} edgebox` : `${version} edgebox`
}

/** Says which step failed, with the status a gateway answers (RFC 9110 §15.6.3, §15.6.5). */
function originError(err: unknown, origin: string, cfg: ForwardProxyConfig): EdgeboxError {
  const e = err as NodeJS.ErrnoException
  if (e instanceof undiciErrors.ConnectTimeoutError) return httpError('EB_ERR_GATEWAY_TIMEOUT', `${origin} did not accept the connection within ${cfg.timeouts.connect} ms`)
  if (e instanceof undiciErrors.HeadersTimeoutError) return httpError('EB_ERR_GATEWAY_TIMEOUT', `${origin} did not answer within ${cfg.timeouts.idle} ms`)
  if (e.code === 'ECONNREFUSED') return httpError('EB_ERR_BAD_GATEWAY', `${origin} refused the connection`)
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return httpError('EB_ERR_BAD_GATEWAY', `${origin}: the name does not resolve`)
  if (e instanceof undiciErrors.HTTPParserError) return httpError('EB_ERR_BAD_GATEWAY', `${origin} sent a malformed response`)
  if (e instanceof undiciErrors.SocketError || e.code === 'ECONNRESET' || e.code === 'EPIPE') return httpError('EB_ERR_BAD_GATEWAY', `${origin} closed the connection before answering`)
  return httpError('EB_ERR_BAD_GATEWAY', `${origin} failed: ${e.message}`)
}

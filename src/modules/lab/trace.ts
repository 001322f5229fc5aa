import { PassThrough } from 'node:stream'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { Handler } from '../../core/types.ts'
import type { WireEvent, WireTrace } from '../../core/wire-trace.ts'

/**
 * `lab: { demo: 'trace' }`: the wire trace (core/wire-trace.ts) as a stream
 * of server-sent events, for the sign-on lab page (lab/www/lab/sso.html):
 *
 *   GET <prefix>events   text/event-stream, one `data:` event per answer on a site with `trace`
 *   GET <prefix>sites    {"running": true} when the sign-on demo's sites run (`sso`)
 *
 * Only answers made while the page listens are sent; values in them are
 * already shortened. A comment every 15 seconds keeps proxies from cutting
 * the stream.
 */
export function createTraceDemo(prefix: string, trace: WireTrace, ssoSites: boolean): Handler {
  return {
    kind: 'lab',
    methods: ['GET', 'HEAD'],
    handle(ctx: Context) {
      // whether the sign-on demo's sites run (only on a loopback listener), for the lab page's note
      if (ctx.path === `${prefix}sites`) return void ctx.send(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify({ running: ssoSites }))
      if (ctx.path !== `${prefix}events`) throw httpError('EB_ERR_NOT_FOUND', `the trace demo has ${prefix}events and ${prefix}sites`)
      const out = new PassThrough()
      out.write('retry: 2000\n\n')
      const stop = trace.subscribe((e: WireEvent) => {
        if (!out.destroyed) out.write(`data: ${JSON.stringify(e)}\n\n`)
      })
      const keepAlive = setInterval(() => out.write(': keep-alive\n\n'), 15_000)
      keepAlive.unref()
      out.once('close', () => {
        stop()
        clearInterval(keepAlive)
      })
      ctx.stream(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }, out)
    },
  }
}

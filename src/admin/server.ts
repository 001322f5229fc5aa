import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { EdgeboxConfig } from '../config/schema.ts'
import { redactSecrets } from '../config/redact.ts'
import type { Logger } from '../core/log.ts'
import { adminAccess } from './access.ts'

/**
 * The admin listener (docs/admin.md): an HTTP server of its own, on a
 * loopback address unless a token is set, never one of the sites'
 * listeners. Every request passes `adminAccess` first; then the admin API
 * answers JSON under `/api/v1/`:
 *
 *   GET /api/v1/config     the configuration in force, secrets redacted (as `edgebox config --print`)
 *
 * A path it does not have is a 404, a method a path does not take a 405
 * with `Allow`; every answer is `Cache-Control: no-store`.
 */

export interface AdminOptions {
  readonly host: string
  readonly port: number
  readonly token?: string | undefined
  /** The configuration in force now (it changes with reloads). */
  readonly config: () => EdgeboxConfig
  readonly log: Logger
}

export interface AdminListener {
  /** `http://127.0.0.1:8082/`, with the port bound. */
  readonly url: string
  readonly port: number
  close(): Promise<void>
}

interface Route {
  readonly methods: readonly string[]
  answer(): unknown
}

function send(res: http.ServerResponse, method: string, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers })
  res.end(method === 'HEAD' ? undefined : text)
}

export async function startAdmin(opts: AdminOptions): Promise<AdminListener> {
  let port = opts.port
  const routes: Readonly<Record<string, Route>> = {
    '/api/v1/config': { methods: ['GET', 'HEAD'], answer: () => ({ config: redactSecrets(opts.config()) }) },
  }
  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    const method = req.method ?? 'GET'
    try {
      const verdict = adminAccess({ method, headers: req.headers, peer: req.socket.remoteAddress ?? '' }, { port, token: opts.token })
      if (!verdict.ok) return send(res, method, verdict.status, { error: verdict.message }, verdict.headers)
      const path = (req.url ?? '/').split('?')[0]!
      const route = routes[path]
      if (!route) return send(res, method, 404, { error: `no ${path} here (the admin API is under /api/v1/)` })
      if (!route.methods.includes(method)) return send(res, method, 405, { error: `${path} takes ${route.methods.join(', ')}, not ${method}` }, { allow: route.methods.join(', ') })
      send(res, method, 200, route.answer())
    } catch (err) {
      opts.log.error({ err }, 'the admin API failed to answer')
      if (!res.headersSent) send(res, method, 500, { error: 'the admin API failed to answer (see the log)' })
      else res.destroy()
    }
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  port = (server.address() as AddressInfo).port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `http://${host}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      }),
  }
}

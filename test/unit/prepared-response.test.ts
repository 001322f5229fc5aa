import { after, test } from 'node:test'
import { h2Answer } from '../helpers/h2-answer.ts'
import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Context, PreparedResponse, type ResponseHooks } from '../../src/core/context.ts'
import { createForwarding } from '../../src/core/forwarding.ts'
import type { ResponseFilter } from '../../src/core/types.ts'
import { H2Request, H2Response } from '../../src/server/h2-exchange.ts'

/**
 * core/respond.ts sendPrepared: a response made once and sent many times,
 * with a route's filters as they declare themselves (ResponseFilter.prepared),
 * over real sockets, HTTP/1.1 and h2c.
 */

const PROTOCOLS = ['http/1.1', 'h2c'] as const
type Protocol = (typeof PROTOCOLS)[number]

interface Answer {
  status: number
  /** Response fields in the order received, names as sent (HTTP/1.1) or lower case (h2), without Date. */
  fields: [string, string][]
  body: string
}

interface Harness {
  /** One request on a fresh connection; `answer` gets its Context. */
  request(method: string, answer: (ctx: Context) => void): Promise<Answer>
  /** What the finish hook (the access log) saw: status and bytes of each response. */
  logged: string[]
  close(): Promise<void>
}

const harnesses: Harness[] = []
after(async () => {
  for (const h of harnesses) await h.close()
})

async function harness(protocol: Protocol, filters: ResponseFilter[]): Promise<Harness> {
  const logged: string[] = []
  const hooks: ResponseHooks = {
    filters,
    finished: (ctx) => logged.push(`${ctx.status} ${ctx.bytes}`),
    streamIdleTimeout: 10_000,
    forwarding: createForwarding({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }),
  }
  let answer: (ctx: Context) => void = () => {}
  let server: http.Server | http2.Http2Server
  if (protocol === 'http/1.1') {
    server = http.createServer((req, res) => answer(new Context(req, res, hooks, 'http/1.1', performance.now())))
  } else {
    const h2 = http2.createServer()
    h2.on('stream', (stream, headers, _flags, raw) => {
      stream.on('error', () => {})
      answer(new Context(new H2Request(stream, headers, raw as string[], stream.session!.socket as never), new H2Response(stream), hooks, 'h2', performance.now()))
    })
    server = h2
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const h: Harness = {
    logged,
    request(method, a) {
      answer = a
      return protocol === 'http/1.1' ? h1(port, method) : h2c(port, method)
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
  harnesses.push(h)
  return h
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = []
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() !== 'date') out.push([raw[i]!, raw[i + 1]!])
  return out
}

function h1(port: number, method: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method, agent: false }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, fields: pairs(res.rawHeaders).filter(([n]) => n !== 'Connection' && n !== 'Keep-Alive'), body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function h2c(port: number, method: string): Promise<Answer> {
  const a = await h2Answer(`http://127.0.0.1:${port}`, {}, '/', {}, method)
  return { status: a.status, fields: pairs(a.raw).filter(([n]) => n !== ':status'), body: a.body }
}

/** A filter declared constant: counts its runs, adds one field. */
function constantFilter(runs: { n: number }): ResponseFilter {
  return Object.assign<ResponseFilter, object>(
    (ctx, headers) => {
      runs.n++
      if (ctx.status !== 304) headers['x-constant'] = ctx.secure ? 'tls' : 'plain'
    },
    { prepared: { kind: 'constant' } },
  )
}

/** A field filter: one field whose value is new on every response. */
function fieldFilter(): ResponseFilter {
  let n = 0
  const value = () => String(++n)
  return Object.assign<ResponseFilter, object>((ctx, headers) => void (headers['X-Seq'] = value()), { prepared: { kind: 'field', name: 'X-Seq', value } })
}

const lower = (fields: [string, string][]) => fields.map(([n, v]) => [n.toLowerCase(), v])

for (const protocol of PROTOCOLS) {
  test(`over ${protocol}: a constant filter runs once for every response of a prepared response; per-response values, field filters and fieldless filters every time`, async () => {
    const runs = { n: 0 }
    const fieldless: string[] = []
    const closing = Object.assign<ResponseFilter, object>(
      (ctx, headers) => {
        assert.ok(Object.isFrozen(headers), 'given no fields')
        fieldless.push(ctx.method)
      },
      { prepared: { kind: 'fieldless' } },
    )
    const h = await harness(protocol, [fieldFilter(), constantFilter(runs), closing])
    const p = new PreparedResponse(200, { 'Content-Type': 'text/plain', 'X-Var': 'made once', ETag: '"a"' }, Buffer.from('h\u00e9llo', 'latin1'), 'h\u00e9llo', ['X-Var'])
    for (const [i, method] of ['GET', 'GET', 'HEAD'].entries()) {
      const r = await h.request(method, (ctx) => ctx.sendPrepared(p, [`value ${i}`]))
      assert.equal(r.status, 200)
      const expected: [string, string][] = [
        ['Content-Type', 'text/plain'],
        ['X-Var', `value ${i}`],
        ['ETag', '"a"'],
        ['Content-Length', '5'],
        ['X-Seq', String(i + 1)],
        ['x-constant', 'plain'],
      ]
      // the order of the fields is the per-response way's: the handler's, Content-Length, then each filter's
      assert.deepEqual(r.fields, protocol === 'h2c' ? lower(expected) : expected)
      assert.equal(r.body, method === 'HEAD' ? '' : 'h\u00e9llo', 'the bytes as they are')
    }
    assert.equal(runs.n, 1, 'the constant filter ran once')
    assert.deepEqual(fieldless, ['GET', 'GET', 'HEAD'])
    await waitFor(() => h.logged.length === 3)
    assert.deepEqual(h.logged, ['200 5', '200 5', '200 0'])
  })

  test(`over ${protocol}: a filter that declares nothing makes every response of the route go the per-response way, with every filter`, async () => {
    const runs = { n: 0 }
    let each = 0
    const undeclared: ResponseFilter = (_ctx, headers) => {
      headers['x-each'] = String(++each)
      headers['x-saw-constant'] = String(headers['x-constant'])
    }
    const h = await harness(protocol, [constantFilter(runs), undeclared])
    const p = new PreparedResponse(200, { 'content-type': 'text/plain' }, Buffer.from('abc'), 'abc')
    for (let i = 1; i <= 2; i++) {
      const r = await h.request('GET', (ctx) => ctx.sendPrepared(p))
      assert.deepEqual(lower(r.fields), [
        ['content-type', 'text/plain'],
        ['content-length', '3'],
        ['x-constant', 'plain'],
        ['x-each', String(i)],
        ['x-saw-constant', 'plain'],
      ])
      assert.equal(r.body, 'abc')
    }
    assert.equal(runs.n, 2, 'every filter ran on every response')
  })

  test(`over ${protocol}: a per-response field given no value is sent empty, and the field filters' values stay in their places`, async () => {
    const h = await harness(protocol, [fieldFilter()])
    const p = new PreparedResponse(200, { 'x-var': 'made once' }, Buffer.from('x'), 'x', ['x-var'])
    const r = await h.request('GET', (ctx) => ctx.sendPrepared(p))
    assert.deepEqual(lower(r.fields), [
      ['x-var', ''],
      ['content-length', '1'],
      ['x-seq', '1'],
    ])
  })

  test(`over ${protocol}: cookies Edgebox sets itself take a prepared response the per-response way; a 304 has no body`, async () => {
    const runs = { n: 0 }
    const h = await harness(protocol, [constantFilter(runs)])
    const p = new PreparedResponse(200, { 'content-type': 'text/plain' }, Buffer.from('abc'), 'abc')
    const withCookie = await h.request('GET', (ctx) => {
      ctx.setCookies = ['t=1; Path=/']
      ctx.sendPrepared(p)
    })
    assert.deepEqual(lower(withCookie.fields), [
      ['content-type', 'text/plain'],
      ['content-length', '3'],
      ['x-constant', 'plain'],
      ['set-cookie', 't=1; Path=/'],
    ])
    const plain = await h.request('GET', (ctx) => ctx.sendPrepared(p))
    assert.deepEqual(lower(plain.fields), [
      ['content-type', 'text/plain'],
      ['content-length', '3'],
      ['x-constant', 'plain'],
    ])
    const nm = new PreparedResponse(304, { ETag: '"a"' })
    const r = await h.request('GET', (ctx) => ctx.sendPrepared(nm))
    assert.equal(r.status, 304)
    assert.deepEqual(lower(r.fields), [['etag', '"a"']])
    assert.equal(r.body, '')
    await waitFor(() => h.logged.length === 3)
    assert.deepEqual(h.logged, ['200 3', '200 3', '304 0'])
  })
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(cond(), 'in time')
}

import { z } from 'zod'
import type { Context } from '../../core/context.ts'
import type { DnsAnswerer, Handler, HandlerModule } from '../../core/types.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import { readSmall } from '../../core/body.ts'
import { questionOf, readMessage, typeName, writeQuery, FLAG, type WireRecord } from '../../dns/message.ts'
import { isLoopback } from '../../http/address.ts'
import { toText } from '../../dns/names.ts'
import { rdataText } from '../../dns/present.ts'

/**
 * `doh`: DNS over HTTPS (RFC 8484) on a route, answered by the
 * configuration's `dns` (its zones, and its resolver for the networks the
 * resolver allows, judged by the client address Edgebox sees through its
 * trusted proxies: DoH is never an open resolver either).
 *
 *   { path: '/dns-query', doh: {} }
 *
 * - `GET ?dns=<base64url message>` and `POST` with `Content-Type:
 *   application/dns-message`: the answer as `application/dns-message`, with
 *   `Cache-Control: max-age` the smallest TTL of its records (RFC 8484 §5.1).
 * - `GET ?name=&type=` (or `Accept: application/dns-json`): the JSON form
 *   that curl and `fetch` read (the format of the public DoH services' JSON
 *   APIs): `Status`, the flags, `Question`, `Answer`, `Authority`.
 *
 * Over HTTP nothing is truncated: the answer may be up to 65,535 bytes.
 */
const schema = z.strictObject({
  /** Largest DNS message accepted in a POST body. */
  maxMessageSize: z.number().int().min(12).max(65535).default(65535),
})

const MESSAGE = 'application/dns-message'
const JSON_TYPE = 'application/dns-json'

export const dohModule = {
  kind: 'doh',
  schema,
  create(cfg, deps) {
    if (!deps.dns) throw new ConfigError([`${deps.configPath}: a DNS-over-HTTPS route answers with the configuration's dns section; add one (dns: { zones, resolver })`])
    const dns: DnsAnswerer = deps.dns
    return {
      kind: 'doh',
      methods: ['GET', 'HEAD', 'POST'],
      async handle(ctx: Context) {
        const params = new URLSearchParams(ctx.query.startsWith('?') ? ctx.query.slice(1) : ctx.query)
        const accept = ctx.header('accept') ?? ''
        if (ctx.method !== 'POST' && (params.has('name') || (accept.includes(JSON_TYPE) && !params.has('dns')))) return json(ctx, dns, params)
        let msg: Buffer
        if (ctx.method === 'POST') {
          const type = ctx.header('content-type') ?? ''
          if (!/^application\/dns-message\s*(?:;|$)/i.test(type)) throw httpError('EB_ERR_UNSUPPORTED_MEDIA_TYPE', `a DoH POST carries a DNS message (Content-Type: ${MESSAGE}), not ${type ? JSON.stringify(type) : 'an untyped body'}`)
          msg = await readSmall(ctx, deps.limits, cfg.maxMessageSize)
        } else {
          const b64 = params.get('dns')
          if (b64 === null) throw httpError('EB_ERR_BAD_REQUEST', 'a DoH GET needs ?dns= (a DNS message in base64url, RFC 8484 §4.1) or ?name= (the JSON form)')
          if (!/^[A-Za-z0-9_-]*={0,2}$/.test(b64)) throw httpError('EB_ERR_BAD_REQUEST', '?dns= is not base64url (RFC 4648 §5: A-Z a-z 0-9 - _, no padding)')
          msg = Buffer.from(b64, 'base64url')
        }
        const o = await dns.answer(msg, 'tcp', ctx.client.address)
        if (!o.reply) throw httpError('EB_ERR_BAD_REQUEST', `not a DNS query: ${o.why ?? 'unreadable'}`)
        const m = readMessage(o.reply)
        ctx.send(200, { 'Content-Type': MESSAGE, 'Cache-Control': cacheControl(m ? [...m.answer, ...m.authority] : [], ctx.method === 'POST') }, o.reply)
      },
    } satisfies Handler
  },
} as const satisfies HandlerModule<typeof schema>

/** RFC 8484 §5.1: fresh for at most the smallest TTL of the answer's records; nothing to go by (REFUSED, SERVFAIL): not stored. */
function cacheControl(records: readonly WireRecord[], post: boolean): string {
  if (records.length === 0) return 'no-store'
  const min = Math.min(...records.map((r) => r.ttl))
  // a POST's answer is not reused by HTTP caches without a Content-Location (RFC 9110 §9.3.3); say so for the browser's cache too
  return post ? `private, max-age=${min}` : `max-age=${min}`
}

async function json(ctx: Context, dns: DnsAnswerer, params: URLSearchParams): Promise<void> {
  const nameText = params.get('name')
  if (!nameText) throw httpError('EB_ERR_BAD_REQUEST', 'the JSON form needs ?name= (and ?type=, default A)')
  const q = questionOf(nameText, params.get('type') ?? 'A')
  if ('problem' in q) throw httpError('EB_ERR_BAD_REQUEST', q.problem)
  const { labels, type } = q
  const o = await dns.answer(writeQuery(0, labels, type, { rd: true, udpSize: 0 }), 'tcp', ctx.client.address, isLoopback(ctx.client.address))
  const m = o.reply ? readMessage(o.reply) : null
  if (!m) throw httpError('EB_ERR_INTERNAL', 'the DNS answer could not be read')
  const rr = (r: WireRecord) => ({ name: toText(r.owner), type: r.type, TTL: r.ttl, data: rdataText(r) })
  const body = {
    Status: m.rcode,
    TC: (m.flags & FLAG.TC) !== 0,
    RD: (m.flags & FLAG.RD) !== 0,
    RA: (m.flags & FLAG.RA) !== 0,
    AD: (m.flags & FLAG.AD) !== 0,
    CD: (m.flags & FLAG.CD) !== 0,
    Question: [{ name: toText(labels), type }],
    ...(m.answer.length ? { Answer: m.answer.map(rr) } : {}),
    ...(m.authority.length ? { Authority: m.authority.map(rr) } : {}),
    // how the answer was found (cache or network, each step), for clients on this machine: the lab page shows it
    ...(isLoopback(ctx.client.address) && o.path ? { Explain: o.path } : {}),
    Comment: `${typeName(type)} ${toText(labels)}: ${['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'][m.rcode] ?? `rcode ${m.rcode}`}${m.rcode === 0 && m.answer.length === 0 ? ' (no records of this type)' : ''}`,
  }
  ctx.send(200, { 'Content-Type': `${JSON_TYPE}; charset=utf-8`, 'Cache-Control': cacheControl([...m.answer, ...m.authority], false) }, JSON.stringify(body) + '\n')
}

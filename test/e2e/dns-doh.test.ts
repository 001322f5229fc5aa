import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { startServer, request, PROTOCOLS, type TestServer } from '../helpers/server.ts'
import { decode, query } from '../helpers/dns.ts'

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dns')
let s: TestServer

before(async () => {
  s = await startServer(
    {
      sites: [{ routes: [{ path: '/dns-query', doh: {} }, { path: '/', redirect: { to: 'https://example.test/' } }] }],
      dns: { listen: { host: '127.0.0.1', port: 0 }, zones: [{ origin: 'example.test', file: 'example.test.zone' }] },
    },
    fixtures,
  )
})
after(() => s.close())

for (const protocol of PROTOCOLS) {
  test(`${protocol}: GET ?dns= (base64url, no padding) answers application/dns-message, fresh for the smallest TTL`, async () => {
    const msg = query('www.example.test', 'A', { id: 0 })
    const r = await request(protocol, `${s.url}/dns-query?dns=${msg.toString('base64url')}`, { headers: { accept: 'application/dns-message' } })
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/dns-message')
    assert.equal(r.headers['cache-control'], 'max-age=60')
    const p = decode(r.body)
    assert.equal(p.rcode, 'NOERROR')
    assert.deepEqual(p.answers.map((a) => a.data), ['192.0.2.1', '192.0.2.2'])
    // nothing is truncated over HTTP: the 3 long TXT records (over 512 bytes) come whole
    const big = await request(protocol, `${s.url}/dns-query?dns=${query('big.example.test', 'TXT', { id: 0 }).toString('base64url')}`)
    const b = decode(big.body)
    assert.equal(b.flag_tc, false)
    assert.equal(b.answers.length, 3)
  })

  test(`${protocol}: POST application/dns-message; a negative answer is fresh for the SOA's negative TTL`, async () => {
    const r = await request(protocol, `${s.url}/dns-query`, { method: 'POST', headers: { 'content-type': 'application/dns-message' }, body: query('nope.example.test', 'A', { id: 0 }) })
    assert.equal(r.status, 200)
    assert.equal(r.headers['cache-control'], 'private, max-age=300')
    assert.equal(decode(r.body).rcode, 'NXDOMAIN')
  })

  test(`${protocol}: the JSON form: ?name=&type=`, async () => {
    const r = await request(protocol, `${s.url}/dns-query?name=example.test&type=MX`)
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/dns-json; charset=utf-8')
    const j = JSON.parse(r.text)
    assert.equal(j.Status, 0)
    assert.deepEqual(j.Question, [{ name: 'example.test.', type: 15 }])
    assert.deepEqual(j.Answer, [{ name: 'example.test.', type: 15, TTL: 3600, data: '10 mail.example.test.' }])
    const txt = JSON.parse((await request(protocol, `${s.url}/dns-query?name=txt.example.test&type=TXT`)).text)
    assert.deepEqual(txt.Answer[0].data, '"v=spf1 -all"')
    const refused = JSON.parse((await request(protocol, `${s.url}/dns-query?name=example.net`)).text)
    assert.equal(refused.Status, 5)
  })

  test(`${protocol}: bad requests name the problem`, async () => {
    const noParam = await request(protocol, `${s.url}/dns-query`)
    assert.equal(noParam.status, 400)
    assert.match(noParam.text, /needs \?dns=/)
    const notB64 = await request(protocol, `${s.url}/dns-query?dns=***`)
    assert.equal(notB64.status, 400)
    assert.match(notB64.text, /not base64url/)
    const notDns = await request(protocol, `${s.url}/dns-query?dns=AAAA`)
    assert.equal(notDns.status, 400)
    assert.match(notDns.text, /not a DNS query/)
    const wrongType = await request(protocol, `${s.url}/dns-query`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
    assert.equal(wrongType.status, 415)
    const badName = await request(protocol, `${s.url}/dns-query?name=a..b`)
    assert.equal(badName.status, 400)
    const badType = await request(protocol, `${s.url}/dns-query?name=example.test&type=BOGUS`)
    assert.equal(badType.status, 400)
    assert.match(badType.text, /\?type= is a record type/)
    const put = await request(protocol, `${s.url}/dns-query`, { method: 'PUT', body: 'x' })
    assert.equal(put.status, 405)
    // and the route still answers the next good request
    const good = await request(protocol, `${s.url}/dns-query?name=www.example.test`)
    assert.equal(good.status, 200)
    assert.equal(JSON.parse(good.text).Status, 0)
  })
}

test('a doh route without a dns section is a configuration error naming the route', async () => {
  await assert.rejects(startServer({ sites: [{ routes: [{ path: '/dns-query', doh: {} }] }] }), (err: { issues: string[] }) => {
    assert.deepEqual(err.issues, ["sites[0].routes[0].doh: a DNS-over-HTTPS route answers with the configuration's dns section; add one (dns: { zones, resolver })"])
    return true
  })
})

test('recursion over DoH follows the resolver\'s allow list, judged on the client address: REFUSED to others', async () => {
  const closed = await startServer({
    sites: [{ routes: [{ path: '/dns-query', doh: {} }] }],
    dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['10.0.0.0/8'], forward: ['127.0.0.1:9'] } },
  })
  try {
    const r = await request('http/1.1', `${closed.url}/dns-query?name=www.example.net`)
    const j = JSON.parse(r.text)
    assert.equal(j.Status, 5)
    assert.equal(j.RA, false)
  } finally {
    await closed.close()
  }
})

test('a resolver that forwards over DNS over HTTPS: the answers come through the DoH route; a bad forwarder is named', async () => {
  const forwarder = await startServer({
    sites: [{ routes: [{ path: '/', redirect: { to: 'https://example.test/' } }] }],
    dns: { listen: { host: '127.0.0.1', port: 0 }, resolver: { allow: ['127.0.0.0/8'], forward: [new URL('/dns-query', s.url).href] } },
  })
  try {
    const { udp } = await import('../helpers/dns.ts')
    const r = await udp(forwarder.box.dns!.port, query('www.example.test', 'A'))
    assert.equal(r.rcode, 'NOERROR')
    assert.equal(r.flag_ra, true)
    assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.1', '192.0.2.2'])
    const nx = await udp(forwarder.box.dns!.port, query('nope.example.test', 'A'))
    assert.equal(nx.rcode, 'NXDOMAIN')
    // a bad forwarder is a configuration error naming it
    await assert.rejects(startServer({ sites: [{ routes: [{ path: '/', redirect: { to: 'https://x.test/' } }] }], dns: { listen: { port: 0 }, resolver: { allow: ['127.0.0.0/8'], forward: ['dns.example'] } } }), /dns\.resolver\.forward\[0\]: is an address with an optional port .* or a DNS-over-HTTPS URL/)
  } finally {
    await forwarder.close()
  }
})

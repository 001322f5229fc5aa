import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, test } from 'node:test'
import { shortenCookie, shortenQuery } from '../../src/core/wire-trace.ts'
import { PROTOCOLS, request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * The wire trace: answers on a site with `trace` reach a lab page's event
 * stream, with every value shortened; other sites publish nothing.
 */

let box: TestServer

before(async () => {
  box = await startServer({
    sites: [
      { hosts: ['traced.localhost'], trace: true, routes: [{ path: '/', redirect: { to: '/next?code=abcdefghijkl&state=zz', status: 302 } }] },
      { hosts: ['quiet.localhost'], routes: [{ path: '/', redirect: { to: '/elsewhere', status: 302 } }] },
      { default: true, routes: [{ path: '/lab/demo/trace/', lab: { demo: 'trace', sso: true } }] },
    ],
  })
})

after(() => box?.close())

test('values are shortened to six characters; short ones and names stay', () => {
  assert.equal(shortenQuery('/cb?code=abcdefghijkl&state=xy&flag'), '/cb?code=abcdef…&state=xy&flag')
  assert.equal(shortenQuery('/plain'), '/plain')
  // a fragment (response_mode=fragment carries the code there) and a parameter without a value are shortened too
  assert.equal(shortenQuery('/cb#code=abcdefghijkl&state=x'), '/cb#code=a…')
  assert.equal(shortenQuery('/cb?abcdefghijklmnop&x=1'), '/cb?abcdef…&x=1')
  assert.equal(shortenCookie('edgebox-session=AbCdEfGhIjKlMnOp; Path=/; HttpOnly; SameSite=Lax'), 'edgebox-session=AbCdEf…; Path=/; HttpOnly; SameSite=Lax')
})

test('an answer on a traced site reaches the event stream; one on another site does not', async () => {
  const events: string[] = []
  const req = http.get(`${box.url}lab/demo/trace/events`)
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  const got = new Promise<void>((resolve) => {
    res.on('data', (c: Buffer) => {
      for (const line of String(c).split('\n')) if (line.startsWith('data: ')) events.push(line.slice(6))
      if (events.length > 0) resolve()
    })
  })
  // the stream is subscribed once its first bytes arrived; then one quiet and one traced answer
  await new Promise<void>((resolve) => res.once('data', () => resolve()))
  // (fetch may not set Host: a plain request does)
  await request(PROTOCOLS[0], `${box.url}x`, { headers: { host: 'quiet.localhost' } })
  await request(PROTOCOLS[0], `${box.url}start?token=secret-value-here`, { headers: { host: 'traced.localhost' } })
  await got
  req.destroy()
  assert.equal(events.length, 1)
  const e = JSON.parse(events[0]!) as Record<string, unknown>
  assert.equal(e.host, 'traced.localhost')
  assert.equal(e.method, 'GET')
  assert.equal(e.status, 302)
  assert.equal(e.target, '/start?token=secret…')
  assert.equal(e.location, '/next?code=abcdef…&state=zz')
  assert.deepEqual(e.cookies, [])
})

test('the trace demo says whether the sign-on demo sites run', async () => {
  const res = await fetch(`${box.url}lab/demo/trace/sites`)
  assert.deepEqual(await res.json(), { running: true })
})

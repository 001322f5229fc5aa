import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request, startServer, type TestServer } from '../helpers/server.ts'

/**
 * The `account` lab demo (src/modules/lab/account.ts), the attacker page's
 * victim, on a route with `csrf: { token: true }` as in the default
 * configuration: its session cookie, its endpoints, and what it refuses.
 */

let srv: TestServer
const P = '/lab/account/'

before(async () => {
  srv = await startServer({ sites: [{ routes: [{ path: P, lab: { demo: 'account' }, csrf: { token: true } }] }] })
})
after(() => srv.close())

const url = (p: string) => new URL(P + p, srv.url).href
const origin = () => new URL(srv.url).origin

/** Signs in: the account page's cookies (session and CSRF token) as a Cookie header, and the token. */
async function signIn(): Promise<{ cookie: string; token: string }> {
  const r = await request('http/1.1', url(''))
  assert.equal(r.status, 200)
  const set = ([] as string[]).concat(r.headers['set-cookie'] ?? [])
  const session = set.find((c) => c.startsWith('edgebox_lab_session='))
  assert.ok(session, set.join(' | '))
  assert.match(session!, /; Path=\/lab\/account\/; HttpOnly; SameSite=Lax$/)
  const csrf = set.find((c) => c.startsWith('edgebox_csrf='))!
  const pairs = [session!, csrf].map((c) => c.split(';')[0]!)
  return { cookie: pairs.join('; '), token: pairs[1]!.slice('edgebox_csrf='.length) }
}

test('a signed-in page transfers with its token; the state shows it; a form gets 303 back to the page', async () => {
  const { cookie, token } = await signIn()
  const before = JSON.parse((await request('http/1.1', url('state'), { headers: { cookie } })).text) as { balance: number; signedIn: boolean }
  assert.equal(before.signedIn, true)
  const json = await request('http/1.1', url('transfer'), { method: 'POST', headers: { cookie, origin: origin(), 'x-csrf-token': token, 'content-type': 'application/json' }, body: JSON.stringify({ to: 'bob', amount: 12 }) })
  assert.equal(json.status, 200, json.text)
  const after1 = JSON.parse(json.text) as { balance: number; transfers: Array<{ to: string; amount: number; origin: string }> }
  assert.equal(after1.balance, before.balance - 12)
  assert.deepEqual([after1.transfers[0]!.to, after1.transfers[0]!.amount, after1.transfers[0]!.origin], ['bob', 12, origin()])
  const form = await request('http/1.1', url('transfer'), { method: 'POST', headers: { cookie, origin: origin(), 'x-csrf-token': token, 'content-type': 'application/x-www-form-urlencoded' }, body: 'to=carol&amount=3' })
  assert.equal(form.status, 303)
  assert.equal(form.headers.location, P)
  const reset = await request('http/1.1', url('reset'), { method: 'POST', headers: { cookie, origin: origin(), 'x-csrf-token': token } })
  assert.equal(JSON.parse(reset.text).balance, 1000)
})

test('a forged cross-site form with the session cookie is refused by the CSRF check, and nothing moves', async () => {
  const { cookie } = await signIn()
  const balance = () => request('http/1.1', url('state')).then((r) => JSON.parse(r.text).balance as number)
  const before = await balance()
  const r = await request('http/1.1', url('transfer'), {
    method: 'POST',
    headers: { cookie, origin: 'http://127.0.0.1:1', 'sec-fetch-site': 'same-site', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'to=attacker&amount=100',
  })
  assert.equal(r.status, 403)
  assert.equal(await balance(), before)
})

test('bad input: no session 401, bad fields 400, a wrong type 415, wrong methods 405 with Allow, unknown paths 404', async () => {
  const { cookie, token } = await signIn()
  const post = (path: string, body: string, type = 'application/x-www-form-urlencoded', withCookie = true) =>
    request('http/1.1', url(path), { method: 'POST', headers: { ...(withCookie ? { cookie } : { cookie: `edgebox_csrf=${token}` }), origin: origin(), 'x-csrf-token': token, 'content-type': type }, body })
  const anonymous = await post('transfer', 'to=bob&amount=1', undefined, false)
  assert.equal(anonymous.status, 401)
  assert.match(anonymous.text, /not signed in/)
  assert.match((await post('transfer', 'to=<script>&amount=1')).text, /to: 1 to 32 letters/)
  assert.equal((await post('transfer', 'to=bob&amount=1.5')).status, 400)
  assert.match((await post('transfer', 'to=bob&amount=5000')).text, /amount: a whole number from 1 to 1000/)
  assert.equal((await post('transfer', 'to=bob&amount=1')).status, 303)
  assert.match((await post('transfer', 'to=bob&amount=1000')).text, /amount: 1000 is more than the balance of 999/)
  const wrongType = await post('transfer', 'to=bob&amount=1', 'text/plain')
  assert.equal(wrongType.status, 415)
  assert.match(wrongType.text, /application\/x-www-form-urlencoded/)
  assert.equal((await post('transfer', '{', 'application/json')).status, 400)
  const get = await request('http/1.1', url('transfer'))
  assert.equal(get.status, 405)
  assert.equal(get.headers.allow, 'POST')
  assert.equal((await post('state', '')).headers.allow, 'GET, HEAD')
  assert.equal((await request('http/1.1', url('nope'))).status, 404)
  assert.equal((await request('http/1.1', url('search?q=' + 'x'.repeat(501)))).status, 400)
  // the good request after all that is still served
  assert.equal((await post('transfer', 'to=bob&amount=1')).status, 303)
})

test('the search page reflects q unescaped (the hole the strict CSP defuses) and escaped, side by side', async () => {
  const r = await request('http/1.1', url('search?q=%3Cb%3Ehi%3C%2Fb%3E'))
  assert.equal(r.status, 200)
  assert.match(r.text, /Results for: <b>hi<\/b>/)
  assert.match(r.text, /<code>&lt;b&gt;hi&lt;\/b&gt;<\/code>/)
  assert.equal(r.headers['cache-control'], 'no-store')
})

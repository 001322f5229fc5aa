import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freePort } from '../helpers/pebble.ts'
import { Browser, signInAs, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * Several identity providers on one Edgebox: the chooser page where a route
 * allows more than one, and a route that allows only one of them.
 */

let work: TestProvider
let partners: TestProvider
let box: TestServer
let app: http.Server
let dir: string

before(async () => {
  app = http.createServer((req, res) => res.end(JSON.stringify({ user: req.headers['x-auth-request-user'] ?? null })))
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  const upstream = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  // two providers: each its own callback path (RFC 9700 §4.4.2)
  const client = (name: string) => ({ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: [`${origin}/_edgebox/auth/callback/${name}`], post_logout_redirect_uris: [`${origin}/_edgebox/auth/signed-out`] })
  work = await startTestProvider({ accounts: { ann: { email: 'ann@work.example' } }, clients: [client('work')] })
  partners = await startTestProvider({ accounts: { pat: { email: 'pat@partner.example' } }, clients: [client('partners')] })
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-providers-'))
  const provider = (issuer: string, label: string) => ({ issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests', label })
  box = await startServer({
    listen: [{ host: '127.0.0.1', port }],
    dataDir: dir,
    auth: { providers: { work: provider(work.issuer, 'Work account'), partners: provider(partners.issuer, 'Partner <portal>') } },
    sites: [
      {
        routes: [
          { path: '/', proxy: { upstreams: [upstream] }, auth: true },
          { path: '/internal/', proxy: { upstreams: [upstream] }, auth: { providers: ['work'] } },
        ],
      },
    ],
  })
})

after(async () => {
  await box?.close()
  await work?.close()
  await partners?.close()
  app?.close()
  rmSync(dir, { recursive: true, force: true })
})

test('a route with two providers sends a browser to the chooser, which lists both by label', async () => {
  const browser = new Browser()
  const first = await browser.fetch(`${box.url}docs?a=1`)
  assert.equal(first.status, 302)
  assert.equal(first.headers.get('location'), '/_edgebox/auth/login?rd=%2Fdocs%3Fa%3D1')
  const chooser = await browser.fetch(`${box.url}_edgebox/auth/login?rd=%2Fdocs%3Fa%3D1`)
  assert.equal(chooser.status, 200)
  const html = await chooser.text()
  assert.match(html, /<a href="\/_edgebox\/auth\/login\?provider=work&amp;rd=%2Fdocs%3Fa%3D1">Work account<\/a>/)
  // labels are text, escaped
  assert.match(html, />Partner &lt;portal&gt;<\/a>/)
})

test('choosing a provider signs in with it and returns to the page', async () => {
  const browser = new Browser()
  const landed = await browser.navigate(`${box.url}_edgebox/auth/login?provider=partners&rd=%2Fdocs%3Fa%3D1`, signInAs('pat'))
  assert.equal(landed.url, `${box.url}docs?a=1`)
  assert.deepEqual(JSON.parse(landed.text), { user: 'pat' })
  assert.ok(browser.hops.some((h) => h.url.startsWith(partners.issuer)))
  assert.ok(!browser.hops.some((h) => h.url.startsWith(work.issuer)))
})

test('a route that allows one provider does not take a session of another: it goes straight to its own', async () => {
  const browser = new Browser()
  await browser.navigate(`${box.url}_edgebox/auth/login?provider=partners&rd=%2F`, signInAs('pat'))
  const res = await browser.fetch(`${box.url}internal/report`)
  assert.equal(res.status, 302)
  assert.ok(res.headers.get('location')!.startsWith(`${work.issuer}/auth?`))
  // and the chooser, asked for that route, offers only that provider: it starts the login at once
  const chooser = await browser.fetch(`${box.url}_edgebox/auth/login?rd=%2Finternal%2Freport`)
  assert.equal(chooser.status, 302)
  assert.ok(chooser.headers.get('location')!.startsWith(`${work.issuer}/auth?`))
})

test('a provider name the route does not allow is refused with 400', async () => {
  const res = await new Browser().fetch(`${box.url}_edgebox/auth/login?provider=partners&rd=%2Finternal%2F`)
  assert.equal(res.status, 400)
  assert.match(await res.text(), /there is no provider "partners" for \/internal\//)
})

test('a configuration naming an unknown provider is refused with its path', async () => {
  await assert.rejects(
    startServer({ dataDir: dir, auth: { providers: { work: { issuer: work.issuer, clientId: 'x' } } }, sites: [{ routes: [{ path: '/', static: { root: dir }, auth: { providers: ['nope'] } }] }] }),
    /sites\[0\]\.routes\[0\]\.auth\.providers\[0\]: there is no provider "nope" in auth\.providers \(work\)/,
  )
  await assert.rejects(startServer({ dataDir: dir, sites: [{ routes: [{ path: '/', static: { root: dir }, auth: true }] }] }), /sites\[0\]\.routes\[0\]\.auth: a sign-on gate needs the top-level auth\.providers/)
  await assert.rejects(startServer({ dataDir: dir, auth: { providers: { plain: { issuer: 'http://idp.example.com', clientId: 'x' } } }, sites: [{ routes: [{ path: '/', static: { root: dir } }] }] }), /auth\.providers\.plain\.issuer: an issuer is https/)
})

test('a provider on a name under .localhost is reached on loopback, as a browser reaches it (RFC 6761 §6.3)', async () => {
  const port = await freePort()
  const local = await startTestProvider({
    host: 'id.localhost',
    accounts: { lou: { email: 'lou@example.com' } },
    clients: [{ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: [`http://127.0.0.1:${port}/_edgebox/auth/callback`] }],
  })
  const other = await startServer({
    listen: [{ host: '127.0.0.1', port }],
    dataDir: path.join(dir, 'localhost'),
    auth: { providers: { local: { issuer: local.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests' } } },
    sites: [{ routes: [{ path: '/', static: { root: dir }, auth: true }] }],
  })
  try {
    assert.match(local.issuer, /^http:\/\/id\.localhost:\d+$/)
    const browser = new Browser()
    const first = await browser.fetch(`${other.url}x`)
    assert.equal(first.status, 302)
    assert.ok(first.headers.get('location')!.startsWith(`${local.issuer}/auth?`))
    await browser.navigate(`${other.url}x`, signInAs('lou'))
    const who = await browser.fetch(`${other.url}_edgebox/auth/userinfo`)
    assert.equal(((await who.json()) as { email: string }).email, 'lou@example.com')
  } finally {
    await other.close()
    await local.close()
  }
})

test("with several providers each has its own callback path, and a code on another provider's path is refused (mix-up, RFC 9700 §4.4.2)", async () => {
  const browser = new Browser()
  const first = await browser.fetch(`${box.url}_edgebox/auth/login?provider=work&rd=%2F`)
  const authorize = new URL(first.headers.get('location')!)
  assert.equal(authorize.searchParams.get('redirect_uri'), `${box.url}_edgebox/auth/callback/work`)
  // the state of a login started with work, brought back on partners' path: refused before any code is exchanged
  const res = await browser.fetch(`${box.url}_edgebox/auth/callback/partners?code=whatever&state=${authorize.searchParams.get('state')}`)
  assert.equal(res.status, 400)
  assert.match(await res.text(), /came back from another identity provider/)
  assert.equal((await browser.fetch(`${box.url}_edgebox/auth/callback`)).status, 404)
})

test('a client that starts logins in a loop keeps at most 20 under way: its oldest goes, not other users\' logins', async () => {
  const browser = new Browser()
  const start = async () => new URL((await browser.fetch(`${box.url}_edgebox/auth/login?provider=work&rd=%2F`)).headers.get('location')!).searchParams.get('state')!
  const first = await start()
  for (let i = 0; i < 20; i++) await start()
  const res = await browser.fetch(`${box.url}_edgebox/auth/callback/work?code=x&state=${first}`)
  assert.equal(res.status, 400)
  assert.match(await res.text(), /expired or was already used/)
  // the newest of them is still there: it completes
  const landed = await browser.navigate(`${box.url}_edgebox/auth/login?provider=work&rd=%2Fok`, signInAs('ann'))
  assert.equal(landed.url, `${box.url}ok`)
})

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { freePort } from '../helpers/pebble.ts'
import { Browser, signInAs, startTestProvider, type TestProvider } from '../helpers/oidc.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * The forward-auth endpoint used by a real nginx (Debian's nginx-light,
 * `auth_request`) in front of a small app: nginx asks Edgebox about each
 * request, copies the identity fields upstream, and hands a 401 to
 * Edgebox's login. The nginx configuration is the one docs/sso.md shows.
 */

let idp: TestProvider
let box: TestServer
let app: http.Server
let nginx: ChildProcess
let dir: string
let site: string
const seen: Array<Record<string, string | string[] | undefined>> = []

/** docs/sso.md's nginx snippet, with this test's ports. */
export function nginxConf(opts: { listen: number; edgebox: string; app: string; dir: string }): string {
  return `daemon off;
master_process off;
pid ${opts.dir}/nginx.pid;
error_log ${opts.dir}/error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path ${opts.dir}/body;
  proxy_temp_path ${opts.dir}/proxy;
  fastcgi_temp_path ${opts.dir}/fastcgi;
  uwsgi_temp_path ${opts.dir}/uwsgi;
  scgi_temp_path ${opts.dir}/scgi;

  server {
    listen 127.0.0.1:${opts.listen};

    # every request is checked by Edgebox first
    location / {
      auth_request /_edgebox_check;
      auth_request_set $auth_user $upstream_http_x_auth_request_user;
      auth_request_set $auth_email $upstream_http_x_auth_request_email;
      auth_request_set $auth_groups $upstream_http_x_auth_request_groups;
      auth_request_set $auth_assertion $upstream_http_edgebox_jwt_assertion;
      proxy_set_header X-Auth-Request-User $auth_user;
      proxy_set_header X-Auth-Request-Email $auth_email;
      proxy_set_header X-Auth-Request-Groups $auth_groups;
      proxy_set_header Edgebox-Jwt-Assertion $auth_assertion;
      # a browser without a session goes to Edgebox's login, which returns it here
      error_page 401 = @edgebox_login;
      proxy_pass ${opts.app};
    }

    location = /_edgebox_check {
      internal;
      proxy_pass ${opts.edgebox}/_auth/app;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Method $request_method;
    }

    location @edgebox_login {
      rewrite ^ /_edgebox/auth/login break;
      proxy_pass ${opts.edgebox};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Uri $request_uri;
    }

    # the login's callback and sign-out, on the app's own origin (the session cookie is the app's)
    location /_edgebox/ {
      proxy_pass ${opts.edgebox};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`
}

before(async () => {
  app = http.createServer((req, res) => {
    seen.push(req.headers)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url, headers: req.headers }))
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  const nginxPort = await freePort()
  site = `http://127.0.0.1:${nginxPort}`
  idp = await startTestProvider({
    accounts: { alice: { email: 'alice@example.com', email_verified: true, groups: ['staff'] }, bob: { email: 'bob@example.org', groups: ['guests'] } },
    clients: [{ client_id: 'edgebox', client_secret: 'a client secret for the tests', redirect_uris: [`${site}/_edgebox/auth/callback`], post_logout_redirect_uris: [`${site}/_edgebox/auth/signed-out`] }],
  })
  dir = mkdtempSync(path.join(tmpdir(), 'edgebox-forward-'))
  box = await startServer({
    dataDir: path.join(dir, 'data'),
    trustedProxies: ['127.0.0.1/32'],
    auth: { providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'a client secret for the tests', scopes: ['openid', 'email', 'profile', 'groups'] } } },
    sites: [{ routes: [{ path: '/_auth/app', forwardAuth: {}, auth: { rules: [{ allow: { group: 'staff' } }], skip: [{ path: '/public/**' }] } }] }],
  })
  const ngDir = path.join(dir, 'nginx')
  mkdirSync(ngDir)
  writeFileSync(path.join(ngDir, 'nginx.conf'), nginxConf({ listen: nginxPort, edgebox: box.url.slice(0, -1), app: `http://127.0.0.1:${(app.address() as AddressInfo).port}`, dir: ngDir }))
  nginx = spawn('/usr/sbin/nginx', ['-p', ngDir, '-c', path.join(ngDir, 'nginx.conf'), '-e', path.join(ngDir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  nginx.stderr!.on('data', (c: Buffer) => (stderr += c))
  // nginx is up once its port answers (bounded)
  for (let i = 0; ; i++) {
    try {
      await fetch(`${site}/public/ping`)
      break
    } catch {
      if (i > 100 || nginx.exitCode !== null) throw new Error(`nginx did not start: ${stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
})

after(async () => {
  nginx?.kill('SIGTERM')
  await box?.close()
  await idp?.close()
  app?.close()
  rmSync(dir, { recursive: true, force: true })
})

test('a browser without a session is sent through Edgebox login and lands on the app with its identity', async () => {
  const browser = new Browser()
  const landed = await browser.navigate(`${site}/reports/q3?view=full&y=1`, signInAs('alice'))
  assert.equal(landed.res.status, 200)
  assert.equal(landed.url, `${site}/reports/q3?view=full&y=1`)
  const echo = JSON.parse(landed.text) as { path: string; headers: Record<string, string> }
  assert.equal(echo.path, '/reports/q3?view=full&y=1')
  assert.equal(echo.headers['x-auth-request-user'], 'alice')
  assert.equal(echo.headers['x-auth-request-email'], 'alice@example.com')
  assert.equal(echo.headers['x-auth-request-groups'], 'staff')
  // the assertion names the app's origin as its audience and checks against Edgebox's keys
  const jwks = createRemoteJWKSet(new URL(`${site}/_edgebox/auth/jwks.json`))
  const { payload } = await jwtVerify(echo.headers['edgebox-jwt-assertion']!, jwks, { audience: site })
  assert.equal(payload.sub, 'alice')
  // the session cookie is the app origin's, set through nginx
  assert.ok(browser.cookies(site).has('edgebox-session'))
})

test('a script without a session gets 401, and nothing reaches the app', async () => {
  const before = seen.length
  const res = await fetch(`${site}/api/data`, { method: 'POST', headers: { accept: 'application/json' }, body: '{}' })
  assert.equal(res.status, 401)
  assert.equal(seen.length, before)
})

test('a user the rules refuse gets 403 from nginx', async () => {
  const browser = new Browser()
  const landed = await browser.navigate(`${site}/reports/`, signInAs('bob'))
  assert.equal(landed.res.status, 403)
})

test('a skipped path passes without a login, with no identity', async () => {
  const res = await fetch(`${site}/public/logo.svg`, { headers: { 'x-auth-request-user': 'mallory' } })
  assert.equal(res.status, 200)
  const echo = (await res.json()) as { headers: Record<string, string> }
  // nginx sets the field from the (empty) answer of the check, so a client's own value never passes
  assert.equal(echo.headers['x-auth-request-user'], undefined)
})

test('the forward-auth endpoint answers only trusted proxies', async () => {
  const other = await startServer({
    dataDir: path.join(dir, 'data2'),
    trustedProxies: ['192.0.2.1/32'],
    auth: { providers: { test: { issuer: idp.issuer, clientId: 'edgebox', clientSecret: 'x' } } },
    sites: [{ routes: [{ path: '/_auth/app', forwardAuth: {}, auth: true }] }],
  })
  try {
    const res = await fetch(`${other.url}_auth/app`, { headers: { 'x-forwarded-uri': '/admin', 'x-forwarded-method': 'GET' } })
    assert.equal(res.status, 403)
    assert.match(await res.text(), /answers only the proxies listed in trustedProxies/)
  } finally {
    await other.close()
  }
})

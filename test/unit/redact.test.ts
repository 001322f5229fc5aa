import assert from 'node:assert/strict'
import { test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'
import { REDACTED, redactSecrets } from '../../src/config/redact.ts'

test('config --print shows no secret: tokens, passwords, keys, publish keys, userinfo', () => {
  const cfg = validateConfig({
    tls: { certificates: [{ cert: './site.crt', key: './site.key' }] },
    forwardProxy: { enabled: true, credentials: [{ user: 'alice', password: 'hunter2hunter2' }] },
    sites: [
      {
        routes: [
          { path: '/live/', realtime: { channels: { 'chat:*': {} }, auth: { secret: 's'.repeat(32) }, publishKey: 'p'.repeat(16) } },
          { path: '/api/', proxy: { upstreams: ['http://user:pass@127.0.0.1:3000'] }, rateLimit: { requests: 5, per: '1m', key: 'client' }, csrf: { token: true, secret: 'c'.repeat(32) } },
          { path: '/', static: { root: '.', upload: { enabled: true, credentials: [{ token: 't'.repeat(16), paths: ['**'] }] } } },
        ],
      },
    ],
  })
  const shown = JSON.stringify(redactSecrets(cfg))
  for (const secret of ['hunter2hunter2', 's'.repeat(32), 'p'.repeat(16), 'c'.repeat(32), 't'.repeat(16), 'user:pass', './site.key']) assert.ok(!shown.includes(secret), secret)
  const r = redactSecrets(cfg) as unknown as { sites: Array<{ routes: Array<Record<string, { key?: string; upstreams?: string[] }>> }>; tls: { certificates: Array<{ cert: string; key: string }> } }
  assert.equal(r.tls.certificates[0]!.key, REDACTED)
  assert.equal(r.tls.certificates[0]!.cert, './site.crt', 'what is not secret stays')
  assert.equal(r.sites[0]!.routes[1]!.rateLimit!.key, 'client', "a rate limit's key is not a secret")
  assert.deepEqual(r.sites[0]!.routes[1]!.proxy!.upstreams, [`http://${REDACTED}@127.0.0.1:3000`])
  assert.equal(JSON.stringify(cfg).includes('hunter2hunter2'), true, 'the configuration itself is untouched')
})

test('config --print hides the ACME External Account Binding key, and shows the rest of tls.acme', () => {
  const hmacKey = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W'
  const cfg = validateConfig({
    listen: [{ tls: true }],
    tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: 'https://acme.zerossl.com/v2/DV90', eab: { kid: 'kid-1', hmacKey } } },
    sites: [{ hosts: ['shop.example.com'], routes: [{ path: '/', static: { root: '.' } }] }],
  })
  const r = redactSecrets(cfg) as unknown as { tls: { acme: { email: string; directory: string; eab: { kid: string; hmacKey: string } } } }
  assert.ok(!JSON.stringify(r).includes(hmacKey))
  assert.equal(r.tls.acme.eab.hmacKey, REDACTED)
  assert.equal(r.tls.acme.eab.kid, REDACTED, 'the key id is a credential too')
  assert.equal(r.tls.acme.email, 'ops@shop.example.com')
  assert.equal(r.tls.acme.directory, 'https://acme.zerossl.com/v2/DV90')
})

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

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { idpSchema } from '../../src/auth/idp/schema.ts'
import { validateConfig } from '../../src/index.ts'

/** The `idp` route kind's configuration: defaults, and what is refused with its exact path. */

const client = { clientId: 'app', clientSecret: 'a client secret that is long enough', redirectUris: ['https://app.example.com/_edgebox/auth/callback'] }

test('the defaults', () => {
  const cfg = idpSchema.parse({ issuer: 'https://id.example.com', clients: [client] })
  assert.equal(cfg.secondFactor, 'optional')
  assert.equal(cfg.keyRotation, 90 * 24 * 3_600_000)
  assert.equal(cfg.sessionTtl, 12 * 3_600_000)
  assert.deepEqual(cfg.tokenLifetimes, { accessToken: 600_000, idToken: 600_000, refreshToken: 12 * 3_600_000 })
  assert.deepEqual(cfg.loginLimits, { perAccount: { attempts: 10, per: 900_000 }, perAddress: { attempts: 30, per: 900_000 } })
  assert.deepEqual(cfg.clients[0]!.postLogoutRedirectUris, [])
})

test('durations and limits in their units', () => {
  const cfg = idpSchema.parse({ issuer: 'https://id.example.com', clients: [client], keyRotation: '30d', sessionTtl: '8h', tokenLifetimes: { accessToken: '5m' }, loginLimits: { perAccount: { attempts: 5, per: '1h' } } })
  assert.equal(cfg.keyRotation, 30 * 24 * 3_600_000)
  assert.equal(cfg.sessionTtl, 8 * 3_600_000)
  assert.equal(cfg.tokenLifetimes.accessToken, 300_000)
  assert.equal(cfg.tokenLifetimes.idToken, 600_000)
  assert.deepEqual(cfg.loginLimits.perAccount, { attempts: 5, per: 3_600_000 })
})

test('http only on loopback hosts; no query or fragment in the issuer', () => {
  for (const issuer of ['http://id.localhost:8080', 'http://127.0.0.1:8080', 'http://localhost', 'https://id.example.com/sso']) assert.ok(idpSchema.safeParse({ issuer, clients: [client] }).success, issuer)
  for (const issuer of ['http://id.example.com', 'https://id.example.com/?x=1', 'https://id.example.com/#f', 'ftp://id.example.com', 'not a url']) assert.ok(!idpSchema.safeParse({ issuer, clients: [client] }).success, issuer)
})

test('clients: at least one, unique ids, redirect URIs https (http on loopback), a secret long enough, tokenAuth only with a secret', () => {
  const bad = (clients: unknown[]) => !idpSchema.safeParse({ issuer: 'https://id.example.com', clients }).success
  assert.ok(bad([]))
  assert.ok(bad([client, client]))
  assert.ok(bad([{ ...client, redirectUris: ['http://app.example.com/cb'] }]))
  assert.ok(bad([{ ...client, redirectUris: ['https://app.example.com/cb#x'] }]))
  assert.ok(bad([{ ...client, clientSecret: 'short' }]))
  assert.ok(bad([{ clientId: 'spa', redirectUris: ['https://spa.example.com/cb'], tokenAuth: 'client_secret_post' }]))
  assert.ok(!bad([{ clientId: 'spa', redirectUris: ['http://app.localhost:8080/cb'] }]))
})

test('a whole configuration: the route kind is known, and a problem names its path', () => {
  const ok = validateConfig({ sites: [{ routes: [{ path: '/', idp: { issuer: 'https://id.example.com', clients: [client] } }] }] })
  assert.equal(ok.sites[0]!.routes[0]!.idp!.secondFactor, 'optional')
  assert.throws(
    () => validateConfig({ sites: [{ routes: [{ path: '/', idp: { issuer: 'https://id.example.com', clients: [{ ...client, redirectUris: ['http://evil.example/cb'] }] } }] }] }),
    /sites\[0\]\.routes\[0\]\.idp\.clients\[0\]\.redirectUris\[0\]/,
  )
})

test('edgebox config --print hides client secrets and shows the lifetimes', async () => {
  const { redactSecrets } = await import('../../src/config/redact.ts')
  const cfg = idpSchema.parse({ issuer: 'https://id.example.com', clients: [client] })
  const shown = redactSecrets(cfg)
  assert.equal(shown.clients[0]!.clientSecret, '<redacted>')
  assert.deepEqual(shown.tokenLifetimes, cfg.tokenLifetimes)
})

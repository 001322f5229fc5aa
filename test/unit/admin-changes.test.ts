import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ChangeLog, configDiff, MAX_CHANGES } from '../../src/admin/changes.ts'

/** What a reload changed, as the admin API lists it: flattened JSON paths, secrets redacted even when they changed. */

test('changed, added and removed options as flattened paths, in path order', () => {
  const before = { admin: { port: 8082 }, sites: [{ hosts: ['a.test'], routes: [{ path: '/', static: { root: 'www' } }] }] }
  const after = { admin: { port: 8082 }, sites: [{ hosts: ['a.test', 'b.test'], routes: [{ path: '/', static: { root: 'public' } }] }], serverTiming: true }
  assert.deepEqual(configDiff(before, after), {
    diff: [
      { path: 'serverTiming', after: true },
      { path: 'sites[0].hosts[1]', after: 'b.test' },
      { path: 'sites[0].routes[0].static.root', before: 'www', after: 'public' },
    ],
    more: 0,
  })
  assert.deepEqual(configDiff(after, before).diff.map((d) => [d.path, 'before' in d, 'after' in d]), [
    ['serverTiming', true, false],
    ['sites[0].hosts[1]', true, false],
    ['sites[0].routes[0].static.root', true, true],
  ])
})

test('a secret that changed shows as "<redacted>" on both sides; one that did not is not listed; userinfo in a URL too', () => {
  const a = { auth: { providers: [{ clientSecret: 'old-secret-value', clientId: 'x' }] }, admin: { token: 't'.repeat(40) }, sites: [{ routes: [{ proxy: { upstreams: ['http://u:oldpass@10.0.0.1'] } }] }] }
  const b = { auth: { providers: [{ clientSecret: 'new-secret-value', clientId: 'x' }] }, admin: { token: 't'.repeat(40) }, sites: [{ routes: [{ proxy: { upstreams: ['http://u:newpass@10.0.0.1'] } }] }] }
  const { diff } = configDiff(a, b)
  assert.deepEqual(diff, [
    { path: 'auth.providers[0].clientSecret', before: '<redacted>', after: '<redacted>' },
    { path: 'sites[0].routes[0].proxy.upstreams[0]', before: 'http://<redacted>@10.0.0.1', after: 'http://<redacted>@10.0.0.1' },
  ])
  const text = JSON.stringify(diff)
  for (const secret of ['old-secret-value', 'new-secret-value', 'oldpass', 'newpass', 't'.repeat(40)]) assert.ok(!text.includes(secret), secret)
})

test('a secret held as a list or an object is one redacted leaf, and its change is seen', () => {
  const { diff } = configDiff({ cookies: { secrets: ['one', 'two'] } }, { cookies: { secrets: ['three'] } })
  assert.deepEqual(diff, [{ path: 'cookies.secrets', before: '<redacted>', after: '<redacted>' }])
})

test('the change log keeps the last 20, newest first', () => {
  const log = new ChangeLog()
  for (let i = 0; i < MAX_CHANGES + 5; i++) log.record(`r${i}`, { n: i }, { n: i + 1 }, Date.UTC(2026, 11, 6, 20, 0, i))
  const list = log.list()
  assert.equal(list.length, MAX_CHANGES)
  assert.equal(list[0]!.source, `r${MAX_CHANGES + 4}`)
  assert.equal(list[0]!.at, '2026-12-06T20:00:24.000Z')
  assert.deepEqual(list[0]!.diff, [{ path: 'n', before: 24, after: 25 }])
  assert.equal(list.at(-1)!.source, 'r5')
})

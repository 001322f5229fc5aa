import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { request, startServer, tempDir } from '../helpers/server.ts'

/**
 * `rum.countryHeader`: the country a trusted proxy looked up lands on the
 * rows (the query API's `by=country`); from a peer that is not a trusted
 * proxy, or as anything but an ISO 3166-1 alpha-2 code, it is unknown.
 */

const TOKEN = 'c'.repeat(40)

async function start(t: { after(fn: () => unknown): void }, trusted: boolean) {
  const { dir, cleanup } = tempDir()
  t.after(cleanup)
  mkdirSync(path.join(dir, 'www'))
  writeFileSync(path.join(dir, 'www', 'index.html'), '<!doctype html><title>t</title>')
  const box = await startServer({
    dataDir: path.join(dir, 'data'),
    ...(trusted ? { trustedProxies: ['127.0.0.1/32'] } : {}),
    rum: { countryHeader: 'CF-IPCountry', api: { port: 0, token: TOKEN } },
    sites: [{ rum: true, routes: [{ path: '/', static: { root: path.join(dir, 'www') } }] }],
  })
  t.after(() => box.close())
  return box
}

const beacon = (pv: string, lcp: number) => JSON.stringify({ v: 1, pv, page: '/', events: [{ t: 'vital', at: 10, name: 'LCP', value: lcp, rating: 'good' }] })

async function byCountry(box: Awaited<ReturnType<typeof start>>): Promise<Array<{ key: string; n: number; p50: number }>> {
  // the queue is written every 100 ms
  await new Promise((r) => setTimeout(r, 400))
  const res = await fetch(`${box.box.rumApi!.url}percentiles?metric=LCP&by=country`, { headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(res.status, 200)
  return ((await res.json()) as { rows: Array<{ key: string; n: number; p50: number }> }).rows.map(({ key, n, p50 }) => ({ key, n, p50 }))
}

test('through a trusted proxy: its country on the rows, lower case made upper; XX, T1 and words are unknown', async (t) => {
  const box = await start(t, true)
  const post = (pv: string, lcp: number, country: string) =>
    request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json', 'cf-ipcountry': country, 'x-forwarded-for': '198.51.100.7' }, body: beacon(pv, lcp) })
  for (const [pv, lcp, c] of [['pvA', 100, 'de'], ['pvB', 200, 'DE'], ['pvC', 300, 'JP'], ['pvD', 400, 'XX'], ['pvE', 500, 'T1'], ['pvF', 600, 'Germany']] as const) {
    assert.equal((await post(pv, lcp, c)).status, 204)
  }
  assert.deepEqual(await byCountry(box), [
    { key: 'unknown', n: 3, p50: 500 },
    { key: 'DE', n: 2, p50: 100 },
    { key: 'JP', n: 1, p50: 300 },
  ])
})

test('from a peer that is not a trusted proxy, the field is not believed', async (t) => {
  const box = await start(t, false)
  const res = await request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json', 'cf-ipcountry': 'DE' }, body: beacon('pvZ', 100) })
  assert.equal(res.status, 204)
  assert.deepEqual(await byCountry(box), [{ key: 'unknown', n: 1, p50: 100 }])
})

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { writeLabShop, writeRumAssets } from '../../client/build.ts'
import { defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()
const ROOT = path.resolve(import.meta.dirname, '..', '..')

/**
 * The page's builds (gitignored, made by `node client/build.ts`): the SDK
 * module it imports and the minified shop with its source map.
 */
function ensureBuilds(): void {
  if (!existsSync(path.join(ROOT, 'lab', 'www', 'assets', 'edgebox-rum.mjs'))) writeRumAssets()
  if (!existsSync(path.join(ROOT, 'lab', 'www', 'lab', 'shop.min.js')) || !existsSync(path.join(ROOT, 'lab', 'www', 'lab', 'shop.min.js.map'))) writeLabShop()
}

/**
 * The monitoring lab of `npm start` in Chromium: the page shows its own
 * page-view id and timing, reports what goes wrong (a TypeError from the
 * minified shop bundle among it), Edgebox's collector stores it, and the
 * page then shows what was stored for its page view: the server's row
 * beside the browser's report, and the error's stack as sent beside the
 * stack Edgebox mapped back to the shop's source.
 */
describe("the monitoring lab (npm start's configuration) in Chromium", { skip, timeout: 120_000 }, () => {
  let server: TestServer | undefined
  let browser: LaunchedBrowser | undefined
  let dir: { dir: string; cleanup(): void }

  before(async () => {
    ensureBuilds()
    dir = tempDir()
    server = await startServer({ ...defaultConfig({ port: (await freePortPair('127.0.0.1'))! }), dataDir: path.join(dir.dir, 'data') })
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
    dir?.cleanup()
  })

  const rows = (page: Page) => page.$$eval('#events tbody tr', (trs) => trs.map((tr) => ({ t: (tr as HTMLElement).dataset.t, text: tr.textContent ?? '' })))

  /** The stored errors the page shows: message, whether mapped, and both stacks. */
  const storedErrors = (page: Page) =>
    page.$$eval('#stored-errors article.stored-error', (articles) =>
      articles.map((a) => ({
        title: a.querySelector('h4')?.textContent ?? '',
        mapped: (a as HTMLElement).dataset.mapped,
        raw: a.querySelector('figure[data-side="raw"] pre')?.textContent ?? '',
        stored: a.querySelector('figure[data-side="mapped"] pre')?.textContent ?? '',
      })),
    )

  test('the page view, an error from the minified shop, a rejection and a failing fetch are reported, stored, and shown as stored', async () => {
    const page = await browser!.context.newPage()
    const errors: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) errors.push(m.text())
    })
    try {
      const res = await page.goto(new URL('/lab/monitoring.html', server!.url).href)
      const pv = /pv;desc="([A-Za-z0-9_-]+)"/.exec((await res!.allHeaders())['server-timing'] ?? '')?.[1]
      assert.ok(pv, 'the HTML answer carries a page-view id')
      await page.waitForFunction(() => document.getElementById('pv')?.dataset.value !== '')
      assert.equal(await page.$eval('#pv', (e) => (e as HTMLElement).dataset.value), pv)
      assert.equal(await page.$eval('#stored-status', (e) => (e as HTMLElement).dataset.state), 'idle')
      for (const run of ['error', 'rejection', 'fetch']) await page.click(`button[data-run="${run}"]`)
      await page.waitForTimeout(300)
      await page.click('#send')
      const seen = await rows(page)
      assert.ok(seen.some((r) => r.t === 'error' && r.text.includes('cannot read the price "about 20 EUR"')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'error' && r.text.includes('unhandledrejection')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'api' && r.text.includes('/lab/no-such-api?token=') && !r.text.includes('secret')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'nav'), JSON.stringify(seen))

      // the page asks Edgebox what it stored for its page view, and shows it
      await page.waitForSelector('#stored-status[data-state="done"]', { timeout: 15_000 })
      const cell = (field: string, side: string) => page.$eval(`#stored-pair tr[data-field="${field}"] td[data-side="${side}"]`, (td) => td.textContent)
      assert.equal(await cell('status', 'server'), '200')
      assert.match((await cell('edge', 'server'))!, /^[\d.]+ ms$/)
      assert.match((await cell('duration', 'server'))!, /^[\d.]+ ms$/)
      assert.match((await cell('ttfb', 'browser'))!, /^[\d.]+ ms$/)
      assert.equal(await page.$$eval('#stored-phases tr[data-dominant="true"]', (trs) => trs.length), 1)
      const stored = await storedErrors(page)
      const shop = stored.find((e) => e.title.includes('cannot read the price "about 20 EUR"'))
      assert.ok(shop, JSON.stringify(stored))
      assert.equal(shop.mapped, 'true')
      // as the browser sent it: frames in the minified bundle
      assert.match(shop.raw, /^TypeError: cannot read the price "about 20 EUR"\n {4}at \w+ \(http:\/\/127\.0\.0\.1:\d+\/lab\/shop\.min\.js:1:\d+\)/)
      assert.doesNotMatch(shop.raw, /src\/shop\.ts/)
      // as Edgebox mapped it: the shop's source file, lines and function names
      assert.match(shop.stored, /^TypeError: cannot read the price "about 20 EUR"\n {4}at parsePrice \(\/lab\/src\/shop\.ts:\d+:\d+\)/)
      assert.match(shop.stored, /\n {4}at applyCoupon \(\/lab\/src\/shop\.ts:\d+:\d+\)/)
      assert.doesNotMatch(shop.stored, /shop\.min\.js/)
      // the rejection came from the page's own module, which has no map: stored as sent
      const rejected = stored.find((e) => e.title.startsWith('unhandledrejection: ') && e.title.includes('the lab rejected this on purpose'))
      assert.ok(rejected, JSON.stringify(stored))
      assert.equal(rejected.mapped, 'false')
      assert.equal(rejected.stored, rejected.raw)

      // the page's own questions to Edgebox are not reported as the page's API calls or resources
      await page.click('#send')
      await page.waitForSelector('#stored-status[data-state="done"]', { timeout: 15_000 })
      assert.ok(!(await rows(page)).some((r) => r.text.includes('/lab/demo/rum/')), JSON.stringify(await rows(page)))
      assert.deepEqual(errors, [])
    } finally {
      await page.close()
    }
    // the collector stored the page's errors (in its page view)
    await server!.close()
    server = undefined
    const store = await openSqliteRumStore(path.join(dir.dir, 'data'))
    try {
      const groups = await store.errorGroups({ since: 0, until: Date.now() + 60_000 })
      assert.ok(groups.some((g) => g.message === 'cannot read the price "about 20 EUR"' && /^at parsePrice \(\/lab\/src\/shop\.ts:\d+:\d+\)$/.test(g.topFrame ?? '')), JSON.stringify(groups))
      assert.ok(groups.some((g) => g.message.includes('the lab rejected this on purpose')), JSON.stringify(groups))
    } finally {
      await store.close()
    }
  })
})

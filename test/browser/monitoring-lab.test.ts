import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()

/**
 * The monitoring lab of `npm start` in Chromium: the page shows its own
 * page-view id and timing, reports what goes wrong, and Edgebox's collector
 * stores it.
 */
describe("the monitoring lab (npm start's configuration) in Chromium", { skip, timeout: 120_000 }, () => {
  let server: TestServer | undefined
  let browser: LaunchedBrowser | undefined
  let dir: { dir: string; cleanup(): void }

  before(async () => {
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

  test('the page view, an error, a rejection and a failing fetch are reported and stored', async () => {
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
      for (const run of ['error', 'rejection', 'fetch']) await page.click(`button[data-run="${run}"]`)
      await page.waitForTimeout(300)
      await page.click('#send')
      const seen = await rows(page)
      assert.ok(seen.some((r) => r.t === 'error' && r.text.includes('the lab threw this on purpose')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'error' && r.text.includes('unhandledrejection')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'api' && r.text.includes('/lab/no-such-api?token=') && !r.text.includes('secret')), JSON.stringify(seen))
      assert.ok(seen.some((r) => r.t === 'nav'), JSON.stringify(seen))
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
      assert.ok(groups.some((g) => g.message.includes('the lab threw this on purpose')), JSON.stringify(groups))
      assert.ok(groups.some((g) => g.message.includes('the lab rejected this on purpose')), JSON.stringify(groups))
    } finally {
      await store.close()
    }
  })
})

import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { openSqliteRumStore } from '../../src/rum/store.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The real @sentry/browser in Chromium, on a page Edgebox serves, with its
 * DSN pointed at the site's collector (docs/monitoring.md, "Sentry's
 * protocol"): the page throws, and the error's group appears in the store.
 * The npm package ships no browser bundle (only ESM and CJS builds), so the
 * test bundles its ESM build with esbuild into a script that sets
 * `window.Sentry`.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const KEY = '0123456789abcdef0123456789abcdef'

describe('@sentry/browser reporting to Edgebox', { skip, timeout: 60_000 }, () => {
  let browser: LaunchedBrowser | undefined
  let box: TestServer
  let dataDir = ''
  let cleanup: () => void = () => {}

  before(async () => {
    let root: string
    ;({ dir: root, cleanup } = tempDir())
    dataDir = path.join(root, 'data')
    const www = path.join(root, 'www')
    mkdirSync(www)
    const bundle = await build({
      stdin: { contents: "import * as Sentry from '@sentry/browser'\nwindow.Sentry = Sentry\n", resolveDir: process.cwd(), loader: 'js' },
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2020',
      write: false,
      logLevel: 'silent',
    })
    writeFileSync(path.join(www, 'sentry.js'), bundle.outputFiles[0]!.text)
    writeFileSync(
      path.join(www, 'app.js'),
      `function checkout() { throw new TypeError('cart is not iterable') }
setTimeout(checkout, 50)
`,
    )
    box = await startServer({ dataDir, sites: [{ rum: { sentry: { project: '42', key: KEY } }, routes: [{ path: '/', static: { root: www } }] }] })
    const dsn = `${box.url.replace('://', `://${KEY}@`)}_edgebox/rum/sentry/42`
    writeFileSync(
      path.join(www, 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>sentry</title>
<script src="/sentry.js"></script>
<script>Sentry.init({ dsn: ${JSON.stringify(dsn)}, release: 'shop@1.2.3', environment: 'test' })</script>
<h1>shop</h1>
<script src="/app.js"></script>`,
    )
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await box?.close()
    cleanup()
  })

  test('a thrown error is posted as an envelope (200) and lands in an error group', async () => {
    const page = await browser!.context.newPage()
    const posted = page.waitForResponse((r) => r.url().includes('/_edgebox/rum/sentry/api/42/envelope/'), { timeout: 20_000 })
    await page.goto(box.url)
    const r = await posted
    // (not r.text(): the body of a keepalive fetch is not kept for Playwright, and reading it waits for ever)
    assert.equal(r.status(), 200)
    assert.equal(r.request().method(), 'POST')
    await page.close()
    await box.close()
    const store = await openSqliteRumStore(dataDir)
    try {
      const groups = await store.errorGroups({ since: 0, until: Date.now() + 60_000 })
      const group = groups.find((g) => g.message === 'TypeError: cart is not iterable')
      assert.ok(group, JSON.stringify(groups))
      assert.equal(group.count, 1)
    } finally {
      await store.close()
    }
  })
})

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { PACKAGE_DIR, defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * The two-origin labs of `npm start` (defaultConfig() in src/cli/main.ts),
 * which serves the same site on PORT and PORT + 1, in Chromium:
 * - the cross-origin lab (lab/www/lab/cross-origin.html) on origin A (PORT)
 *   against origin B (PORT + 1): "Run all" runs every technique; each row must
 *   end as the page says it should (allowed or blocked);
 * - the attacker's page (lab/www/lab/attacker.html) on B against the account
 *   demo on A: clickjacking, a forged form and an injected script must all be
 *   stopped, and the account's balance on the server must not move.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const WWW = path.join(PACKAGE_DIR, 'lab', 'www')
const SCREENSHOT = '/tmp/lab-cross-origin.png'

const EXPECTED: Record<string, 'allowed' | 'blocked'> = {
  a: 'allowed',
  b: 'blocked',
  c1: 'allowed',
  c2: 'blocked',
  d: 'allowed',
  e1: 'blocked',
  e2: 'allowed',
  f: 'allowed',
  g: 'allowed',
  h: 'allowed',
  i: 'allowed',
  j: 'blocked',
}

interface Row {
  key: string
  expect: string | undefined
  result: string | undefined
  ok: string | undefined
  detail: string | undefined
}

describe('the two-origin labs of npm start, in Chromium', { skip, timeout: 150_000 }, () => {
  let server: TestServer
  let browser: LaunchedBrowser | undefined
  let page: Page
  let A: string
  let B: string

  before(async () => {
    const port = await freePortPair('127.0.0.1')
    assert.ok(port, 'two free consecutive ports')
    server = await startServer(defaultConfig({ port }))
    A = `http://127.0.0.1:${port}`
    B = `http://127.0.0.1:${port + 1}`
    assert.equal(new URL(server.url).origin, A)
    assert.deepEqual(server.box.urls.map((u) => new URL(u).origin), [A, B])

    browser = await launchBrowser()
    page = await browser.context.newPage()
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  test('the page and its helpers are CSP-friendly', () => {
    for (const f of ['cross-origin.html', 'attacker.html', 'xo/frame.html', 'xo/blank.html', 'xo/relay.html', 'xo/jsonp.html']) {
      assertCspFriendly(readFileSync(path.join(WWW, 'lab', f), 'utf8'), f)
    }
  })

  test('Run all: every technique ends as the page says it should', async () => {
    const violations: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) violations.push(m.text())
    })
    // no ?b=: the page takes PORT + 1, the second origin of npm start
    await page.goto(`${A}/lab/cross-origin.html`, { timeout: 15_000 })
    await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
    assert.equal(await page.textContent('#origin-b'), B)

    await page.click('#run-all', { timeout: 5_000 })
    await page.waitForSelector('#all-status[data-state="done"]', { timeout: 90_000 })

    const rows = await page.$$eval('output[data-expect]', (outs) =>
      outs.map((o) => {
        const e = o as HTMLOutputElement
        return { key: e.id.replace(/^out-/, ''), expect: e.dataset.expect, result: e.dataset.result, ok: e.dataset.ok, detail: e.dataset.detail }
      }),
    )
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 10_000 })

    const seen = Object.fromEntries(rows.map((r: Row) => [r.key, r]))
    assert.deepEqual(Object.keys(seen).sort(), Object.keys(EXPECTED).sort(), 'one row per technique')
    for (const [key, expected] of Object.entries(EXPECTED)) {
      const r = seen[key]!
      assert.equal(r.expect, expected, `row ${key}: the page expects ${expected}`)
      assert.equal(r.result, expected, `row ${key}: ${r.detail}`)
      assert.equal(r.ok, 'true', `row ${key}`)
    }
    // blocked for the reason the page gives
    assert.match(seen.b!.detail!, /TypeError/)
    assert.match(seen.c2!.detail!, /TypeError/)
    assert.match(seen.e1!.detail!, /Content-Security-Policy: script-src/)
    assert.match(seen.j!.detail!, /SecurityError/)
    assert.match(seen.j!.detail!, /originAgentCluster here true/)
    // allowed with B's data
    for (const k of ['a', 'c1', 'd', 'f']) assert.match(seen[k]!.detail!, /"from":"origin B"/, `row ${k}`)
    for (const k of ['g', 'h', 'i']) assert.match(seen[k]!.detail!, new RegExp(`"from":"${B}"`), `row ${k}`)
    assert.match(seen.e2!.detail!, /"from":"origin B"/)
    assert.equal(await page.getAttribute('#all-status', 'data-ok'), 'true')
    // the only policy violation is the one row (e) shows on purpose
    assert.ok(violations.every((v) => v.includes('/lab/xo/jsonp/')), `unexpected CSP violations: ${violations.join('\n')}`)
  })

  /** The account demo's state, as the server holds it. */
  async function accountState(): Promise<{ balance: number; transfers: Array<{ to: string; amount: number; origin: string }> }> {
    const r = await fetch(`${A}/lab/account/state`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(r.status, 200)
    return (await r.json()) as { balance: number; transfers: Array<{ to: string; amount: number; origin: string }> }
  }

  test("the account's own page sends a transfer with its CSRF token", async () => {
    const before = await accountState()
    const own = await browser!.context.newPage()
    try {
      await own.goto(`${A}/lab/account/`, { timeout: 15_000 })
      await own.waitForFunction((b) => document.getElementById('balance')?.textContent === String(b), before.balance, { timeout: 10_000 })
      await own.fill('input[name="amount"]', '7')
      await own.click('button[type="submit"]')
      await own.waitForFunction((b) => document.getElementById('balance')?.textContent === String(b - 7), before.balance, { timeout: 10_000 })
      assert.equal(await own.getAttribute('#attacker-link', 'href'), `${B}/lab/attacker.html?target=${encodeURIComponent(A)}`)
    } finally {
      await own.close()
    }
    const after = await accountState()
    assert.equal(after.balance, before.balance - 7)
    assert.deepEqual({ to: after.transfers[0]!.to, amount: after.transfers[0]!.amount, origin: after.transfers[0]!.origin }, { to: 'a friend', amount: 7, origin: A })
  })

  test("the attacker's page on B: clickjacking, a forged form and an injected script are all stopped", async () => {
    const before = await accountState()
    const attacker = await browser!.context.newPage()
    try {
      // no ?target=: the page takes PORT - 1, the site's first origin
      await attacker.goto(`${B}/lab/attacker.html`, { timeout: 15_000 })
      await attacker.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      assert.equal(await attacker.textContent('#origin-target'), A)
      await attacker.click('#run-all', { timeout: 5_000 })
      await attacker.waitForSelector('#all-status[data-state="done"]', { timeout: 60_000 })
      const rows = await attacker.$$eval('output[data-expect]', (outs) =>
        outs.map((o) => {
          const e = o as HTMLOutputElement
          return { key: e.id.replace(/^out-/, ''), result: e.dataset.result, detail: e.dataset.detail ?? '' }
        }),
      )
      await attacker.screenshot({ path: '/tmp/lab-attacker.png', fullPage: true, timeout: 10_000 })
      const seen = Object.fromEntries(rows.map((r) => [r.key, r]))
      assert.deepEqual(Object.keys(seen).sort(), ['clickjack', 'csrf', 'xss'])
      for (const r of rows) assert.equal(r.result, 'stopped', `${r.key}: ${r.detail}`)
      assert.match(seen.clickjack!.detail, /refused to render/)
      // the forged form went out with the session cookie (the victim's window signed in first) and changed nothing
      assert.match(seen.csrf!.detail, /balance is still/)
      assert.match(seen.xss!.detail, /script-src-elem refused inline/)
      assert.match(seen.xss!.detail, /script-src-attr refused inline/)
      assert.equal(await attacker.getAttribute('#all-status', 'data-ok'), 'true')
    } finally {
      await attacker.close()
    }
    const after = await accountState()
    assert.equal(after.balance, before.balance, 'the forged form moved no money')
    assert.ok(!after.transfers.some((t) => t.to === 'attacker'), 'no transfer to the attacker')
  })

  test('the attacker page is a real judge: with the defences turned off on the account route, every attack succeeds', async () => {
    const port = await freePortPair('127.0.0.1')
    assert.ok(port, 'two free consecutive ports')
    const cfg = defaultConfig({ port })
    const account = cfg.sites[0]!.routes.find((r) => r.path === '/lab/account/')!
    delete account.csrf
    account.headers = { frameOptions: false, csp: false }
    const open = await startServer(cfg)
    const attacker = await browser!.context.newPage()
    try {
      await attacker.goto(`http://127.0.0.1:${port + 1}/lab/attacker.html`, { timeout: 15_000 })
      await attacker.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      await attacker.click('#run-all', { timeout: 5_000 })
      await attacker.waitForSelector('#all-status[data-state="done"]', { timeout: 60_000 })
      const results = await attacker.$$eval('output[data-expect]', (outs) => outs.map((o) => `${o.id}: ${(o as HTMLOutputElement).dataset.result}`))
      assert.deepEqual(results, ['out-clickjack: not stopped', 'out-csrf: not stopped', 'out-xss: not stopped'])
      assert.equal(await attacker.getAttribute('#all-status', 'data-ok'), 'false')
    } finally {
      await attacker.close()
      await open.close()
    }
  })
})

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { PACKAGE_DIR, defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

const WWW = path.join(PACKAGE_DIR, 'lab', 'www')
const SAMPLE = readFileSync(path.join(WWW, 'lab', 'sample.txt'))
const SCREENSHOT = '/tmp/lab.png'
const RUN_TIMEOUT = 60_000

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

/** Every href/src in an HTML document, resolved against `base`, same origin only. */
function links(html: string, base: string): string[] {
  const out = new Set<string>()
  for (const m of html.matchAll(/\s(?:href|src)="([^"]+)"/g)) {
    const u = new URL(m[1]!.replaceAll('&amp;', '&'), base)
    if (u.origin === new URL(base).origin) out.add(u.href)
  }
  return [...out]
}

type Data = Record<string, string>
const dataOf = (page: Page, id: string): Promise<Data> => page.$eval(`#${id}`, (el) => ({ text: el.textContent ?? '', ...(el as HTMLElement).dataset }) as Record<string, string>)

describe('lab pages in Chromium', { skip, timeout: 120_000 }, () => {
  let server: TestServer
  let browser: LaunchedBrowser | undefined

  before(async () => {
    server = await startServer(defaultConfig({ port: (await freePortPair('127.0.0.1'))! }))
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  test('the welcome page loads and every link on it answers 200', async () => {
    const res = await fetch(new URL('/', server.url), { signal: AbortSignal.timeout(10_000) })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), 'no-cache')
    const html = await res.text()
    assertCspFriendly(html, 'index.html')
    const urls = links(html, new URL('/', server.url).href)
    for (const p of ['/lab/caching.html', '/lab/cdn.html', '/files/', '/_edgebox/health', '/assets/style.css']) {
      assert.ok(urls.includes(new URL(p, server.url).href), `welcome page links ${p}`)
    }
    for (const u of urls) {
      const r = await fetch(u, { signal: AbortSignal.timeout(10_000) })
      await r.arrayBuffer()
      assert.equal(r.status, 200, `${u} answers 200`)
    }

    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`))
    try {
      await page.goto(new URL('/', server.url).href, { timeout: 15_000 })
      assert.equal(await page.title(), 'Edgebox')
      assert.match(await page.locator('h1').innerText({ timeout: 5_000 }), /Edgebox/)
      // The stylesheet applied (no inline styles: it must come from assets/style.css).
      const font = await page.$eval('body', (b) => getComputedStyle(b).fontFamily)
      assert.match(font, /system-ui/)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the caching lab runs every experiment and shows the expected outcome', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    // What the browser's network stack sent for the sample file (raw headers, including
    // the validators its HTTP cache adds, which fetch() never sees).
    const sent: { url: string; headers: Record<string, string>; status: number | undefined }[] = []
    page.on('requestfinished', (req) => {
      if (!req.url().includes('/lab/sample.txt')) return
      void (async () => {
        const res = await req.response()
        sent.push({ url: req.url(), headers: await req.allHeaders(), status: res?.status() })
      })()
    })
    try {
      const html = await (await fetch(new URL('/lab/caching.html', server.url).href, { signal: AbortSignal.timeout(10_000) })).text()
      assertCspFriendly(html, 'lab/caching.html')

      await page.goto(new URL('/lab/caching.html', server.url).href, { timeout: 15_000 })
      await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      await page.click('#run-all', { timeout: 5_000 })
      await page.waitForSelector('#run-all-status[data-state="done"]', { timeout: RUN_TIMEOUT })
      await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 15_000 })

      const strong = await dataOf(page, 'strong-hit')
      assert.equal(strong.result, 'hit', `strong cache: ${strong.text}`)
      assert.equal(strong.status, '200')

      const reval = await dataOf(page, 'revalidate')
      assert.equal(reval.status, '304-revalidated', `revalidation: ${reval.text}`)
      assert.equal(reval.pageStatus, '200', 'the page sees the stored 200')
      assert.equal(reval.manualInm, '304', 'If-None-Match by hand gets 304')
      assert.equal(reval.manualIms, '304', 'If-Modified-Since by hand gets 304')

      const full = await dataOf(page, 'full')
      assert.equal(full.result, 'full-200', `full: ${full.text}`)
      assert.equal(full.status, '200')

      const resume = await dataOf(page, 'resume')
      assert.equal(resume.result, 'pass', `resume: ${resume.text}`)
      assert.equal(resume.status, '206')
      // On loopback the whole body can arrive before the page gets to abort; then the abort has nothing to cut.
      assert.ok(resume.aborted === 'true' || Number(resume.read) === SAMPLE.length, `the first download was aborted (read ${resume.read})`)
      const received = Number(resume.received)
      assert.ok(received >= 256 * 1024 && received < SAMPLE.length, `resumed from ${received}`)
      assert.equal(resume.contentRange, `bytes ${received}-${SAMPLE.length - 1}/${SAMPLE.length}`)
      assert.equal(Number(resume.total), SAMPLE.length)
      assert.equal(resume.sha256, createHash('sha256').update(SAMPLE).digest('hex'), 'assembled bytes are the file on disk')

      const mismatch = await dataOf(page, 'if-range-mismatch')
      assert.equal(mismatch.status, '200', `If-Range mismatch: ${mismatch.text}`)
      assert.equal(Number(mismatch.bytes), SAMPLE.length, 'the whole file came back')
      assert.equal(mismatch.codedStatus, '200', "the compressed representation's ETag does not match a range either")

      const all = await dataOf(page, 'run-all-status')
      assert.equal(all.passed, '5', all.text)

      // Wire-level cross-check from the browser's network stack.
      const revalidation = sent.find((s) => s.url.includes('?run=') && s.headers['if-none-match'] !== undefined)
      assert.ok(revalidation, 'the browser sent a conditional request (If-None-Match) for the cached copy')
      const resumed = sent.find((s) => s.headers['if-range'] !== undefined && s.status === 206)
      assert.ok(resumed, 'a 206 answered the If-Range request')
      assert.equal(resumed.headers.range, `bytes=${received}-`)

      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the CDN lab: miss, hit, stale-while-revalidate, revalidation, purge and failover, seen on the wire', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    // Cache-Status as the browser's network stack received it, per object request.
    const wire: { url: string; method: string; status: number; cacheStatus: string | undefined; age: string | undefined }[] = []
    page.on('response', (r) => {
      if (!r.url().includes('/lab/demo/cdn/')) return
      const h = r.headers()
      wire.push({ url: r.url(), method: r.request().method(), status: r.status(), cacheStatus: h['cache-status'], age: h.age })
    })
    try {
      const html = await (await fetch(new URL('/lab/cdn.html', server.url).href, { signal: AbortSignal.timeout(10_000) })).text()
      assertCspFriendly(html, 'lab/cdn.html')
      await page.goto(new URL('/lab/cdn.html', server.url).href, { timeout: 15_000 })
      await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      assert.equal(await page.locator('#origins tbody tr').count(), 2, 'two demo origins listed')
      await page.click('#tour', { timeout: 5_000 })
      await page.waitForSelector('#tour-status[data-state="done"]', { timeout: RUN_TIMEOUT })
      await page.screenshot({ path: '/tmp/lab-cdn.png', fullPage: true, timeout: 15_000 })
      for (const step of ['miss', 'hit', 'swr', 'revalidated', 'changed', 'purge', 'failover']) {
        const d = await dataOf(page, `step-${step}`)
        assert.equal(d.ok, 'true', `${step}: ${d.detail}`)
      }
      assert.equal((await dataOf(page, 'tour-status')).ok, 'true')

      // The same outcomes, from the wire.
      const objects = wire.filter((w) => w.method === 'GET' && w.url.includes('/obj/tour-'))
      const fresh = objects.filter((w) => w.url.includes('-fresh?'))
      assert.match(fresh[0]!.cacheStatus ?? '', /^edgebox-lab; fwd=miss; fwd-status=200; stored; ttl=60$/)
      assert.match(fresh[1]!.cacheStatus ?? '', /^edgebox-lab; hit; ttl=\d+$/)
      assert.ok(Number(fresh[1]!.age) >= 1, `Age grows: ${fresh[1]!.age}`)
      assert.ok(objects.some((w) => /detail=stale-while-revalidate/.test(w.cacheStatus ?? '')), 'a stale-while-revalidate answer')
      assert.ok(objects.some((w) => /fwd=stale; fwd-status=304/.test(w.cacheStatus ?? '')), 'a 304 revalidation')
      const purge = wire.find((w) => w.method === 'PURGE')
      assert.equal(purge?.status, 200)
      assert.match(fresh[fresh.length - 1]!.cacheStatus ?? '', /fwd=miss/, 'a miss after the purge')
      const traffic = wire.filter((w) => w.url.endsWith('/nostore'))
      assert.ok(traffic.length >= 12 && traffic.every((w) => w.status === 200), 'no error while an origin was down')
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the account lab: its status pill is never an empty pill', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    try {
      await page.goto(new URL('/lab/account/', server.url).href, { timeout: 15_000 })
      await page.waitForFunction(() => document.getElementById('balance')?.textContent !== '…', undefined, { timeout: 10_000 })
      const emptyPills = () =>
        page.$$eval('output', (els) => els.filter((el) => (el as HTMLElement).offsetParent !== null && (el.textContent ?? '').trim() === '').map((el) => el.id))
      assert.deepEqual(await emptyPills(), [], 'once the account is loaded')
      assert.equal(await page.locator('#transfer-status').innerText(), 'ready')
      await page.click('#reset', { timeout: 5_000 })
      await page.waitForFunction(() => document.getElementById('transfer-status')?.textContent === 'done', undefined, { timeout: 10_000 })
      assert.deepEqual(await emptyPills(), [])
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the /files/ listing looks like the other lab pages: the same fonts and colours, the Edgebox icon, no CSP violation', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    try {
      await page.goto(new URL('/', server.url).href, { timeout: 15_000 })
      const lab = await page.$eval('body', (b) => ({ font: getComputedStyle(b).fontFamily, bg: getComputedStyle(b).backgroundColor, fg: getComputedStyle(b).color }))
      await page.goto(new URL('/files/', server.url).href, { timeout: 15_000 })
      const listing = await page.$eval('body', (b) => ({ font: getComputedStyle(b).fontFamily, bg: getComputedStyle(b).backgroundColor, fg: getComputedStyle(b).color }))
      assert.deepEqual(listing, lab)
      const icon = await page.$eval('link[rel="icon"]', (l) => (l as HTMLLinkElement).href)
      assert.match(icon, /^data:image\/svg\+xml,/)
      assert.equal(await page.locator('header.site .brand').innerText(), 'Edgebox')
      assert.ok((await page.locator('table a').count()) > 0, 'the files are listed')
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth))
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the CDN lab fits a phone: no horizontal overflow at 390x844, before and after the tour', async () => {
    const page = await browser!.context.newPage()
    try {
      await page.setViewportSize({ width: 390, height: 844 })
      await page.goto(new URL('/lab/cdn.html', server.url).href, { timeout: 15_000 })
      await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      const overflow = () => page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth }))
      let o = await overflow()
      assert.ok(o.scrollWidth <= o.innerWidth, `loaded: ${JSON.stringify(o)}`)
      await page.click('#tour', { timeout: 5_000 })
      await page.waitForSelector('#tour-status[data-state="done"]', { timeout: RUN_TIMEOUT })
      await page.screenshot({ path: '/tmp/lab-cdn-phone.png', fullPage: true, timeout: 15_000 })
      o = await overflow()
      assert.ok(o.scrollWidth <= o.innerWidth, `after the tour: ${JSON.stringify(o)}`)
    } finally {
      await page.close()
    }
  })
})

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { ConsoleMessage, Frame, Page } from 'playwright-core'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { accessLogThrough, startServer, tempDir, type AccessLogLine, type TestServer } from '../helpers/server.ts'

/**
 * Clickjacking protection, CSRF refusal and the strict CSP
 * (src/security/headers.ts, src/security/csrf.ts, docs/security.md) as a
 * real Chromium enforces them, asserting what the browser did: whether a
 * framed document rendered and ran its script, whether a forged form's POST
 * reached the application behind Edgebox, whether injected inline code ran.
 *
 * Origins, all on 127.0.0.1 with different ports (different origins, the
 * same site: SameSite cookies would not stop a forged form here, which is
 * what the CSRF check is for):
 * - A, the attacker: an Edgebox serving the attacker's pages.
 * - B, the site: default security headers, static pages and an
 *   `/account/` route with `csrf: true` proxied to a counting backend.
 * - F: B's pages again, with `frameOptions: false`.
 * - S: a site with `headers: { csp: 'strict' }` serving a page with
 *   injected inline code.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const NAV_TIMEOUT = 15_000
const WAIT_TIMEOUT = 10_000
const LOG_TIMEOUT = 5_000
/** How long a refused frame is given to post anyway, after the allowed one already has. */
const GRACE_MS = 750


interface Posted {
  method: string
  path: string
  origin: string | undefined
  secFetchSite: string | undefined
  body: string
}

/** B's framed page: its external script tells the parent it loaded and ran. */
const FRAMED_HTML = '<!doctype html><html><head><meta charset="utf-8"><title>framed</title><script src="/framed.js"></script></head><body><p id="framed">B content: click here</p></body></html>\n'
const FRAMED_JS = "parent.postMessage({ loaded: location.origin }, '*')\n"

/** A page's inline recorder of the messages its frames post and the frames' load events. */
const RECORDER = `<script>
window.__msgs = []
window.__loads = []
addEventListener('message', (e) => __msgs.push({ origin: e.origin, data: e.data }))
</script>`

describe('clickjacking, CSRF and CSP in Chromium across origins', { skip, timeout: 120_000 }, () => {
  let a: TestServer
  let b: TestServer
  let f: TestServer
  let s: TestServer
  let backend: http.Server
  let browser: LaunchedBrowser | undefined
  let A: string
  let B: string
  let F: string
  let S: string
  let logFile: string
  const posted: Posted[] = []
  const dirs: Array<{ cleanup(): void }> = []
  let markers = 0

  /** Every line B's access log holds once a request sent now is in it (the log is written in batches). */
  const bLog = () => accessLogThrough(B, `/marker-${++markers}`, logFile, LOG_TIMEOUT)

  /** A fresh tab whose console messages are collected. */
  async function newPage(): Promise<{ page: Page; console: ConsoleMessage[] }> {
    const page = await browser!.context.newPage()
    const console: ConsoleMessage[] = []
    page.on('console', (m) => console.push(m))
    return { page, console }
  }

  /** The Playwright frame of the page's iframe `#id`. */
  async function frameOf(page: Page, id: string): Promise<Frame> {
    const el = await page.waitForSelector(`iframe#${id}`, { state: 'attached', timeout: WAIT_TIMEOUT })
    const frame = await el.contentFrame()
    assert.ok(frame, `iframe#${id} has a frame`)
    return frame
  }

  before(async () => {
    const aDir = tempDir('edgebox-sec-a-')
    const bDir = tempDir('edgebox-sec-b-')
    const sDir = tempDir('edgebox-sec-s-')
    const logs = tempDir('edgebox-sec-log-')
    dirs.push(aDir, bDir, sDir, logs)
    logFile = path.join(logs.dir, 'access.log')

    // B's pages (also served by F).
    writeFileSync(path.join(bDir.dir, 'framed.html'), FRAMED_HTML)
    writeFileSync(path.join(bDir.dir, 'framed.js'), FRAMED_JS)
    writeFileSync(
      path.join(bDir.dir, 'host.html'),
      `<!doctype html><html><head><meta charset="utf-8"><title>B frames B</title>${RECORDER}</head><body>` +
        `<iframe id="self" src="/framed.html" onload="__loads.push('self')"></iframe></body></html>\n`,
    )
    writeFileSync(
      path.join(bDir.dir, 'transfer.html'),
      '<!doctype html><html><head><meta charset="utf-8"><title>transfer</title></head><body>' +
        '<form id="transfer" method="POST" action="/account/transfer"><input name="to" value="friend"><input name="amount" value="10"><button id="send">Send</button></form>' +
        '</body></html>\n',
    )

    // S's page: an external script that watches for CSP violations, then markup an attacker injected.
    writeFileSync(
      path.join(sDir.dir, 'csp.html'),
      `<!doctype html><html><head><meta charset="utf-8"><title>csp page</title><script src="/watch.js"></script></head><body>
<div class="comment">Nice post! <script>document.title = 'pwned'; window.__inline = true; console.log('inline script ran')</script></div>
<img id="img" src="/missing.png" onerror="document.title = 'pwned by onerror'; window.__onerror = true">
<button id="inline-btn" onclick="document.title = 'pwned by onclick'; window.__onclick = true">inline handler</button>
<button id="ext-btn">external handler</button>
<script src="/after.js"></script>
</body></html>
`,
    )
    writeFileSync(
      path.join(sDir.dir, 'watch.js'),
      `window.__violations = []
document.addEventListener('securitypolicyviolation', (e) => {
  __violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, disposition: e.disposition, line: e.lineNumber })
})
window.__watch = true
`,
    )
    writeFileSync(
      path.join(sDir.dir, 'after.js'),
      `document.getElementById('ext-btn').addEventListener('click', () => { document.body.dataset.clicked = 'external' })
window.__after = true
`,
    )

    backend = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (req.method === 'POST') {
          posted.push({
            method: req.method,
            path: new URL(req.url ?? '/', 'http://backend').pathname,
            origin: req.headers.origin,
            secFetchSite: req.headers['sec-fetch-site'] as string | undefined,
            body: Buffer.concat(chunks).toString('utf8'),
          })
        }
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        res.end(`<!doctype html><title>done</title><p id="done">transfer done (${posted.length})</p>\n`)
      })
    })
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r))
    const upstream = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`

    b = await startServer({
      log: { access: true, format: 'json', file: logFile },
      sites: [
        {
          routes: [
            { path: '/account/', proxy: { upstreams: [upstream] }, csrf: true },
            { path: '/', static: { root: bDir.dir } },
          ],
        },
      ],
    })
    B = new URL(b.url).origin
    f = await startServer({ sites: [{ headers: { frameOptions: false }, routes: [{ path: '/', static: { root: bDir.dir } }] }] })
    F = new URL(f.url).origin
    s = await startServer({ sites: [{ headers: { csp: 'strict' }, routes: [{ path: '/', static: { root: sDir.dir } }] }] })
    S = new URL(s.url).origin

    // The attacker's pages, which name B and F.
    writeFileSync(
      path.join(aDir.dir, 'frame.html'),
      `<!doctype html><html><head><meta charset="utf-8"><title>win a prize</title>${RECORDER}</head><body>` +
        `<iframe id="b" src="${B}/framed.html" onload="__loads.push('b')"></iframe>` +
        `<iframe id="f" src="${F}/framed.html" onload="__loads.push('f')"></iframe></body></html>\n`,
    )
    writeFileSync(
      path.join(aDir.dir, 'attack.html'),
      `<!doctype html><html><head><meta charset="utf-8"><title>win a prize</title></head><body>` +
        `<form id="forged" method="POST" action="${B}/account/transfer" style="display:none"><input name="to" value="attacker"><input name="amount" value="1000000"></form>` +
        `<script>document.getElementById('forged').submit()</script></body></html>\n`,
    )
    a = await startServer({ sites: [{ routes: [{ path: '/', static: { root: aDir.dir } }] }] })
    A = new URL(a.url).origin
    assert.equal(new Set([A, B, F, S]).size, 4, 'four distinct origins')

    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    for (const server of [a, b, f, s]) await server?.close()
    if (backend) {
      backend.closeAllConnections()
      await new Promise((r) => backend.close(r))
    }
    for (const d of dirs) d.cleanup()
  })

  test('1. clickjacking: A cannot frame B (default headers), B can frame itself, A can frame F (frameOptions: false)', async () => {
    // A frames B and F side by side.
    const { page, console } = await newPage()
    try {
      const bResponse = page.waitForResponse((r) => r.url() === `${B}/framed.html`, { timeout: WAIT_TIMEOUT })
      await page.goto(A + '/frame.html', { timeout: NAV_TIMEOUT })
      const wire = await bResponse
      assert.equal(wire.status(), 200, 'B served the page: the browser is what refuses to show it')
      const h = await wire.allHeaders()
      assert.equal(h['x-frame-options'], 'SAMEORIGIN')
      assert.equal(h['content-security-policy'], "frame-ancestors 'self'")

      // Both frames finished (the refused one with an error page), and F's document ran its script.
      await page.waitForFunction(
        (F) => {
          const w = window as unknown as { __loads: string[]; __msgs: Array<{ origin: string }> }
          return w.__loads.includes('b') && w.__loads.includes('f') && w.__msgs.some((m) => m.origin === F)
        },
        F,
        { timeout: WAIT_TIMEOUT, polling: 50 },
      )
      await page.waitForTimeout(GRACE_MS)
      const msgs = await page.evaluate(() => (window as unknown as { __msgs: Array<{ origin: string; data: unknown }> }).__msgs)
      assert.deepEqual(msgs, [{ origin: F, data: { loaded: F } }], "only F's framed page ran its script; B's never did")

      const fb = await frameOf(page, 'b')
      assert.equal(fb.url(), 'chrome-error://chromewebdata/', 'Chromium put its error page in place of B')
      const bRendered = await fb.evaluate(() => document.getElementById('framed') !== null).catch(() => false)
      assert.equal(bRendered, false, "B's element is not in the frame")

      const ff = await frameOf(page, 'f')
      assert.equal(ff.url(), `${F}/framed.html`)
      assert.equal(await ff.textContent('#framed', { timeout: WAIT_TIMEOUT }), 'B content: click here', 'F rendered in the frame')

      // Wording by Chromium version: "Framing 'http://b/' violates ..." or "Refused to frame 'http://b/...' because ...".
      const refusal = console.find((m) => /^(Framing|Refused to (display|frame)) '/.test(m.text()) && m.text().includes(`'${B}/`))
      assert.ok(refusal, `Chromium reported the refusal (console: ${JSON.stringify(console.map((m) => m.text()))})`)
      assert.match(refusal.text(), /frame-ancestors 'self'/)
    } finally {
      await page.close()
    }

    // B frames its own page: allowed.
    const same = await newPage()
    try {
      await same.page.goto(B + '/host.html', { timeout: NAV_TIMEOUT })
      await same.page.waitForFunction(
        (B) => (window as unknown as { __msgs: Array<{ origin: string }> }).__msgs.some((m) => m.origin === B),
        B,
        { timeout: WAIT_TIMEOUT, polling: 50 },
      )
      const fs = await frameOf(same.page, 'self')
      assert.equal(fs.url(), `${B}/framed.html`)
      assert.equal(await fs.textContent('#framed', { timeout: WAIT_TIMEOUT }), 'B content: click here', 'same-origin framing renders')
    } finally {
      await same.page.close()
    }
  })

  test('2. CSRF: a forged form on A never reaches the backend; the same form on B does', async () => {
    const before = posted.length
    const { page } = await newPage()
    try {
      // The attacker's page submits its hidden form as soon as it loads; the tab navigates to B's answer.
      const answer = page.waitForResponse((r) => r.url() === `${B}/account/transfer` && r.request().method() === 'POST', { timeout: WAIT_TIMEOUT })
      await page.goto(A + '/attack.html', { timeout: NAV_TIMEOUT })
      const res = await answer
      const sent = await res.request().allHeaders()
      assert.equal(sent.origin, A, 'the browser sent its own Origin')
      assert.equal(sent['sec-fetch-site'], 'same-site', 'and Sec-Fetch-Site (another port of the same host: same site)')
      assert.equal(res.status(), 403)
      await page.waitForURL(`${B}/account/transfer`, { timeout: WAIT_TIMEOUT })
      assert.match(await page.textContent('body', { timeout: WAIT_TIMEOUT }) ?? '', /cross-site request refused/)
    } finally {
      await page.close()
    }
    let lines = await bLog()
    const forged = lines.filter((l) => l.method === 'POST' && l.path === '/account/transfer')
    assert.equal(forged.length, 1)
    assert.equal(forged[0]!.status, 403)
    assert.equal(forged[0]!.csrf, `refused: same-site request from ${A} to an unsafe method`)
    assert.equal(posted.length - before, 0, 'the backend never received the forged POST')

    // The same transfer from B's own page.
    const own = await newPage()
    try {
      await own.page.goto(B + '/transfer.html', { timeout: NAV_TIMEOUT })
      const answer = own.page.waitForResponse((r) => r.url() === `${B}/account/transfer` && r.request().method() === 'POST', { timeout: WAIT_TIMEOUT })
      await own.page.click('#send', { timeout: WAIT_TIMEOUT })
      const res = await answer
      assert.equal((await res.request().allHeaders())['sec-fetch-site'], 'same-origin')
      assert.equal(res.status(), 200)
      assert.match(await own.page.textContent('#done', { timeout: WAIT_TIMEOUT }) ?? '', /transfer done/)
    } finally {
      await own.page.close()
    }
    assert.equal(posted.length - before, 1, 'the backend received exactly the same-origin POST')
    const got = posted.at(-1)!
    assert.deepEqual([got.path, got.origin, got.secFetchSite, got.body], ['/account/transfer', B, 'same-origin', 'to=friend&amount=10'])
    lines = await bLog()
    const all = lines.filter((l) => l.method === 'POST' && l.path === '/account/transfer')
    assert.equal(all.length, 2)
    assert.equal(all[1]!.status, 200)
    assert.equal(all[1]!.csrf, undefined)
  })

  test("3. strict CSP: injected inline script and handlers do not run, the site's own scripts do", async () => {
    const { page, console } = await newPage()
    try {
      const res = await page.goto(S + '/csp.html', { timeout: NAV_TIMEOUT })
      assert.ok(res)
      assert.equal(res.status(), 200)
      assert.match((await res.allHeaders())['content-security-policy'] ?? '', /(^|; )script-src 'self'(;|$)/)

      const ext = await page.evaluate(() => {
        const w = window as unknown as { __watch?: boolean; __after?: boolean }
        return { watch: w.__watch === true, after: w.__after === true }
      })
      assert.deepEqual(ext, { watch: true, after: true }, 'same-origin external scripts ran')

      // The 404 image fires onerror (blocked); click the injected inline handler.
      await page.click('#inline-btn', { timeout: WAIT_TIMEOUT })
      await page.click('#ext-btn', { timeout: WAIT_TIMEOUT })
      await page.waitForFunction(
        () => {
          const v = (window as unknown as { __violations: Array<{ directive: string }> }).__violations
          return v.filter((x) => x.directive === 'script-src-elem').length >= 1 && v.filter((x) => x.directive === 'script-src-attr').length >= 2
        },
        undefined,
        { timeout: WAIT_TIMEOUT, polling: 50 },
      )
      const seen = await page.evaluate(() => {
        const w = window as unknown as { __inline?: boolean; __onerror?: boolean; __onclick?: boolean; __violations: Array<{ directive: string; blocked: string; disposition: string }> }
        return {
          title: document.title,
          inline: w.__inline ?? false,
          onerror: w.__onerror ?? false,
          onclick: w.__onclick ?? false,
          clicked: document.body.dataset.clicked ?? null,
          violations: w.__violations,
        }
      })
      assert.equal(seen.title, 'csp page', 'the title is unchanged: no injected code ran')
      assert.deepEqual([seen.inline, seen.onerror, seen.onclick], [false, false, false])
      assert.equal(seen.clicked, 'external', "the external script's listener ran on click")
      for (const v of seen.violations) {
        assert.equal(v.blocked, 'inline')
        assert.equal(v.disposition, 'enforce')
      }
      assert.deepEqual(
        seen.violations.map((v) => v.directive).sort(),
        ['script-src-attr', 'script-src-attr', 'script-src-elem'],
        'one inline <script>, the onerror and the onclick: each reported once',
      )

      // Wording by Chromium version: "Refused to execute inline script because it violates ..." or "Executing inline script violates ...".
      const texts = console.map((m) => m.text())
      assert.ok(!texts.includes('inline script ran'))
      assert.ok(
        texts.some((t) => /(Refused to execute inline script because it violates|Executing inline script violates) .*script-src 'self'/.test(t)),
        `Chromium reported the inline script (console: ${JSON.stringify(texts)})`,
      )
      assert.ok(
        texts.some((t) => /(Refused to execute inline event handler because it violates|Executing inline event handler violates) .*script-src 'self'/.test(t)),
        `Chromium reported the inline handler (console: ${JSON.stringify(texts)})`,
      )
    } finally {
      await page.close()
    }
  })
})

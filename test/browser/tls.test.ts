import assert from 'node:assert/strict'
import { X509Certificate, createHash, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The connection lab (/lab/tls.html) in Chromium against `npm start --
 * --https` (defaultConfig with https): the page shows HTTP/2 over TLS 1.3
 * chosen by ALPN, the certificate from the local authority, and the 103
 * Early Hints preload of the stylesheet that the /lab/ route sends. Chromium
 * accepts the local certificate through --ignore-certificate-errors-spki-list
 * (the hash of its public key), not by ignoring certificate errors at large.
 */

const SCREENSHOT = '/tmp/lab-tls.png'

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

type Data = Record<string, string>
const dataOf = (page: Page, selector: string): Promise<Data> => page.$eval(selector, (el) => ({ text: el.textContent ?? '', ...(el as HTMLElement).dataset }) as Record<string, string>)
const valueOf = async (page: Page, id: string): Promise<string> => (await dataOf(page, `#${id}`)).value ?? ''

describe('the connection lab over HTTPS in Chromium', { skip, timeout: 120_000 }, () => {
  let home: ReturnType<typeof tempDir>
  let savedHome: string | undefined
  let server: TestServer
  let port: number
  let browser: LaunchedBrowser | undefined
  let leaf: X509Certificate

  before(async () => {
    // the local authority and its certificate go to a temporary home, not the user's
    home = tempDir('edgebox-home-')
    savedHome = process.env.EDGEBOX_HOME
    process.env.EDGEBOX_HOME = home.dir
    port = (await freePortPair('127.0.0.1'))!
    server = await startServer(defaultConfig({ port, https: true }))
    // the server provisioned the certificate (tls.local) before listening
    const pem = readFileSync(path.join(home.dir, 'certs', 'local.crt'))
    leaf = new X509Certificate(pem)
    const spki = createHash('sha256')
      .update(createPublicKey(pem).export({ type: 'spki', format: 'der' }))
      .digest('base64')
    browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${spki}`])
  })

  after(async () => {
    await browser?.close()
    await server?.close()
    if (savedHome === undefined) delete process.env.EDGEBOX_HOME
    else process.env.EDGEBOX_HOME = savedHome
    home?.cleanup()
  })

  /** Opens the page, waits until it has read the connection, and returns it with what went wrong on the way. */
  async function open(url: string, ready = true): Promise<{ page: Page; problems: string[] }> {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`))
    await page.goto(url, { timeout: 15_000 })
    if (ready) await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
    return { page, problems }
  }

  test('the page is CSP-friendly and linked from the welcome page', async () => {
    assert.equal(server.url, `https://127.0.0.1:${port}/`)
    const { page, problems } = await open(`https://localhost:${port}/`, false)
    try {
      const html = await page.content()
      assert.ok(html.includes('href="/lab/tls.html"'), 'the welcome page links the connection lab')
      const res = await page.evaluate(async () => {
        const r = await fetch('/lab/tls.html', { cache: 'no-store' })
        return { status: r.status, text: await r.text() }
      })
      assert.equal(res.status, 200)
      assertCspFriendly(res.text, 'lab/tls.html')
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('https://localhost: HTTP/2 over TLS 1.3 by ALPN, the local certificate, and a 103 before the page', async () => {
    const { page, problems } = await open(`https://localhost:${port}/lab/tls.html`)
    try {
      const status = await dataOf(page, '#status')
      assert.equal(status.state, 'done', status.text)

      // what the browser itself says about the navigation
      const nav = await page.evaluate(() => {
        const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming & { firstInterimResponseStart?: number }
        return { nextHopProtocol: n.nextHopProtocol, firstInterimResponseStart: n.firstInterimResponseStart ?? null }
      })
      assert.equal(nav.nextHopProtocol, 'h2')
      assert.ok((nav.firstInterimResponseStart ?? 0) > 0, `the navigation received a 1xx (the 103): ${JSON.stringify(nav)}`)

      // what the page shows
      assert.equal(await valueOf(page, 'next-hop'), 'h2')
      assert.equal(await valueOf(page, 'protocol'), 'h2')
      assert.match(await valueOf(page, 'stream'), /^\d+$/)
      assert.equal(await valueOf(page, 'tls-version'), 'TLSv1.3')
      assert.match(await valueOf(page, 'cipher'), /^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/)
      assert.equal(await valueOf(page, 'alpn'), 'h2')
      assert.equal(await valueOf(page, 'resumed'), 'full', 'a fresh profile starts with a full handshake')
      assert.equal(await valueOf(page, 'sni'), 'localhost')
      assert.equal(await page.$eval('#cleartext', (el) => (el as HTMLElement).hidden), true)

      // the chain: the leaf Edgebox presented, then the local authority that issued it
      const cert0 = await dataOf(page, '#cert-0')
      assert.equal(cert0.fingerprint, leaf.fingerprint256)
      assert.equal(cert0.source, 'presented')
      assert.equal(cert0.subject, 'CN=localhost')
      const cert1 = await dataOf(page, '#cert-1')
      assert.equal(cert1.source, 'local authority')
      assert.equal(cert1.ca, 'true')
      assert.equal(cert0.issuer, cert1.subject)

      // the 103 Early Hints of the /lab/ route arrived before the page
      assert.match(await valueOf(page, 'interim'), /^\d+(\.\d+)?$/)

      // another request on the same connection: the next (odd) client stream
      const before = Number(await valueOf(page, 'stream'))
      await page.click('#again')
      await page.waitForFunction((n) => Number(document.getElementById('stream')?.dataset.value) > n, before, { timeout: 5_000 })
      const after = Number(await valueOf(page, 'stream'))
      assert.equal(after % 2, 1, 'client-initiated streams are odd')
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('the page shows the stylesheet Chromium preloaded because of the 103', async () => {
    // On loopback the HTML can arrive right behind the 103, and Chromium then sometimes fetches the
    // stylesheet for the page's <link> rather than for the hint: a few navigations, each to a new URL
    // (a fresh 200, not a revalidation), so that one of them shows the preload.
    const seen: string[] = []
    for (let attempt = 1; attempt <= 5; attempt++) {
      const { page, problems } = await open(`https://localhost:${port}/lab/tls.html?attempt=${attempt}`)
      try {
        assert.deepEqual(problems, [])
        assert.ok(Number(await valueOf(page, 'interim')) > 0, 'a 103 arrived before the page')
        const hints = await dataOf(page, '#early-hints')
        seen.push(`${attempt}: ${hints.text} (${await page.$eval('#hints', (el) => el.textContent)})`)
        if (Number(hints.count) === 0) continue
        const style = await page.$('#hints li[data-url="/assets/style.css"][data-initiator="early-hints"]')
        assert.ok(style, 'the page lists /assets/style.css as preloaded by Early Hints')
        const entry = await page.evaluate(() => performance.getEntriesByType('resource').find((e) => (e as PerformanceResourceTiming).initiatorType === 'early-hints')?.name)
        assert.equal(entry, `https://localhost:${port}/assets/style.css`)
        await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 15_000 })
        return
      } finally {
        await page.close()
      }
    }
    assert.fail(`no navigation showed an Early Hints preload:\n${seen.join('\n')}`)
  })

  test('https://127.0.0.1: no server name is sent for an IP address, still HTTP/2 over TLS 1.3', async () => {
    const { page, problems } = await open(`https://127.0.0.1:${port}/lab/tls.html`)
    try {
      assert.equal(await valueOf(page, 'protocol'), 'h2')
      assert.equal(await valueOf(page, 'tls-version'), 'TLSv1.3')
      assert.equal(await valueOf(page, 'alpn'), 'h2')
      assert.equal(await valueOf(page, 'sni'), 'none')
      assert.equal((await dataOf(page, '#cert-0')).fingerprint, leaf.fingerprint256)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })

  test('a WebSocket from the HTTPS page reaches the realtime hub (over the page’s HTTP/2 connection, RFC 8441, where Chromium uses it)', async () => {
    const { page } = await open(`https://localhost:${port}/lab/tls.html`)
    try {
      const got = await page.evaluate(
        (url) =>
          new Promise<string[]>((resolve, reject) => {
            const seen: string[] = []
            const ws = new WebSocket(url, 'edgebox.v1')
            const timer = setTimeout(() => reject(new Error(`timed out; saw ${seen.join(' | ')}`)), 8000)
            ws.onopen = () => ws.send(JSON.stringify({ t: 'ping' }))
            ws.onerror = () => reject(new Error('WebSocket error'))
            ws.onmessage = (e) => {
              seen.push(String(e.data))
              if (String(e.data).includes('"pong"')) {
                clearTimeout(timer)
                ws.close()
                resolve([ws.protocol, ...seen])
              }
            }
          }),
        `wss://localhost:${port}/live/ws`,
      )
      assert.equal(got[0], 'edgebox.v1')
      assert.ok(got.some((m) => m.includes('"pong"')))
    } finally {
      await page.close()
    }
  })
})

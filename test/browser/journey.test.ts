import assert from 'node:assert/strict'
import { createHash, createPublicKey } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { writeRumAssets } from '../../client/build.ts'
import { defaultConfig, freeDnsLabPorts, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()
const ROOT = path.resolve(import.meta.dirname, '..', '..')

/**
 * The journey lab of `npm start` (its default configuration, with the DNS
 * lab) in Chromium: the waterfall fills in every phase from the page's own
 * timing entries and its requests to Edgebox (DNS over HTTPS, the edge and
 * parent caches, the realtime hub, the monitoring beacon), `edgebox inspect`
 * of the same URL shows beside it, the h2 figures come from Edgebox's own
 * client on request, the comparisons render, each phase links to its lab
 * page, and nothing logs a console error.
 */
describe("the journey lab (npm start's configuration) in Chromium", { skip, timeout: 180_000 }, () => {
  let server: TestServer | undefined
  let browser: LaunchedBrowser | undefined
  let dir: { dir: string; cleanup(): void }

  before(async () => {
    // the monitoring SDK Edgebox injects into every page (a gitignored build)
    if (!existsSync(path.join(ROOT, 'lab', 'www', 'assets', 'edgebox-rum.js'))) writeRumAssets()
    dir = tempDir()
    const lab = await freeDnsLabPorts()
    assert.ok(lab, 'free ports for the DNS lab on 127.0.0.1-4')
    server = await startServer({ ...defaultConfig({ port: (await freePortPair('127.0.0.1'))!, ...lab }), dataDir: path.join(dir.dir, 'data') })
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
    dir?.cleanup()
  })

  test('every phase of the waterfall is measured, inspect shows beside it, the comparisons render, no console errors', async () => {
    const page = await browser!.context.newPage()
    const errors: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('pageerror', (e) => errors.push(e.message))
    try {
      // the page runs under the lab's strict Content-Security-Policy: nothing inline
      assertCspFriendly(await (await fetch(new URL('/lab/journey.html', server!.url), { signal: AbortSignal.timeout(10_000) })).text(), 'lab/journey.html')
      await page.goto(new URL('/lab/journey.html', server!.url).href)
      await page.waitForSelector('#journey-status[data-state="done"]', { timeout: 60_000 })
      const states = await page.$$eval('tr[data-phase]', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.phase, (tr as HTMLElement).dataset.state, tr.querySelector('td.track')?.children.length ?? 0]))
      // over http:// there is no TLS handshake: that row says why instead of a bar
      assert.deepEqual(states, [
        ['dns', 'done', 2],
        ['tcp', 'done', 1],
        ['tls', 'skipped', 0],
        ['http', 'done', 2],
        ['cache', 'done', 3],
        ['realtime', 'done', 3],
        ['beacon', 'done', 1],
      ])
      assert.equal(await page.$eval('#journey-status', (e) => (e as HTMLElement).dataset.ok), 'true')
      // each phase links to the lab page that shows it in depth
      const links = await page.$$eval('tr[data-phase] th a', (as) => as.map((a) => [a.closest('tr')!.getAttribute('data-phase'), a.getAttribute('href')]))
      assert.deepEqual(links, [
        ['dns', '/lab/dns.html'],
        ['tcp', '/lab/tls.html'],
        ['tls', '/lab/tls.html'],
        ['http', '/lab/tls.html'],
        ['cache', '/lab/cdn.html'],
        ['realtime', '/lab/realtime.html'],
        ['beacon', '/lab/monitoring.html'],
      ])
      // and the lab's index links to this page
      assert.match(await (await fetch(new URL('/', server!.url), { signal: AbortSignal.timeout(10_000) })).text(), /<a href="\/lab\/journey\.html">What happens when you type a URL<\/a>/)
      for (const [, href] of links) assert.equal((await page.request.get(new URL(href!, server!.url).href)).status(), 200, href!)

      const detail = (phase: string) => page.$eval(`tr[data-detail="${phase}"] td`, (td) => td.textContent ?? '')
      // Edgebox's DNS, asked over HTTPS: the balanced name's two edges
      assert.match(await detail('dns'), /www\.edgebox\.test\. \d+ 127\.0\.0\.[23], www\.edgebox\.test\. \d+ 127\.0\.0\.[23]/)
      // plain http: the browser spoke HTTP/1.1 and the page says why h2 is not there
      assert.match(await detail('http'), /nextHopProtocolhttp\/1\.1/)
      assert.match(await page.$eval('#h2-note', (p) => p.textContent ?? ''), /only over TLS/)
      // the edge and parent tiers' Cache-Status: both miss, the edge hits, another edge misses where the parent hits
      const cache = await page.$$eval('#cache-table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1, 4).map((td) => td.textContent)))
      assert.deepEqual(cache.map((r) => r[0]), ['200', '200', '200'])
      assert.match(cache[0]![1]!, /^fwd=miss; fwd-status=200; stored/)
      assert.match(cache[0]![2]!, /^fwd=miss; fwd-status=200; stored/)
      assert.match(cache[1]![1]!, /^hit/)
      assert.match(cache[2]![1]!, /^fwd=miss/)
      assert.match(cache[2]![2]!, /^hit/)
      assert.match(await detail('realtime'), /the hub's "sub" envelope/)
      assert.match(await detail('beacon'), /\/_edgebox\/rum\/batch \(initiatorType beacon: navigator\.sendBeacon\)/)

      // edgebox inspect --json of the same URL, beside the waterfall
      await page.waitForSelector('#inspect-status[data-state="done"]', { timeout: 60_000 })
      assert.match(await page.$eval('#inspect-summary tr[data-field="command"] td', (td) => td.textContent ?? ''), /^edgebox inspect --json --timeout 5 http:\/\/127\.0\.0\.1:\d+\/lab\/journey\.html$/)
      assert.match(await page.$eval('#inspect-summary tr[data-field="status"] td', (td) => td.textContent ?? ''), /^200 HTTP\/1\.1/)
      const report = JSON.parse(await page.$eval('#inspect-json', (p) => p.textContent ?? ''))
      assert.match(report.url, /\/lab\/journey\.html$/)

      // h2 measured by Edgebox's own client, on request
      await page.click('#run-exchange')
      await page.waitForSelector('#exchange[data-state="done"]', { timeout: 30_000 })
      assert.deepEqual(await page.$$eval('#exchange-table tbody tr', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.protocol, tr.children[1]!.textContent])), [
        ['http/1.1', '200'],
        ['h2c', '200'],
      ])

      // the server-side comparisons, one after the other
      for (const key of ['connections', 'hol', 'dns']) {
        await page.click(`button[data-compare="${key}"]`)
        await page.waitForSelector(`#${key}-status[data-state="done"]`, { timeout: 60_000 })
        assert.equal(await page.$eval(`#${key}-status`, (o) => (o as HTMLElement).dataset.ok), 'true', key)
      }
      const cellsOf = (id: string) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)))
      const conn = await cellsOf('connections-table')
      assert.deepEqual(conn.map((r) => [r[0], r[1], r[2]]), [
        ['one kept-alive', '10', '1 / 1'],
        ['new each time', '10', '10 / 10'],
      ])
      const hol = await cellsOf('hol-table')
      assert.deepEqual(hol.map((r) => [r[0], r[1], r[2]]), [
        ['http/1.1', '50', '6 / 6'],
        ['h2c', '50', '1 / 1'],
      ])
      const dns = await cellsOf('dns-table')
      assert.deepEqual(dns.map((r) => [r[3], r[4]]), [
        ['set', '0'],
        ['clear', '3'],
        ['clear', '3'],
      ])
      assert.match(dns[2]![0]!, /\(tcp in the end\)/)
      assert.deepEqual(errors, [])
    } finally {
      await page.close()
    }
  })
})

/**
 * `npm start -- --https` with the local authority's certificate accepted (as
 * a browser that trusts the authority accepts it): the page's own TLS
 * handshake shows, and the browser's own HTTP/2 figures replace the note.
 */
describe("the journey lab over HTTPS (npm start -- --https's configuration) in Chromium", { skip, timeout: 180_000 }, () => {
  let home: ReturnType<typeof tempDir>
  let savedHome: string | undefined
  let server: TestServer | undefined
  let browser: LaunchedBrowser | undefined

  before(async () => {
    if (!existsSync(path.join(ROOT, 'lab', 'www', 'assets', 'edgebox-rum.js'))) writeRumAssets()
    // the local authority and its certificate go to a temporary home, not the user's
    home = tempDir('edgebox-home-')
    savedHome = process.env.EDGEBOX_HOME
    process.env.EDGEBOX_HOME = home.dir
    const lab = await freeDnsLabPorts()
    assert.ok(lab, 'free ports for the DNS lab on 127.0.0.1-4')
    server = await startServer(defaultConfig({ port: (await freePortPair('127.0.0.1'))!, https: true, ...lab }))
    const pem = readFileSync(path.join(home.dir, 'certs', 'local.crt'))
    const spki = createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('base64')
    browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${spki}`])
  })
  after(async () => {
    await browser?.close()
    await server?.close()
    if (savedHome === undefined) delete process.env.EDGEBOX_HOME
    else process.env.EDGEBOX_HOME = savedHome
    home?.cleanup()
  })

  test("the TLS handshake and the browser's own h2 show in the waterfall", async () => {
    const page = await browser!.context.newPage()
    const errors: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('pageerror', (e) => errors.push(e.message))
    try {
      await page.goto(new URL('/lab/journey.html', server!.url).href)
      await page.waitForSelector('#journey-status[data-state="done"]', { timeout: 60_000 })
      const states = await page.$$eval('tr[data-phase]', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.phase, (tr as HTMLElement).dataset.state]))
      assert.deepEqual(states, [
        ['dns', 'done'],
        ['tcp', 'done'],
        ['tls', 'done'],
        ['http', 'done'],
        ['cache', 'done'],
        ['realtime', 'done'],
        ['beacon', 'done'],
      ])
      assert.equal(await page.$eval('tr[data-phase="tls"] td.track', (td) => td.children.length), 1)
      assert.match(await page.$eval('tr[data-detail="http"] td', (td) => td.textContent ?? ''), /nextHopProtocolh2/)
      assert.match(await page.$eval('#h2-note', (p) => p.textContent ?? ''), /^Your browser spoke HTTP\/2 to Edgebox/)
      // the edge reached the parent through this HTTPS listener
      assert.match(await page.$eval('#cache-table tbody tr[data-step="2"]', (tr) => tr.textContent ?? ''), /hit/)
      await page.waitForSelector('#inspect-status[data-state="done"]', { timeout: 60_000 })
      assert.match(await page.$eval('#inspect-summary tr[data-field="status"] td', (td) => td.textContent ?? ''), /^200 HTTP\/2/)
      await page.click('#run-exchange')
      await page.waitForSelector('#exchange[data-state="done"]', { timeout: 30_000 })
      assert.deepEqual(await page.$$eval('#exchange-table tbody tr', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.protocol)), ['http/1.1', 'h2'])
      assert.deepEqual(errors, [])
    } finally {
      await page.close()
    }
  })
})

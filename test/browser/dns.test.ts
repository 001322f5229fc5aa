import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { defaultConfig, freeDnsLabPorts, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { decode, query } from '../helpers/dns.ts'

const skip = browserSkip()

type Data = Record<string, string>
const dataOf = (page: Page, id: string): Promise<Data> => page.$eval(`#${id}`, (el) => ({ text: el.textContent ?? '', ...(el as HTMLElement).dataset }) as Record<string, string>)

describe('the DNS lab (npm start\'s configuration) in Chromium', { skip, timeout: 120_000 }, () => {
  let server: TestServer
  let browser: LaunchedBrowser | undefined

  before(async () => {
    const lab = await freeDnsLabPorts()
    assert.ok(lab, 'free ports for the DNS lab on 127.0.0.1-4')
    server = await startServer(defaultConfig({ port: (await freePortPair('127.0.0.1'))!, ...lab }))
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
  })

  test('DoH from Chromium\'s fetch (the wire form, GET and POST) and from curl', async () => {
    const page = await browser!.context.newPage()
    try {
      await page.goto(new URL('/lab/dns.html', server.url).href, { timeout: 15_000 })
      const q = query('www.edgebox.test', 'A', { id: 0 })
      const got = await page.evaluate(async (b64) => {
        const bytes = Uint8Array.from(atob(b64.replaceAll('-', '+').replaceAll('_', '/')), (c) => c.charCodeAt(0))
        const get = await fetch(`/dns-query?dns=${b64.replace(/=+$/, '')}`, { headers: { accept: 'application/dns-message' } })
        const post = await fetch('/dns-query', { method: 'POST', headers: { 'content-type': 'application/dns-message' }, body: bytes })
        const toB64 = async (r: Response) => btoa(String.fromCharCode(...new Uint8Array(await r.arrayBuffer())))
        return { get: { status: get.status, type: get.headers.get('content-type'), cc: get.headers.get('cache-control'), body: await toB64(get) }, post: { status: post.status, body: await toB64(post) } }
      }, q.toString('base64url'))
      assert.equal(got.get.status, 200)
      assert.equal(got.get.type, 'application/dns-message')
      assert.match(got.get.cc ?? '', /^max-age=\d+$/)
      for (const r of [got.get, got.post]) {
        const p = decode(Buffer.from(r.body, 'base64'))
        assert.equal(p.rcode, 'NOERROR')
        assert.equal(p.flag_ra, true, 'answered by the resolver on 127.0.0.1')
        assert.deepEqual(p.answers.map((a) => a.data).sort(), ['127.0.0.2', '127.0.0.3'])
      }
    } finally {
      await page.close()
    }
    // curl in a child process (the server runs in this one, so not spawnSync)
    const child = spawn('curl', ['-s', '--max-time', '10', '-H', 'content-type: application/dns-message', '--data-binary', '@-', `${server.url}dns-query`])
    child.stdin.end(query('app.edgebox.test', 'A', { id: 0 }))
    const chunks: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => chunks.push(c))
    const status = await new Promise<number | null>((r) => child.on('close', r))
    assert.equal(status, 0)
    const p = decode(Buffer.concat(chunks))
    assert.deepEqual(p.answers.map((a) => `${a.type} ${a.data}`).slice(0, 1), ['CNAME www.edgebox.test'])
  })

  test('the tour: a resolution from the root, the cache with a falling TTL, and failover when an edge stops', async () => {
    const page = await browser!.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    try {
      const html = await (await fetch(new URL('/lab/dns.html', server.url).href, { signal: AbortSignal.timeout(10_000) })).text()
      assertCspFriendly(html, 'lab/dns.html')
      await page.goto(new URL('/lab/dns.html', server.url).href, { timeout: 15_000 })
      await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      assert.equal(await page.locator('#edges tbody tr').count(), 2, 'two demo edges listed')
      await page.click('#tour', { timeout: 5_000 })
      await page.waitForSelector('#tour-status[data-state="done"]', { timeout: 90_000 })
      await page.screenshot({ path: '/tmp/lab-dns.png', fullPage: true, timeout: 15_000 })
      for (const step of ['trace', 'cache', 'failover']) {
        const d = await dataOf(page, `step-${step}`)
        assert.equal(d.ok, 'true', `${step}: ${d.detail}`)
      }
      assert.match((await dataOf(page, 'step-trace')).detail, /^3 steps: \. -> referral to test\..*; test\. -> referral to edgebox\.test\..*; edgebox\.test\. -> answer: A 127\.0\.0\.[23], A 127\.0\.0\.[23]$/)
      assert.deepEqual(problems, [])
    } finally {
      await page.close()
    }
  })
})

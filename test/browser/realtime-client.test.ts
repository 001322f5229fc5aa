import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { buildPageModule, buildScript } from '../../client/build.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startFakeHub, type FakeHub } from '../helpers/realtime-fake.ts'

/**
 * The realtime client's page builds in Chromium, against the fake hub: the
 * plain script (window.EdgeboxRealtime) over the browser's own WebSocket and
 * EventSource, and the ES module. The builds are made in memory from
 * client/realtime.ts, so this does not depend on `npm run build:client`.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const PAGE = '<!doctype html><meta charset="utf-8"><title>realtime</title><script src="/assets/edgebox-realtime.js"></script>'
const pages = {
  '/page.html': { type: 'text/html; charset=utf-8', body: PAGE },
  '/module.html': { type: 'text/html; charset=utf-8', body: '<!doctype html><meta charset="utf-8"><title>realtime module</title>' },
  '/assets/edgebox-realtime.js': { type: 'text/javascript; charset=utf-8', body: buildScript() },
  '/assets/edgebox-realtime.mjs': { type: 'text/javascript; charset=utf-8', body: buildPageModule() },
}

/** In the page: connects, subscribes to `ch`, and records what happens on window.rt. */
async function startInPage(page: Page, transports: string[]): Promise<void> {
  await page.evaluate((transports) => {
    const w = window as unknown as Record<string, any>
    const log = { states: [] as string[], got: [] as Array<[unknown, number]> }
    const client = w.EdgeboxRealtime.connect('/live/', { transports, backoff: { base: 20, max: 200 }, upgradeInterval: 0 })
    client.on('state', (s: { state: string; transport?: string }) => log.states.push(`${s.state}:${s.transport ?? ''}`))
    client.subscribe('chat:a', (d: unknown, meta: { position: { o: number } }) => log.got.push([d, meta.position.o]))
    w.rt = { client, log }
  }, transports)
}

const inPage = <T,>(page: Page, fn: () => T) => page.evaluate(fn)

async function waitInPage(page: Page, what: string, fn: () => boolean): Promise<void> {
  await page.waitForFunction(fn, undefined, { timeout: 10_000, polling: 20 }).catch((err: unknown) => {
    throw new Error(`timed out waiting in the page for ${what}: ${String(err)}`)
  })
}

describe('realtime client in Chromium', { skip, timeout: 120_000 }, () => {
  let browser: LaunchedBrowser | undefined
  let hub: FakeHub

  before(async () => {
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
  })

  async function open(path: string, modes: Parameters<typeof startFakeHub>[0] = {}): Promise<Page> {
    hub = await startFakeHub(modes, pages)
    const page = await browser!.context.newPage()
    await page.goto(new URL(path, hub.url).href)
    return page
  }
  async function done(page: Page): Promise<void> {
    await page.evaluate(() => (window as unknown as { rt?: { client: { close(): void } } }).rt?.client.close()).catch(() => {})
    await page.close()
    await hub.close()
  }

  test('the plain script over the browser WebSocket: messages in order, publish acked, resume after a kill', async () => {
    const page = await open('/page.html')
    try {
      await startInPage(page, ['websocket', 'sse'])
      await waitInPage(page, 'connected', () => (window as any).rt.log.states.includes('connected:websocket'))
      await waitInPage(page, 'the sub', () => (window as any).rt.client.position('chat:a') !== undefined)
      hub.publish('chat:a', 'm1')
      hub.publish('chat:a', 'm2')
      await waitInPage(page, '2 messages', () => (window as any).rt.log.got.length === 2)
      const ack = await inPage(page, () => (window as any).rt.client.publish('chat:a', 'from the page'))
      assert.deepEqual(ack, { e: 'ep-chata-1', o: 3 })
      hub.kill()
      hub.publish('chat:a', 'm4')
      await waitInPage(page, '4 messages', () => (window as any).rt.log.got.length === 4)
      assert.deepEqual(await inPage(page, () => (window as any).rt.log.got), [['m1', 1], ['m2', 2], ['from the page', 3], ['m4', 4]])
      assert.ok(hub.received.some((e) => e.t === 'sub' && e.ch === 'chat:a' && e.o === 3), 'resumed after 3')
    } finally {
      await done(page)
    }
  })

  test('the plain script falls back to the browser EventSource when the upgrade is refused', async () => {
    const page = await open('/page.html', { ws: 'refuse' })
    try {
      await startInPage(page, ['websocket', 'sse'])
      await waitInPage(page, 'connected over sse', () => (window as any).rt.log.states.includes('connected:sse'))
      await waitInPage(page, 'the sub', () => (window as any).rt.client.position('chat:a') !== undefined)
      hub.publish('chat:a', 'm1')
      await waitInPage(page, 'm1', () => (window as any).rt.log.got.length === 1)
      const ack = await inPage(page, () => (window as any).rt.client.publish('chat:a', 'posted'))
      assert.deepEqual(ack, { e: 'ep-chata-1', o: 2 })
      await waitInPage(page, 'its own message', () => (window as any).rt.log.got.length === 2)
      // Killed stream: the new EventSource URL carries the position (not Last-Event-ID).
      hub.kill()
      hub.publish('chat:a', 'm3')
      await waitInPage(page, 'm3', () => (window as any).rt.log.got.length === 3)
      assert.deepEqual(await inPage(page, () => (window as any).rt.log.got), [['m1', 1], ['posted', 2], ['m3', 3]])
      assert.ok(hub.requests.some((r) => r.kind === 'sse' && r.url.searchParams.get('ch') === 'chat:a@ep-chata-1/2'))
    } finally {
      await done(page)
    }
  })

  test('the ES module build imports and connects', async () => {
    const page = await open('/module.html')
    try {
      const result = await page.evaluate(async () => {
        const m = await import('/assets/edgebox-realtime.mjs' as string)
        const client = m.connect('/live/', { transports: ['poll'], pollInterval: 50 })
        try {
          const ack = await client.publish('chat:a', 'via module')
          return { ack, exports: Object.keys(m).sort() }
        } finally {
          client.close()
        }
      })
      assert.deepEqual(result.ack, { e: 'ep-chata-1', o: 1 })
      assert.ok(result.exports.includes('connect') && result.exports.includes('RealtimeError'))
    } finally {
      await done(page)
    }
  })
})

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'
import { defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { browserSkip, CHROMIUM_ARGS, chromiumPath } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * The chat example (/chat/) in Chromium across a restart of Edgebox on the
 * same port (memory engine: the room's history is gone, a new epoch
 * begins): the page says "messages may have been lost while the server
 * restarted" once, and goes on showing the messages of the new server.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const lines = (page: Page) =>
  page.$$eval('#messages li', (lis) => lis.map((li) => ({ offset: (li as HTMLElement).dataset.offset ?? null, gap: (li as HTMLElement).dataset.gap ?? null, text: li.textContent ?? '' })))

describe('the chat page across a restart', { skip, timeout: 120_000 }, () => {
  let server: TestServer | undefined
  let browser: Browser | undefined
  let port = 0

  before(async () => {
    port = (await freePortPair('127.0.0.1'))!
    server = await startServer(defaultConfig({ port }))
    browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, timeout: 30_000 })
  })

  after(async () => {
    await browser?.close()
    await server?.close()
  })

  async function say(page: Page, text: string): Promise<void> {
    await page.fill('#text', text, { timeout: 5_000 })
    await page.click('#send', { timeout: 5_000 })
  }

  for (const transport of ['websocket', 'long-poll'] as const) {
    test(`over ${transport}: one notice, then the new server's messages`, async () => {
      const problems: string[] = []
      const context = await browser!.newContext()
      try {
        const page = await context.newPage()
        page.on('pageerror', (e) => problems.push(e.message))
        const room = `r${randomBytes(4).toString('hex')}`
        await page.goto(new URL(`/chat/?room=${room}&transport=${transport}&autojoin=1&name=ann`, server!.url).href, { timeout: 15_000 })
        await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 })
        await say(page, 'before')
        await page.waitForSelector('#messages li[data-offset="1"]', { timeout: 20_000 })

        await server!.close()
        server = await startServer(defaultConfig({ port }))
        await page.waitForSelector('#messages li[data-gap]', { timeout: 30_000 })
        await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 })
        await say(page, 'after')
        await page.waitForFunction(() => document.querySelectorAll('#messages li[data-offset]').length >= 2, null, { timeout: 20_000, polling: 50 })

        assert.deepEqual(await lines(page), [
          { offset: '1', gap: null, text: 'ann before' },
          { offset: null, gap: 'restart', text: '… messages may have been lost while the server restarted' },
          { offset: '1', gap: null, text: 'ann after' },
        ])
        assert.deepEqual(problems, [])
      } finally {
        await context.close()
      }
    })
  }
})

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { chromium, type Browser, type BrowserContext, type Page, type WebSocketRoute } from 'playwright-core'
import { defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { assertCspFriendly, browserSkip, CHROMIUM_ARGS, chromiumPath } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

/**
 * The realtime pages of the default configuration in Chromium: the chat
 * example (/chat/, on the client SDK) over each transport, falling back
 * when WebSocket is blocked and catching up after going offline; and the
 * transport lab (/lab/realtime.html), which speaks the wire protocol itself.
 * Two pages that must not share anything (offline is per context) get two
 * browser contexts, hence a browser launched here rather than the
 * persistent context of launchBrowser().
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'poll'] as const
const CONNECT_TIMEOUT = 20_000
const DELIVERY_TIMEOUT = 20_000
const SCREENSHOT = '/tmp/lab-realtime.png'

/** Scripts that build the DOM from strings would need 'unsafe-inline' or Trusted Types; ours use textContent. */
function assertNoHtmlInjection(js: string, name: string): void {
  assert.doesNotMatch(js, /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(/, `${name}: builds DOM or code from strings`)
}

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`

interface Line {
  offset: string | undefined
  from: string | undefined
  text: string
}

/** What the chat page shows: one line per message (data-offset, data-from), and notices without an offset. */
const linesOf = (page: Page): Promise<Line[]> =>
  page.$$eval('#messages li', (lis) => lis.map((li) => ({ offset: (li as HTMLElement).dataset.offset, from: (li as HTMLElement).dataset.from, text: li.textContent ?? '' })))

async function waitForLines(page: Page, n: number, what: string): Promise<Line[]> {
  try {
    await page.waitForFunction((n) => document.querySelectorAll('#messages li[data-offset]').length >= n, n, { timeout: DELIVERY_TIMEOUT, polling: 50 })
  } catch (err) {
    throw new Error(`${what}: ${n} message(s) expected, the page shows ${JSON.stringify(await linesOf(page))} (${(err as Error).message.split('\n')[0]})`)
  }
  return linesOf(page)
}

async function stateOf(page: Page): Promise<{ state: string; transport: string; text: string }> {
  return page.$eval('#state', (o) => ({ state: (o as HTMLElement).dataset.state ?? '', transport: (o as HTMLElement).dataset.transport ?? '', text: o.textContent ?? '' }))
}

async function waitConnected(page: Page, what: string): Promise<{ state: string; transport: string; text: string }> {
  try {
    await page.waitForSelector('#state[data-state="connected"]', { timeout: CONNECT_TIMEOUT })
  } catch (err) {
    throw new Error(`${what} did not connect: ${JSON.stringify(await stateOf(page))} (${(err as Error).message.split('\n')[0]})`)
  }
  return stateOf(page)
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text, { timeout: 5_000 })
  await page.click('#send', { timeout: 5_000 })
}

/**
 * A plain HTTP front on 127.0.0.1 that relays everything (WebSocket upgrades
 * included) to `target`, adding `Content-Security-Policy` to HTML responses:
 * the pages served with a real policy header, as a site would deploy them.
 * (Edgebox has no response-header option yet; and a document replaced with
 * Playwright's route.fulfill() loses its address, so Chromium's Local
 * Network Access checks would refuse its WebSocket to 127.0.0.1.)
 */
async function cspFront(target: URL, policy: (host: string) => string): Promise<{ url: string; host: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (r) => {
      const headers = { ...r.headers }
      if (String(r.headers['content-type'] ?? '').startsWith('text/html')) headers['content-security-policy'] = policy(req.headers.host ?? '')
      res.writeHead(r.statusCode ?? 502, headers)
      r.pipe(res)
    })
    up.on('error', () => res.destroy())
    res.on('close', () => up.destroy())
    req.pipe(up)
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const up = net.connect(Number(target.port), target.hostname, () => {
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`
      for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
      up.write(`${text}\r\n`)
      up.write(head)
      socket.pipe(up).pipe(socket)
    })
    sockets.add(up)
    up.on('close', () => sockets.delete(up))
    up.on('error', () => socket.destroy())
    socket.on('error', () => up.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Message lines only, as [offset, from, text], for comparing what two pages show. */
const messagesOf = (lines: Line[]) => lines.filter((l) => l.offset !== undefined).map((l) => [l.offset, l.from, l.text])

describe('realtime pages in Chromium', { skip, timeout: 600_000 }, () => {
  let server: TestServer
  let browser: Browser | undefined
  const contexts: BrowserContext[] = []

  before(async () => {
    server = await startServer(defaultConfig({ port: (await freePortPair('127.0.0.1'))! }))
    browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, timeout: 30_000 })
  })

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await browser?.close()
    await server?.close()
  })

  const url = (p: string) => new URL(p, server.url).href

  async function newContext(): Promise<BrowserContext> {
    const context = await browser!.newContext({ viewport: { width: 1200, height: 900 } })
    contexts.push(context)
    return context
  }

  /** Opens the chat page in `context` and joins `room`; `problems` collects page errors. */
  async function openChat(context: BrowserContext, room: string, transport: string, name: string, problems: string[], setup?: (page: Page) => Promise<void>, consoleErrors = true): Promise<Page> {
    const page = await context.newPage()
    page.on('pageerror', (e) => problems.push(`${name}: pageerror: ${e.message}`))
    // Failed connections are logged as console errors: expected where a test cuts them.
    if (consoleErrors) page.on('console', (m) => m.type() === 'error' && problems.push(`${name}: console: ${m.text()}`))
    await setup?.(page)
    await page.goto(url(`/chat/?room=${room}&transport=${transport}&autojoin=1&name=${name}`), { timeout: 15_000 })
    await page.waitForSelector('html[data-chat-ready="true"]', { timeout: 10_000 })
    return page
  }

  for (const transport of TRANSPORTS) {
    test(`chat: two pages exchange messages over ${transport}, in the same order`, async () => {
      const problems: string[] = []
      const room = unique(`t-${transport}`)
      const [ca, cb] = [await newContext(), await newContext()]
      try {
        const alice = await openChat(ca, room, transport, 'alice', problems)
        const bob = await openChat(cb, room, transport, 'bob', problems)
        for (const [page, who] of [[alice, 'alice'], [bob, 'bob']] as const) {
          const s = await waitConnected(page, who)
          assert.equal(s.transport, transport, `${who} is connected over ${transport}: ${s.text}`)
        }
        // Both at once: the hub orders them; both pages must show that one order.
        await Promise.all([say(alice, `hello from alice over ${transport}`), say(bob, `hello from bob over ${transport}`)])
        const a = await waitForLines(alice, 2, 'alice')
        const b = await waitForLines(bob, 2, 'bob')
        assert.deepEqual(messagesOf(a), messagesOf(b), 'both pages show the same messages in the same order')
        assert.equal(a.length, 2, `no notices or errors: ${JSON.stringify(a)}`)
        assert.deepEqual(
          a.map((l) => l.offset),
          ['1', '2'],
          'offsets 1 and 2 of a new room',
        )
        assert.deepEqual(a.map((l) => l.from).sort(), ['alice', 'bob'])
        for (const l of a) assert.equal(l.text, `${l.from} hello from ${l.from} over ${transport}`)
        // Still exactly two a moment later: nothing delivered twice.
        await alice.waitForTimeout(transport === 'poll' ? 2_500 : 500)
        assert.equal((await linesOf(bob)).length, 2, 'no repeats on bob')
        assert.equal((await linesOf(alice)).length, 2, 'no repeats on alice')
        assert.deepEqual(problems, [])
      } finally {
        await ca.close()
        await cb.close()
      }
    })
  }

  test('chat: with WebSocket blocked, a page falls back to an HTTP transport and gets every message', async () => {
    const problems: string[] = []
    const room = unique('fallback')
    const [ca, cb] = [await newContext(), await newContext()]
    let refused = 0
    try {
      const alice = await openChat(ca, room, 'websocket', 'alice', problems)
      // Every WebSocket to the hub is closed before it opens, as a proxy refusing Upgrade would.
      const bob = await openChat(
        cb,
        room,
        'auto',
        'bob',
        problems,
        (page) =>
          page.routeWebSocket(/\/live\/ws/, (ws) => {
            refused++
            return ws.close()
          }),
        false,
      )
      await waitConnected(alice, 'alice')
      const s = await waitConnected(bob, 'bob')
      assert.ok(refused >= 1, 'bob tried WebSocket first')
      assert.notEqual(s.transport, 'websocket', `bob fell back: ${s.text}`)
      assert.ok(['sse', 'long-poll', 'poll'].includes(s.transport), `bob is on an HTTP transport: ${s.text}`)
      assert.equal(s.transport, 'sse', `the next transport in the default order is SSE: ${s.text}`)

      for (let i = 1; i <= 3; i++) await say(alice, `alice ${i}`)
      await say(bob, 'bob over the fallback')
      const a = await waitForLines(alice, 4, 'alice')
      const b = await waitForLines(bob, 4, 'bob')
      assert.deepEqual(messagesOf(b), messagesOf(a), 'bob, on the fallback, shows what alice shows')
      assert.equal(b.length, 4, `no notices or errors: ${JSON.stringify(b)}`)
      assert.deepEqual(
        a.filter((l) => l.from === 'alice').map((l) => l.text),
        ['alice alice 1', 'alice alice 2', 'alice alice 3'],
        "alice's messages in the order she sent them",
      )
      assert.deepEqual(problems, [])
    } finally {
      await ca.close()
      await cb.close()
    }
  })

  test('the client follows the browser\'s offline and online events: the link ends at once and comes back at once', async () => {
    const problems: string[] = []
    const ctx = await newContext()
    try {
      const page = await openChat(ctx, unique('netevents'), 'websocket', 'carol', problems)
      await waitConnected(page, 'carol')
      const t0 = Date.now()
      await ctx.setOffline(true)
      // without the offline event a dead WebSocket is only noticed by the heartbeat (30 s)
      await page.waitForSelector('#state[data-state="reconnecting"]', { timeout: 3_000 })
      assert.ok(Date.now() - t0 < 3_000)
      await page.waitForTimeout(1_500) // let the backoff grow past an immediate retry
      const t1 = Date.now()
      await ctx.setOffline(false)
      await waitConnected(page, 'carol back online')
      assert.ok(Date.now() - t1 < 3_000, `reconnected ${Date.now() - t1} ms after the online event`)
      assert.equal(await page.$eval('#state', (el) => (el as HTMLElement).dataset.transport), 'websocket', 'going offline is not held against the transport')
      assert.deepEqual(problems, [])
    } finally {
      await ctx.close()
    }
  })

  test('chat: a page that goes offline and comes back gets what it missed, once and in order', async () => {
    const problems: string[] = []
    const room = unique('offline')
    const [ca, cb] = [await newContext(), await newContext()]
    // Chromium's offline emulation fails new requests but keeps open connections
    // (WebSockets, streams, held polls) alive, so the route below cuts bob's
    // WebSocket when he goes offline and refuses new ones until he is back.
    let offline = false
    const open = new Set<WebSocketRoute>()
    try {
      const alice = await openChat(ca, room, 'websocket', 'alice', problems)
      const bob = await openChat(
        cb,
        room,
        'websocket',
        'bob',
        problems,
        (page) =>
          page.routeWebSocket(/\/live\/ws/, (ws) => {
            if (offline) return ws.close()
            ws.connectToServer() // messages pass through both ways
            open.add(ws)
          }),
        false,
      )
      await waitConnected(alice, 'alice')
      await waitConnected(bob, 'bob')
      await say(alice, 'before')
      await waitForLines(bob, 1, 'bob before going offline')

      offline = true
      await cb.setOffline(true)
      for (const ws of open) await ws.close()
      open.clear()
      await bob.waitForSelector('#state:not([data-state="connected"])', { timeout: 10_000 })

      for (let i = 1; i <= 3; i++) await say(alice, `missed ${i}`)
      await say(bob, 'written while offline') // queued by the client until it is back
      await waitForLines(alice, 4, 'alice while bob is offline')
      await bob.waitForTimeout(500)
      assert.equal((await linesOf(bob)).filter((l) => l.offset).length, 1, 'bob got nothing while offline')

      offline = false
      await cb.setOffline(false)
      await waitConnected(bob, 'bob after coming back')
      const b = await waitForLines(bob, 5, 'bob after coming back')
      const a = await waitForLines(alice, 5, 'alice')
      assert.deepEqual(messagesOf(b), messagesOf(a), 'bob shows what alice shows')
      assert.deepEqual(
        b.map((l) => l.offset),
        ['1', '2', '3', '4', '5'],
        `every message once, in order: ${JSON.stringify(b)}`,
      )
      assert.deepEqual(
        b.slice(0, 4).map((l) => l.text),
        ['alice before', 'alice missed 1', 'alice missed 2', 'alice missed 3'],
      )
      assert.equal(b[4]!.text, 'bob written while offline', 'the message written offline was sent once, on reconnecting')
      await bob.waitForTimeout(500)
      assert.equal((await linesOf(bob)).length, 5, 'and nothing came twice')
      assert.equal((await linesOf(alice)).length, 5)
      assert.deepEqual(problems, [])
    } finally {
      await ca.close()
      await cb.close()
    }
  })

  test('the transport lab: every transport delivers all messages once and in order; WebSocket has the least overhead', async () => {
    const problems: string[] = []
    const context = await newContext()
    try {
      const page = await context.newPage()
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
      page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
      // The wire as Chromium's network stack saw it: WebSocket frames, and each poll's response header size.
      const frames: string[] = []
      page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))))
      const polls: Array<{ long: boolean; headers: number; body: number }> = []
      page.on('requestfinished', (req) => {
        if (!req.url().includes('/live/poll?')) return
        void req.sizes().then((s) => polls.push({ long: req.url().includes('wait=1'), headers: s.responseHeadersSize, body: s.responseBodySize }))
      })

      await page.goto(url('/lab/realtime.html'), { timeout: 15_000 })
      await page.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      const channel = await page.$eval('#channel', (o) => (o as HTMLElement).dataset.channel ?? '')
      assert.match(channel, /^lab:/)
      await page.click('#run', { timeout: 5_000 })
      await page.waitForSelector('#run-status[data-state="done"]', { timeout: 60_000 })
      await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 15_000 })

      const status = await page.$eval('#run-status', (o) => ({ text: o.textContent ?? '', ok: (o as HTMLElement).dataset.ok }))
      assert.equal(status.ok, 'true', status.text)
      const r: Record<string, Record<string, string>> = {}
      for (const t of TRANSPORTS) {
        r[t] = await page.$eval(`#p-${t}`, (s) => ({ ...(s as HTMLElement).dataset }) as Record<string, string>)
        const d = r[t]!
        assert.equal(d.state, 'done', t)
        assert.equal(d.received, '20', `${t}: received`)
        assert.equal(d.inOrder, 'true', `${t}: every message once, in order`)
        assert.equal(d.duplicates, '0', t)
        for (const k of ['unitsPerMessage', 'bytesPerMessage', 'overheadPerMessage', 'latencyMedian', 'latencyMax']) assert.ok(Number.isFinite(Number(d[k])) && Number(d[k]) >= 0, `${t}: ${k} = ${d[k]}`)
      }
      const n = (t: string, k: string) => Number(r[t]![k])
      // One frame, one event per message; a long poll answers each message (or a burst) with one response.
      assert.equal(n('websocket', 'unitsPerMessage'), 1)
      assert.equal(n('sse', 'unitsPerMessage'), 1)
      assert.ok(n('long-poll', 'unitsPerMessage') > 0 && n('long-poll', 'unitsPerMessage') <= 1, `long poll: ${n('long-poll', 'unitsPerMessage')}`)
      assert.ok(n('poll', 'unitsPerMessage') > 0, 'short polling made requests')
      // Overhead: a 2-byte frame header against HTTP response headers.
      assert.equal(n('websocket', 'overheadPerMessage'), 2, 'a short server frame has a 2-byte header')
      assert.ok(n('websocket', 'overheadPerMessage') < n('long-poll', 'overheadPerMessage'), `WebSocket ${n('websocket', 'overheadPerMessage')} B < long polling ${n('long-poll', 'overheadPerMessage')} B`)
      assert.ok(n('websocket', 'overheadPerMessage') < n('poll', 'overheadPerMessage'), `WebSocket ${n('websocket', 'overheadPerMessage')} B < short polling ${n('poll', 'overheadPerMessage')} B`)
      assert.ok(n('websocket', 'overheadPerMessage') < n('sse', 'overheadPerMessage'), 'and less than the SSE framing')
      for (const t of ['long-poll', 'poll']) {
        assert.ok(n(t, 'headerBytesPerResponse') > 100, `${t}: response header bytes counted: ${r[t]!.headerBytesPerResponse}`)
        // What the page says of Resource Timing: transferSize is the body plus a fixed 300.
        assert.equal(r[t]!.rtHeaderBytes, '300', `${t}: Resource Timing's transferSize - encodedBodySize`)
      }

      // Cross-checks against the browser's own view of the wire.
      const msgFrames = frames.filter((f) => f.startsWith('{"t":"msg"') && f.includes(`"ch":"${channel}"`))
      assert.equal(msgFrames.length, 20, 'twenty message frames on the WebSocket')
      const wsBytes = msgFrames.reduce((sum, f) => sum + Buffer.byteLength(f) + 2, 0) / 20
      assert.ok(Math.abs(wsBytes - n('websocket', 'bytesPerMessage')) < 0.01, `frame bytes per message: page ${n('websocket', 'bytesPerMessage')}, Chromium ${wsBytes}`)
      // The header bytes the page rebuilt from fetch's Headers against the size Chromium received.
      const longPolls = polls.filter((p) => p.long)
      assert.ok(longPolls.length >= 10, `long polls seen on the wire: ${longPolls.length}`)
      const wireHeaders = longPolls.reduce((sum, p) => sum + p.headers, 0) / longPolls.length
      assert.ok(Math.abs(wireHeaders - n('long-poll', 'headerBytesPerResponse')) <= 2, `response header bytes: page ${n('long-poll', 'headerBytesPerResponse')}, Chromium ${wireHeaders}`)
      // Short polling's cost shows in latency: a message waits for the next poll.
      assert.ok(n('poll', 'latencyMedian') > n('websocket', 'latencyMedian'), 'short polling is slower than WebSocket')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  test('the lab page and the chat page are CSP-friendly and work under a strict Content-Security-Policy', async () => {
    for (const [path, name] of [
      ['/lab/realtime.html', 'lab/realtime.html'],
      ['/chat/', 'chat/index.html'],
      ['/', 'index.html'],
    ] as const) {
      const res = await fetch(url(path), { signal: AbortSignal.timeout(10_000) })
      assert.equal(res.status, 200, path)
      assertCspFriendly(await res.text(), name)
    }
    for (const script of ['/lab/realtime.js', '/chat/chat.js', '/assets/lab.js']) {
      const res = await fetch(url(script), { signal: AbortSignal.timeout(10_000) })
      assert.equal(res.status, 200, script)
      assert.match(res.headers.get('content-type') ?? '', /javascript/, script)
      assertNoHtmlInjection(await res.text(), script)
    }

    // Served with a policy that allows nothing inline: the pages must still work, with no violation.
    const front = await cspFront(new URL(server.url), (host) => `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ws://${host}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`)
    const context = await newContext()
    await context.addInitScript(() => {
      const w = window as unknown as { violations: string[] }
      w.violations = []
      document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.violatedDirective}: ${e.blockedURI}`))
    })
    /** The policy is in force: an inline style added now is refused (and reported). */
    async function assertEnforced(page: Page, name: string): Promise<void> {
      const before = await page.evaluate(() => (window as unknown as { violations: string[] }).violations.length)
      await page.evaluate(() => {
        const style = document.createElement('style')
        style.textContent = 'body { color: rgb(255, 0, 0) }'
        document.head.append(style)
      })
      await page.waitForFunction((n) => (window as unknown as { violations: string[] }).violations.length > n, before, { timeout: 5_000 }).catch(() => {
        throw new Error(`${name}: the Content-Security-Policy is not in force (an inline style was not refused)`)
      })
      assert.notEqual(await page.$eval('body', (b) => getComputedStyle(b).color), 'rgb(255, 0, 0)', `${name}: the inline style was not applied`)
    }
    const problems: string[] = []
    try {
      const lab = await context.newPage()
      lab.on('pageerror', (e) => problems.push(`lab: pageerror: ${e.message}`))
      lab.on('console', (m) => m.type() === 'error' && problems.push(`lab: console: ${m.text()}`))
      const res = await lab.goto(`${front.url}/lab/realtime.html`, { timeout: 15_000 })
      assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/)
      await lab.waitForSelector('html[data-lab-ready="true"]', { timeout: 10_000 })
      for (const t of TRANSPORTS) await lab.waitForSelector(`#state-${t}[data-state="connected"]`, { timeout: CONNECT_TIMEOUT })
      // The stylesheet applied (the page has no inline styles to fall back on).
      assert.match(await lab.$eval('body', (b) => getComputedStyle(b).fontFamily), /system-ui/)
      assert.deepEqual(await lab.evaluate(() => (window as unknown as { violations: string[] }).violations), [])
      await assertEnforced(lab, 'lab')
      problems.length = 0 // the probe's own refusal is logged as a console error

      const chat = await context.newPage()
      chat.on('pageerror', (e) => problems.push(`chat: pageerror: ${e.message}`))
      chat.on('console', (m) => m.type() === 'error' && problems.push(`chat: console: ${m.text()}`))
      await chat.goto(`${front.url}/chat/?room=${unique('csp')}&transport=auto&autojoin=1&name=carol`, { timeout: 15_000 })
      const s = await waitConnected(chat, 'carol')
      assert.equal(s.transport, 'websocket', `the WebSocket is allowed by connect-src: ${s.text}`)
      await say(chat, 'under a strict CSP')
      const lines = await waitForLines(chat, 1, 'carol')
      assert.equal(lines[0]!.text, 'carol under a strict CSP')
      assert.deepEqual(await chat.evaluate(() => (window as unknown as { violations: string[] }).violations), [])
      assert.deepEqual(problems, [])
      await assertEnforced(chat, 'chat')
    } finally {
      await context.close()
      await front.close()
    }
  })
})

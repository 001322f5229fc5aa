import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { DEMO_USER, defaultConfig, freePortPair } from '../../src/cli/main.ts'
import { UserStore } from '../../src/auth/users.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()

/**
 * The shared login of `npm start`'s sign-on demo, in Chromium: the built-in
 * provider on id.localhost, two sites behind it on app1.localhost and
 * app2.localhost (Chromium sends *.localhost to this machine), and the lab
 * page's wire trace watching all three.
 */
describe("the sign-on demo (npm start's configuration) in Chromium", { skip, timeout: 120_000 }, () => {
  let server: TestServer
  let browser: LaunchedBrowser | undefined
  let dataDir: string
  let port: number
  const PASSWORD = 'a demo password for the browser test'
  const at = (host: string, p = '/') => `http://${host}:${port}${p}`

  before(async () => {
    port = (await freePortPair('127.0.0.1'))!
    dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-sso-browser-'))
    const users = await UserStore.open(dataDir)
    await users.add({ username: DEMO_USER, password: PASSWORD, email: 'demo@example.com', groups: ['staff'] })
    users.close()
    server = await startServer({ ...defaultConfig({ port }), dataDir })
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  const who = (page: Page) => page.waitForSelector('#who[data-state="signed-in"], #who[data-state="error"]', { timeout: 15_000 }).then((el) => el.evaluate((e) => ({ state: (e as HTMLElement).dataset.state, user: (e as HTMLElement).dataset.user ?? null, text: e.textContent ?? '' })))

  test('sign in on one site, the other is signed in already; sign out on one, both sessions end; the lab shows each step', async () => {
    const context = browser!.context
    const lab = await context.newPage()
    const app = await context.newPage()
    try {
      await lab.goto(at('localhost', '/lab/sso.html'))
      await lab.waitForSelector('#status[data-state="live"]', { timeout: 15_000 })

      // app1: no session, so the provider's sign-in form
      await app.goto(at('app1.localhost'))
      assert.equal(new URL(app.url()).hostname, 'id.localhost')
      await app.fill('#username', DEMO_USER)
      await app.fill('#password', PASSWORD)
      await Promise.all([app.waitForURL(at('app1.localhost'), { timeout: 15_000 }), app.click('button[type="submit"].primary')])
      assert.deepEqual(await who(app), { state: 'signed-in', user: DEMO_USER, text: (await who(app)).text })

      // app2: the provider knows the browser: no form, straight back signed in
      await app.goto(at('app2.localhost'))
      assert.equal(new URL(app.url()).hostname, 'app2.localhost')
      assert.equal((await who(app)).user, DEMO_USER)

      // both sessions are HttpOnly, SameSite=Lax cookies of their own host
      const cookies = await context.cookies([at('app1.localhost'), at('app2.localhost')])
      const sessions = cookies.filter((c) => c.name === 'edgebox-session')
      assert.deepEqual(sessions.map((c) => c.domain).sort(), ['app1.localhost', 'app2.localhost'])
      for (const c of sessions) assert.ok(c.httpOnly && c.sameSite === 'Lax', JSON.stringify(c))

      // sign out on app2: its session ends, the provider's too (confirmed on its page), and app1's by back-channel logout
      await app.click('form[action="/_edgebox/auth/logout"] button')
      await app.waitForURL((u) => u.hostname === 'id.localhost', { timeout: 15_000 })
      await Promise.all([app.waitForURL(at('app2.localhost', '/_edgebox/auth/signed-out'), { timeout: 15_000 }), app.click('button[name="logout"][value="yes"]')])
      assert.match(await app.textContent('h1') ?? '', /Signed out/)
      await app.goto(at('app1.localhost'))
      assert.equal(new URL(app.url()).hostname, 'id.localhost', 'app1 sends the browser to sign in again')
      assert.ok(await app.$('#password'), 'and the provider asks for the password: its session ended too')

      // the lab saw it: both callbacks setting a session cookie, and the provider's back-channel posts to both sites
      await lab.waitForFunction(() => document.querySelectorAll('#wire tbody tr').length > 0)
      const rows = await lab.$$eval('#wire tbody tr', (trs) => trs.map((tr) => ({ site: (tr as HTMLElement).dataset.site, text: tr.textContent ?? '' })))
      for (const site of ['app1', 'app2']) {
        assert.ok(rows.some((r) => r.site === site && r.text.includes('/_edgebox/auth/callback') && r.text.includes('Set-Cookie: edgebox-session=')), `${site}: the callback and its cookie`)
      }
      await lab.waitForFunction(() => [...document.querySelectorAll('#wire tbody tr')].filter((tr) => (tr.textContent ?? '').includes('/_edgebox/auth/backchannel-logout')).length >= 2, undefined, { timeout: 15_000 })
      const values = rows.map((r) => r.text).join('\n')
      assert.doesNotMatch(values, /code=[A-Za-z0-9_-]{8,}/, 'codes are shortened in the trace')
    } finally {
      await lab.close()
      await app.close()
    }
  })
})

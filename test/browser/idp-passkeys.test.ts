import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { CDPSession, Page } from 'playwright-core'
import { UserStore } from '../../src/auth/users.ts'
import { DEMO_USER, defaultConfig, freePortPair } from '../../src/cli/main.ts'
import type { EdgeboxConfigInput } from '../../src/config/schema.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { startServer, type TestServer } from '../helpers/server.ts'

const skip = browserSkip()

/**
 * Passkeys in Chromium, on the sign-on demo of `npm start` (the built-in
 * provider on id.localhost, app1.localhost behind it) with the provider's
 * secondFactor set to 'required' in this test's copy of the configuration:
 * a CDP virtual authenticator (a platform authenticator with user
 * verification) stands for the user's device. The demo user, who has no
 * second factor, registers a passkey on the enrolment page with the
 * provider's script, is signed in, signs out, and signs in again with the
 * passkey. No Content-Security-Policy violation on the way.
 */
describe('passkeys in Chromium (the sign-on demo, secondFactor required)', { skip, timeout: 120_000 }, () => {
  let server: TestServer
  let browser: LaunchedBrowser | undefined
  let dataDir: string
  let port: number
  const PASSWORD = 'a demo password for the passkey test'
  const at = (host: string, p = '/') => `http://${host}:${port}${p}`

  before(async () => {
    port = (await freePortPair('127.0.0.1'))!
    dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-passkeys-browser-'))
    const users = await UserStore.open(dataDir)
    await users.add({ username: DEMO_USER, password: PASSWORD, email: 'demo@example.com', groups: ['staff'] })
    users.close()
    server = await startServer({ ...requiredSecondFactor(defaultConfig({ port })), dataDir })
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  const who = (page: Page) => page.waitForSelector('#who[data-state="signed-in"], #who[data-state="error"]', { timeout: 15_000 }).then((el) => el.evaluate((e) => ({ state: (e as HTMLElement).dataset.state, user: (e as HTMLElement).dataset.user ?? null })))

  /** The provider's password form, from app1 (which sends the browser there). */
  async function password(page: Page): Promise<void> {
    await page.goto(at('app1.localhost'))
    assert.equal(new URL(page.url()).hostname, 'id.localhost')
    await page.fill('#username', DEMO_USER)
    await page.fill('#password', PASSWORD)
    await Promise.all([page.waitForURL((u) => u.pathname.startsWith('/interaction/') && u.hostname === 'id.localhost', { timeout: 15_000 }), page.click('button[type="submit"].primary')])
    await page.waitForLoadState('load')
  }

  test('register a passkey at the first sign-in, sign out, sign in again with it', async () => {
    const context = browser!.context
    const page = await context.newPage()
    const problems: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text())
    })
    page.on('pageerror', (e) => problems.push(e.message))
    let cdp: CDPSession | undefined
    try {
      cdp = await context.newCDPSession(page)
      await cdp.send('WebAuthn.enable')
      const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
      })

      // the password, then the enrolment page: the TOTP set-up, and the passkey form the script shows
      await password(page)
      assert.match((await page.textContent('h1')) ?? '', /Set up two-step verification/)
      assert.ok(await page.$('#code'), 'the TOTP set-up is still there')
      const register = page.locator('form[data-passkey="create"] button')
      await register.waitFor({ state: 'visible', timeout: 15_000 })
      assert.equal(await register.textContent(), 'Register a passkey instead')
      await Promise.all([page.waitForURL(at('app1.localhost'), { timeout: 15_000 }), register.click()])
      assert.deepEqual(await who(page), { state: 'signed-in', user: DEMO_USER })

      // the authenticator holds the new passkey, for id.localhost; the provider stored it
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
      assert.equal(credentials.length, 1)
      assert.equal(credentials[0]!.rpId, 'id.localhost')
      assert.equal(credentials[0]!.isResidentCredential, true)
      const stored = await withUsers((u) => u.passkeys(DEMO_USER))
      assert.equal(stored.length, 1)
      assert.equal(stored[0]!.id, Buffer.from(credentials[0]!.credentialId, 'base64').toString('base64url'))
      assert.equal(stored[0]!.userHandle, Buffer.from(credentials[0]!.userHandle!, 'base64').toString('base64url'))
      assert.equal(stored[0]!.lastUsedAt, null)

      // sign out at app1: the provider's session ends too
      await page.click('form[action="/_edgebox/auth/logout"] button')
      await page.waitForURL((u) => u.hostname === 'id.localhost', { timeout: 15_000 })
      await Promise.all([page.waitForURL(at('app1.localhost', '/_edgebox/auth/signed-out'), { timeout: 15_000 }), page.click('button[name="logout"][value="yes"]')])

      // the password again, then the passkey: no code field (the user has no TOTP), "Use a passkey"
      await password(page)
      assert.match((await page.textContent('h1')) ?? '', /Two-step verification/)
      assert.equal(await page.$('#code'), null)
      const use = page.locator('form[data-passkey="get"] button')
      await use.waitFor({ state: 'visible', timeout: 15_000 })
      assert.equal(await page.locator('[data-passkey-unsupported]').isVisible(), false, 'the note for browsers without passkeys is hidden')
      await Promise.all([page.waitForURL(at('app1.localhost'), { timeout: 15_000 }), use.click()])
      assert.deepEqual(await who(page), { state: 'signed-in', user: DEMO_USER })

      const used = await withUsers((u) => u.passkeys(DEMO_USER)[0]!)
      assert.ok(used.lastUsedAt !== null, 'its use was recorded')
      const after = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0]!
      assert.equal(used.counter, after.signCount, 'the counter the provider stored is the authenticator\'s')
      assert.deepEqual(
        problems.filter((p) => /Content Security Policy|Refused to/i.test(p)),
        [],
        'no CSP violation',
      )
    } finally {
      await cdp?.detach().catch(() => {})
      await page.close()
    }
  })

  async function withUsers<T>(fn: (users: UserStore) => T): Promise<T> {
    const users = await UserStore.open(dataDir)
    try {
      return fn(users)
    } finally {
      users.close()
    }
  }
})

/** The demo's configuration with its provider (on id.localhost) asking everyone for a second factor. */
function requiredSecondFactor(config: EdgeboxConfigInput): EdgeboxConfigInput {
  return {
    ...config,
    sites: config.sites!.map((site) =>
      site.hosts?.includes('id.localhost') ? { ...site, routes: site.routes!.map((r) => ('idp' in r && r.idp ? { ...r, idp: { ...r.idp, secondFactor: 'required' as const } } : r)) } : site,
    ),
  }
}

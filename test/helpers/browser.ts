import assert from 'node:assert/strict'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

/** Chromium used by browser tests: $CHROMIUM_PATH, else the system package's binary. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Whether the Chromium executable exists and can be run. */
export function browserAvailable(): boolean {
  try {
    accessSync(chromiumPath(), constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The `skip` option for browser suites: false when they must run, else the
 * reason. Outside CI a missing Chromium skips them (with the reason shown);
 * with CI=true they always run, so a missing browser fails instead.
 */
export function browserSkip(): false | string {
  if (process.env.CI === 'true' || browserAvailable()) return false
  return `no Chromium at ${chromiumPath()} (set CHROMIUM_PATH; browser tests run unconditionally with CI=true)`
}

export interface LaunchedBrowser {
  context: BrowserContext
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>
}

/**
 * Launches headless Chromium with a fresh, temporary profile (so an empty
 * HTTP cache), with CHROMIUM_ARGS plus `extraArgs` (such as
 * `--ignore-certificate-errors-spki-list=<hash>` to accept one test certificate).
 */
export async function launchBrowser(extraArgs: readonly string[] = []): Promise<LaunchedBrowser> {
  if (!browserAvailable()) throw new Error(`Chromium not found at ${chromiumPath()} (set CHROMIUM_PATH)`)
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath(),
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 30_000,
      viewport: { width: 1200, height: 900 },
    })
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true })
    throw err
  }
  return {
    context,
    async close() {
      try {
        await context.close()
      } finally {
        rmSync(userDataDir, { recursive: true, force: true })
      }
    },
  }
}

/** Checks the CSP constraints Edgebox's pages keep: no inline scripts, styles or handlers, no javascript: URLs. */
export function assertCspFriendly(html: string, name: string): void {
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/i, `${name}: inline <script>`)
  assert.doesNotMatch(html, /<style[\s>]/i, `${name}: inline <style>`)
  assert.doesNotMatch(html, /\sstyle=/i, `${name}: style attribute`)
  assert.doesNotMatch(html, /\son[a-z]+=/i, `${name}: inline event handler`)
  assert.doesNotMatch(html, /javascript:/i, `${name}: javascript: URL`)
}

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import { build } from 'esbuild'
import { fingerprint, rumStoreFile } from '../../src/rum/store.ts'
import { browserSkip, launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * Symbolication with a real browser: Chromium loads a page Edgebox serves
 * with a minified bundle (esbuild, with its source map beside it) and the
 * RUM SDK; a click throws inside a named function of the original source;
 * leaving the page sends the batch; the stored error's stack names the
 * original file, line and function, and the release's copy of the map is kept.
 */

const skip = browserSkip()
if (skip) process.stdout.write(`# browser tests skipped: ${skip}\n`)

const BOOM = `export function explode(label: string): never {
  const detail = label.toUpperCase()
  throw new Error(\`boom: \${detail}\`)
}
`
const MAIN = `import { explode } from './boom.ts'
function onCheckout(): void {
  explode('checkout')
}
document.getElementById('go')!.addEventListener('click', onCheckout)
`

interface ErrorRow {
  stack: string
  fingerprint: string
  json: string | null
  release: string | null
  message: string
}

describe('symbolication of a minified bundle\'s error in Chromium', { skip, timeout: 60_000 }, () => {
  let browser: LaunchedBrowser | undefined
  let box: TestServer | undefined
  let dataDir = ''
  let cleanup: () => void = () => {}

  before(async () => {
    let root: string
    ;({ dir: root, cleanup } = tempDir())
    dataDir = path.join(root, 'data')
    const www = path.join(root, 'www')
    mkdirSync(path.join(root, 'src'))
    writeFileSync(path.join(root, 'src', 'boom.ts'), BOOM)
    writeFileSync(path.join(root, 'src', 'main.ts'), MAIN)
    await build({ entryPoints: [path.join(root, 'src', 'main.ts')], outfile: path.join(www, 'app.min.js'), bundle: true, minify: true, sourcemap: true, format: 'iife', target: 'es2020', logLevel: 'silent' })
    writeFileSync(
      path.join(www, 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>shop</title>
<script src="/_edgebox/rum/sdk.js" data-release="r1"></script>
<button id="go">checkout</button>
<script src="/app.min.js"></script>`,
    )
    writeFileSync(path.join(www, 'bye.html'), '<!doctype html><meta charset="utf-8"><title>bye</title><p>bye</p>')
    box = await startServer({ dataDir, sites: [{ rum: true, routes: [{ path: '/', static: { root: www } }] }] })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await box?.close()
    cleanup()
  })

  /** The error rows stored so far (the store is written every 100 ms, once symbolicated). */
  function errorRows(): ErrorRow[] {
    if (!existsSync(rumStoreFile(dataDir))) return []
    const db = new DatabaseSync(rumStoreFile(dataDir), { readOnly: true })
    try {
      return db.prepare("SELECT stack, fingerprint, json, release, message FROM rum_events WHERE kind = 'error'").all() as unknown as ErrorRow[]
    } finally {
      db.close()
    }
  }

  test('a click that throws in explode() is stored at /src/boom.ts:3, explode, with the stack as sent beside it', async () => {
    // the map is the server's own: a browser cannot fetch it
    assert.equal((await request('http/1.1', `${box!.url}app.min.js.map`)).status, 404)
    const page = await browser!.context.newPage()
    const thrown: string[] = []
    page.on('pageerror', (e) => thrown.push(e.message))
    await page.goto(box!.url, { waitUntil: 'load' })
    await page.waitForFunction(() => typeof (window as unknown as { EdgeboxRum?: unknown }).EdgeboxRum === 'object')
    await page.click('#go')
    await page.waitForTimeout(100)
    assert.deepEqual(thrown, ['boom: CHECKOUT'])
    // leaving the page (hidden, then pagehide) sends the batch
    await page.goto(new URL('/bye.html', box!.url).href)
    await page.close()

    let rows: ErrorRow[] = []
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && rows.length === 0) {
      await new Promise((r) => setTimeout(r, 100))
      rows = errorRows()
    }
    assert.equal(rows.length, 1, 'the error is stored')
    const row = rows[0]!
    assert.equal(row.release, 'r1')
    const lines = row.stack.split('\n')
    assert.equal(lines[0], 'Error: boom: CHECKOUT')
    assert.equal(lines[1], '    at explode (/src/boom.ts:3:9)')
    // the listener: its source line, whatever name the browser gave the minified function
    assert.match(lines[2]!, /^ {4}at \S+ \(\/src\/main\.ts:3:3\)$/)
    const raw = (JSON.parse(row.json!) as { rawStack: string }).rawStack
    assert.match(raw.split('\n')[1]!, /^ {4}at \w+ \(http:\/\/127\.0\.0\.1:\d+\/app\.min\.js:1:\d+\)$/)
    assert.equal(row.fingerprint, fingerprint(row.message, 'Error\n    at explode (/src/boom.ts:3:9)'))
    // the release's copy of the map
    const release = createHash('sha256').update('r1').digest('hex')
    assert.equal(readdirSync(path.join(dataDir, 'rum', 'maps', release)).filter((n) => n.endsWith('.map')).length, 1)
  })
})

import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import vm from 'node:vm'
import { after, before, test } from 'node:test'
import { build } from 'esbuild'
import { fingerprint, rumStoreFile } from '../../src/rum/store.ts'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'
import { SAMPLE_BOOM, SAMPLE_MAIN } from '../helpers/rum.ts'

/**
 * Symbolication end to end: a small TypeScript program bundled twice by
 * esbuild (minified, and not) with source maps into a static root; Edgebox
 * serves it with `rum`; a batch and a Sentry event carry the stacks V8
 * really throws running those scripts at the site's URLs. The stored rows
 * name the original file, line and function, with one fingerprint for both
 * builds and both SDKs; the maps are 404 unless `serveMaps`.
 */

const PROJECT = '7'
const KEY = 'abcdef0123456789abcdef0123456789'
const MESSAGE = 'Error: boom: GO'

const BOOM = SAMPLE_BOOM
const MAIN = SAMPLE_MAIN

let cleanup: () => void
let www: string
let box: TestServer
let plain: TestServer
let dataDir: string
let plainData: string
let minStack = ''
let fullStack = ''

/** The stack V8 throws running `file` of the static root as `url`. */
function stackOf(file: string, url: string): string {
  const code = readText(file)
  try {
    vm.runInNewContext(code, {}, { filename: url, displayErrors: false })
  } catch (err) {
    return (err as Error).stack!
  }
  throw new Error('the script did not throw')
}
const readText = (file: string): string => readFileSync(path.join(www, file), 'utf8')

/** A V8 stack's frames as Sentry frames: oldest first, `abs_path`, `lineno`, `colno`, `function`. */
function sentryFrames(stack: string): Array<Record<string, unknown>> {
  const frames: Array<Record<string, unknown>> = []
  for (const line of stack.split('\n')) {
    const m = /^\s*at (?:(\S+) \()?(https?:\/\/[^)]+):(\d+):(\d+)\)?$/.exec(line)
    if (m) frames.push({ abs_path: m[2], filename: m[2], function: m[1] ?? '?', lineno: Number(m[3]), colno: Number(m[4]), in_app: true })
  }
  return frames.reverse()
}

/** The error rows a data folder's store holds (read once the server is closed). */
function errorRows(dir: string): Array<{ pv: string; stack: string; fingerprint: string; json: string | null }> {
  const db = new DatabaseSync(rumStoreFile(dir), { readOnly: true })
  try {
    return db.prepare("SELECT pv, stack, fingerprint, json FROM rum_events WHERE kind = 'error' ORDER BY id").all() as never
  } finally {
    db.close()
  }
}

const batch = (pv: string, stack: string) => JSON.stringify({ v: 1, pv, page: '/', release: 'r1', events: [{ t: 'error', at: 10, kind: 'error', message: MESSAGE, stack, count: 1 }] })

before(async () => {
  let root: string
  ;({ dir: root, cleanup } = tempDir())
  dataDir = path.join(root, 'data')
  plainData = path.join(root, 'data-plain')
  www = path.join(root, 'www')
  mkdirSync(path.join(root, 'src'))
  writeFileSync(path.join(root, 'src', 'boom.ts'), BOOM)
  writeFileSync(path.join(root, 'src', 'main.ts'), MAIN)
  const entry = path.join(root, 'src', 'main.ts')
  // www/app.min.js and www/app.js, each with its map beside it; the sources are ../src/*.ts from there
  await build({ entryPoints: [entry], outfile: path.join(www, 'app.min.js'), bundle: true, minify: true, sourcemap: true, format: 'iife', logLevel: 'silent' })
  await build({ entryPoints: [entry], outfile: path.join(www, 'app.js'), bundle: true, minify: false, sourcemap: true, format: 'iife', logLevel: 'silent' })
  writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>t</title><script src="/app.min.js"></script>')
  box = await startServer({ dataDir, sites: [{ rum: { sentry: { project: PROJECT, key: KEY } }, routes: [{ path: '/', static: { root: www } }] }] })
  plain = await startServer({ dataDir: plainData, sites: [{ rum: { serveMaps: true, symbolicate: false }, routes: [{ path: '/', static: { root: www } }] }] })
  const origin = box.url.replace(/\/$/, '')
  minStack = stackOf('app.min.js', `${origin}/app.min.js`)
  fullStack = stackOf('app.js', `${origin}/app.js`)
})

after(async () => {
  await box?.close()
  await plain?.close()
  cleanup?.()
})

test('the stacks really are minified and not: different frames as sent', () => {
  assert.match(minStack.split('\n')[1]!, /^ {4}at \w \(http:\/\/127\.0\.0\.1:\d+\/app\.min\.js:1:\d+\)$/)
  assert.match(fullStack.split('\n')[1]!, /^ {4}at explode \(http:\/\/127\.0\.0\.1:\d+\/app\.js:\d+:\d+\)$/)
  assert.notEqual(fingerprint(MESSAGE, minStack), fingerprint(MESSAGE, fullStack))
})

test('source maps stay on the server: GET and HEAD of a .map are 404, the script itself is served', async () => {
  for (const method of ['GET', 'HEAD']) {
    const r = await request('http/1.1', `${box.url}app.min.js.map`, { method })
    assert.equal(r.status, 404, method)
  }
  const h2 = await request('h2c', `${box.url}app.js.map`)
  assert.equal(h2.status, 404)
  const js = await request('http/1.1', `${box.url}app.min.js`)
  assert.equal(js.status, 200)
  assert.match(js.text, /sourceMappingURL=app\.min\.js\.map/)
})

test('serveMaps: true serves them as usual', async () => {
  const r = await request('http/1.1', `${plain.url}app.min.js.map`)
  assert.equal(r.status, 200)
  assert.match(String(r.headers['content-type']), /^application\/json/)
  assert.equal(JSON.parse(r.text).version, 3)
})

test('a batch and a Sentry event are stored symbolicated: the original file, line and function, one fingerprint for both builds', async () => {
  assert.equal((await request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batch('minified', minStack) })).status, 204)
  assert.equal((await request('h2c', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batch('unminified', fullStack) })).status, 204)
  const event = {
    event_id: '0123456789abcdef0123456789abcdef',
    platform: 'javascript',
    release: 'r1',
    request: { url: `${box.url}` },
    exception: { values: [{ type: 'Error', value: 'boom: GO', stacktrace: { frames: sentryFrames(minStack) } }] },
  }
  const s = await request('http/1.1', `${box.url}_edgebox/rum/sentry/api/${PROJECT}/store/?sentry_key=${KEY}&sentry_version=7`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(event) })
  assert.equal(s.status, 200, s.text)
  await box.close()

  const rows = errorRows(dataDir)
  assert.equal(rows.length, 3)
  const [min, full, sentry] = rows as [(typeof rows)[number], (typeof rows)[number], (typeof rows)[number]]
  assert.equal(min.pv, 'minified')
  const lines = min.stack.split('\n')
  assert.equal(lines[0], MESSAGE)
  assert.equal(lines[1], '    at explode (/src/boom.ts:3:9)')
  assert.match(lines[2]!, /^ {4}at handleClick \(\/src\/main\.ts:3:3\)$/)
  assert.match(lines[3]!, /^ {4}at start \(\/src\/main\.ts:6:3\)$/)
  // the frames as the browser sent them, kept beside
  assert.deepEqual(JSON.parse(min.json!), { rawStack: minStack })
  // the unminified build maps to the same source
  assert.equal(full.stack.split('\n')[1], '    at explode (/src/boom.ts:3:9)')
  // one group: the fingerprint of the source's stack
  const source = `${MESSAGE}\n    at explode (/src/boom.ts:3:9)\n    at handleClick (/src/main.ts:3:3)`
  assert.equal(min.fingerprint, fingerprint(MESSAGE, source))
  assert.equal(full.fingerprint, min.fingerprint)
  // and the Sentry SDK's report of the minified run joins it, its own json kept with the raw stack
  assert.equal(sentry.stack.split('\n')[1], '    at explode (/src/boom.ts:3:9)')
  assert.equal(sentry.fingerprint, min.fingerprint)
  const sj = JSON.parse(sentry.json!) as { sentry: { id: string }; rawStack: string }
  assert.equal(sj.sentry.id, '0123456789abcdef0123456789abcdef')
  assert.match(sj.rawStack, /^Error: boom: GO\n {4}at \w+ \(http:\/\/127\.0\.0\.1:\d+\/app\.min\.js:1:\d+\)/)
})

test('symbolicate: false stores the stack as sent', async () => {
  assert.equal((await request('http/1.1', `${plain.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batch('raw', minStack) })).status, 204)
  await plain.close()
  const rows = errorRows(plainData)
  assert.equal(rows.length, 1)
  assert.equal(rows[0]!.stack, minStack)
  assert.equal(rows[0]!.json, null)
  assert.equal(rows[0]!.fingerprint, fingerprint(MESSAGE, minStack))
})

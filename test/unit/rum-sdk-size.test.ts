import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { buildRumPageModule, buildRumScript } from '../../client/build.ts'

/**
 * The RUM SDK's page builds stay small: the plain script, web-vitals'
 * attribution build included, at most 10 KB gzipped. Built in memory from
 * client/rum.ts (esbuild), so this does not depend on `npm run build:client`.
 */

const LIMIT = 10_240

test('the RUM script build is at most 10 KB gzipped, web-vitals included', () => {
  const script = buildRumScript()
  const gz = gzipSync(script, { level: 9 }).length
  process.stdout.write(`# edgebox-rum.js: ${script.length} bytes, ${gz} bytes gzipped\n`)
  assert.ok(gz <= LIMIT, `edgebox-rum.js is ${gz} bytes gzipped (${script.length} raw), over the ${LIMIT}-byte budget`)
  // web-vitals is bundled (its attribution build: the LCP/INP/CLS attribution fields are read)
  assert.match(script, /largestShiftTarget/)
  assert.match(script, /interactionTarget/)
  // an IIFE exposing EdgeboxRum, with no import statements left
  assert.match(script, /var EdgeboxRum=/)
  assert.doesNotMatch(script, /^\s*import[\s{*]/m)
})

test('the RUM page module build is bundled and exports init', () => {
  const mod = buildRumPageModule()
  const gz = gzipSync(mod, { level: 9 }).length
  assert.ok(gz <= LIMIT, `edgebox-rum.mjs is ${gz} bytes gzipped, over the ${LIMIT}-byte budget`)
  assert.doesNotMatch(mod, /from\s*["']web-vitals/)
  assert.match(mod, /export\s*\{[^}]*\binit\b/)
})

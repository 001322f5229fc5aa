import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { PRETENURING_FLAG, runtimeFlags } from '../../src/cli/runtime-tuning.ts'

const tuning = fileURLToPath(new URL('../../src/cli/runtime-tuning.ts', import.meta.url))

test('the edgebox command turns allocation-site pretenuring off unless the user set it', () => {
  assert.deepEqual(runtimeFlags([], undefined), [PRETENURING_FLAG])
  assert.deepEqual(runtimeFlags(['--enable-source-maps'], '--max-old-space-size=512'), [PRETENURING_FLAG])
  // the user's own choice, either way and in either place, is left alone
  assert.deepEqual(runtimeFlags(['--allocation-site-pretenuring'], undefined), [])
  assert.deepEqual(runtimeFlags([], '--max-old-space-size=512 --no-allocation-site-pretenuring'), [])
  assert.deepEqual(runtimeFlags([], '--allocation_site_pretenuring'), [])
  // a longer flag that merely starts with the name is not the same flag
  assert.deepEqual(runtimeFlags(['--allocation-site-pretenuring-x'], undefined), [PRETENURING_FLAG])
})

// V8 prints its pretenuring decisions with --trace-pretenuring-statistics; with pretenuring off it makes none. The
// child keeps objects alive across minor GCs (what makes V8 pretenure a site) after tuneRuntime() or without it.
const child = (tune: boolean) => {
  const code = `
    ${tune ? `const { tuneRuntime } = await import(${JSON.stringify(tuning)}); tuneRuntime()` : ''}
    const keep = []
    const make = (i) => ({ i, a: [i], b: { i } })
    for (let r = 0; r < 50; r++) { for (let i = 0; i < 20000; i++) keep.push(make(i)); if (keep.length > 200000) keep.length = 0 }`
  const r = spawnSync(process.execPath, ['--trace-pretenuring-statistics', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  return r.stdout.split('\n').filter((l) => l.includes('pretenuring:')).length
}

test("tuneRuntime() takes effect in this Node's V8: no pretenuring decision is made after it", () => {
  assert.ok(child(false) > 0, 'without it, V8 reports pretenuring decisions (the control)')
  assert.equal(child(true), 0)
})

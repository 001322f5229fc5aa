import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/server.ts'

const run = promisify(execFile)
const ROOT = path.resolve(import.meta.dirname, '../..')

test('edgebox config --print shows every default and no secret', async () => {
  const t = tempDir()
  try {
    const file = path.join(t.dir, 'edgebox.config.json')
    writeFileSync(
      file,
      JSON.stringify({
        forwardProxy: { enabled: true, credentials: [{ user: 'alice', password: 'hunter2hunter2' }] },
        sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'chat:*': {} }, publishKey: 'a-publish-key-of-16+' } }, { path: '/', proxy: { upstreams: ['http://bob:secretpw@127.0.0.1:3000'] } }] }],
      }),
    )
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/edgebox.js'), 'config', '--print', '--config', file], { timeout: 20_000 })
    const printed = JSON.parse(stdout) as { limits: { maxBodySize: number } }
    assert.equal(printed.limits.maxBodySize, 10 * 1024 * 1024, 'defaults filled in')
    for (const secret of ['hunter2hunter2', 'a-publish-key-of-16+', 'secretpw']) assert.ok(!stdout.includes(secret), secret)
    assert.match(stdout, /"password": "<redacted>"/)
    assert.match(stdout, /"publishKey": "<redacted>"/)
    assert.match(stdout, /http:\/\/<redacted>@127\.0\.0\.1:3000/)
  } finally {
    t.cleanup()
  }
})

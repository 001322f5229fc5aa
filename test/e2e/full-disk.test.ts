import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { listeningUrl, request, tempDir } from '../helpers/server.ts'

/**
 * A full disk answers 507 and leaves the old file intact (item 9). Edgebox
 * runs in a private mount namespace (`unshare -m`, as root) whose upload
 * root is a 1 MiB tmpfs.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0
const TOKEN = 'full-disk-test-token-0123456789'

test('a PUT that does not fit answers 507; the old file and the directory are as they were', { skip: !canUnshare && process.env.CI !== 'true' ? 'unshare -m is not permitted here (needs root)' : false }, async () => {
  const t = tempDir()
  const www = path.join(t.dir, 'www')
  const config = path.join(t.dir, 'edgebox.json')
  writeFileSync(
    config,
    JSON.stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      log: { access: false },
      limits: { maxBodySize: '8m' },
      sites: [{ routes: [{ path: '/', static: { root: www, listing: true, dotfiles: 'allow', upload: { enabled: true, credentials: [{ token: TOKEN }] } } }] }],
    }),
  )
  const script = `mkdir -p '${www}' && mount -t tmpfs -o size=1m tmpfs '${www}' && printf 'the old contents' > '${www}/report.txt' && exec '${process.execPath}' '${path.join(ROOT, 'bin', 'edgebox.js')}' --config '${config}'`
  const child = spawn('unshare', ['-m', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    const { url } = await listeningUrl(child)
    const big = Buffer.alloc(3 * 1024 * 1024, 'n')
    const put = await request('http/1.1', url + 'report.txt', { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` }, body: big })
    assert.equal(put.status, 507)
    assert.match(put.text, /disk is full/)
    const get = await request('http/1.1', url + 'report.txt')
    assert.equal(get.status, 200)
    assert.equal(get.text, 'the old contents')
    const listing = await request('http/1.1', url)
    assert.doesNotMatch(listing.text, /edgebox-upload/, 'no temporary file left behind')
    // and a small upload still works afterwards
    const small = await request('http/1.1', url + 'report.txt', { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` }, body: 'new' })
    assert.equal(small.status, 204)
    assert.equal((await request('http/1.1', url + 'report.txt')).text, 'new')
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    t.cleanup()
  }
})

import assert from 'node:assert/strict'
import { renameSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { request, startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * A file replaced on disk while it is being downloaded (item 7): the running
 * response keeps sending the version it started with, and a resumed
 * download with If-Range never glues two versions together.
 */

const t = tempDir()
const OLD = Buffer.alloc(24 * 1024 * 1024, 'o')
const NEW = Buffer.alloc(24 * 1024 * 1024, 'n')
const file = path.join(t.dir, 'data.bin')
let srv: TestServer

before(async () => {
  writeFileSync(file, OLD)
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: t.dir } }] }] })
})
after(async () => {
  await srv.close()
  t.cleanup()
})

/** Replaces the file the way deploys and Edgebox uploads do: a complete new file renamed over it. */
function replace(bytes: Buffer): void {
  const tmp = path.join(t.dir, '.next')
  writeFileSync(tmp, bytes)
  renameSync(tmp, file)
}

test('a range download in progress keeps the old bytes when the file is replaced; If-Range then gives the new file whole', async () => {
  const first = await request('http/1.1', srv.url + 'data.bin', { method: 'HEAD' })
  const oldTag = String(first.headers.etag)
  // start a ranged download, read slowly, replace the file in the middle of it
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let replaced = false
    const c = net.connect(srv.port, '127.0.0.1', () => c.write(`GET /data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\nIf-Range: ${oldTag}\r\nConnection: close\r\n\r\n`))
    c.on('data', (d: Buffer) => {
      chunks.push(d)
      if (!replaced) {
        replaced = true
        c.pause()
        replace(NEW)
        setTimeout(() => c.resume(), 50)
      }
    })
    c.on('end', () => resolve(Buffer.concat(chunks)))
    c.on('error', reject)
  })
  const head = body.subarray(0, body.indexOf('\r\n\r\n') + 4).toString('latin1')
  assert.match(head, /^HTTP\/1\.1 206 /)
  assert.match(head, new RegExp(`Content-Range: bytes 1000-${OLD.length - 1}/${OLD.length}`))
  const payload = body.subarray(head.length)
  assert.equal(payload.length, OLD.length - 1000)
  assert.ok(payload.every((b) => b === 0x6f), 'every byte is from the old version')

  // resuming with the old validator: the file changed, so 200 with the whole new file
  await new Promise((r) => setTimeout(r, 1100)) // metadata is trusted for at most a second
  const resumed = await request('http/1.1', srv.url + 'data.bin', { headers: { range: 'bytes=5000-', 'if-range': oldTag } })
  assert.equal(resumed.status, 200)
  assert.notEqual(resumed.headers.etag, oldTag)
  assert.equal(resumed.body.length, NEW.length)
  assert.ok(resumed.body.every((b) => b === 0x6e))
})

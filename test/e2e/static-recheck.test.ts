import assert from 'node:assert/strict'
import fsp from 'node:fs/promises'
import { renameSync, writeFileSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { startServer, tempDir, type TestServer } from '../helpers/server.ts'

/**
 * The once-a-second recheck of a file kept in memory (memoryCache.revalidate):
 * when the entry's time is over, the requests for that path in flight at that
 * moment share one look at the disk (one realpath, one stat), and every one
 * of them is answered from what that look found.
 */

const t = tempDir()
const file = path.join(t.dir, 'a.txt')
const REVALIDATE = 200
let srv: TestServer

// Counts the realpath calls for the file (the path rule's first look at it); syncBuiltinESMExports
// makes the named import in src/modules/static/access.ts see the counting wrapper.
const realpath = fsp.realpath
let looks = 0
before(async () => {
  writeFileSync(file, 'version one\n')
  fsp.realpath = (async (p: Parameters<typeof realpath>[0], o?: Parameters<typeof realpath>[1]) => {
    if (String(p) === file) looks++
    return realpath(p, o)
  }) as typeof realpath
  syncBuiltinESMExports()
  srv = await startServer({ sites: [{ routes: [{ path: '/', static: { root: t.dir, memoryCache: { revalidate: REVALIDATE } } }] }] })
})
after(async () => {
  fsp.realpath = realpath
  syncBuiltinESMExports()
  await srv.close()
  t.cleanup()
})

/** `n` connections opened first, then one GET on each written in the same tick: the raw answers. */
async function concurrentGets(n: number, target: string): Promise<string[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(srv.port, '127.0.0.1', () => resolve(c))
      c.on('error', reject)
    })),
  )
  const answers = sockets.map(
    (c) =>
      new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = []
        c.on('data', (d: Buffer) => chunks.push(d))
        c.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
        c.on('error', reject)
      }),
  )
  for (const c of sockets) c.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  return Promise.all(answers)
}

const field = (answer: string, name: string) => new RegExp(`\r\n${name}: ([^\r\n]*)\r\n`, 'i').exec(answer)?.[1]
const body = (answer: string) => answer.slice(answer.indexOf('\r\n\r\n') + 4)

test('requests in flight when the entry\'s second is over share one look at the disk, and all get the same answer', async () => {
  const first = await concurrentGets(1, '/a.txt')
  assert.match(first[0]!, /^HTTP\/1\.1 200 OK\r\n/)
  const etag = field(first[0]!, 'ETag')
  await new Promise((r) => setTimeout(r, REVALIDATE + 100))
  looks = 0
  const answers = await concurrentGets(8, '/a.txt')
  assert.equal(looks, 1, 'one realpath of the file for the eight requests')
  for (const a of answers) {
    assert.match(a, /^HTTP\/1\.1 200 OK\r\n/)
    assert.equal(field(a, 'ETag'), etag)
    assert.equal(field(a, 'Content-Length'), '12')
    assert.equal(body(a), 'version one\n')
  }
})

test('a file replaced on disk: once its second is over, every request of the shared recheck gets the new version', async () => {
  await concurrentGets(1, '/a.txt')
  const old = field((await concurrentGets(1, '/a.txt'))[0]!, 'ETag')
  writeFileSync(path.join(t.dir, '.next'), 'version two, longer\n')
  renameSync(path.join(t.dir, '.next'), file)
  await new Promise((r) => setTimeout(r, REVALIDATE + 100))
  looks = 0
  const answers = await concurrentGets(8, '/a.txt')
  assert.equal(looks, 1)
  const tags = new Set(answers.map((a) => field(a, 'ETag')))
  assert.equal(tags.size, 1)
  assert.notEqual([...tags][0], old)
  for (const a of answers) {
    assert.match(a, /^HTTP\/1\.1 200 OK\r\n/)
    assert.equal(field(a, 'Content-Length'), '20')
    assert.equal(body(a), 'version two, longer\n')
  }
})

test('a path that is no file is still answered per request (404, and a directory\'s redirect)', async () => {
  await fsp.mkdir(path.join(t.dir, 'sub'), { recursive: true })
  const missing = await concurrentGets(4, '/nope.txt')
  for (const a of missing) assert.match(a, /^HTTP\/1\.1 404 Not Found\r\n/)
  const dir = await concurrentGets(4, '/sub')
  for (const a of dir) {
    assert.match(a, /^HTTP\/1\.1 301 Moved Permanently\r\n/)
    assert.equal(field(a, 'Location'), '/sub/')
  }
  const hidden = await concurrentGets(2, '/.next')
  for (const a of hidden) assert.match(a, /^HTTP\/1\.1 404 Not Found\r\n/)
})

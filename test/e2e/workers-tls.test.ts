import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { certDir, testCa, type TestCa } from '../helpers/certs.ts'

/**
 * TLS session tickets with workers (docs/tls.md, docs/scale.md): without a
 * tls.ticketKeyFile, the workers derive their ticket keys from the
 * deployment's secret in the data folder, so a session made on one worker
 * resumes on the other.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
let ca: TestCa
let files: ReturnType<typeof certDir>
let child: ChildProcess
let port: number

before(async () => {
  ca = await testCa()
  const leaf = await ca.leaf(['localhost', '127.0.0.1'])
  files = certDir({ 'a.crt': leaf.certPem, 'a.key': leaf.keyPem })
  writeFileSync(
    files.path('edgebox.config.json'),
    JSON.stringify({
      workers: 2,
      dataDir: files.path('data'),
      listen: [{ host: '127.0.0.1', port: 0, tls: true }],
      log: { access: false },
      tls: { certificates: [{ cert: files.path('a.crt'), key: files.path('a.key') }] },
      sites: [{ routes: [{ path: '/', static: { root: files.dir } }] }],
    }),
  )
  child = spawn(process.execPath, [BIN, '--config', 'edgebox.config.json'], { cwd: files.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`not listening within 20 s:\n${out}`))
    }, 20_000)
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /listening on https:\/\/127\.0\.0\.1:(\d+)\//.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
  })
})

after(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }
  files.cleanup()
})

/** A TLS connection that asks the health endpoint which worker it reached: that worker, the session it got, and whether it resumed. */
function visit(sess?: Buffer): Promise<{ worker: number; session: Buffer | undefined; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', ...(sess ? { session: sess } : {}) })
    let got: Buffer | undefined
    let body = ''
    s.setTimeout(5_000, () => s.destroy(new Error('no answer')))
    s.on('session', (x: Buffer) => (got = x))
    s.once('secureConnect', () => s.write('GET /_edgebox/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'))
    s.on('data', (d: Buffer) => (body += d.toString()))
    s.once('end', () => {
      const worker = Number(/"worker":(\d+)/.exec(body)?.[1])
      resolve({ worker, session: got, reused: s.isSessionReused() })
    })
    s.once('error', reject)
  })
}

test('a session from one worker resumes on the other', async () => {
  const first = await visit()
  assert.ok(first.session, 'a ticket')
  assert.ok(first.worker === 1 || first.worker === 2)
  let other: { worker: number; reused: boolean } | undefined
  for (let i = 0; i < 100 && !other; i++) {
    const v = await visit(first.session)
    if (v.worker !== first.worker) other = v
  }
  assert.ok(other, 'a connection reached the other worker')
  assert.equal(other.reused, true, `worker ${other.worker} resumed worker ${first.worker}'s session`)
})

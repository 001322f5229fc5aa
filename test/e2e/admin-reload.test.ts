import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { listeningUrl, request, tempDir } from '../helpers/server.ts'

/**
 * `POST /api/v1/reload` of an Edgebox started from a configuration file
 * (the CLI): it reads the file again, as SIGHUP does; a file that is not a
 * valid configuration is 422 with its problems, and the running one keeps
 * serving.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')

function exited(child: ChildProcess): Promise<unknown> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)))
}

test('POST /api/v1/reload reads the configuration file again; a bad file is 422 and the site keeps serving', async () => {
  const t = tempDir()
  for (const d of ['one', 'two']) {
    mkdirSync(path.join(t.dir, d))
    writeFileSync(path.join(t.dir, d, 'index.html'), `site ${d}`)
  }
  const config = (root: string) => JSON.stringify({ admin: { port: 0 }, dataDir: path.join(t.dir, 'data'), listen: [{ port: 0 }], log: { access: false, format: 'json' }, sites: [{ routes: [{ path: '/', static: { root: `./${root}` } }] }] })
  const file = path.join(t.dir, 'edgebox.json')
  writeFileSync(file, config('one'))
  const child = spawn(process.execPath, [BIN, '--config', file], { cwd: t.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    const { url, output } = await listeningUrl(child)
    const deadline = Date.now() + 10_000
    while (!/ admin (http:\/\/127\.0\.0\.1:\d+\/)/.test(output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    const admin = / admin (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output())![1]!
    const post = (p: string) => request('http/1.1', `${admin}${p}`, { method: 'POST', headers: { origin: admin.slice(0, -1) } })
    assert.equal((await request('http/1.1', url)).text, 'site one')

    writeFileSync(file, config('two'))
    const ok = await post('api/v1/reload')
    assert.equal(ok.status, 200, ok.text)
    assert.deepEqual(JSON.parse(ok.text), { ok: true, diff: [{ path: 'sites[0].routes[0].static.root', before: './one', after: './two' }] })
    assert.equal((await request('http/1.1', url)).text, 'site two')

    writeFileSync(file, '{ "sites": [ { "routes": [ { "path": "/", "static": { "root": "./missing" } } ] } ], "admin": { "port": 0 } }')
    const bad = await post('api/v1/reload')
    assert.equal(bad.status, 422, bad.text)
    const body = JSON.parse(bad.text) as { error: string; problems: string[] }
    assert.equal(body.error, 'the configuration was refused; the one in force keeps serving')
    assert.ok(body.problems.length > 0)
    assert.equal((await request('http/1.1', url)).text, 'site two')
    const changes = JSON.parse((await request('http/1.1', `${admin}api/v1/config/changes`)).text) as { changes: { source: string }[] }
    assert.deepEqual(changes.changes.map((c) => c.source), ['api reload'])
  } finally {
    child.kill('SIGTERM')
    await exited(child)
    t.cleanup()
  }
})

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import pg from 'pg'
import { freePort } from '../helpers/pebble.ts'
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts'
import { request, startServer, tempDir } from '../helpers/server.ts'

/**
 * The top-level `postgres` setting (docs/scale.md): a start whose
 * PostgreSQL cannot be reached fails with the reason and exit code 2; a
 * running Edgebox keeps real-user monitoring's events in PostgreSQL (the
 * tables made by its migrations at start), from the URL or DATABASE_URL.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
let server: PostgresServer
let work: { dir: string; cleanup(): void }

before(async () => {
  server = await startPostgres()
  work = tempDir()
  mkdirSync(path.join(work.dir, 'www'))
  writeFileSync(path.join(work.dir, 'www', 'index.html'), '<!doctype html><title>t</title>')
})

after(async () => {
  await server.close()
  work.cleanup()
})

const site = () => [{ rum: true, routes: [{ path: '/', static: { root: path.join(work.dir, 'www') } }] }]

test('PostgreSQL unreachable at start: the command says where and why, and exits 2 (a configuration error)', async () => {
  const port = await freePort()
  writeFileSync(path.join(work.dir, 'down.json'), JSON.stringify({ listen: [{ host: '127.0.0.1', port: 0 }], postgres: `postgres://edgebox:secret@127.0.0.1:${port}/edgebox`, sites: site() }))
  const child = spawn(process.execPath, [BIN, '--config', 'down.json'], { cwd: work.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const code = await new Promise<number | null>((r) => child.once('exit', r))
  assert.equal(code, 2, out)
  assert.match(out, new RegExp(`postgres: cannot reach postgres://edgebox@127\\.0\\.0\\.1:${port}/edgebox \\(.*ECONNREFUSED.*\\)`))
  assert.ok(!out.includes('secret'), 'the password is not printed')
})

test('postgres: true without DATABASE_URL is a configuration error naming both', async () => {
  const saved = process.env.DATABASE_URL
  delete process.env.DATABASE_URL
  try {
    await assert.rejects(startServer({ postgres: true, sites: site() }), /postgres: give a URL \(postgres: "postgres:\/\/user:password@host:port\/database"\) or set DATABASE_URL/)
  } finally {
    if (saved !== undefined) process.env.DATABASE_URL = saved
  }
})

test("RUM events go to PostgreSQL (DATABASE_URL): its migrations made the tables, and a beacon's rows are there", async () => {
  const url = await server.database('rum_config')
  const saved = process.env.DATABASE_URL
  process.env.DATABASE_URL = url
  const box = await startServer({ postgres: true, sites: site() })
  try {
    const body = JSON.stringify({ v: 1, pv: 'pv-postgres-1', page: '/docs', events: [{ t: 'vital', at: 1200, name: 'LCP', value: 1180.5, rating: 'good' }] })
    const r = await request('http/1.1', `${box.url}_edgebox/rum/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    assert.equal(r.status, 204, r.text)
  } finally {
    await box.close()
    if (saved === undefined) delete process.env.DATABASE_URL
    else process.env.DATABASE_URL = saved
  }
  const client = new pg.Client(url)
  await client.connect()
  try {
    const migrated = await client.query<{ store: string }>("SELECT store FROM edgebox_migrations WHERE store = 'rum'")
    assert.equal(migrated.rowCount! > 0, true)
    const rows = await client.query<{ kind: string; name: string }>("SELECT kind, name FROM rum_events WHERE pv = 'pv-postgres-1' ORDER BY kind")
    assert.deepEqual(
      rows.rows.map((x) => [x.kind, x.name]),
      [['vital', 'LCP']],
    )
  } finally {
    await client.end()
  }
})

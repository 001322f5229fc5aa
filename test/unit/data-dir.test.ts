import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { dataDirProblem, defaultDataDir, ensurePrivateDir, resolveDataDir, writeNewPrivateFile, writePrivateFile } from '../../src/core/data-dir.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { startEdgebox } from '../../src/server/app.ts'

const PACKAGE_DIR = path.resolve(import.meta.dirname, '..', '..')

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgebox-data-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const modeOf = async (p: string) => (await stat(p)).mode & 0o777

test('defaultDataDir: $EDGEBOX_HOME, else $XDG_DATA_HOME/edgebox, else ~/.local/share/edgebox', () => {
  assert.equal(defaultDataDir({ EDGEBOX_HOME: '/srv/eb', XDG_DATA_HOME: '/x' }), path.resolve('/srv/eb'))
  assert.equal(defaultDataDir({ XDG_DATA_HOME: '/x' }), path.resolve('/x/edgebox'))
  assert.equal(defaultDataDir({}), path.join(os.homedir(), '.local', 'share', 'edgebox'))
})

test('resolveDataDir: a configured dataDir is relative to the configuration folder, and wins over the environment', () => {
  assert.equal(resolveDataDir('state', '/etc/edgebox', { EDGEBOX_HOME: '/srv/eb' }), path.resolve('/etc/edgebox/state'))
  assert.equal(resolveDataDir('/var/lib/eb', '/etc/edgebox', {}), '/var/lib/eb')
  assert.equal(resolveDataDir(undefined, '/etc/edgebox', { EDGEBOX_HOME: '/srv/eb' }), '/srv/eb')
})

test('dataDirProblem: the package folder and anything inside it are refused; a sibling folder with the same prefix is not', () => {
  assert.match(dataDirProblem(PACKAGE_DIR)!, /inside Edgebox's package folder/)
  assert.match(dataDirProblem(path.join(PACKAGE_DIR, 'data'))!, /which npm replaces on every install/)
  assert.equal(dataDirProblem(PACKAGE_DIR + '-data'), null)
  assert.equal(dataDirProblem(path.dirname(PACKAGE_DIR)), null)
})

test('ensurePrivateDir: new folders are 0700, an open one of ours is made 0700, a file is refused', async () => {
  await withTemp(async (dir) => {
    const nested = path.join(dir, 'a', 'b')
    await ensurePrivateDir(nested)
    assert.equal(await modeOf(nested), 0o700)
    assert.equal(await modeOf(path.join(dir, 'a')), 0o700)

    const open = path.join(dir, 'open')
    await ensurePrivateDir(open)
    await chmod(open, 0o755)
    await ensurePrivateDir(open)
    assert.equal(await modeOf(open), 0o700)

    const file = path.join(dir, 'file')
    await writeFile(file, 'x')
    await assert.rejects(ensurePrivateDir(file), /EEXIST|is not a folder/)
    await assert.rejects(ensurePrivateDir(path.join(PACKAGE_DIR, 'state')), /package folder/)
  })
})

test('writePrivateFile: 0600, replaced whole; writeNewPrivateFile never overwrites', async () => {
  await withTemp(async (dir) => {
    const file = path.join(dir, 'key.pem')
    await writePrivateFile(file, 'one')
    assert.equal(await modeOf(file), 0o600)
    await writePrivateFile(file, 'two')
    assert.equal(await readFile(file, 'utf8'), 'two')
    assert.equal(await writeNewPrivateFile(file, 'three'), false)
    assert.equal(await readFile(file, 'utf8'), 'two')
    assert.equal(await writeNewPrivateFile(path.join(dir, 'new.pem'), 'new'), true)
    assert.equal(await modeOf(path.join(dir, 'new.pem')), 0o600)
  })
})

test('dataDir: tls.local keeps its authority and certificate in the configured folder, folders 0700 and files 0600', { timeout: 30_000 }, async () => {
  await withTemp(async (dir) => {
    const box = await startEdgebox(
      { dataDir: 'state', listen: [{ host: '127.0.0.1', port: 0, tls: true }], tls: { local: true }, sites: [{ hosts: ['localhost'], routes: [{ path: '/', static: { root: '.' } }] }] },
      { baseDir: dir, log: pino({ level: 'silent' }) },
    )
    await box.close()
    const state = path.join(dir, 'state')
    assert.equal(await modeOf(state), 0o700)
    assert.equal(await modeOf(path.join(state, 'ca')), 0o700)
    assert.equal(await modeOf(path.join(state, 'certs')), 0o700)
    for (const f of ['ca/ca.crt', 'ca/ca.key', 'certs/local.crt', 'certs/local.key']) assert.equal(await modeOf(path.join(state, f)), 0o600, f)
  })
})

test('dataDir inside the package folder is a configuration error naming dataDir', async () => {
  await assert.rejects(
    startEdgebox({ dataDir: path.join(PACKAGE_DIR, 'state'), sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }, { log: pino({ level: 'silent' }) }),
    (err: unknown) => err instanceof ConfigError && err.issues.length === 1 && /^dataDir: .* is inside Edgebox's package folder/.test(err.issues[0]!),
  )
})

import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { listeningUrl, request, tempDir } from '../helpers/server.ts'

/** Running Edgebox in production: the banner's PID and ports, --pid-file, `edgebox reload`. */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

/** Polls `check` every 50 ms until it returns true, for at most 10 s. */
async function until(check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return check()
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))))
}

describe('edgebox --pid-file and edgebox reload', () => {
  test('the banner names the PID and every port; reload --pid-file reloads; SIGTERM removes the pid file', async () => {
    const t = tempDir()
    for (const d of ['one', 'two']) {
      mkdirSync(path.join(t.dir, d))
      writeFileSync(path.join(t.dir, d, 'index.html'), `site ${d}`)
    }
    const config = (root: string) => JSON.stringify({ listen: [{ port: 0 }, { port: 0 }], log: { access: false, format: 'json' }, sites: [{ routes: [{ path: '/', static: { root: `./${root}` } }] }] })
    const configFile = path.join(t.dir, 'edgebox.json')
    const pidFile = path.join(t.dir, 'run', 'edgebox.pid')
    mkdirSync(path.join(t.dir, 'run'))
    writeFileSync(configFile, config('one'))
    const child = spawn(process.execPath, [BIN, '--config', configFile, '--port', '0', '--pid-file', pidFile], { cwd: t.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const { url, output } = await listeningUrl(child)
      const banner = new RegExp(`"msg":"edgebox ${VERSION.replaceAll('.', '\\.')} pid ${child.pid} listening on (http://127\\.0\\.0\\.1:\\d+/) (http://127\\.0\\.0\\.1:\\d+/)"`)
      assert.ok(await until(() => banner.test(output())), output())
      const [, first, second] = banner.exec(output())!
      assert.equal(first, url)
      assert.notEqual(second, first)
      assert.equal((await request('http/1.1', second!)).text, 'site one')
      // written once listening, as one whole line
      assert.equal(readFileSync(pidFile, 'utf8'), `${child.pid}\n`)

      writeFileSync(configFile, config('two'))
      const r = spawnSync(process.execPath, [BIN, 'reload', '--pid-file', pidFile], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.stderr, '')
      assert.equal(r.stdout, `edgebox reload: sent SIGHUP to process ${child.pid}\n`)
      assert.equal(r.status, 0)
      assert.ok(await until(async () => (await request('http/1.1', url)).text === 'site two'), output())
      assert.equal((await request('http/1.1', second!)).text, 'site two')

      child.kill('SIGTERM')
      assert.equal(await exited(child), 0)
      assert.equal(existsSync(pidFile), false)
      // the pid file's server is gone: reload says so
      writeFileSync(pidFile, `${child.pid}\n`)
      const stale = spawnSync(process.execPath, [BIN, 'reload', '--pid-file', pidFile], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(stale.stdout, '')
      assert.equal(stale.stderr, `edgebox reload: no process ${child.pid} is running (from the pid file ${pidFile}): the server has stopped and the pid file is stale\n`)
      assert.equal(stale.status, 1)
    } finally {
      child.kill('SIGKILL')
      t.cleanup()
    }
  })

  test('reload without --pid-file says it needs one and exits 2; a missing or bad pid file is named', () => {
    const t = tempDir()
    try {
      let r = spawnSync(process.execPath, [BIN, 'reload'], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.status, 2)
      assert.equal(r.stdout, '')
      assert.equal(r.stderr, 'edgebox reload: needs --pid-file FILE, the file the server was started with (edgebox --pid-file FILE ...); or send SIGHUP to the PID the server printed when it started\n')
      const missing = path.join(t.dir, 'none.pid')
      r = spawnSync(process.execPath, [BIN, 'reload', '--pid-file', missing], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.status, 1)
      assert.equal(r.stderr, `edgebox reload: cannot read the pid file ${missing} (ENOENT)\n`)
      const bad = path.join(t.dir, 'bad.pid')
      writeFileSync(bad, 'hello\n')
      r = spawnSync(process.execPath, [BIN, 'reload', '--pid-file', bad], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.status, 1)
      assert.equal(r.stderr, `edgebox reload: the pid file ${bad} does not hold a process id (it holds "hello\\n")\n`)
    } finally {
      t.cleanup()
    }
  })

  test('a pid file that cannot be written stops the server with a message, exit 2', () => {
    const t = tempDir()
    try {
      writeFileSync(path.join(t.dir, 'index.html'), 'x')
      const pidFile = path.join(t.dir, 'no', 'such', 'dir', 'edgebox.pid')
      const r = spawnSync(process.execPath, [BIN, t.dir, '--port', '0', '--no-access-log', '--pid-file', pidFile], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, CI: 'true' } })
      assert.equal(r.status, 2)
      assert.match(r.stderr, new RegExp(`edgebox: --pid-file: cannot write ${pidFile.replaceAll('/', '\\/')} \\(ENOENT\\)\\n$`))
    } finally {
      t.cleanup()
    }
  })

  test('log files are reopened on SIGUSR2 and on reload, for log rotation', async () => {
    const t = tempDir()
    for (const name of ['index', 'usr2', 'hup']) writeFileSync(path.join(t.dir, `${name}.html`), 'hello')
    const logFile = path.join(t.dir, 'logs', 'edgebox.log')
    const configFile = path.join(t.dir, 'edgebox.json')
    writeFileSync(configFile, JSON.stringify({ listen: [{ port: 0 }], log: { file: logFile, format: 'json' }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }))
    const child = spawn(process.execPath, [BIN, '--config', configFile], { cwd: t.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '')
    try {
      assert.ok(await until(() => /listening on http:/.test(read(logFile))), `no banner in the log file; stderr: ${stderr}`)
      const url = /listening on (http:\/\/\S+?)"/.exec(read(logFile))![1]!
      const requested = (file: string, p: string) => until(() => read(file).includes(`"msg":"request","method":"GET","host":"127.0.0.1","path":"${p}","status":200`))

      assert.equal((await request('http/1.1', url + 'before')).status, 404)
      assert.equal((await request('http/1.1', url)).text, 'hello')
      assert.ok(await requested(logFile, '/'), read(logFile))
      // logrotate renames the file, then signals the server
      renameSync(logFile, logFile + '.1')
      child.kill('SIGUSR2')
      assert.ok(await until(() => read(logFile).includes('"msg":"log files reopened"')), `no reopen line; stderr: ${stderr}`)
      assert.equal((await request('http/1.1', url + 'usr2.html')).text, 'hello')
      assert.ok(await requested(logFile, '/usr2.html'), read(logFile))
      assert.doesNotMatch(read(logFile + '.1'), /usr2\.html/)

      renameSync(logFile, logFile + '.2')
      child.kill('SIGHUP')
      assert.ok(await until(() => read(logFile).includes('"msg":"configuration reloaded"')), `no reload line; stderr: ${stderr}`)
      assert.equal((await request('http/1.1', url + 'hup.html')).text, 'hello')
      assert.ok(await requested(logFile, '/hup.html'), read(logFile))
      assert.doesNotMatch(read(logFile + '.2'), /hup\.html/)
      assert.equal(stderr, '')
    } finally {
      child.kill('SIGKILL')
      t.cleanup()
    }
  })
})

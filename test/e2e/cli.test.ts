import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { validateConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/core/errors.ts'
import { startEdgebox } from '../../src/server/app.ts'
import { olderNode } from '../helpers/old-node.ts'
import { listeningUrl, request, tempDir } from '../helpers/server.ts'

/** Configuration validation with exact paths, and the `edgebox` command (item 1 and "what a user gets"). */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')

async function configErrors(input: unknown, baseDir = ROOT): Promise<string[]> {
  try {
    const box = await startEdgebox(input as never, { baseDir })
    await box.close()
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues]
    throw err
  }
  return []
}

describe('configuration errors name the exact path', () => {
  test('a missing static root', async () => {
    const errs = await configErrors({
      sites: [{ routes: [{ path: '/a/', static: { root: '.' } }, { path: '/b/', static: { root: '.' } }, { path: '/', static: { root: './pub' } }] }],
    })
    assert.deepEqual(errs, ['sites[0].routes[2].static.root: directory ./pub does not exist'])
  })
  test('unknown options, wrong types, and a route with two handlers', async () => {
    const errs = await configErrors({
      listen: [{ port: 70000 }],
      limits: { maxBodySize: 'lots' },
      sites: [{ routes: [{ path: '/', static: { root: '.', colour: 'red' }, redirect: { to: '/x' } }, { path: 'nope', static: { root: '.' } }] }],
      extra: true,
    })
    assert.ok(errs.includes('listen[0].port: Too big: expected number to be <=65535'), errs.join('\n'))
    assert.ok(errs.includes('limits.maxBodySize: "lots" is not a size (use bytes, or a number with k, m or g)'), errs.join('\n'))
    assert.ok(errs.includes('sites[0].routes[0].static: unknown option "colour"'), errs.join('\n'))
    assert.ok(errs.includes('sites[0].routes[1].path: must start with /'), errs.join('\n'))
    assert.ok(errs.includes('(root): unknown option "extra"'), errs.join('\n'))
    assert.ok(errs.some((e) => e.startsWith('sites[0].routes[0]: a route has exactly one handler')), errs.join('\n'))
  })
  test('uploads enabled without a credential', async () => {
    const errs = await configErrors({ sites: [{ routes: [{ path: '/', static: { root: '.', upload: { enabled: true } } }] }] })
    assert.deepEqual(errs, ['sites[0].routes[0].static.upload.credentials: uploads are enabled but no credential is configured'])
  })
  test('a port already in use is reported and nothing stays open', async () => {
    const a = await startEdgebox({ listen: [{ port: 0 }], log: { level: 'silent', access: false }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }, { baseDir: ROOT })
    try {
      const port = Number(new URL(a.urls[0]!).port)
      const errs = await configErrors({ listen: [{ port: 0 }, { port }], log: { level: 'silent' }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] })
      assert.deepEqual(errs, [`listen[1]: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`])
    } finally {
      await a.close()
    }
  })
  test('defaults are filled in one place', () => {
    const c = validateConfig({ sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] })
    assert.deepEqual(c.listen, [{ host: '127.0.0.1', port: 8080, tls: false, protocols: ['http/1.1', 'h2c'] }])
    assert.equal(c.tls.minVersion, 'TLSv1.2')
    assert.equal(c.limits.headersTimeout, 15_000)
    assert.equal(c.limits.maxBodySize, 10 * 1024 * 1024)
    assert.equal(c.health, '/_edgebox/health')
  })
})

/** Runs the CLI until it prints a URL; returns the URL and a stop function. */
async function runCli(args: string[], cwd = ROOT): Promise<{ url: string; output(): string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    const { url, output } = await listeningUrl(child)
    return {
      url,
      output,
      stop: () =>
        new Promise((res) => {
          child.once('exit', (code) => res(code))
          child.kill('SIGTERM')
        }),
    }
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
}

describe('the edgebox command', () => {
  test('edgebox DIR --port 0 serves the directory and prints the URL; SIGTERM stops it cleanly', async () => {
    const t = tempDir()
    writeFileSync(path.join(t.dir, 'hello.txt'), 'hi there')
    try {
      const run = await runCli([t.dir, '--port', '0'])
      assert.match(run.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
      assert.doesNotMatch(run.url, /:8080\//)
      const r = await request('http/1.1', run.url + 'hello.txt')
      assert.equal(r.text, 'hi there')
      assert.equal(await run.stop(), 0)
    } finally {
      t.cleanup()
    }
  })

  test('with no arguments it serves the welcome page (the npm start configuration)', async () => {
    const run = await runCli(['--port', '0'])
    try {
      const r = await request('http/1.1', run.url)
      assert.equal(r.status, 200)
      assert.match(r.text, /Edgebox/)
      assert.equal((await request('http/1.1', run.url + 'files/')).status, 200)
      // the admin listener: on its own loopback port (0 with --port 0), printed in the banner, the API without a login from here
      const admin = / admin (http:\/\/127\.0\.0\.1:\d+\/)"/.exec(run.output())
      assert.ok(admin, run.output())
      const config = await request('http/1.1', `${admin[1]}api/v1/config`)
      assert.equal(config.status, 200, config.text)
      assert.equal((JSON.parse(config.text) as { config: { admin: { host: string } } }).config.admin.host, '127.0.0.1')
      assert.match(run.output(), /admin: the dashboard, the admin API and \/metrics at http:\/\/127\.0\.0\.1:\d+\/, with no login from this machine only/)
      // never on the site's listener
      assert.equal((await request('http/1.1', `${run.url}api/v1/config`)).status, 404)
      // the second origin of the labs: the same site on PORT + 1, with CORS for the first on /lab/xo/
      const a = new URL(run.url).origin
      const b = `http://127.0.0.1:${Number(new URL(run.url).port) + 1}`
      const xo = await request('http/1.1', `${b}/lab/xo/data.json`, { headers: { origin: a } })
      assert.equal(xo.status, 200)
      assert.equal(xo.headers['access-control-allow-origin'], a)
      assert.equal((await request('http/1.1', `${b}/lab/attacker.html`)).status, 200)
      // the proxy route of the cross-origin lab reaches B's path without CORS
      const proxied = await request('http/1.1', `${a}/lab/xo-proxy/data.json`)
      assert.equal(proxied.status, 200)
      assert.match(proxied.text, /"from":"origin B"/)
    } finally {
      await run.stop()
    }
  })

  test('--config runs a TypeScript configuration that imports defineConfig from edgebox', async () => {
    if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT })
    const run = await runCli(['--config', 'test/fixtures/edgebox.config.ts'])
    try {
      const r = await request('http/1.1', run.url)
      assert.equal(r.status, 200)
      assert.match(r.text, /fixture site/)
      assert.equal(r.headers['cache-control'], 'no-store')
    } finally {
      await run.stop()
    }
  })

  test('a JSON configuration works too', async () => {
    const t = tempDir()
    writeFileSync(path.join(t.dir, 'index.html'), 'json site')
    writeFileSync(path.join(t.dir, 'edgebox.json'), JSON.stringify({ listen: [{ port: 0 }], sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }))
    try {
      const run = await runCli(['--config', path.join(t.dir, 'edgebox.json')])
      assert.equal((await request('http/1.1', run.url)).text, 'json site')
      await run.stop()
    } finally {
      t.cleanup()
    }
  })

  test('a bad configuration exits non-zero with the exact path and starts nothing', () => {
    const t = tempDir()
    writeFileSync(path.join(t.dir, 'bad.json'), JSON.stringify({ listen: [{ port: 0 }], sites: [{ routes: [{ path: '/', static: { root: './pub' } }] }] }))
    try {
      const r = spawnSync(process.execPath, [BIN, '--config', path.join(t.dir, 'bad.json')], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.status, 2)
      assert.match(r.stderr, /sites\[0\]\.routes\[0\]\.static\.root: directory \.\/pub does not exist/)
      assert.doesNotMatch(r.stdout + r.stderr, /listening on/)
    } finally {
      t.cleanup()
    }
  })

  /** Runs `edgebox --config FILE` expecting it to refuse; returns stderr. */
  function refusedConfig(dir: string, name: string, text: string): string {
    writeFileSync(path.join(dir, name), text)
    const r = spawnSync(process.execPath, [BIN, '--config', path.join(dir, name)], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2, r.stderr)
    assert.doesNotMatch(r.stdout + r.stderr, /listening on/)
    return r.stderr
  }

  test('a configuration that fails to import names the real cause, never "not found" for a file that exists', () => {
    const t = tempDir()
    try {
      let err = refusedConfig(t.dir, 'edgebox.config.ts', "import { x } from 'no-such-edgebox-package'\nexport default { x }\n")
      assert.match(err, /edgebox\.config\.ts: cannot load the configuration: module "no-such-edgebox-package" not found \(imported from .*edgebox\.config\.ts\)/)
      assert.doesNotMatch(err, /configuration file not found/)
      err = refusedConfig(t.dir, 'rel.mjs', "import './helper.mjs'\nexport default {}\n")
      assert.match(err, /rel\.mjs: cannot load the configuration: module ".*helper\.mjs" not found \(imported from .*rel\.mjs\)/)
      // a syntax error names the file, line and column, for TypeScript and JavaScript alike
      const broken = 'export default {\n  listen: [],\n  oops oops\n}\n'
      err = refusedConfig(t.dir, 'broken.ts', broken)
      assert.match(err, /broken\.ts: cannot load the configuration: syntax error at .*broken\.ts:3:8: /)
      err = refusedConfig(t.dir, 'broken.js', broken)
      assert.match(err, /broken\.js: cannot load the configuration: syntax error at .*broken\.js:3:8: Unexpected identifier 'oops'/)
      // only a file that is not there is "not found"
      const r = spawnSync(process.execPath, [BIN, '--config', path.join(t.dir, 'absent.ts')], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.status, 2)
      assert.match(r.stderr, /absent\.ts: configuration file not found/)
    } finally {
      t.cleanup()
    }
  })

  test('.ts and .js configurations load as ES modules in a CommonJS project too', async () => {
    const t = tempDir()
    writeFileSync(path.join(t.dir, 'package.json'), JSON.stringify({ name: 'site', version: '1.0.0', type: 'commonjs' }))
    writeFileSync(path.join(t.dir, 'index.html'), 'commonjs project')
    const body = "export default { listen: [{ port: 0 }], log: { access: false }, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }\n"
    try {
      for (const name of ['edgebox.config.ts', 'edgebox.config.js']) {
        writeFileSync(path.join(t.dir, name), name.endsWith('.ts') ? `const port: number = 0\n${body.replace('port: 0', 'port')}` : body)
        const run = await runCli(['--config', name], t.dir)
        const r = await request('http/1.1', run.url)
        assert.equal(r.status, 200, name)
        assert.equal(r.text, 'commonjs project')
        assert.equal(await run.stop(), 0)
      }
    } finally {
      t.cleanup()
    }
  })

  test('a .ts configuration in a CommonJS project is read again on SIGHUP', async () => {
    const t = tempDir()
    writeFileSync(path.join(t.dir, 'package.json'), JSON.stringify({ name: 'site', version: '1.0.0', type: 'commonjs' }))
    for (const d of ['one', 'two']) {
      mkdirSync(path.join(t.dir, d))
      writeFileSync(path.join(t.dir, d, 'index.html'), `site ${d}`)
    }
    const config = (root: string) => `const root: string = './${root}'\nexport default { listen: [{ port: 0 }], log: { access: false }, sites: [{ routes: [{ path: '/', static: { root } }] }] }\n`
    writeFileSync(path.join(t.dir, 'edgebox.config.ts'), config('one'))
    const child = spawn(process.execPath, [BIN, '--config', 'edgebox.config.ts'], { cwd: t.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const { url } = await listeningUrl(child)
      assert.equal((await request('http/1.1', url)).text, 'site one')
      writeFileSync(path.join(t.dir, 'edgebox.config.ts'), config('two'))
      child.kill('SIGHUP')
      const deadline = Date.now() + 10_000
      let text = ''
      while ((text = (await request('http/1.1', url)).text) !== 'site two' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.equal(text, 'site two')
    } finally {
      child.kill('SIGKILL')
      t.cleanup()
    }
  })

  test('on a Node older than 24 it prints one line saying how to add Node 24 and exits 2', () => {
    const old = olderNode()
    const r = spawnSync(old.argv[0]!, [...old.argv.slice(1), BIN, '--port', '0'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, `Edgebox needs Node.js 24 or newer (this is ${old.version}). Add it to this project: npm install --save-dev node@24, then run npx edgebox again.\n`)
    assert.equal(r.status, 2)
  })

  test('bad flags are refused with a message', () => {
    let r = spawnSync(process.execPath, [BIN, '--port', 'abc'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /--port: abc is not a port number/)
    r = spawnSync(process.execPath, [BIN, '--port', '65534'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /--port: the default configuration also listens on PORT \+ 1 and PORT \+ 2 \(the DNS lab's demo edges\); choose a port below 65534/)
    r = spawnSync(process.execPath, [BIN, '--dns-port', '70000'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /--dns-port: 70000 is not a port number/)
    r = spawnSync(process.execPath, [BIN, '.', '--dns-port', '5353'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /--dns-port is the built-in lab's DNS port; in a configuration, set dns\.listen/)
    r = spawnSync(process.execPath, [BIN, '/no/such/dir'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /directory \/no\/such\/dir does not exist/)
  })

  test('an unknown flag gets one line naming it, a suggestion and where the list is, exit 2', () => {
    let r = spawnSync(process.execPath, [BIN, '--prot', '80'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, 'edgebox: unknown option --prot (did you mean --port?); edgebox --help lists them\n')
    r = spawnSync(process.execPath, [BIN, '--zzzzzz'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.equal(r.stderr, 'edgebox: unknown option --zzzzzz; edgebox --help lists them\n')
    r = spawnSync(process.execPath, [BIN, '-x'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.equal(r.stderr, 'edgebox: unknown option -x; edgebox --help lists them\n')
    r = spawnSync(process.execPath, [BIN, '--port'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 2)
    assert.equal(r.stderr, 'edgebox: --port needs a value; edgebox --help lists the options\n')
  })

  test('edgebox cert names the port --https listens on (8080 by default) in its examples', () => {
    const t = tempDir()
    try {
      const r = spawnSync(process.execPath, [BIN, 'cert', '--home', t.dir], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(r.status, 0, r.stderr)
      assert.match(r.stdout, /\(or: npm start -- --https, then https:\/\/localhost:8080\/\)/)
      const ports = [...r.stdout.matchAll(/https:\/\/localhost:(\d+)/g)].map((m) => m[1])
      assert.ok(ports.length >= 2)
      assert.deepEqual(new Set(ports), new Set(['8080']))
    } finally {
      t.cleanup()
    }
  })

  test('edgebox config --print shows the resolved configuration', () => {
    const r = spawnSync(process.execPath, [BIN, 'config', '--print', '.'], { encoding: 'utf8', cwd: ROOT, timeout: 10_000 })
    assert.equal(r.status, 0, r.stderr)
    const cfg = JSON.parse(r.stdout) as { limits: { headersTimeout: number }; sites: Array<{ routes: Array<{ static: { index: string[] } }> }> }
    assert.equal(cfg.limits.headersTimeout, 15000)
    assert.deepEqual(cfg.sites[0]!.routes[0]!.static.index, ['index.html'])
  })
})

import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { olderNode } from '../helpers/old-node.ts'
import { listeningUrl, tempDir } from '../helpers/server.ts'
import { freePort, startPebble } from '../helpers/pebble.ts'

/**
 * Install it anywhere: the package as npm publishes it, installed into a
 * fresh CommonJS project (`npm init -y`) and a fresh ES module project, runs
 * `edgebox ./public` and `edgebox --config FILE` for every kind of
 * configuration file, with `import { defineConfig } from 'edgebox'`
 * resolving from the project. The tarball is packed once from this tree's
 * build (dist/, made by `prepare` during npm ci); its dependencies come from
 * the registry into a private npm cache.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The pinned Node first on PATH, as `npm install --save-dev node@24` makes it for `npx edgebox` in a user's project. */
const PINNED = path.join(ROOT, 'node_modules', '.bin')

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command to its end (bounded), collecting its output. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${cmd} ${args.join(' ')} took over ${timeoutMs} ms:\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** This environment without what the `npm test` around it set for this package, with a private npm cache. */
function projectEnv(cache: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$|config_cache$)/i.test(k)) continue
    env[k] = v
  }
  env.PATH = `${PINNED}${path.delimiter}${process.env.PATH ?? ''}`
  env.npm_config_cache = cache
  env.npm_config_update_notifier = 'false'
  env.CI = 'true'
  return env
}

/** Some bytes of every value, so the file is served byte for byte, not as text. */
const BYTES = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256))

const CONFIG_BODY = "listen: [{ host: '127.0.0.1', port }], log: { access: false }, sites: [{ routes: [{ path: '/', static: { root: './public' } }] }]"
const CONFIGS: Record<string, string> = {
  '.ts': `import { defineConfig } from 'edgebox'\nconst port: number = 0\nexport default defineConfig({ ${CONFIG_BODY} })\n`,
  '.mts': `import { defineConfig } from 'edgebox'\nconst port: number = 0\nexport default defineConfig({ ${CONFIG_BODY} })\n`,
  '.js': `import { defineConfig } from 'edgebox'\nconst port = 0\nexport default defineConfig({ ${CONFIG_BODY} })\n`,
  '.mjs': `import { defineConfig } from 'edgebox'\nconst port = 0\nexport default defineConfig({ ${CONFIG_BODY} })\n`,
  '.json': JSON.stringify({ listen: [{ host: '127.0.0.1', port: 0 }], log: { access: false }, sites: [{ routes: [{ path: '/', static: { root: './public' } }] }] }),
}

describe('the npm package, installed into a project', () => {
  const t = tempDir('edgebox-package-')
  const env = projectEnv(path.join(t.dir, 'npm-cache'))
  const projects = { commonjs: path.join(t.dir, 'commonjs'), esm: path.join(t.dir, 'esm') }

  before(async () => {
    assert.ok(existsSync(path.join(ROOT, 'dist', 'index.js')) && existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')), 'dist/ is missing: npm ci (or npm run prepare) builds it')
    const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', t.dir], ROOT, env)
    assert.equal(packed.code, 0, packed.stderr)
    const tarball = path.join(t.dir, packed.stdout.trim().split('\n').pop()!)
    assert.ok(existsSync(tarball), `npm pack made no ${tarball}`)
    await Promise.all(
      Object.entries(projects).map(async ([kind, dir]) => {
        mkdirSync(dir)
        const init = await run('npm', ['init', '-y'], dir, env)
        assert.equal(init.code, 0, init.stderr)
        if (kind === 'esm') {
          const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>
          writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...pkg, type: 'module' }, null, 2))
        }
        const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], dir, env)
        assert.equal(installed.code, 0, `${kind}: npm install failed:\n${installed.stdout}\n${installed.stderr}`)
        // the package's engines (Node >= 24) and its dependencies' agree with the Node it runs on
        assert.doesNotMatch(installed.stdout + installed.stderr, /EBADENGINE/)
        mkdirSync(path.join(dir, 'public'))
        writeFileSync(path.join(dir, 'public', 'hello.bin'), BYTES)
        for (const [ext, text] of Object.entries(CONFIGS)) writeFileSync(path.join(dir, `edgebox.config${ext}`), text)
      }),
    )
    // a default `npm init -y` project is CommonJS
    assert.equal((JSON.parse(readFileSync(path.join(projects.commonjs, 'package.json'), 'utf8')) as { type?: string }).type ?? 'commonjs', 'commonjs')
  })

  after(() => t.cleanup())

  /** Starts the project's installed `edgebox` (its node_modules/.bin, as npx runs it), fetches /hello.bin, stops it with SIGTERM. */
  async function serves(dir: string, args: string[], withEnv: NodeJS.ProcessEnv = env): Promise<void> {
    const child = spawn(path.join(dir, 'node_modules', '.bin', 'edgebox'), args, { cwd: dir, env: withEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const { url, output } = await listeningUrl(child, 20_000)
      const res = await fetch(new URL('hello.bin', url))
      assert.equal(res.status, 200, output())
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), BYTES)
    } finally {
      child.kill('SIGTERM')
    }
    assert.equal(await exited, 0)
  }

  test('on the newest Node (the npm package node@26): the package serves a directory and a .ts configuration', async () => {
    const prefix = path.join(t.dir, 'node-next')
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-save', '--prefix', prefix, 'node@26'], t.dir, env)
    assert.equal(installed.code, 0, installed.stderr)
    const next = { ...env, PATH: `${path.join(prefix, 'node_modules', '.bin')}${path.delimiter}${env.PATH ?? ''}` }
    const version = await run('node', ['--version'], t.dir, next)
    assert.match(version.stdout, /^v26\./, 'node@26 is the node on PATH')
    await serves(projects.commonjs, ['./public', '--port', '0'], next)
    await serves(projects.esm, ['--config', 'edgebox.config.ts'], next)
  })

  for (const kind of ['commonjs', 'esm'] as const) {
    test(`${kind} project: edgebox ./public --port 0 serves the directory and stops on SIGTERM`, async () => {
      await serves(projects[kind], ['./public', '--port', '0'])
    })
    for (const ext of Object.keys(CONFIGS)) {
      test(`${kind} project: edgebox --config edgebox.config${ext}`, async () => {
        await serves(projects[kind], ['--config', `edgebox.config${ext}`])
      })
    }
  }

  test('commonjs project: automatic HTTPS (tls.acme) from the installed package, against Pebble', async () => {
    const [httpPort, tlsPort] = [await freePort(), await freePort()]
    const pebble = await startPebble({ httpPort, tlsPort })
    const dir = projects.commonjs
    writeFileSync(
      path.join(dir, 'edgebox.acme.ts'),
      `import { defineConfig } from 'edgebox'
export default defineConfig({
  dataDir: './edgebox-data',
  listen: [{ host: '127.0.0.1', port: ${httpPort}, httpsRedirect: { port: ${tlsPort} } }, { host: '127.0.0.1', port: ${tlsPort}, tls: true }],
  tls: { acme: { email: 'ops@shop.example.com', agreeToTerms: true, directory: '${pebble.directory}', ca: ${JSON.stringify(pebble.caFile)} } },
  log: { access: false },
  sites: [{ hosts: ['shop.example.com'], routes: [{ path: '/', static: { root: './public' } }] }],
})
`,
    )
    const child = spawn(path.join(dir, 'node_modules', '.bin', 'edgebox'), ['--config', 'edgebox.acme.ts'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    try {
      const root = await pebble.root()
      const deadline = Date.now() + 30_000
      while (!/"msg":"ACME certificate obtained"/.test(output)) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `no certificate:\n${output}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      const issuer = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'shop.example.com', ca: root }, () => {
          resolve(c.getPeerX509Certificate()!.issuer)
          c.destroy()
        })
        c.on('error', reject)
      })
      assert.match(issuer, /Pebble/)
      assert.ok(existsSync(path.join(dir, 'edgebox-data', 'acme')), 'stored under the configured dataDir')
    } finally {
      child.kill('SIGTERM')
      await pebble.close()
    }
    assert.equal(await exited, 0, output)
  })

  /** Resolves once process `pid` no longer exists; false if it still does after `ms`. */
  async function gone(pid: number, ms = 15_000): Promise<boolean> {
    const deadline = Date.now() + ms
    for (;;) {
      try {
        process.kill(pid, 0)
      } catch {
        return true
      }
      if (Date.now() > deadline) return false
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    test(`npx edgebox: the server stops when npx is killed with ${signal}, never left serving as an orphan`, async () => {
      const dir = projects.commonjs
      const npx = spawn('npx', ['edgebox', './public', '--port', '0'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let server = 0
      try {
        const { url, output } = await listeningUrl(npx, 20_000)
        server = Number(/"pid":(\d+)/.exec(output())?.[1])
        assert.ok(server > 0 && server !== npx.pid, output())
        assert.equal((await fetch(new URL('hello.bin', url))).status, 200)
        npx.kill(signal)
        assert.ok(await gone(server), `the server (pid ${server}) still runs after npx got ${signal}`)
      } finally {
        npx.kill('SIGKILL')
        if (server > 0 && !(await gone(server, 0))) process.kill(server, 'SIGKILL')
      }
    })
  }

  test('on a Node older than 24 the installed command prints how to add Node 24 and exits 2', () => {
    const old = olderNode()
    const bin = path.join(projects.commonjs, 'node_modules', 'edgebox', 'bin', 'edgebox.js')
    const r = spawnSync(old.argv[0]!, [...old.argv.slice(1), bin, './public'], { cwd: projects.commonjs, encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, `Edgebox needs Node.js 24 or newer (this is ${old.version}). Add it to this project: npm install --save-dev node@24, then run npx edgebox again.\n`)
    assert.equal(r.status, 2)
  })
})

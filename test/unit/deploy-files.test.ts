import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

/** The Dockerfile, the systemd units and the compose file (docs/deploy.md): no container engine runs the tests, so their essentials are checked here. */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const SCRIPT = "fetch('http://127.0.0.1:8080/_edgebox/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/)
      return { op: op!.toUpperCase(), args: rest.join(' ') }
    })
}

/** The argument vector of an exec-form (JSON array) command; the shell form as the shell runs it. */
function argv(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : ['/bin/sh', '-c', args]
}

describe('Dockerfile', () => {
  const all = instructions(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))
  // the final stage is the image that runs
  const lastFrom = all.map((i) => i.op).lastIndexOf('FROM')
  const image = all.slice(lastFrom)

  test('every stage starts from a Node 24 image', () => {
    const froms = all.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0])
    assert.ok(froms.length >= 1)
    for (const from of froms) assert.match(from!, /^node:24(-[a-z0-9.-]+)?$/)
  })

  test('runs as the non-root user node', () => {
    const users = image.filter((i) => i.op === 'USER').map((i) => i.args)
    assert.equal(users.at(-1), 'node')
  })

  test('checks its health with node -e and fetch, not curl or wget', () => {
    const checks = image.filter((i) => i.op === 'HEALTHCHECK')
    assert.equal(checks.length, 1)
    const cmd = /^(?:--\S+\s+)*CMD\s+(.*)$/.exec(checks[0]!.args)
    assert.ok(cmd, checks[0]!.args)
    const run = argv(cmd[1]!)
    if (run[0] === '/bin/sh') assert.equal(run[2], `node -e "${SCRIPT}"`)
    else assert.deepEqual(run, ['node', '-e', SCRIPT])
    // slim images have neither; no instruction may count on them
    for (const i of all) assert.doesNotMatch(i.args, /\b(curl|wget)\b/, `${i.op} ${i.args}`)
  })

  test('exposes the port the health check asks and keeps EDGEBOX_HOME as a volume', () => {
    const ports = image.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))
    assert.ok(ports.includes('8080'), ports.join(' '))
    const env = image.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ')
    const home = /\bEDGEBOX_HOME=(\S+)/.exec(env)?.[1]
    assert.equal(home, '/var/lib/edgebox')
    const volumes = image.filter((i) => i.op === 'VOLUME').flatMap((i) => (i.args.startsWith('[') ? (JSON.parse(i.args) as string[]) : i.args.split(/\s+/)))
    assert.deepEqual(volumes, [home])
  })
})

describe('deploy/edgebox.service', () => {
  const unit = path.join(ROOT, 'deploy', 'edgebox.service')
  const text = readFileSync(unit, 'utf8')
  const settings = text.split('\n').filter((l) => /^\w+=/.test(l))

  test('restarts on failure, reloads with SIGHUP, runs as its own user with its state directory as EDGEBOX_HOME', () => {
    for (const line of ['Restart=on-failure', 'LimitNOFILE=65536', 'ExecReload=/bin/kill -HUP $MAINPID', 'User=edgebox', 'StateDirectory=edgebox', 'Environment=EDGEBOX_HOME=/var/lib/edgebox', 'NoNewPrivileges=yes', 'ProtectSystem=strict']) {
      assert.ok(settings.includes(line), `missing ${line}`)
    }
  })

  test('takes its listening sockets from edgebox.socket, and a stop is the graceful shutdown of the main process', () => {
    for (const line of ['Requires=edgebox.socket', 'After=edgebox.socket', 'KillSignal=SIGTERM', 'KillMode=mixed']) {
      assert.ok(settings.includes(line), `missing ${line}`)
    }
  })

  // systemd-analyze comes with the Debian package systemd, which .ci/run installs
  test('systemd-analyze verify accepts it without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(r.error, undefined, 'systemd-analyze is not installed (apt-get install systemd)')
    assert.equal(r.stderr, '')
    assert.equal(r.stdout, '')
    assert.equal(r.status, 0)
  })
})

describe('deploy/edgebox.socket', () => {
  const unit = path.join(ROOT, 'deploy', 'edgebox.socket')
  const text = readFileSync(unit, 'utf8')
  const settings = text.split('\n').filter((l) => /^\w+=/.test(l))

  test('listens on 80 and 443 for edgebox.service: one queue per port that every process shares, named, started with the system', () => {
    for (const line of ['ListenStream=80', 'ListenStream=443', 'ReusePort=no', 'NoDelay=yes', 'Accept=no', 'FileDescriptorName=edgebox', 'Service=edgebox.service', 'WantedBy=sockets.target']) {
      assert.ok(settings.includes(line), `missing ${line}`)
    }
    assert.deepEqual(
      settings.filter((l) => l.startsWith('ListenStream=')),
      ['ListenStream=80', 'ListenStream=443'],
    )
  })

  test('systemd-analyze verify accepts it and the service together without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', unit, path.join(ROOT, 'deploy', 'edgebox.service')], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(r.error, undefined, 'systemd-analyze is not installed (apt-get install systemd)')
    assert.equal(r.stderr, '')
    assert.equal(r.stdout, '')
    assert.equal(r.status, 0)
  })

  test('the npm package ships both units', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
    assert.equal(r.status, 0, r.stderr)
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
    assert.ok(files.includes('deploy/edgebox.socket'), 'deploy/edgebox.socket is packed')
    assert.ok(files.includes('deploy/edgebox.service'), 'deploy/edgebox.service is packed')
  })
})

describe('deploy/compose.yaml', () => {
  const file = path.join(ROOT, 'deploy', 'compose.yaml')

  test('docker-compose validates it (Debian docker-compose, installed by .ci/run; no container engine needed)', () => {
    const r = spawnSync('docker-compose', ['-f', file, 'config', '-q'], { encoding: 'utf8' })
    assert.equal(r.error, undefined, 'docker-compose is installed (apt-get install docker-compose)')
    assert.equal(r.stderr, '')
    assert.equal(r.status, 0)
  })

  test("Edgebox's service: built from the Dockerfile, started once Redis and PostgreSQL are healthy, with a stop grace longer than the shutdown timeout", () => {
    const r = spawnSync('docker-compose', ['-f', file, 'config'], { encoding: 'utf8' })
    const text = r.stdout
    assert.match(text, /edgebox:\n    build:\n      context: \S+\n      dockerfile: Dockerfile/)
    assert.match(text, /depends_on:\n      postgres:\n        condition: service_healthy\n      redis:\n        condition: service_healthy/)
    assert.match(text, /stop_grace_period: 30s/)
    assert.match(text, /DATABASE_URL: postgres:\/\/edgebox:change-me@postgres:5432\/edgebox/)
  })

  test('the configuration it mounts is a valid Edgebox configuration, with workers, Redis and PostgreSQL', async () => {
    const { validateConfig } = await import('../../src/config/load.ts')
    const cfg = validateConfig(JSON.parse(readFileSync(path.join(ROOT, 'deploy', 'compose', 'edgebox.config.json'), 'utf8')))
    assert.equal(cfg.workers, 'auto')
    assert.equal(cfg.redis?.url, 'redis://redis:6379')
    assert.equal(cfg.postgres?.url, undefined, 'postgres: true takes DATABASE_URL')
  })
})

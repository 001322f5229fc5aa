import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, test } from 'node:test'
import { closedPort, listeningUrl, tempDir } from '../helpers/server.ts'

/**
 * Socket activation (src/server/socket-activation.ts, docs/deploy.md), through
 * the real command. This test process plays systemd: it holds a listening
 * socket it never accepts on, and starts `edgebox` with it as descriptor 3
 * and LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES set as systemd sets them (a
 * shell sets LISTEN_PID to its own pid, then execs Node in its place).
 * Edgebox serves on that socket and binds nothing for it; a restart under
 * load (the old process stopped by SIGTERM, a new one started on the same
 * socket) answers every request, one process or a primary with two workers.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'edgebox.js')
/** systemd's way: LISTEN_PID is the pid of the process that reads it (the shell's, which exec keeps for Node). */
const ACTIVATE = 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$0" "$@"'

const dirs: Array<{ cleanup(): void }> = []
const children = new Set<ChildProcess>()
const held: net.BoundSocket[] = []
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const s of held) s.close()
  for (const d of dirs) d.cleanup()
})

/**
 * A listening socket on 127.0.0.1 that this process holds and never accepts
 * on, as systemd holds a socket unit's: bound here (net.BoundSocket, which
 * does not listen), and made listening by a short-lived Node process that
 * listens on it and exits (the socket stays listening while a descriptor of
 * it is open, and accepts nothing until a process asks for connections).
 */
function systemdSocket(listening = true): { fd: number; port: number; inode: string } {
  const bound = new net.BoundSocket({ host: '127.0.0.1', port: 0 })
  held.push(bound)
  const fd = bound.fd()
  const port = (bound.address() as net.AddressInfo).port
  const inode = socketInode(`/proc/self/fd/${fd}`)
  if (listening) {
    const made = spawnSync(process.execPath, ['-e', "require('node:net').createServer().listen({ fd: 3 }, () => process.exit(0))"], { stdio: ['ignore', 'inherit', 'inherit', fd], timeout: 10_000 })
    assert.equal(made.status, 0, 'the socket is made listening')
    assert.deepEqual(listeningInodes(port), [inode], 'the socket listens before Edgebox starts')
  }
  return { fd, port, inode }
}

/** The inode of the socket a /proc/PID/fd/N link names. */
function socketInode(link: string): string {
  const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(link))
  assert.ok(m, `${link} is a socket`)
  return m[1]!
}

/** The inodes of the sockets listening on 127.0.0.1:port (/proc/net/tcp: state 0A is LISTEN). */
function listeningInodes(port: number): string[] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === local && f[3] === '0A')
    .map((f) => f[9]!)
}

/** The inodes of every socket a process holds. */
function socketsOf(pid: number): string[] {
  const out: string[] = []
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) out.push(m[1]!)
    } catch {
      // closed meanwhile
    }
  }
  return out
}

/** A folder with a configuration serving `body` at / on 127.0.0.1:port. */
function site(port: number, body: string, extra: Record<string, unknown> = {}): string {
  const d = tempDir()
  dirs.push(d)
  writeFileSync(path.join(d.dir, 'index.html'), body)
  mkdirSync(path.join(d.dir, 'data'))
  writeFileSync(path.join(d.dir, 'edgebox.config.json'), JSON.stringify(config(port, extra)))
  return d.dir
}

function config(port: number, extra: Record<string, unknown> = {}) {
  return { listen: [{ host: '127.0.0.1', port }], log: { access: false }, ...extra, sites: [{ routes: [{ path: '/', static: { root: '.' } }] }] }
}

interface Run {
  child: ChildProcess
  url: string
  output(): string
  exited: Promise<number | null>
}

/** Starts `edgebox --config` in `dir`, with descriptor 3 = `fd` and the variables `activate` sets (a shell script that execs Node). */
async function start(dir: string, fd: number | null, activate = ACTIVATE): Promise<Run> {
  const child = spawn('/bin/sh', ['-c', activate, process.execPath, BIN, '--config', 'edgebox.config.json'], {
    cwd: dir,
    env: { ...process.env, CI: 'true', EDGEBOX_HOME: path.join(dir, 'data') },
    stdio: ['ignore', 'pipe', 'pipe', ...(fd === null ? [] : [fd])],
  })
  children.add(child)
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  const { url, output } = await listeningUrl(child, 30_000)
  return { child, url, output, exited }
}

/** Starts it and waits for it to end: its exit code and everything it printed. */
async function startFailing(dir: string, fd: number | null, activate = ACTIVATE): Promise<{ code: number | null; output: string }> {
  const child = spawn('/bin/sh', ['-c', activate, process.execPath, BIN, '--config', 'edgebox.config.json'], {
    cwd: dir,
    env: { ...process.env, CI: 'true', EDGEBOX_HOME: path.join(dir, 'data') },
    stdio: ['ignore', 'pipe', 'pipe', ...(fd === null ? [] : [fd])],
  })
  children.add(child)
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
  clearTimeout(timer)
  return { code, output }
}

/** One GET on a connection of its own (no keep-alive): the status and body, or the error. */
function get(url: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 20_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', (err) => resolve({ error: err.message }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')))
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: `${err.code ?? ''} ${err.message}` }))
  })
}

interface Outcome {
  /** Started before the new process said it listens: answered by the new one, it waited in the socket's queue. */
  early: boolean
  result: { status: number; body: string } | { error: string }
}

/**
 * Replaces `old` by a process started in `nextDir` on the same socket while
 * four clients send request after request: `together`, the new process is
 * started as the old one gets SIGTERM; else once the old one has exited
 * (what `systemctl restart` does). Ends once the new process has answered
 * 40 requests after the old one's exit (or after 40 s).
 */
async function restartUnderLoad(old: Run, fd: number, nextDir: string, together: boolean): Promise<{ outcomes: Outcome[]; next: Run }> {
  const outcomes: Outcome[] = []
  let oldGone = false
  let newListening = false
  let afterSwap = 0
  const deadline = Date.now() + 40_000
  const client = async () => {
    while (afterSwap < 40 && Date.now() < deadline) {
      const early = !newListening
      const result = await get(old.url)
      outcomes.push({ early, result })
      if (oldGone && newListening && 'status' in result) afterSwap++
    }
  }
  const clients = [client(), client(), client(), client()]
  // the old process is serving the load before it is stopped
  while (outcomes.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  old.child.kill('SIGTERM')
  const oldExit = old.exited.then((code) => {
    oldGone = true
    return code
  })
  let next: Run
  if (together) {
    next = await start(nextDir, fd)
    newListening = true
    assert.equal(await oldExit, 0)
  } else {
    assert.equal(await oldExit, 0)
    next = await start(nextDir, fd)
    newListening = true
  }
  await Promise.all(clients)
  return { outcomes, next }
}

/** Every request answered 200 by one of the two generations; the new one answered connections made before it listened. */
function assertHitless(outcomes: Outcome[]): void {
  const failed = outcomes.filter((o) => !('status' in o.result) || o.result.status !== 200)
  assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} requests failed`)
  const bodies = new Set(outcomes.map((o) => ('body' in o.result ? o.result.body : '')))
  assert.deepEqual([...bodies].sort(), ['new', 'old'], 'both generations answered')
  assert.ok(outcomes.some((o) => o.early && 'body' in o.result && o.result.body === 'new'), 'the socket held connections for the new process')
  assert.ok(outcomes.length >= 60)
}

describe('one process on the socket systemd passed', () => {
  test('serves on the inherited socket, binds nothing for it, and a reload (SIGHUP) keeps it', async () => {
    const sock = systemdSocket()
    const dir = site(sock.port, 'old')
    const run = await start(dir, sock.fd)
    try {
      assert.equal(run.url, `http://127.0.0.1:${sock.port}/`)
      assert.deepEqual(await get(run.url), { status: 200, body: 'old' })
      // the only socket listening on the port is the one this process holds, and Edgebox serves on it
      assert.deepEqual(listeningInodes(sock.port), [sock.inode])
      assert.ok(socketsOf(run.child.pid!).includes(sock.inode))
      assert.match(run.output(), new RegExp(`socket activation: listening on the sockets systemd passed: 127\\.0\\.0\\.1:${sock.port} \\(fd 3 \\\\"web\\\\"\\)`))
      // a reload takes the new configuration and keeps the listener
      const next = config(sock.port)
      next.sites[0]!.routes.unshift({ path: '/added/', redirect: { to: '/new' } } as never)
      writeFileSync(path.join(dir, 'edgebox.config.json'), JSON.stringify(next))
      run.child.kill('SIGHUP')
      let answer = await get(`${run.url}added/x`)
      for (let i = 0; i < 100 && 'status' in answer && answer.status !== 302; i++) {
        await new Promise((r) => setTimeout(r, 50))
        answer = await get(`${run.url}added/x`)
      }
      assert.equal('status' in answer && answer.status, 302, JSON.stringify(answer))
      assert.deepEqual(listeningInodes(sock.port), [sock.inode])
      assert.ok(socketsOf(run.child.pid!).includes(sock.inode))
      assert.deepEqual(await get(run.url), { status: 200, body: 'old' })
    } finally {
      run.child.kill('SIGTERM')
      assert.equal(await run.exited, 0)
    }
    // the process's exit closed its copy only: the socket still listens, held here
    assert.deepEqual(listeningInodes(sock.port), [sock.inode])
  })

  for (const together of [true, false]) {
    test(`a restart under load answers every request (${together ? 'the new process started as the old one gets SIGTERM' : 'the new process started once the old one has exited'})`, async () => {
      const sock = systemdSocket()
      const old = await start(site(sock.port, 'old'), sock.fd)
      const { outcomes, next } = await restartUnderLoad(old, sock.fd, site(sock.port, 'new'), together)
      try {
        assertHitless(outcomes)
      } finally {
        next.child.kill('SIGTERM')
        assert.equal(await next.exited, 0)
      }
    })
  }
})

describe('workers: 2 on the socket systemd passed', () => {
  test('both workers serve on the inherited socket, which the primary holds, and a reload (SIGHUP) keeps it', async () => {
    const sock = systemdSocket()
    const dir = site(sock.port, 'old', { workers: 2 })
    const run = await start(dir, sock.fd)
    try {
      assert.equal(run.url, `http://127.0.0.1:${sock.port}/`)
      const seen = new Set<number | undefined>()
      for (let i = 0; i < 100 && seen.size < 2; i++) {
        const r = await get(`${run.url}_edgebox/health`)
        assert.ok('body' in r, JSON.stringify(r))
        seen.add((JSON.parse(r.body) as { worker?: number }).worker)
      }
      assert.deepEqual([...seen].sort(), [1, 2])
      assert.deepEqual(listeningInodes(sock.port), [sock.inode])
      const workers = spawnSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number)
      assert.equal(workers.length, 2)
      for (const pid of [run.child.pid!, ...workers]) assert.ok(socketsOf(pid).includes(sock.inode), `process ${pid} holds the socket`)
      const next = config(sock.port, { workers: 2 })
      next.sites[0]!.routes.unshift({ path: '/added/', redirect: { to: '/new' } } as never)
      writeFileSync(path.join(dir, 'edgebox.config.json'), JSON.stringify(next))
      run.child.kill('SIGHUP')
      // both workers (fresh connections go to either) answer the added route
      let streak = 0
      for (let i = 0; i < 200 && streak < 8; i++) {
        const r = await get(`${run.url}added/x`)
        streak = 'status' in r && r.status === 302 ? streak + 1 : 0
        if (streak === 0) await new Promise((r) => setTimeout(r, 25))
      }
      assert.equal(streak, 8, 'both workers took the reload')
      assert.deepEqual(listeningInodes(sock.port), [sock.inode])
    } finally {
      run.child.kill('SIGTERM')
      assert.equal(await run.exited, 0)
    }
  })

  test('after both workers die at once, the workers started again still listen on it', async () => {
    const sock = systemdSocket()
    const run = await start(site(sock.port, 'old', { workers: 2 }), sock.fd)
    try {
      const workers = spawnSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number)
      assert.equal(workers.length, 2)
      for (const pid of workers) process.kill(pid, 'SIGKILL')
      // the primary starts them again; meanwhile the socket holds the connections
      const answers = await Promise.all(Array.from({ length: 8 }, () => get(run.url)))
      for (const a of answers) assert.deepEqual(a, { status: 200, body: 'old' })
      const again = spawnSync('pgrep', ['-P', String(run.child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number)
      assert.equal(again.length, 2)
      for (const pid of again) assert.ok(!workers.includes(pid) && socketsOf(pid).includes(sock.inode), `worker ${pid} is new and holds the socket`)
    } finally {
      run.child.kill('SIGTERM')
      assert.equal(await run.exited, 0)
    }
  })

  for (const together of [true, false]) {
    test(`a restart under load answers every request (${together ? 'the new primary started as the old one gets SIGTERM' : 'the new primary started once the old one has exited'})`, async () => {
      const sock = systemdSocket()
      const old = await start(site(sock.port, 'old', { workers: 2 }), sock.fd)
      const { outcomes, next } = await restartUnderLoad(old, sock.fd, site(sock.port, 'new', { workers: 2 }), together)
      try {
        assertHitless(outcomes)
      } finally {
        next.child.kill('SIGTERM')
        assert.equal(await next.exited, 0)
      }
    })
  }
})

describe('what is not socket activation, and what does not match', () => {
  test("LISTEN_PID of another process: the variables are not this process's, and it binds its own listener", async () => {
    // bound and not listening: had Edgebox taken it, it would listen
    const sock = systemdSocket(false)
    const port = await closedPort()
    // the pid of the shell's parent (this test process)
    const run = await start(site(port, 'own'), sock.fd, 'LISTEN_PID=$PPID LISTEN_FDS=1 exec "$0" "$@"')
    try {
      assert.equal(run.url, `http://127.0.0.1:${port}/`)
      assert.deepEqual(await get(run.url), { status: 200, body: 'own' })
      assert.equal(listeningInodes(port).length, 1)
      assert.deepEqual(listeningInodes(sock.port), [], 'nothing listens on the socket passed')
    } finally {
      run.child.kill('SIGTERM')
      await run.exited
    }
  })

  test('a socket from systemd with no listener, and a listener with no socket: the start stops naming both addresses', async () => {
    const sock = systemdSocket()
    const port = await closedPort()
    const { code, output } = await startFailing(site(port, 'x'), sock.fd)
    assert.equal(code, 2, output)
    assert.match(output, new RegExp(`listen\\[0\\]: 127\\.0\\.0\\.1:${port} has no socket from systemd, which passed 127\\.0\\.0\\.1:${sock.port} \\(fd 3\\); add ListenStream=127\\.0\\.0\\.1:${port} to the socket unit`))
    assert.match(output, new RegExp(`socket activation: systemd passed 127\\.0\\.0\\.1:${sock.port} \\(fd 3, "web"\\) and no listener has that address`))
    assert.deepEqual(listeningInodes(port), [], 'it bound nothing itself')
  })

  test('with workers, the mismatch stops the primary with the error', async () => {
    const sock = systemdSocket()
    const port = await closedPort()
    const { code, output } = await startFailing(site(port, 'x', { workers: 2 }), sock.fd)
    assert.equal(code, 1, output)
    assert.match(output, new RegExp(`listen\\[0\\]: 127\\.0\\.0\\.1:${port} has no socket from systemd`))
  })

  test('a descriptor that is not a socket, and LISTEN_FDNAMES that does not count LISTEN_FDS: the start stops saying so', async () => {
    const d = site(await closedPort(), 'x')
    const file = openSync(path.join(d, 'index.html'), 'r')
    try {
      const notSocket = await startFailing(d, file)
      assert.equal(notSocket.code, 2, notSocket.output)
      assert.match(notSocket.output, /^edgebox: socket activation: descriptor 3 \("web"\) is not a socket$/m)
    } finally {
      closeSync(file)
    }
    const sock = systemdSocket()
    const names = await startFailing(d, sock.fd, 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=a:b exec "$0" "$@"')
    assert.equal(names.code, 2, names.output)
    assert.match(names.output, /^edgebox: socket activation: LISTEN_FDNAMES names 2 sockets and LISTEN_FDS says 1$/m)
  })
})

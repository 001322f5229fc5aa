import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { listeningUrl } from './server.ts'

/**
 * The real `edgebox` command with workers, for the tests of what the
 * workers of one machine share: started in a folder holding its
 * `edgebox.config.json`, and reached on connections the test can pin to a
 * worker (the health endpoint says which worker answered).
 */

const BIN = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'), 'bin', 'edgebox.js')

export interface Run {
  child: ChildProcess
  /** The first site URL the primary announced. */
  url: string
  /** Everything the command printed so far. */
  output(): string
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>
}

/** Starts `edgebox --config edgebox.config.json` in `dir`; resolves once the primary says it listens. */
export async function startCommand(dir: string, timeoutMs = 20_000): Promise<Run> {
  const child = spawn(process.execPath, [BIN, '--config', 'edgebox.config.json'], { cwd: dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    const { url, output } = await listeningUrl(child, timeoutMs)
    return {
      child,
      url,
      output,
      stop: () =>
        new Promise((res) => {
          if (child.exitCode !== null) return res(child.exitCode)
          child.once('exit', (code) => res(code))
          child.kill('SIGTERM')
        }),
    }
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
}

export type Answer = { status: number; headers: http.IncomingHttpHeaders; text: string }

/** One request on a connection of its own (so either worker may take it), or on `agent`'s one kept-alive connection. */
export function fresh(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 5 s`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** The worker that answers on `agent`'s connection (or on a new one). */
export const workerOf = async (url: string, agent?: http.Agent): Promise<number | undefined> => (JSON.parse((await fresh(`${url}_edgebox/health`, agent ? { agent } : {})).text) as { worker?: number }).worker

/** A kept-alive connection that worker `index` accepted; `tries` counts the requests it took. */
export async function connectionTo(url: string, index: number, tries?: { n: number }): Promise<http.Agent> {
  for (let i = 0; i < 100; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    if (tries) tries.n++
    if ((await workerOf(url, agent)) === index) return agent
    agent.destroy()
  }
  throw new Error(`no connection reached worker ${index} in 100 tries`)
}

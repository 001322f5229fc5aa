/**
 * A second process on a DiskStore folder, for the two-process contract tests
 * (test/contracts/cache-stores.test.ts). Run as a child: it opens the store
 * named by its arguments (`<dir> <maxBytes>`) and answers one JSON command per
 * line on stdin with one JSON line on stdout: `{ id, result }` or
 * `{ id, error }`. Bodies travel as base64. `peer()` starts it and returns a
 * client.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { DiskStore } from '../../src/modules/cache/disk-store.ts'
import type { StoredEntry } from '../../src/modules/cache/store.ts'

/** A StoredEntry as it travels between the processes. */
export interface WireEntry {
  key: string
  variant: string
  vary: string | null
  status: number
  headers: Record<string, string | string[]>
  body: string
  requestTime: number
  responseTime: number
  tags: string[]
  partial?: { size: number; ranges: { start: number; end: number }[] }
}

export const toWire = (e: StoredEntry): WireEntry => ({
  key: e.key,
  variant: e.variant,
  vary: e.vary ?? null,
  status: e.status,
  headers: e.headers as Record<string, string | string[]>,
  body: Buffer.from(e.body).toString('base64'),
  requestTime: e.requestTime,
  responseTime: e.responseTime,
  tags: [...e.tags],
  ...(e.partial ? { partial: { size: e.partial.size, ranges: e.partial.ranges.map((r) => ({ start: r.start, end: r.end })) } } : {}),
})

const fromWire = (w: WireEntry): StoredEntry => ({ ...w, vary: w.vary ?? undefined, body: Buffer.from(w.body, 'base64') })

/**
 * `count` operations on `store`, drawn from `seed`: puts (small and large
 * bodies, three variants, tags), deletes, prefix and tag purges, lookups, on a
 * few keys so that both processes work on the same ones.
 */
export function randomOps(store: DiskStore, seed: number, count: number): void {
  let x = seed >>> 0 || 1
  const next = (n: number) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
  for (let i = 0; i < count; i++) {
    const key = `http://r/${next(3)}/${next(4)}`
    const op = next(10)
    if (op < 6) {
      const variant = ['', 'gzip', 'br'][next(3)]!
      const body = Buffer.alloc(next(2) ? 100 * 1024 : 100 + next(1000), next(256))
      store.put({ key, variant, vary: variant ? 'accept-encoding' : undefined, status: 200, headers: { 'x-op': String(i) }, body, requestTime: 1, responseTime: 2, tags: [`t${next(3)}`] })
    } else if (op === 6) store.delete(key)
    else if (op === 7) store.deletePrefix(`http://r/${next(3)}/`)
    else if (op === 8) store.deleteTag(`t${next(3)}`)
    else store.variants(key)
  }
}

/** The commands: each returns what goes back as `result`. */
function commands(store: DiskStore, errors: string[]) {
  return {
    put: (w: WireEntry) => store.put(fromWire(w)),
    /** Puts each entry of `list` in turn, `rounds` times (for concurrent writers). */
    putRounds: (list: WireEntry[], rounds: number) => {
      for (let i = 0; i < rounds; i++) for (const w of list) store.put(fromWire(w))
    },
    randomOps: (seed: number, count: number) => randomOps(store, seed, count),
    variants: (key: string) => store.variants(key).map(toWire),
    delete: (key: string) => store.delete(key),
    deletePrefix: (prefix: string) => store.deletePrefix(prefix),
    deleteTag: (tag: string) => store.deleteTag(tag),
    size: () => store.size,
    errors: () => errors,
  }
}

export type PeerCommands = ReturnType<typeof commands>

export interface Peer {
  readonly pid: number
  call<K extends keyof PeerCommands>(op: K, ...args: Parameters<PeerCommands[K]>): Promise<ReturnType<PeerCommands[K]>>
  stop(): Promise<void>
}

/** Starts a peer process on `dir`; resolves once its store is open. */
export async function peer(dir: string, maxBytes: number): Promise<Peer> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), dir, String(maxBytes)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let next = 0
  let exited: Error | undefined
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { id: number; result?: unknown; error?: string }
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.error !== undefined) w?.reject(new Error(`peer: ${m.error}`))
    else w?.resolve(m.result)
  })
  child.once('exit', (code, signal) => {
    exited = new Error(`the peer process exited (${code ?? signal})`)
    for (const w of waiting.values()) w.reject(exited)
    waiting.clear()
  })
  const call = (op: string, ...args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      if (exited) return reject(exited)
      const id = next++
      const timer = setTimeout(() => {
        waiting.delete(id)
        reject(new Error(`peer: no answer to ${op} in 30 s`))
      }, 30_000)
      waiting.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      })
      child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`)
    })
  await call('size')
  return {
    pid: child.pid!,
    call: call as Peer['call'],
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.stdin!.end()
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref()
      }),
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, maxBytes] = process.argv.slice(2)
  const errors: string[] = []
  const store = new DiskStore(dir!, Number(maxBytes), { onError: (err) => errors.push(String(err)) })
  const ops = commands(store, errors) as Record<string, (...args: unknown[]) => unknown>
  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: unknown[] }
    let reply: { id: number; result?: unknown; error?: string }
    try {
      reply = { id, result: ops[op]!(...args) ?? null }
    } catch (err) {
      reply = { id, error: (err as Error).message }
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`)
  })
  rl.on('close', () => process.exit(0))
}

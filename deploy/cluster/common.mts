/**
 * The loopback cluster (docs/deploy.md, "A cluster on one machine"): every
 * node's address and port, from the environment so the same files serve a
 * test on free ports. Edges 127.0.0.11-13, parents 127.0.0.21-22, the
 * origin 127.0.0.30, the DNS (GSLB) 127.0.0.40, one Redis.
 */
export const PORT = Number(process.env.PORT ?? 8080)
export const DNS_PORT = Number(process.env.DNS_PORT ?? 5300)
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390'
/** The origin's files. */
export const WWW = process.env.WWW ?? './www'
/** Where the nodes keep their data folders (one each). */
export const DATA = process.env.DATA ?? './data'
export const EDGES = ['127.0.0.11', '127.0.0.12', '127.0.0.13']
export const PARENTS = ['127.0.0.21', '127.0.0.22']
export const ORIGIN = '127.0.0.30'
export const DNS = '127.0.0.40'
/** Which one of several nodes this process is (EDGE=1..3, PARENT=1..2). */
export function nth(name: string, count: number): number {
  const n = Number(process.env[name])
  if (!Number.isInteger(n) || n < 1 || n > count) throw new Error(`set ${name} to 1..${count} (which node this is)`)
  return n
}

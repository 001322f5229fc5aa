import { lookup } from 'node:dns/promises'
import { fstatSync } from 'node:fs'
import net from 'node:net'
import type { EdgeboxConfig } from '../config/schema.ts'
import { ConfigError } from '../core/errors.ts'

/**
 * Socket activation (docs/deploy.md, man sd_listen_fds): systemd binds the
 * listening sockets of a socket unit and holds them across restarts of the
 * service; Edgebox serves its HTTP(S) listeners on them instead of binding.
 * While no process accepts (the old one has stopped accepting, the new one
 * is starting), connections wait in the socket's queue in the kernel: a
 * restart refuses none.
 *
 * Each inherited socket goes to the listener with its address (`listen`'s
 * host and port). Under socket activation the two lists must agree: a
 * socket no listener takes would queue connections nobody answers, and a
 * listener bound by Edgebox itself would refuse connections during every
 * restart; either stops the start with an error naming the address. The
 * admin listener, the RUM query API and DNS bind as always.
 *
 * With workers (src/server/cluster.ts) the primary holds the sockets and
 * passes them on to every worker it starts, at the same descriptor numbers
 * (`workerStdio`); each worker listens on its own copies. The primary never
 * opens them itself: a handle it opened would be closed (and the socket lost
 * to it) when its last worker let go.
 */

/** A listening socket passed by systemd: its descriptor and its name (FileDescriptorName=, "unknown" without one). */
export interface InheritedSocket {
  readonly fd: number
  readonly name: string
}

/** An inherited socket matched to a listener: the socket to listen on, with where it came from. */
export interface AdoptedSocket extends InheritedSocket {
  /** The descriptor opened in this process, for `server.listen(socket)` (a server takes a socket's handle). */
  readonly socket: net.Socket
  /** host:port, for messages. */
  readonly address: string
}

type ListenConfig = EdgeboxConfig['listen'][number]

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3
/** How the primary tells a worker which descriptors are the listening sockets (the sd variables name the primary's pid). */
const WORKER_FDS = 'EDGEBOX_LISTEN_FDS'

/**
 * The listening sockets this process inherited, as sd_listen_fds(3) reads
 * them: `LISTEN_FDS` descriptors from 3 on, only when `LISTEN_PID` is this
 * process (the variables of another process's activation are ignored),
 * named by `LISTEN_FDNAMES` (colon-separated). In a worker: the ones its
 * primary passed. The variables are removed from `env` in every case, so no
 * child process takes them for its own. Empty: no socket activation.
 * Throws an Error naming the problem for malformed variables, or a
 * descriptor that is not an open socket.
 */
export function inheritedSockets(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): InheritedSocket[] {
  const fromPrimary = env[WORKER_FDS]
  const listenPid = env.LISTEN_PID
  const count = env.LISTEN_FDS
  const names = env.LISTEN_FDNAMES
  delete env[WORKER_FDS]
  delete env.LISTEN_PID
  delete env.LISTEN_FDS
  delete env.LISTEN_FDNAMES
  if (fromPrimary !== undefined) return checked(fromWorkerVariable(fromPrimary))
  if (listenPid === undefined || count === undefined) return []
  if (!/^[1-9][0-9]*$/.test(listenPid)) throw new Error(`socket activation: LISTEN_PID=${JSON.stringify(listenPid)} is not a process id`)
  if (Number(listenPid) !== pid) return []
  if (!/^[0-9]+$/.test(count)) throw new Error(`socket activation: LISTEN_FDS=${JSON.stringify(count)} is not a number of descriptors`)
  const n = Number(count)
  const named = names === undefined ? null : names.split(':')
  if (named && named.length !== n) throw new Error(`socket activation: LISTEN_FDNAMES names ${named.length} socket${named.length === 1 ? '' : 's'} and LISTEN_FDS says ${n}`)
  return checked(Array.from({ length: n }, (_, i) => ({ fd: FIRST_FD + i, name: named?.[i] || 'unknown' })))
}

function fromWorkerVariable(text: string): InheritedSocket[] {
  const list: unknown = JSON.parse(text)
  if (!Array.isArray(list) || !list.every((s) => Number.isInteger(s?.fd) && typeof s?.name === 'string')) throw new Error(`${WORKER_FDS} is not a list of descriptors`)
  return list as InheritedSocket[]
}

/** Each descriptor is an open socket (what else a descriptor is cannot be listened on). */
function checked(sockets: InheritedSocket[]): InheritedSocket[] {
  for (const s of sockets) {
    let isSocket: boolean
    try {
      isSocket = fstatSync(s.fd).isSocket()
    } catch (err) {
      throw new Error(`socket activation: descriptor ${s.fd} ("${s.name}") is not open (${(err as NodeJS.ErrnoException).code})`)
    }
    if (!isSocket) throw new Error(`socket activation: descriptor ${s.fd} ("${s.name}") is not a socket`)
  }
  return sockets
}

/**
 * What the cluster primary gives each worker it forks: the listening
 * sockets at their own descriptor numbers (the IPC channel after them), and
 * the variable that names them.
 */
export function workerStdio(sockets: readonly InheritedSocket[]): { stdio: Array<'inherit' | 'ignore' | 'ipc' | number>; env: Record<string, string> } {
  const stdio: Array<'inherit' | 'ignore' | 'ipc' | number> = ['inherit', 'inherit', 'inherit']
  for (const s of sockets) {
    while (stdio.length < s.fd) stdio.push('ignore')
    stdio[s.fd] = s.fd
  }
  stdio.push('ipc')
  return { stdio, env: { [WORKER_FDS]: JSON.stringify(sockets) } }
}

/**
 * Opens the inherited sockets and gives each listener the one whose address
 * is the listener's: the same port, and an address its host names (an IP
 * address as written, a name as the resolver gives it). Returns one socket
 * per listener, in `listen`'s order. Throws a ConfigError listing every
 * socket without a listener and every listener without a socket; the
 * sockets opened are closed again (in this process only: systemd keeps its
 * own).
 */
export async function adoptSockets(sockets: readonly InheritedSocket[], listen: readonly ListenConfig[]): Promise<AdoptedSocket[]> {
  const problems: string[] = []
  const open: Array<{ inherited: InheritedSocket; socket: net.Socket; ip: string; port: number; address: string }> = []
  for (const s of sockets) {
    let socket: net.Socket
    try {
      // Not read from or written to: a listening socket, whose handle the listener's server takes.
      socket = new net.Socket({ fd: s.fd, readable: false, writable: false })
    } catch (err) {
      problems.push(`socket activation: descriptor ${s.fd} ("${s.name}") is not a TCP socket (${(err as Error).message}); Edgebox takes only its HTTP listeners from systemd (ListenStream=)`)
      continue
    }
    const at = socket.address()
    if (!('port' in at) || typeof at.port !== 'number') {
      socket.destroy()
      problems.push(`socket activation: descriptor ${s.fd} ("${s.name}") is not a TCP socket (a Unix socket?); Edgebox's listeners are TCP (ListenStream=[ADDRESS:]PORT)`)
      continue
    }
    open.push({ inherited: s, socket, ip: canonical(at.address), port: at.port, address: hostPort(at.address, at.port) })
  }
  const passed = open.map((o) => `${o.address} (fd ${o.inherited.fd})`).join(', ') || 'none'
  const taken = new Set<number>()
  const adopted: AdoptedSocket[] = []
  for (const [i, l] of listen.entries()) {
    const ips = await addressesOf(l.host)
    const match = open.findIndex((o, k) => !taken.has(k) && o.port === l.port && ips.has(o.ip))
    if (match === -1) {
      const samePort = open.find((o) => o.port === l.port)
      const hint = samePort
        ? `; systemd's socket on port ${l.port} is ${samePort.address}${samePort.ip === '::' ? ' (ListenStream=' + l.port + ' is every IPv6 and IPv4 address: give this listener host "::")' : ''}: the listener's host must be its address`
        : `; add ListenStream=${hostPort(l.host, l.port)} to the socket unit`
      problems.push(`listen[${i}]: ${hostPort(l.host, l.port)} has no socket from systemd, which passed ${passed}${hint}`)
      continue
    }
    taken.add(match)
    const o = open[match]!
    adopted.push({ ...o.inherited, socket: o.socket, address: o.address })
  }
  for (const [k, o] of open.entries()) {
    if (!taken.has(k)) problems.push(`socket activation: systemd passed ${o.address} (fd ${o.inherited.fd}, "${o.inherited.name}") and no listener has that address: add { host: "${o.ip}", port: ${o.port} } to listen, or remove it from the socket unit`)
  }
  if (problems.length) {
    for (const o of open) o.socket.destroy()
    throw new ConfigError(problems)
  }
  return adopted
}

/** The addresses a listener's host stands for: itself when it is an IP address, else what the resolver gives (as `listen(port, host)` would look it up). */
async function addressesOf(host: string): Promise<Set<string>> {
  if (net.isIP(host)) return new Set([canonical(host)])
  try {
    return new Set((await lookup(host, { all: true })).map((a) => canonical(a.address)))
  } catch {
    return new Set()
  }
}

/** One spelling per address (`0:0::1` and `::1` are one). */
function canonical(ip: string): string {
  const family = net.isIP(ip)
  return family === 0 ? ip : new net.SocketAddress({ address: ip, family: family === 6 ? 'ipv6' : 'ipv4' }).address
}

function hostPort(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`
}

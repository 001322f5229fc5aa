import { BlockList, isIP } from 'node:net'

/**
 * IP addresses and CIDR ranges, as configuration names them and as
 * forwarding fields carry them. Pure: strings in, values out.
 */

/** `::ffff:192.0.2.1` -> `192.0.2.1`: an IPv4 client on a dual-stack socket is that IPv4 client. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/**
 * Why a configured address or CIDR (`10.0.0.0/8`, `192.0.2.7`, `::1`,
 * `fd00::/8`) is not one, or null when it is.
 */
export function cidrProblem(value: string): string | null {
  const slash = value.indexOf('/')
  const addr = slash === -1 ? value : value.slice(0, slash)
  const family = isIP(addr)
  if (family === 0 || addr.includes('%')) return `${value} is not an address or CIDR like 10.0.0.0/8 or fd00::/8`
  if (slash === -1) return null
  const bits = value.slice(slash + 1)
  const max = family === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `${value} is not an address or CIDR: the prefix length of an IPv${family} range is 0-${max}`
  return null
}

/** A set of addresses and ranges to test addresses against (entries already validated by cidrProblem). */
export function addressSet(entries: readonly string[]): (address: string) => boolean {
  if (entries.length === 0) return () => false
  const list = new BlockList()
  for (const entry of entries) {
    const problem = cidrProblem(entry)
    if (problem) throw new Error(problem)
    const [addr, bits] = entry.split('/') as [string, string | undefined]
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (bits === undefined) list.addAddress(addr, type)
    else list.addSubnet(addr, Number(bits), type)
  }
  // the same few addresses (a proxy's, a load balancer's) are asked about on every request: answers are
  // remembered, at most 1,024 of them (forgotten all at once when full), instead of a BlockList lookup each
  const known = new Map<string, boolean>()
  return (address) => {
    if (!address) return false
    const seen = known.get(address)
    if (seen !== undefined) return seen
    const a = unmapped(address)
    const family = isIP(a)
    const answer = family !== 0 && list.check(a, family === 6 ? 'ipv6' : 'ipv4')
    if (known.size >= 1024) known.clear()
    known.set(address, answer)
    return answer
  }
}

/**
 * One node of a forwarding chain: an `X-Forwarded-For` entry or a
 * `Forwarded: for=` value (RFC 7239 §6), with an optional port and IPv6
 * brackets: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:80`, `2001:db8::1`.
 * Returns the bare address, or null for anything else (`unknown`, an
 * obfuscated identifier, garbage).
 */
export function nodeAddress(node: string): string | null {
  let v = node.trim()
  if (v.includes('%')) return null // an IPv6 zone names an interface of the sender's, not an address
  if (v.charCodeAt(0) === 91 /* [ */) {
    const end = v.indexOf(']')
    if (end === -1) return null
    const rest = v.slice(end + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null
    v = v.slice(1, end)
    return isIP(v) === 6 ? unmapped(v.toLowerCase()) : null
  }
  if (isIP(v) === 6) return unmapped(v.toLowerCase())
  const colon = v.indexOf(':')
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(v.slice(colon + 1))) return null
    v = v.slice(0, colon)
  }
  return isIP(v) === 4 ? v : null
}

/** An address as an RFC 7239 node: IPv6 quoted and in brackets (§6). */
export function forwardedNode(address: string): string {
  return isIP(address) === 6 ? `"[${address}]"` : address
}

/** Whether an address is this machine's own (127.0.0.0/8, ::1, or IPv4 loopback on a dual-stack socket). */
export function isLoopback(address: string): boolean {
  const a = unmapped(address)
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'))
}

/**
 * Whether a URL's host names this machine: a loopback address (IPv6 in
 * brackets, as `URL.hostname` gives it), `localhost` or a name under
 * `.localhost` (RFC 6761 §6.3).
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  return isLoopback(h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h)
}

/**
 * The network a client address stands for when counting what one client
 * does: an IPv4 address itself, an IPv6 address's /64 (one subscriber gets a
 * whole /64, RFC 6177, so counting /128s would let one client be 2^64).
 */
export function clientNetwork(address: string): string {
  const a = unmapped(address)
  if (isIP(a) !== 6) return a
  const [head = '', tail = ''] = a.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = a.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':')}::/64`
}

/** RFC 5952 §4 text of eight groups: lower case, no leading zeros, the longest run of two or more zero groups (the first of equals) as `::`. */
export function ipv6Text(groups: readonly number[]): string {
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}

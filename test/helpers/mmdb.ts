/**
 * A minimal MaxMind DB writer (the format of GeoLite2 files: a binary search
 * tree over address bits, a data section, and a metadata map; MaxMind DB File
 * Format Specification 2.0), for tests: IPv4 networks mapped to
 * `{ country: { iso_code }, continent: { code } }`.
 */

function ctrl(type: number, size: number): Buffer {
  // types 1-7 in the top three bits; 8 and above are "extended" (type 0, then type - 7)
  const head = type <= 7 ? [(type << 5) | Math.min(size, 29)] : [Math.min(size, 29), type - 7]
  if (size >= 29) {
    if (type > 7) return Buffer.from([29, type - 7, size - 29])
    return Buffer.from([...head, size - 29])
  }
  return Buffer.from(head)
}

function encode(v: unknown): Buffer {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8')
    return Buffer.concat([ctrl(2, b.length), b])
  }
  if (typeof v === 'number') {
    // unsigned integers: uint16 (5) or uint32 (6), big-endian, minimal bytes
    const bytes: number[] = []
    for (let n = v; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256)
    return Buffer.concat([ctrl(v < 65536 ? 5 : 6, bytes.length), Buffer.from(bytes)])
  }
  if (typeof v === 'bigint') {
    const bytes: number[] = []
    for (let n = v; n > 0n; n /= 256n) bytes.unshift(Number(n % 256n))
    return Buffer.concat([ctrl(9, bytes.length), Buffer.from(bytes)]) // uint64
  }
  if (Array.isArray(v)) return Buffer.concat([ctrl(11, v.length), ...v.map(encode)])
  const entries = Object.entries(v as Record<string, unknown>)
  return Buffer.concat([ctrl(7, entries.length), ...entries.flatMap(([k, x]) => [encode(k), encode(x)])])
}

export interface GeoEntry {
  network: string
  country: string
  continent: string
}

/** An IPv4 database (record size 24) with these networks. */
export function writeMmdb(entries: readonly GeoEntry[]): Buffer {
  // the data section: one record per entry
  const data: Buffer[] = []
  const offsets: number[] = []
  let at = 0
  for (const e of entries) {
    const b = encode({ country: { iso_code: e.country }, continent: { code: e.continent } })
    offsets.push(at)
    data.push(b)
    at += b.length
  }
  // the tree: nodes of [left, right]; a record is a node index, 'empty', or a data entry
  type Rec = number | 'empty' | { data: number }
  const nodes: [Rec, Rec][] = [['empty', 'empty']]
  entries.forEach((e, i) => {
    const [addr, bits] = e.network.split('/') as [string, string]
    const n = addr.split('.').reduce((a, o) => a * 256 + Number(o), 0)
    const prefix = Number(bits)
    let node = 0
    for (let d = 0; d < prefix; d++) {
      const bit = Math.floor(n / 2 ** (31 - d)) % 2
      if (d === prefix - 1) {
        nodes[node]![bit] = { data: i }
        break
      }
      const next = nodes[node]![bit]
      if (typeof next === 'number') node = next
      else {
        nodes.push(['empty', 'empty'])
        nodes[node]![bit] = nodes.length - 1
        node = nodes.length - 1
      }
    }
  })
  const count = nodes.length
  const value = (r: Rec) => (r === 'empty' ? count : typeof r === 'number' ? r : count + 16 + offsets[r.data]!)
  const tree = Buffer.alloc(count * 6)
  nodes.forEach(([l, r], i) => {
    tree.writeUIntBE(value(l), i * 6, 3)
    tree.writeUIntBE(value(r), i * 6 + 3, 3)
  })
  const metadata = encode({
    node_count: count,
    record_size: 24,
    ip_version: 4,
    database_type: 'Edgebox-Test-Country',
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1796563000n,
    description: { en: 'networks for the DNS tests' },
  })
  return Buffer.concat([tree, Buffer.alloc(16), ...data, Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), metadata])
}

// The bare DNS server of the DNS benchmark: node:dgram and dns-packet, the records in a map, no checks beyond what
// dns-packet does. What a minimal Node authoritative server costs per query: Edgebox's DNS is measured against it.
//   node dns-bare.mjs PORT ZONEFILE.json   (JSON: { "name.": [{ type, ttl, data }], ... })
import dgram from 'node:dgram'
import { readFileSync } from 'node:fs'
import dnsPacket from 'dns-packet'

const [port, file] = process.argv.slice(2)
const records = new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8'))).map(([k, v]) => [k.toLowerCase(), v]))
const socket = dgram.createSocket('udp4')
socket.on('message', (msg, rinfo) => {
  let q
  try {
    q = dnsPacket.decode(msg)
  } catch {
    return
  }
  const question = q.questions?.[0]
  if (!question) return
  const found = records.get(question.name.toLowerCase())
  const answers = found ? found.filter((r) => r.type === question.type).map((r) => ({ name: question.name, type: r.type, ttl: r.ttl, data: r.data })) : []
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | (q.flags & dnsPacket.RECURSION_DESIRED) | (found ? 0 : 3)
  socket.send(dnsPacket.encode({ type: 'response', id: q.id, flags, questions: q.questions, answers }), rinfo.port, rinfo.address)
})
socket.bind(Number(port), '127.0.0.1', () => process.stdout.write(`dns-bare on 127.0.0.1:${port}\n`))
process.on('SIGTERM', () => process.exit(0))

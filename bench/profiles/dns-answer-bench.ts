import dnsPacket from 'dns-packet'
import { parseName } from '../../src/dns/names.ts'
import { parseZoneText } from '../../src/dns/zone-file.ts'
import { Zone } from '../../src/dns/zone.ts'
import { Responder } from '../../src/dns/responder.ts'
import { readFileSync } from 'node:fs'
const origin = parseName('bench.test.')
const z = new Zone(origin, parseZoneText(readFileSync('/work/main/bench/.peers/run/dns/edgebox.zone', 'latin1'), origin).entries, 3600)
const r = new Responder([z], { maxUdpSize: 1232 })
const qs = Array.from({ length: 1000 }, (_, i) => dnsPacket.encode({ type: 'query', id: i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `host${i}.bench.test`, type: 'A', class: 'IN' }] }))
const recs = new Map(Array.from({ length: 1000 }, (_, i) => [`host${i}.bench.test`, [{ type: 'A', ttl: 3600, data: `10.${i >> 8}.${i & 255}.1` }]]))
function bare(msg: Buffer) {
  const q = dnsPacket.decode(msg); const question = q.questions![0]!
  const found = recs.get(question.name.toLowerCase())
  return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, answers: found!.map((x) => ({ name: question.name, type: 'A', ttl: x.ttl, data: x.data })) } as any)
}
for (let round = 0; round < 3; round++) {
  let t = performance.now(); for (let i = 0; i < 300000; i++) r.answer(qs[i % 1000]!, 'udp', '127.0.0.1'); const e = (performance.now() - t) / 300
  t = performance.now(); for (let i = 0; i < 300000; i++) bare(qs[i % 1000]!); const b = (performance.now() - t) / 300
  console.log(`edgebox ${(e * 1000).toFixed(0)} ns/query, bare ${(b * 1000).toFixed(0)} ns/query`)
}

// the resolver answering from its cache (forwarding to a fake that is never asked: every name is put in the cache first)
import { Resolver } from '../../src/dns/resolver.ts'
import { systemClock } from '../../src/core/clock.ts'
const resolver = new Resolver({ rootHints: [], authorityPort: 53, cacheSize: 32 << 20, timeout: 1000, qnameMinimisation: true, prefetch: false, serveStale: { enabled: true, maxStale: 1000 }, forward: [] }, systemClock)
for (const set of z.records()) (resolver as unknown as { storeSets(r: unknown, rank: number): void }).storeSets(set, 3)
const rr = new Responder([], { maxUdpSize: 1232, recursion: { resolver, allowed: () => true } })
for (let round = 0; round < 3; round++) {
  const t = performance.now()
  for (let i = 0; i < 300000; i++) rr.answer(qs[i % 1000]!, 'udp', '127.0.0.1')
  console.log(`resolver cache hit ${(((performance.now() - t) / 300) * 1000).toFixed(0)} ns/query`)
}

// In-process: the resolver answering from its cache, for --cpu-prof (node --cpu-prof bench/profiles/dns-resolver-hit-prof.ts)
import dnsPacket from 'dns-packet'
import { readFileSync } from 'node:fs'
import { parseName } from '../../src/dns/names.ts'
import { parseZoneText } from '../../src/dns/zone-file.ts'
import { Zone } from '../../src/dns/zone.ts'
import { Responder } from '../../src/dns/responder.ts'
import { Resolver } from '../../src/dns/resolver.ts'
import { systemClock } from '../../src/core/clock.ts'
const origin = parseName('bench.test.')
const z = new Zone(origin, parseZoneText(readFileSync(new URL('../.peers/run/dns/edgebox.zone', import.meta.url), 'latin1'), origin).entries, 3600)
const qs = Array.from({ length: 1000 }, (_, i) => dnsPacket.encode({ type: 'query', id: i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `host${i}.bench.test`, type: 'A', class: 'IN' }] }))
const resolver = new Resolver({ rootHints: [], authorityPort: 53, cacheSize: 32 << 20, timeout: 1000, qnameMinimisation: true, prefetch: true, serveStale: { enabled: true, maxStale: 86_400_000 }, forward: [{ host: '127.0.0.1', port: 9 }] }, systemClock)
for (const set of z.records()) (resolver as unknown as { storeSets(r: unknown, rank: number): void }).storeSets(set, 3)
const rr = new Responder([], { maxUdpSize: 1232, recursion: { resolver, allowed: () => true } })
for (let i = 0; i < 2_000_000; i++) rr.answer(qs[i % 1000]!, 'udp', '127.0.0.1')

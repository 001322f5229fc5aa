import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { BalancedName } from '../../src/dns/gslb.ts'
import { RegionMap } from '../../src/dns/regions.ts'
import { parseName } from '../../src/dns/names.ts'
import { TYPE } from '../../src/dns/message.ts'

test('GSLB logs each edge health change, and failing open once per outage', async () => {
  const lines: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb() } }))
  const regions = new RegionMap([{ name: 'default', networks: [], next: [] }])
  // nothing listens on port 9 of these addresses: both edges fail their first check
  const name = new BalancedName({ owner: parseName('www.edge.test.'), ttl: 30, answers: 2, edges: [{ name: 'a', addresses: ['127.0.0.7'], weight: 1, region: 'default' }, { name: 'b', addresses: ['127.0.0.8'], weight: 1, region: 'default' }], check: { kind: 'tcp', port: 9, interval: 60_000, timeout: 300, rise: 1, fall: 1 } }, regions, log)
  try {
    await name.firstRound
    const first = name.answer(TYPE.A, { address: '127.0.0.1' })
    const second = name.answer(TYPE.A, { address: '127.0.0.1' })
    assert.equal(first.records.length, 2)
    assert.equal(second.records.length, 2)
    assert.match(first.explain.at(-1)!, /every IPv4 edge is down: failing open with region default's 127\.0\.0\.7, 127\.0\.0\.8/)
    const msgs = lines.map((l) => `${l.level} ${l.msg} ${l.edge ?? ''}`)
    assert.deepEqual(msgs.filter((m) => m.includes('unhealthy')).sort(), ['40 dns: edge unhealthy a 127.0.0.7', '40 dns: edge unhealthy b 127.0.0.8'])
    assert.equal(msgs.filter((m) => m.includes('fail open')).length, 1, 'one warning per outage, not per answer')
    assert.deepEqual(name.status().map((s) => [s.edge, s.state]), [['a', 'down'], ['b', 'down']])
  } finally {
    await name.close()
  }
})

import { test } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { Resolver } from '../../src/dns/resolver.ts'
import { parseName } from '../../src/dns/names.ts'
import { RCODE, TYPE } from '../../src/dns/message.ts'
import { systemClock } from '../../src/core/clock.ts'

test('resolutions in progress are bounded: past maxInflight, SERVFAIL at once, and the same name joins the one running', async () => {
  // a forwarder that never answers: every resolution stays in progress until its timeout
  const silent = dgram.createSocket('udp4')
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r))
  const resolver = new Resolver({ rootHints: [], authorityPort: 53, cacheSize: 1 << 20, timeout: 300, qnameMinimisation: true, prefetch: false, serveStale: { enabled: false, maxStale: 0 }, forward: [{ host: '127.0.0.1', port: silent.address().port }], maxInflight: 2 }, systemClock)
  try {
    const a = resolver.resolve(parseName('a.example.'), TYPE.A)
    const again = resolver.resolve(parseName('a.example.'), TYPE.A)
    assert.equal(again, a, 'the same question joins the resolution in progress')
    const b = resolver.resolve(parseName('b.example.'), TYPE.A)
    const started = Date.now()
    const c = await resolver.resolve(parseName('c.example.'), TYPE.A)
    assert.equal(c.rcode, RCODE.SERVFAIL)
    assert.match(c.why ?? '', /more than 2 resolutions in progress/)
    assert.ok(Date.now() - started < 100, 'at once, not after a timeout')
    assert.equal((await a).rcode, RCODE.SERVFAIL)
    await b
    // once they are over, there is room again (it times out against the silent forwarder: SERVFAIL, but it was tried)
    const d = await resolver.resolve(parseName('d.example.'), TYPE.A)
    assert.match(d.why ?? '', /no forwarder answered/)
  } finally {
    silent.close()
  }
})

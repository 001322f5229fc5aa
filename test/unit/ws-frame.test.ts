import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as ws from 'ws'
import { textFrame } from '../../src/realtime/transports/websocket.ts'

/** The shared text frame must be byte for byte what ws itself would send (RFC 6455 §5.2). */
test('textFrame matches ws framing at every length boundary', () => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    const payload = Buffer.alloc(n, 0x61)
    const theirs = Buffer.concat((ws as unknown as { Sender: { frame(d: Buffer, o: object): Buffer[] } }).Sender.frame(payload, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }))
    assert.deepEqual(textFrame(payload), theirs, `length ${n}`)
  }
})

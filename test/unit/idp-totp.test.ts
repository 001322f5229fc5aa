import assert from 'node:assert/strict'
import { test } from 'node:test'
import { groupedSecret, newTotpSecret, totpCode, totpStep, totpUri } from '../../src/auth/idp/totp.ts'

/** TOTP as the provider checks it (RFC 6238): SHA-1, 6 digits, 30 s steps, one step either way. */

// RFC 6238 Appendix B: the SHA-1 key is the ASCII "12345678901234567890" (base32 below); its 8-digit values end in these 6 digits
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'

test('the test vectors of RFC 6238 Appendix B (the last 6 digits of each)', () => {
  const vectors: Array<[number, string]> = [
    [59, '287082'],
    [1111111109, '081804'],
    [1111111111, '050471'],
    [1234567890, '005924'],
    [2000000000, '279037'],
  ]
  for (const [t, code] of vectors) {
    assert.equal(totpCode(RFC_SECRET, t * 1000), code, `T=${t}`)
    assert.equal(totpStep(RFC_SECRET, code, t * 1000), Math.floor(t / 30))
  }
})

test('one step of drift either way is accepted, two are not', () => {
  const now = 1_700_000_000_000
  const step = Math.floor(now / 30_000)
  assert.equal(totpStep(RFC_SECRET, totpCode(RFC_SECRET, now - 30_000), now), step - 1)
  assert.equal(totpStep(RFC_SECRET, totpCode(RFC_SECRET, now + 30_000), now), step + 1)
  assert.equal(totpStep(RFC_SECRET, totpCode(RFC_SECRET, now - 60_000), now), null)
  assert.equal(totpStep(RFC_SECRET, totpCode(RFC_SECRET, now + 60_000), now), null)
})

test('anything but six digits, or an unreadable secret, is not a code', () => {
  const now = 1_700_000_000_000
  for (const bad of ['', '12345', '1234567', 'abcdef', ' 123456', '12 456']) assert.equal(totpStep(RFC_SECRET, bad, now), null, JSON.stringify(bad))
  assert.equal(totpStep('not base32 at all!', '123456', now), null)
})

test('new secrets: 160 bits in base32; the otpauth:// URI apps read', () => {
  const s = newTotpSecret()
  assert.match(s, /^[A-Z2-7]{32}$/)
  assert.notEqual(newTotpSecret(), s)
  assert.equal(totpUri('Edgebox ID', 'alice', s), `otpauth://totp/Edgebox%20ID:alice?issuer=Edgebox%20ID&secret=${s}&algorithm=SHA1&digits=6&period=30`)
  assert.equal(groupedSecret('ABCDEFGHIJ'), 'ABCD EFGH IJ')
})

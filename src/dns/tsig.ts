/**
 * TSIG (RFC 8945): shared-secret signatures on DNS messages, for zone
 * transfers and NOTIFY between Edgebox and its secondaries.
 *
 * A signed message ends with a TSIG record (the last of the additional
 * section): the key's name, the algorithm, the time signed, the allowed
 * clock difference (fudge), the MAC, the message's original ID, an error
 * code and other data. The MAC is an HMAC over (§4.3.3):
 *
 * - for a request: the message as it was before the TSIG record was added
 *   (its original ID, ARCOUNT without the TSIG), then the TSIG variables
 *   (key name and algorithm in canonical form, class ANY, TTL 0, time, fudge,
 *   error, other data);
 * - for a response: the request's MAC (with its length) first, then the same;
 * - for the second and later messages of a multi-message answer (a zone
 *   transfer over TCP): the previous message's MAC, the message, and only
 *   the time signed and fudge (§5.3.1).
 */

import { createHmac, timingSafeEqual } from 'node:crypto'
import { key, type Labels, lowerAscii } from './names.ts'

export const TSIG_TYPE = 250
const CLASS_ANY = 255

/** TSIG error codes (RFC 8945 §5.2, in the TSIG record; the header says NOTAUTH). */
export const TSIG_ERROR = { NOERROR: 0, BADSIG: 16, BADKEY: 17, BADTIME: 18, BADTRUNC: 22 } as const

const ALGORITHMS: Record<string, string> = {
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
}

export const TSIG_ALGORITHMS = Object.keys(ALGORITHMS)

export interface TsigKey {
  /** The key's name, as both sides configure it (`xfer-key`). */
  name: Labels
  /** `hmac-sha256` (the one every implementation has), `hmac-sha384`, `hmac-sha512`, `hmac-sha224`, `hmac-sha1`. */
  algorithm: string
  secret: Buffer
}

/** A TSIG record as read from a message. */
export interface TsigRecord {
  /** Offset of the TSIG record in the message: the MAC covers what comes before. */
  start: number
  name: Labels
  algorithm: Labels
  timeSigned: number
  fudge: number
  mac: Buffer
  originalId: number
  error: number
  other: Buffer
}

function wireName(labels: Labels): Buffer {
  const parts: Buffer[] = []
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(lowerAscii(l), 'latin1'))
  parts.push(Buffer.from([0]))
  return Buffer.concat(parts)
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6)
  b.writeUIntBE(n, 0, 6)
  return b
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/** The TSIG variables of §4.3.3 (all of them, or only the timers for a later message of an answer). */
function variables(k: TsigKey, time: number, fudge: number, error: number, other: Buffer, timersOnly: boolean): Buffer {
  if (timersOnly) return Buffer.concat([u48(time), u16(fudge)])
  const algo = wireName(k.algorithm.split('.').filter(Boolean))
  return Buffer.concat([wireName(k.name), u16(CLASS_ANY), Buffer.alloc(4), algo, u48(time), u16(fudge), u16(error), u16(other.length), other])
}

function hmac(k: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac(ALGORITHMS[k.algorithm]!, k.secret)
  for (const p of parts) h.update(p)
  return h.digest()
}

/** The message with its ID set to `id` and ARCOUNT lowered by one (the message as it was before signing). */
function unsigned(msg: Buffer, end: number, id: number): Buffer {
  const b = Buffer.from(msg.subarray(0, end))
  b.writeUInt16BE(id, 0)
  b.writeUInt16BE(b.readUInt16BE(10) - 1, 10)
  return b
}

export type Verified = { ok: true; key: TsigKey } | { ok: false; error: number; key?: TsigKey; why: string }

/**
 * Checks a signed request's TSIG against the configured keys, at `now`
 * (seconds): the key known and of the same algorithm, the MAC right, the
 * time within the fudge.
 */
export function verifyRequest(msg: Buffer, t: TsigRecord, keys: ReadonlyMap<string, TsigKey>, now: number): Verified {
  const k = keys.get(key(t.name))
  const algo = key(t.algorithm)
  if (!k || k.algorithm !== algo) return { ok: false, error: TSIG_ERROR.BADKEY, why: `no key ${key(t.name)} with ${algo}` }
  const expected = hmac(k, [unsigned(msg, t.start, t.originalId), variables(k, t.timeSigned, t.fudge, t.error, t.other, false)])
  // RFC 8945 §5.2.2.1: a MAC shorter than half the hash (or 10 bytes) is refused; Edgebox asks for the whole MAC
  if (t.mac.length !== expected.length || !timingSafeEqual(t.mac, expected)) return { ok: false, error: TSIG_ERROR.BADSIG, key: k, why: 'the signature does not match' }
  if (Math.abs(now - t.timeSigned) > t.fudge) return { ok: false, error: TSIG_ERROR.BADTIME, key: k, why: `signed at ${t.timeSigned}, ${now - t.timeSigned} s from now (fudge ${t.fudge})` }
  return { ok: true, key: k }
}

/**
 * Signs a finished message (the bytes of its header and sections, ARCOUNT
 * not counting the TSIG yet): returns the message with the TSIG record
 * appended and ARCOUNT raised, and the MAC (for the next message of an
 * answer). `prior`: the request's MAC (a response) or the previous message's
 * (a later message of an answer, `timersOnly`).
 */
export function sign(msg: Buffer, k: TsigKey, now: number, opts: { prior?: Buffer; timersOnly?: boolean; error?: number; other?: Buffer; fudge?: number } = {}): { message: Buffer; mac: Buffer } {
  const fudge = opts.fudge ?? 300
  const error = opts.error ?? 0
  const other = opts.other ?? Buffer.alloc(0)
  const prior = opts.prior ? [u16(opts.prior.length), opts.prior] : []
  const mac = hmac(k, [...prior, msg, variables(k, now, fudge, error, other, opts.timersOnly === true)])
  return { message: appendTsig(msg, k, now, fudge, mac, msg.readUInt16BE(0), error, other), mac }
}

/** An unsigned TSIG record carrying an error (BADKEY, BADSIG: RFC 8945 §5.3.2, the MAC is empty). */
export function appendError(msg: Buffer, name: Labels, algorithm: Labels, time: number, error: number): Buffer {
  const k: TsigKey = { name, algorithm: key(algorithm), secret: Buffer.alloc(0) }
  return appendTsig(msg, k, time, 300, Buffer.alloc(0), msg.readUInt16BE(0), error, Buffer.alloc(0))
}

function appendTsig(msg: Buffer, k: TsigKey, time: number, fudge: number, mac: Buffer, originalId: number, error: number, other: Buffer): Buffer {
  const algo = wireName(k.algorithm.split('.').filter(Boolean))
  const rdata = Buffer.concat([algo, u48(time), u16(fudge), u16(mac.length), mac, u16(originalId), u16(error), u16(other.length), other])
  const rr = Buffer.concat([wireName(k.name), u16(TSIG_TYPE), u16(CLASS_ANY), Buffer.alloc(4), u16(rdata.length), rdata])
  const out = Buffer.concat([msg, rr])
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10)
  return out
}

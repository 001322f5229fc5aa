import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import path from 'node:path'
import { ensurePrivateDir, readIfExists, writeNewPrivateFile } from '../core/data-dir.ts'

/**
 * The identity assertion a proxied request carries upstream
 * (`Edgebox-Jwt-Assertion`): a JWT (RFC 7519) signed by Edgebox with ES256
 * (RFC 7518 §3.4), which an upstream checks with the key Edgebox publishes at
 * `/_edgebox/auth/jwks.json` (RFC 7517). The key is made on first start and
 * kept in the data folder (`auth/assertion-key.json`, 0600), so assertions
 * stay checkable across restarts.
 *
 * Signing is synchronous (node:crypto on a prepared key object): a session
 * signs one assertion per audience and lifetime, never one per request.
 */

export interface AssertionSigner {
  /** The key's id (`kid`): the RFC 7638 thumbprint of the public key. */
  readonly kid: string
  /** The JSON Web Key Set of the public key, as served. */
  readonly jwks: string
  /** A compact JWS of `claims` with this key. */
  sign(claims: Record<string, unknown>): string
}

const KEY_FILE = 'auth/assertion-key.json'

/** Reads the data folder's assertion key, or makes and stores one (a key another process stored first wins). */
export async function loadAssertionSigner(dataDir: string): Promise<AssertionSigner> {
  const file = path.join(dataDir, KEY_FILE)
  let text = await readIfExists(file)
  if (text === undefined) {
    await ensurePrivateDir(path.dirname(file))
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await writeNewPrivateFile(file, JSON.stringify(privateKey.export({ format: 'jwk' })) + '\n')
    text = (await readIfExists(file))!
  }
  let key: KeyObject
  try {
    key = createPrivateKey({ key: JSON.parse(text) as JsonWebKey, format: 'jwk' })
  } catch (err) {
    throw new Error(`${file}: not a private key in JWK form (${(err as Error).message}); move it away to have a new one made`)
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error(`${file}: the assertion key must be an EC P-256 key`)
  return signerFor(key)
}

/** A signer over an EC P-256 private key. */
export function signerFor(key: KeyObject): AssertionSigner {
  const pub = createPublicKey(key).export({ format: 'jwk' }) as { crv: string; x: string; y: string }
  // RFC 7638 §3.2: the required members in lexicographic order, no whitespace
  const kid = sha256b64url(`{"crv":"${pub.crv}","kty":"EC","x":"${pub.x}","y":"${pub.y}"}`)
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }))
  const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: pub.crv, x: pub.x, y: pub.y, kid, use: 'sig', alg: 'ES256' }] })
  return {
    kid,
    jwks,
    sign(claims) {
      const input = `${header}.${b64url(JSON.stringify(claims))}`
      // RFC 7518 §3.4: the signature is R || S, 32 bytes each (not DER)
      const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      return `${input}.${signature.toString('base64url')}`
    },
  }
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url')
}

function sha256b64url(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

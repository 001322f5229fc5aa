import { Secret, TOTP } from 'otpauth'

/**
 * Time-based one-time passwords (RFC 6238) as every authenticator app reads
 * them: HMAC-SHA-1, 6 digits, 30-second steps (§4, §5.2's recommended
 * step), one step of clock drift either way accepted (§5.2, §6).
 */

const PARAMS = { algorithm: 'SHA1', digits: 6, period: 30 } as const
/** Steps accepted before and after the current one (RFC 6238 §5.2). */
const WINDOW = 1

/** A new secret: 20 random bytes (RFC 4226 §4 R6: at least 128 bits, 160 recommended), in base32 (RFC 4648 §6) as apps take it. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32
}

/**
 * The time step a code belongs to when it is right for `secret` at `now`
 * (ms since the epoch), within the window; null when it is not (or the
 * secret is unreadable). The caller refuses a step already used (§5.2).
 */
export function totpStep(secret: string, code: string, now: number): number | null {
  if (!/^[0-9]{6}$/.test(code)) return null
  let key: Secret
  try {
    key = Secret.fromBase32(secret)
  } catch {
    return null
  }
  const delta = TOTP.validate({ ...PARAMS, token: code, secret: key, timestamp: now, window: WINDOW })
  return delta === null ? null : TOTP.counter({ period: PARAMS.period, timestamp: now }) + delta
}

/** The code for `secret` at `now`: what an authenticator app shows (used by tests and the enrolment check). */
export function totpCode(secret: string, now: number): string {
  return TOTP.generate({ ...PARAMS, secret: Secret.fromBase32(secret), timestamp: now })
}

/** The `otpauth://totp/...` URI an authenticator app reads (Google Authenticator's Key URI Format): issuer, account, secret, parameters. */
export function totpUri(issuerName: string, username: string, secret: string): string {
  return new TOTP({ ...PARAMS, issuer: issuerName, label: username, secret: Secret.fromBase32(secret) }).toString()
}

/** A base32 secret in groups of four, easier to type by hand. */
export function groupedSecret(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ')
}

/**
 * What shows a configuration (`edgebox config --print`, logs) shows it
 * without its secrets: the value of every option that holds one (a secret,
 * token, password, publish key, a private key, an account key) becomes
 * "<redacted>", and userinfo in any URL (`https://user:pass@host/`) too. The
 * shape stays, so a user can still see that a secret is set and where.
 */

export const REDACTED = '<redacted>'

/** Option names whose values are secrets wherever they appear. */
const SECRET_NAMES = /^(secret|secrets|token|tokens|password|publishkey|hmackey|eabkey|privatekey|apikey|clientsecret)$/i

/** Within these objects, `key` is a private key (or its file) rather than, say, a rate limit's key. */
const KEY_HOLDERS = new Set(['certificates', 'eab', 'acme', 'keys'])

export function redactSecrets<T>(value: T): T {
  return walk(value, '') as T
}

function walk(value: unknown, parent: string): unknown {
  if (typeof value === 'string') return withoutUserinfo(value)
  if (Array.isArray(value)) return value.map((v) => walk(v, parent))
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    const secret = SECRET_NAMES.test(k) || ((k === 'key' || k === 'kid') && KEY_HOLDERS.has(parent))
    out[k] = secret && v !== undefined && v !== null && v !== false ? REDACTED : walk(v, k)
  }
  return out
}

/** `scheme://user:pass@host/...` -> `scheme://<redacted>@host/...`. */
function withoutUserinfo(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, `$1${REDACTED}@`)
}

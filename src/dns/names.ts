/**
 * Domain names as Edgebox's DNS code holds them: an array of labels, each a
 * string of the label's bytes (latin1, one character per byte), from the
 * leftmost label to the one under the root; the root is `[]`.
 *
 * Names compare without regard to ASCII letter case, and only ASCII
 * (RFC 4343 §3): `key()` is the one comparable form, the presentation format
 * (RFC 1035 §5.1) in lower case without the trailing dot, with a dot or a
 * backslash inside a label escaped, so that two different names never have
 * the same key.
 */

export type Labels = readonly string[]

/** Longest label (RFC 1035 §2.3.4). */
export const MAX_LABEL = 63
/** Longest name in wire form, length octets and the root's zero included (RFC 1035 §2.3.4). */
export const MAX_NAME = 255

const UPPER = /[A-Z]/

/** ASCII letters to lower case; every other byte as it is (RFC 4343 §3). */
export function lowerAscii(s: string): string {
  return UPPER.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s
}

const SPECIAL = /[.\\\x00-\x20\x7f-\xff"();@$]/

function escapeLabel(label: string): string {
  if (!SPECIAL.test(label)) return label
  let out = ''
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i)
    const ch = label[i]!
    if (c <= 0x20 || c >= 0x7f) out += '\\' + String(c).padStart(3, '0')
    else if (ch === '.' || ch === '\\' || ch === '"' || ch === '(' || ch === ')' || ch === ';' || ch === '@' || ch === '$') out += '\\' + ch
    else out += ch
  }
  return out
}

/** The comparable key of a name: lower case, escaped, no trailing dot; `''` for the root. */
export function key(labels: Labels): string {
  let out = ''
  for (let i = 0; i < labels.length; i++) {
    if (i > 0) out += '.'
    out += escapeLabel(lowerAscii(labels[i]!))
  }
  return out
}

/** The name in presentation format, letter case kept, with the trailing dot (`www.example.test.`, `.` for the root). */
export function toText(labels: Labels): string {
  if (labels.length === 0) return '.'
  let out = ''
  for (const l of labels) out += escapeLabel(l) + '.'
  return out
}

/** Bytes of the name in wire form (length octets and the final zero). */
export function wireLength(labels: Labels): number {
  let n = 1
  for (const l of labels) n += l.length + 1
  return n
}

/** Whether `name` is `zone` or below it (both as keys). */
export function isWithin(nameKey: string, zoneKey: string): boolean {
  if (zoneKey === '') return true
  if (nameKey === zoneKey) return true
  return nameKey.length > zoneKey.length && nameKey.endsWith(zoneKey) && nameKey[nameKey.length - zoneKey.length - 1] === '.' && !escapedAt(nameKey, nameKey.length - zoneKey.length - 1)
}

/** Whether the character at `i` is escaped (preceded by an odd number of backslashes). */
function escapedAt(s: string, i: number): boolean {
  let n = 0
  for (let j = i - 1; j >= 0 && s[j] === '\\'; j--) n++
  return n % 2 === 1
}

export class NameError extends Error {}

/**
 * A name in presentation format (RFC 1035 §5.1) to labels: `\.` and `\DDD`
 * escapes; `@` is the origin; a name without a trailing dot is relative to
 * `origin` (and an error without one). Throws NameError naming the problem.
 */
export function parseName(text: string, origin?: Labels): Labels {
  if (text === '@') {
    if (!origin) throw new NameError('"@" needs an origin')
    return origin
  }
  if (text === '.') return []
  if (text === '') throw new NameError('empty name')
  const labels: string[] = []
  let label = ''
  let absolute = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (ch === '\\') {
      const next = text[i + 1]
      if (next === undefined) throw new NameError(`"${text}": a backslash at the end`)
      if (/[0-9]/.test(next)) {
        const digits = text.slice(i + 1, i + 4)
        if (!/^[0-9]{3}$/.test(digits) || Number(digits) > 255) throw new NameError(`"${text}": \\DDD needs three digits up to 255`)
        label += String.fromCharCode(Number(digits))
        i += 3
      } else {
        label += next
        i += 1
      }
    } else if (ch === '.') {
      if (label === '') throw new NameError(`"${text}": an empty label`)
      labels.push(label)
      label = ''
      if (i === text.length - 1) absolute = true
    } else {
      const c = ch.charCodeAt(0)
      if (c > 0xff) throw new NameError(`"${text}": a character outside ASCII (write internationalised names in their xn-- form, RFC 5891)`)
      label += ch
    }
  }
  if (!absolute) {
    if (label === '') throw new NameError(`"${text}": an empty label`)
    labels.push(label)
  }
  for (const l of labels) if (l.length > MAX_LABEL) throw new NameError(`"${text}": a label longer than ${MAX_LABEL} bytes`)
  const full = absolute ? labels : origin ? [...labels, ...origin] : null
  if (!full) throw new NameError(`"${text}" is relative and there is no origin to complete it`)
  if (wireLength(full) > MAX_NAME) throw new NameError(`"${text}": longer than ${MAX_NAME} bytes`)
  return full
}

/**
 * The keys of every suffix of a name: `[key(labels), key(labels.slice(1)), ..., '']`,
 * the last being the root. What a lookup walks, from the name up to the root.
 */
export function suffixKeys(labels: Labels): string[] {
  const out = new Array<string>(labels.length + 1)
  out[labels.length] = ''
  for (let i = labels.length - 1; i >= 0; i--) {
    const l = escapeLabel(lowerAscii(labels[i]!))
    out[i] = i === labels.length - 1 ? l : l + '.' + out[i + 1]
  }
  return out
}

/** A name written without or with its final dot (`www.example.com`, `www.example.com.`): always absolute, never relative to an origin. */
export function parseAbsolute(text: string): Labels {
  return parseName(text === '.' || text.endsWith('.') ? text : text + '.')
}

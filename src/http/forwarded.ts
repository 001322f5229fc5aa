import { isToken } from './token.ts'

/**
 * The `Forwarded` field (RFC 7239 §4): a list of elements, one per proxy
 * hop, each a `;`-separated list of `name=value` pairs whose values are
 * tokens or quoted strings. Pure.
 */

export interface ForwardedElement {
  /** Parameter names in lower case (`for`, `by`, `proto`, `host`), values unquoted. */
  readonly [name: string]: string | undefined
}

/**
 * Parses one or more `Forwarded` field values (joined by commas) into
 * elements, oldest hop first. A malformed element is returned as null, so
 * that a reader walking the chain knows where its knowledge stops.
 */
export function parseForwarded(value: string): Array<ForwardedElement | null> {
  const out: Array<ForwardedElement | null> = []
  let element: Record<string, string> | null = {}
  let i = 0
  const n = value.length
  const skipSpace = () => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++
  }
  for (;;) {
    skipSpace()
    // one pair (or an empty one between separators)
    if (i < n && value[i] !== ';' && value[i] !== ',') {
      const eq = value.indexOf('=', i)
      const name = eq === -1 ? '' : value.slice(i, eq).trim().toLowerCase()
      if (eq === -1 || !isToken(name)) {
        element = null
        i = nextSeparator(value, i)
      } else {
        i = eq + 1
        let v: string | null
        if (value[i] === '"') {
          // quoted-string with quoted-pairs (RFC 9110 §5.6.4)
          let s = ''
          let closed = false
          for (i++; i < n; i++) {
            const c = value[i]!
            if (c === '\\' && i + 1 < n) s += value[++i]
            else if (c === '"') {
              closed = true
              i++
              break
            } else s += c
          }
          v = closed ? s : null
        } else {
          const end = nextSeparator(value, i)
          const t = value.slice(i, end).trim()
          v = isToken(t) ? t : null
          i = end
        }
        if (v === null || (element && name in element)) element = null
        else if (element) element[name] = v
        skipSpace()
        if (i < n && value[i] !== ';' && value[i] !== ',') {
          element = null
          i = nextSeparator(value, i)
        }
      }
    }
    if (i >= n) {
      out.push(element)
      return out
    }
    if (value[i] === ',') {
      out.push(element)
      element = {}
    }
    i++
  }
}

function nextSeparator(value: string, from: number): number {
  for (let i = from; i < value.length; i++) if (value[i] === ';' || value[i] === ',') return i
  return value.length
}

/** A value as a token when it is one, else a quoted string (RFC 7239 §4). */
export function forwardedValue(v: string): string {
  return isToken(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`
}

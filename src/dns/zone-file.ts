/**
 * RFC 1035 master files (§5.1): `$ORIGIN`, `$TTL` (RFC 2308 §4), relative
 * names, `@`, a blank owner meaning the previous one, parentheses across
 * lines, comments, quoted strings and escapes, TTL and class in either order,
 * and BIND's time units (`1h`, `2d`). `$INCLUDE` is refused: a zone is one
 * file, so what it serves is what the file says.
 *
 * The result is a list of entries with their line numbers; errors are
 * collected, not thrown one at a time, so `edgebox dns check` can list every
 * problem of a file at once, as `named-checkzone` does.
 */

import { type Labels, NameError, parseName } from './names.ts'
import { CLASS, typeNumber } from './message.ts'
import { parseRdata, RdataError, type Token, ttlValue } from './rdata.ts'
import type { RdataPart } from './message.ts'

export interface ZoneEntry {
  owner: Labels
  type: number
  class: number
  /** Undefined when the entry gave none and no `$TTL` was in force (the zone's default applies). */
  ttl: number | undefined
  rdata: RdataPart[]
  /** The data as written, for messages. */
  text: string
  line: number
}

export interface ParsedZone {
  entries: ZoneEntry[]
  /** `line N: problem` for each problem. */
  errors: string[]
}

interface Line {
  tokens: Token[]
  /** Whether the line started with white space (no owner given). */
  blankOwner: boolean
  line: number
}

/** Splits the text into logical lines (parentheses joined), each a list of tokens. */
export function tokenize(text: string): { lines: Line[]; errors: string[] } {
  const lines: Line[] = []
  const errors: string[] = []
  let tokens: Token[] = []
  let depth = 0
  let lineNo = 1
  let startLine = 1
  let blankOwner = false
  let atLineStart = true
  let i = 0
  const flush = () => {
    if (tokens.length) lines.push({ tokens, blankOwner, line: startLine })
    tokens = []
  }
  while (i < text.length) {
    const ch = text[i]!
    if (ch === '\n') {
      lineNo++
      i++
      if (depth === 0) {
        flush()
        atLineStart = true
      }
      continue
    }
    if (atLineStart && depth === 0) {
      startLine = lineNo
      blankOwner = ch === ' ' || ch === '\t'
      atLineStart = false
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++
      continue
    }
    if (ch === ';') {
      while (i < text.length && text[i] !== '\n') i++
      continue
    }
    if (ch === '(') {
      depth++
      i++
      continue
    }
    if (ch === ')') {
      if (depth === 0) errors.push(`line ${lineNo}: ")" without "("`)
      else depth--
      i++
      continue
    }
    if (ch === '"') {
      let s = ''
      i++
      let closed = false
      while (i < text.length) {
        const c = text[i]!
        if (c === '\\' && i + 1 < text.length) {
          s += c + text[i + 1]
          i += 2
          continue
        }
        if (c === '"') {
          closed = true
          i++
          break
        }
        if (c === '\n') lineNo++
        s += c
        i++
      }
      if (!closed) errors.push(`line ${lineNo}: a quoted string is not closed`)
      tokens.push({ text: s, quoted: true })
      continue
    }
    let s = ''
    while (i < text.length) {
      const c = text[i]!
      if (c === '\\' && i + 1 < text.length) {
        s += c + text[i + 1]
        i += 2
        continue
      }
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === ';' || c === '(' || c === ')' || c === '"') break
      s += c
      i++
    }
    tokens.push({ text: s, quoted: false })
  }
  if (depth > 0) errors.push(`line ${startLine}: "(" is not closed`)
  flush()
  return { lines, errors }
}

const CLASSES: Record<string, number> = { IN: CLASS.IN, CH: CLASS.CH }

/**
 * Reads a zone file's text. `origin` is the zone's name (the initial
 * `$ORIGIN`); `defaultTtl` applies to entries with no TTL when the file has
 * no `$TTL` before them.
 */
export function parseZoneText(text: string, origin: Labels): ParsedZone {
  const { lines, errors } = tokenize(text)
  const entries: ZoneEntry[] = []
  let currentOrigin = origin
  let ttl: number | undefined
  let lastTtl: number | undefined
  let lastOwner: Labels | undefined
  for (const ln of lines) {
    const t = ln.tokens
    const first = t[0]!
    try {
      if (!first.quoted && first.text.startsWith('$') && !ln.blankOwner) {
        const dir = first.text.toUpperCase()
        if (dir === '$ORIGIN') {
          if (t.length !== 2) throw new RdataError('$ORIGIN takes one name')
          currentOrigin = parseName(t[1]!.text, currentOrigin)
        } else if (dir === '$TTL') {
          const v = t.length === 2 ? ttlValue(t[1]!.text) : undefined
          if (v === undefined) throw new RdataError('$TTL takes one time (seconds, or 1h, 2d, 1w)')
          ttl = v
        } else if (dir === '$INCLUDE') {
          throw new RdataError('$INCLUDE is not supported: keep a zone in one file')
        } else throw new RdataError(`unknown directive ${first.text}`)
        continue
      }
      let at = 0
      let owner: Labels
      if (ln.blankOwner) {
        if (!lastOwner) throw new RdataError('the first record needs an owner name')
        owner = lastOwner
      } else {
        owner = parseName(t[0]!.text, currentOrigin)
        at = 1
      }
      let entryTtl: number | undefined
      let klass: number | undefined
      // [TTL] [class] type, or [class] [TTL] type
      for (let k = 0; k < 2 && at < t.length; k++) {
        const tok = t[at]!
        if (tok.quoted) break
        const up = tok.text.toUpperCase()
        if (klass === undefined && CLASSES[up] !== undefined) {
          klass = CLASSES[up]
          at++
        } else if (entryTtl === undefined && /^[0-9]/.test(tok.text)) {
          const v = ttlValue(tok.text)
          if (v === undefined) throw new RdataError(`"${tok.text}" is not a TTL`)
          entryTtl = v
          at++
        }
      }
      const typeTok = t[at]
      if (!typeTok) throw new RdataError('a record type is missing')
      const type = typeTok.quoted ? undefined : typeNumber(typeTok.text)
      if (type === undefined) throw new RdataError(`unknown record type "${typeTok.text}"`)
      if (klass !== undefined && klass !== CLASS.IN) throw new RdataError('only class IN is served')
      const data = t.slice(at + 1)
      const rdata = parseRdata(type, data, currentOrigin)
      const effective = entryTtl ?? ttl ?? lastTtl
      entries.push({ owner, type, class: CLASS.IN, ttl: effective, rdata, text: data.map((d) => (d.quoted ? `"${d.text}"` : d.text)).join(' '), line: ln.line })
      if (entryTtl !== undefined) lastTtl = entryTtl
      lastOwner = owner
    } catch (err) {
      if (err instanceof RdataError || err instanceof NameError) errors.push(`line ${ln.line}: ${err.message}`)
      else throw err
    }
  }
  return { entries, errors }
}

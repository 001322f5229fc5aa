// Path globs for configuration, compiled once to a RegExp. Pure functions.
// (Line comments here, because glob examples would end a block comment.)
//
// Syntax:
//   *        any characters within one segment (not `/`)
//   **       any characters across segments; `/**/` also matches a single `/`,
//            so `/a/**/b` matches `/a/b`, `/a/x/b` and `/a/x/y/b`
//   ?        one character, not `/`
//   {a,b}    alternatives, which may contain globs and nest
//   [abc]    one character from a class: ranges `[a-z]`, negation `[!a]` or `[^a]`;
//            never matches `/`
//   \x       the character x literally
// An unclosed `[` or `{` is literal. Matching is case-sensitive. A class with a
// reversed range (`[z-a]`) throws a SyntaxError when compiled.
//
// Anchoring, like .gitignore:
// - a pattern without `/` matches the last segment of the path (`*.css`
//   matches `/a/b/site.css`);
// - a pattern with a `/` matches the whole path, and a leading `/` is implied:
//   `assets/*.css` is `/assets/*.css`, and `**/x` matches x at any depth.

export function compileGlob(pattern: string): (path: string) => boolean {
  let body: string
  if (!pattern.includes('/')) body = `(?:.*/)?${translate(pattern)}`
  else body = translate(pattern.startsWith('/') ? pattern : `/${pattern}`)
  const re = new RegExp(`^${body}$`, 'su')
  return (path) => re.test(path)
}

const SPECIAL = /[\\^$.*+?()[\]{}|/]/

function escape(c: string): string {
  return SPECIAL.test(c) ? `\\${c}` : c
}

/**
 * Translates a glob (or one alternative inside braces) to RegExp source.
 * `afterSlash` tells whether the text before it ends with `/`.
 */
function translate(glob: string, afterSlash = false): string {
  let out = ''
  const chars = Array.from(glob) // code points, to match the 'u' flag
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!
    if (c === '\\' && i + 1 < chars.length) {
      out += escape(chars[++i]!)
    } else if (c === '*') {
      if (chars[i + 1] !== '*') {
        out += '[^/]*'
        continue
      }
      i++
      // `/**/` also matches a single `/`; so does a leading `**/`.
      const slashBefore = out === '' ? afterSlash : endsWithSlash(out)
      if (chars[i + 1] === '/' && slashBefore) {
        i++
        out += '(?:.*/)?'
      } else {
        out += '.*'
      }
    } else if (c === '?') {
      out += '[^/]'
    } else if (c === '[') {
      const cls = parseClass(chars, i)
      if (cls) {
        out += cls.source
        i = cls.end
      } else {
        out += '\\['
      }
    } else if (c === '{') {
      const alt = parseBraces(chars, i)
      if (alt) {
        const slashBefore = out === '' ? afterSlash : endsWithSlash(out)
        out += `(?:${alt.options.map((o) => translate(o, slashBefore)).join('|')})`
        i = alt.end
      } else {
        out += '\\{'
      }
    } else {
      out += escape(c)
    }
  }
  return out
}

/** `[...]` starting at `start`; null if unclosed or empty. */
function parseClass(chars: string[], start: number): { source: string; end: number } | null {
  let i = start + 1
  const negate = chars[i] === '!' || chars[i] === '^'
  if (negate) i++
  let body = ''
  const first = i
  for (; i < chars.length; i++) {
    const c = chars[i]!
    // A `]` right after the opening is a member, as in shell globs.
    if (c === ']' && i > first) {
      return { source: negate ? `[^/${body}]` : `(?!/)[${body}]`, end: i }
    }
    if (c === '\\' && i + 1 < chars.length) {
      body += classChar(chars[++i]!)
    } else if (c === '-' && i > first && chars[i + 1] !== ']' && i + 1 < chars.length) {
      body += '-' // a range
    } else {
      body += classChar(c)
    }
  }
  return null
}

/** Whether RegExp source produced by translate() always ends by matching a `/`. */
function endsWithSlash(source: string): boolean {
  return source.endsWith('\\/') || source.endsWith('(?:.*/)?')
}

function classChar(c: string): string {
  return /[\\\]\[^\-]/.test(c) ? `\\${c}` : c
}

/** `{a,b}` starting at `start`, split at top-level commas; null if unclosed. */
function parseBraces(chars: string[], start: number): { options: string[]; end: number } | null {
  const options: string[] = []
  let depth = 0
  let current = ''
  for (let i = start + 1; i < chars.length; i++) {
    const c = chars[i]!
    if (c === '\\' && i + 1 < chars.length) {
      current += c + chars[++i]
    } else if (c === '{') {
      depth++
      current += c
    } else if (c === '}' && depth > 0) {
      depth--
      current += c
    } else if (c === '}') {
      options.push(current)
      return { options, end: i }
    } else if (c === ',' && depth === 0) {
      options.push(current)
      current = ''
    } else {
      current += c
    }
  }
  return null
}

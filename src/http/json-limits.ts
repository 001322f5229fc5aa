/**
 * How deep a JSON text (RFC 8259) nests arrays and objects, found in one
 * pass over the text, before it is parsed. Pure functions.
 *
 * Why: `JSON.parse` takes any depth, but what is then done with the value
 * recurses (`JSON.stringify`, copying, walking it), and a client's
 * `[[[[...]]]]` 100,000 levels deep overflows the stack there ("Maximum call
 * stack size exceeded"). Counting the brackets first is cheap and refuses
 * such a text with a message that names the problem.
 */

/** The deepest nesting of arrays and objects Edgebox takes in JSON from clients (docs/realtime.md). */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d

/**
 * The deepest nesting of `[` and `{` in `text`, not counting those inside
 * strings. In a string a backslash escapes the character after it (RFC 8259
 * §7), so `"\"[["` is one string and `"\\"` ends where it seems to.
 * Counting stops as soon as the depth passes `stopAbove` (the result is
 * then `stopAbove + 1`). The text need not be valid JSON: a closer without
 * an opener does not lower the count below zero, and the parser judges the
 * rest.
 */
export function jsonNesting(text: string, stopAbove = Infinity): number {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > deepest) {
        deepest = depth
        if (deepest > stopAbove) return deepest
      }
    } else if ((c === CLOSE_ARRAY || c === CLOSE_OBJECT) && depth > 0) depth--
  }
  return deepest
}

/** `JSON nested deeper than <max> levels` when the text is, else undefined. */
export function jsonDepthProblem(text: string, max = MAX_JSON_DEPTH): string | undefined {
  return jsonNesting(text, max) > max ? `JSON nested deeper than ${max} levels` : undefined
}

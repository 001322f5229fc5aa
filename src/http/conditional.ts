/**
 * Conditional requests (RFC 9110 §13). Pure functions: the caller passes the
 * request's precondition fields and what it knows about the selected
 * representation, and decides what to send.
 *
 * Entity-tags are handled as their full field text: `"xyzzy"` (strong) or
 * `W/"xyzzy"` (weak), exactly as the server sends them in ETag.
 *
 * Not decided here (the handler's job):
 * - §13.2.1: preconditions are ignored when the response without them would
 *   be other than 2xx or 412 (e.g. 404, or a redirect).
 * - §13.1.5: a Last-Modified date may only be used with If-Range when it is a
 *   strong validator (§8.8.2.2).
 */

import { parseHttpDate } from './date.ts'

export type Precondition = 'ok' | 'not-modified' | 'failed'

export type ConditionalHeaders = {
  ifMatch?: string
  ifNoneMatch?: string
  ifModifiedSince?: string
  ifUnmodifiedSince?: string
}

export type Validators = {
  etag?: string
  /** Milliseconds since the epoch, whole seconds. */
  lastModified?: number
  exists: boolean
}

// §8.8.3: entity-tag = [ weak ] opaque-tag; weak = %s"W/"; opaque-tag = DQUOTE *etagc DQUOTE;
// etagc = %x21 / %x23-7E / obs-text. The weak prefix is case-sensitive.
const ENTITY_TAG = /^(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/

/**
 * Parses `If-Match` / `If-None-Match`: `"*" / #entity-tag` (§13.1.1, §13.1.2).
 * Returns null if malformed, including `*` mixed with entity-tags. Empty list
 * elements are skipped (§5.6.1.2), so an empty value is an empty list.
 */
export function parseEntityTags(value: string): { any: boolean; tags: string[] } | null {
  const v = value.trim()
  if (v === '*') return { any: true, tags: [] }
  const tags: string[] = []
  let i = 0
  while (i < v.length) {
    const c = v[i]!
    if (c === ',' || c === ' ' || c === '\t') {
      i++
      continue
    }
    // An element runs to its closing quote: a comma inside the quotes is part of the tag.
    const open = v.startsWith('W/"', i) ? i + 2 : c === '"' ? i : -1
    if (open === -1) return null
    const close = v.indexOf('"', open + 1)
    if (close === -1) return null
    const tag = v.slice(i, close + 1)
    if (!ENTITY_TAG.test(tag)) return null
    tags.push(tag)
    i = close + 1
    // Only OWS may separate the tag from the next comma.
    while (v[i] === ' ' || v[i] === '\t') i++
    if (i < v.length && v[i] !== ',') return null
  }
  return { any: false, tags }
}

function isWeak(tag: string): boolean {
  return tag.startsWith('W/')
}

function opaque(tag: string): string {
  return isWeak(tag) ? tag.slice(2) : tag
}

/** §8.8.3.2 strong comparison: both tags are strong and identical. */
export function strongMatch(a: string, b: string): boolean {
  return !isWeak(a) && !isWeak(b) && a === b
}

/** §8.8.3.2 weak comparison: the opaque-tags are identical, either may be weak. */
export function weakMatch(a: string, b: string): boolean {
  return opaque(a) === opaque(b)
}

function isSafeRead(method: string): boolean {
  // Method names are case-sensitive (§9.1).
  return method === 'GET' || method === 'HEAD'
}

/**
 * Evaluates the preconditions in the order of §13.2.2. 'ok' means perform the
 * method (and then look at Range/If-Range); 'not-modified' means 304;
 * 'failed' means 412.
 */
export function evaluatePreconditions(method: string, req: ConditionalHeaders, current: Validators): Precondition {
  // Step 1: If-Match (§13.1.1), strong comparison.
  if (req.ifMatch !== undefined) {
    if (!ifMatchPasses(req.ifMatch, current)) return 'failed'
  } else if (req.ifUnmodifiedSince !== undefined) {
    // Step 2: If-Unmodified-Since (§13.1.4), only without If-Match; an invalid date is ignored.
    const date = parseHttpDate(req.ifUnmodifiedSince)
    if (date !== undefined && (current.lastModified === undefined || current.lastModified > date)) return 'failed'
  }

  // Step 3: If-None-Match (§13.1.2), weak comparison.
  if (req.ifNoneMatch !== undefined) {
    if (ifNoneMatchMatches(req.ifNoneMatch, current)) return isSafeRead(method) ? 'not-modified' : 'failed'
  } else if (isSafeRead(method) && req.ifModifiedSince !== undefined) {
    // Step 4: If-Modified-Since (§13.1.3), only for GET/HEAD without If-None-Match;
    // an invalid date is ignored.
    const date = parseHttpDate(req.ifModifiedSince)
    if (date !== undefined && current.lastModified !== undefined && current.lastModified <= date) return 'not-modified'
  }

  // Step 5: go on (Range / If-Range are evaluated by the caller).
  return 'ok'
}

/** §13.1.1: `*` is true iff a current representation exists; a malformed list is false. */
function ifMatchPasses(value: string, current: Validators): boolean {
  const list = parseEntityTags(value)
  if (list === null || !current.exists) return false
  if (list.any) return true
  const etag = current.etag
  return etag !== undefined && list.tags.some((t) => strongMatch(t, etag))
}

/** §13.1.2: "matches" (the condition is false); a malformed list never matches. */
function ifNoneMatchMatches(value: string, current: Validators): boolean {
  const list = parseEntityTags(value)
  if (list === null || !current.exists) return false
  if (list.any) return true
  const etag = current.etag
  return etag !== undefined && list.tags.some((t) => weakMatch(t, etag))
}

/**
 * §13.1.5 If-Range = entity-tag / HTTP-date. True when the Range header may
 * be honoured: the field is absent, or its validator matches the current one.
 * An entity-tag uses strong comparison, so a weak tag never matches; a date
 * must equal Last-Modified exactly. Anything else is false (send the whole
 * representation).
 */
export function ifRangeMatches(ifRange: string | undefined, current: { etag?: string; lastModified?: number }): boolean {
  if (ifRange === undefined) return true
  const v = ifRange.trim()
  // "A valid entity-tag can be distinguished from a valid HTTP-date by
  // examining the first three characters for a DQUOTE."
  if (v.slice(0, 3).includes('"')) {
    return ENTITY_TAG.test(v) && current.etag !== undefined && strongMatch(v, current.etag)
  }
  const date = parseHttpDate(v)
  return date !== undefined && current.lastModified !== undefined && date === current.lastModified
}

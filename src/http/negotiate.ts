import { isToken } from './token.ts'

/**
 * Content-coding negotiation from Accept-Encoding (RFC 9110 §12.5.3). Pure functions.
 *
 * Parsing rules (lenient where a client's mistake should cost it nothing
 * worse than an uncompressed response):
 * - Accept-Encoding = #( codings [ weight ] ); codings are case-insensitive
 *   tokens (§8.4.1) and are returned lower-case. Elements that are not a token
 *   are skipped.
 * - weight = OWS ";" OWS "q=" qvalue, with `q` case-insensitive (§12.4.2);
 *   qvalue is 0 to 1 with at most three decimals. An invalid qvalue counts as
 *   0 (not acceptable): we do not guess what a broken client meant.
 *   Other parameters are ignored.
 * - If a coding is listed twice, the first entry wins.
 */

const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/** Old names a recipient should treat as the registered coding (§8.4.1.1, §8.4.1.3). */
const ALIASES: Record<string, string> = { gzip: 'x-gzip', compress: 'x-compress' }

/** Parses Accept-Encoding into coding -> qvalue (1 when no weight is given). */
export function parseAcceptEncoding(value: string | undefined): Map<string, number> {
  const map = new Map<string, number>()
  if (value === undefined) return map
  for (const element of value.split(',')) {
    const [name = '', ...params] = element.split(';').map((s) => s.trim())
    if (!isToken(name)) continue
    const coding = name.toLowerCase()
    if (map.has(coding)) continue
    let q = 1
    for (const p of params) {
      const eq = p.indexOf('=')
      if (eq === -1 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue
      const qv = p.slice(eq + 1).trim()
      q = QVALUE.test(qv) ? Number(qv) : 0
      break
    }
    map.set(coding, q)
  }
  return map
}

/**
 * Picks the content coding for a response: one of `available` (in server
 * preference order, e.g. ['br', 'gzip']) or 'identity'.
 *
 * - No header: 'identity'. (§12.5.3 would allow any coding, but a client that
 *   says nothing may not decode anything; identity is the safe answer.)
 * - The highest qvalue wins; ties go to the earlier entry in `available`,
 *   and identity loses ties to any coding.
 * - A coding not listed gets the `*` qvalue if there is one; q=0 excludes it.
 * - `x-gzip` / `x-compress` in the header stand for gzip / compress.
 * - identity is acceptable unless excluded by `identity;q=0`, or `*;q=0` with
 *   no entry for identity (§12.5.3). When not listed, it ranks below every
 *   acceptable coding.
 * - If nothing is acceptable, still 'identity': §12.5.3 allows a response
 *   without content coding rather than a 415, and the caller may send it.
 */
export function chooseEncoding(value: string | undefined, available: readonly string[]): string {
  if (value === undefined) return 'identity'
  // A frozen list (the static handler's) keeps the answers it gave: clients send a handful of values.
  if (!Object.isFrozen(available)) return choose(value, available)
  let memo = chosen.get(available)
  const known = memo?.get(value)
  if (known !== undefined) return known
  const answer = choose(value, available)
  if (memo === undefined) chosen.set(available, (memo = new Map()))
  else if (memo.size >= CHOSEN_MAX) memo.clear()
  memo.set(value, answer)
  return answer
}

/** Answers by Accept-Encoding value, per frozen list of available codings; at most CHOSEN_MAX values each. */
const chosen = new WeakMap<readonly string[], Map<string, string>>()
const CHOSEN_MAX = 64

function choose(value: string, available: readonly string[]): string {
  const accepted = parseAcceptEncoding(value)
  const star = accepted.get('*')
  let best = 'identity'
  let bestQ = 0
  for (const name of available) {
    const coding = name.toLowerCase()
    if (coding === 'identity') continue
    const alias = ALIASES[coding]
    const q = accepted.get(coding) ?? (alias === undefined ? undefined : accepted.get(alias)) ?? star ?? 0
    if (q > bestQ) {
      best = name
      bestQ = q
    }
  }
  const identityQ = accepted.get('identity') ?? star
  // Only an explicit identity (or `*`) can outrank a coding, and only with a strictly higher q.
  if (identityQ !== undefined && identityQ > bestQ) return 'identity'
  return best
}

import { z } from 'zod'

/**
 * Access rules for a route behind single sign-on: which signed-in users
 * may pass. A route's `auth.rules` is a list of `{ allow: condition }` and
 * `{ deny: condition }`; the first rule whose condition matches the
 * identity's claims (OpenID Connect Core 1.0 §5.1 standard claims, or any
 * claim the provider adds) decides. When no rule matches, the answer is
 * deny; a route without rules lets any signed-in user in.
 *
 * The rules are checked once by the schema (an invalid regular expression
 * is a configuration error, with its path) and turned into closures once by
 * compileRules: no parsing, lower-casing of configured values or regular
 * expression compiling per request. A claim of an unexpected type (a number
 * where a string was wanted, null, an object, missing) simply does not
 * match; evaluation never throws on claim values.
 */

/** A claim value a rule can compare with: what JSON gives besides null, arrays and objects. */
export type ClaimScalar = string | number | boolean

/** One condition on the identity's claims (see conditionSchema). */
export type Condition =
  | true
  | { readonly email: string | readonly string[] }
  | { readonly emailDomain: string | readonly string[] }
  | { readonly group: string | readonly string[] }
  | { readonly claim: ClaimTest }
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] }
  | { readonly not: Condition }

/** A test of one claim: exactly one of `equals`, `in` and `matches`. */
export type ClaimTest =
  | { readonly name: string; readonly equals: ClaimScalar }
  | { readonly name: string; readonly in: readonly ClaimScalar[] }
  | { readonly name: string; readonly matches: string }

/** One value or a non-empty list of them. */
function oneOrMore<T extends z.ZodType>(item: T) {
  return z.union([item, z.array(item).min(1, 'lists at least one value')])
}

const emailAddress = z.string().regex(/^[^\s@]+@[^\s@]+$/, 'is an email address like alice@example.com')
const emailDomain = z.string().regex(/^@?[^\s@]+$/, 'is an email domain like example.com')
const scalar = z.union([z.string(), z.number(), z.boolean()])
/** A claim name: a top-level claim, or a dotted path into nested objects (`realm_access.roles`). */
const claimName = z.string().min(1, 'names a claim')

/**
 * A regular expression source; checked here so a pattern that cannot
 * compile is refused with the configuration, not at the first request.
 * Only a source that compiles on its own is accepted, so wrapping it in
 * `^(?:…)$` cannot change what it means (no `a)|(b` escaping the anchors).
 */
const pattern = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source, 'u')
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(source)} is not a regular expression: ${(err as Error).message}` })
  }
})

const claimTestSchema = z.union([
  z.strictObject({
    /** The claim, or a dotted path into nested objects. */
    name: claimName,
    /** The claim's value is exactly this (a string, number or boolean; no type conversion). */
    equals: scalar,
  }),
  z.strictObject({
    /** The claim, or a dotted path into nested objects. */
    name: claimName,
    /** The claim's value is one of these; for an array claim, any element is. */
    in: z.array(scalar).min(1, 'lists at least one value'),
  }),
  z.strictObject({
    /** The claim, or a dotted path into nested objects. */
    name: claimName,
    /** A regular expression (`u` flag) the whole string value must match; for an array claim, any string element. */
    matches: pattern,
  }),
])

/**
 * A condition on the identity's claims. `true` matches anyone signed in;
 * every other condition is an object with exactly one key:
 *
 * - `email`: the `email` claim is one of these addresses (ASCII
 *   case-insensitive), and `email_verified` is not false.
 * - `emailDomain`: the email's domain (after its last `@`) is one of these
 *   (a leading `@` is allowed); subdomains do not match. Same
 *   `email_verified` rule.
 * - `group`: the `groups` claim (a list of strings, or one string) holds one
 *   of these (exact, case-sensitive).
 * - `claim`: `{ name, equals }`, `{ name, in }` or `{ name, matches }`.
 * - `all`, `any`: every / at least one of a non-empty list of conditions.
 * - `not`: the condition does not match.
 */
export const conditionSchema: z.ZodType<Condition, Condition> = z.lazy(() =>
  z.union([
    z.literal(true),
    z.strictObject({
      /** The verified `email` claim is one of these addresses (compared ASCII case-insensitively). */
      email: oneOrMore(emailAddress),
    }),
    z.strictObject({
      /** The verified email's domain is one of these (`example.com` or `@example.com`; subdomains do not match). */
      emailDomain: oneOrMore(emailDomain),
    }),
    z.strictObject({
      /** The `groups` claim holds one of these (exact, case-sensitive). */
      group: oneOrMore(z.string().min(1, 'names a group')),
    }),
    z.strictObject({
      /** A test of any claim, by name or dotted path. */
      claim: claimTestSchema,
    }),
    z.strictObject({
      /** Every one of these conditions matches. */
      all: z.array(conditionSchema).min(1, 'lists at least one condition'),
    }),
    z.strictObject({
      /** At least one of these conditions matches. */
      any: z.array(conditionSchema).min(1, 'lists at least one condition'),
    }),
    z.strictObject({
      /** This condition does not match. */
      not: conditionSchema,
    }),
  ]),
)

/** A route's `auth.rules`: the first rule whose condition matches decides; none matching denies. */
export const rulesSchema = z.array(
  z.union([
    z.strictObject({
      /** Let the user in when this matches. */
      allow: conditionSchema,
    }),
    z.strictObject({
      /** Refuse the user when this matches. */
      deny: conditionSchema,
    }),
  ]),
)

/** One access rule: `{ allow: condition }` or `{ deny: condition }`. */
export type Rule = z.output<typeof rulesSchema>[number]

/** The signed-in identity's claims (the ID token's, or the UserInfo response's). */
export type Claims = Readonly<Record<string, unknown>>

/** What the rules decided for one identity. */
export interface Decision {
  /** Whether the user may pass. */
  readonly allow: boolean
  /** The index of the rule that decided; -1 when no rule matched, or there are no rules. */
  readonly rule: number
}

type Test = (claims: Claims) => boolean

const hasOwn = Object.hasOwn

/** ASCII lower case only: Unicode case mapping would fold look-alikes (`K`, U+212A KELVIN SIGN, to `k`). */
function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s
}

function list<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? value : [value as T]
}

/** An own property of an object (never one inherited from a prototype); undefined for anything else. */
function own(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' && hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined
}

/**
 * Reads a claim by name: the claim of that exact name when there is one
 * (namespaced claims such as `https://example.com/roles` hold dots), else
 * the dotted path through nested objects.
 */
function claimReader(name: string): (claims: Claims) => unknown {
  const path = name.split('.')
  if (path.length === 1) return (claims) => own(claims, name)
  return (claims) => {
    let value = own(claims, name)
    if (value !== undefined) return value
    value = claims
    for (const key of path) {
      value = own(value, key)
      if (value === undefined) return undefined
    }
    return value
  }
}

/** The `email` claim, when it is a string and not marked unverified (OpenID Connect Core 1.0 §5.1). */
function verifiedEmail(claims: Claims): string | undefined {
  const email = own(claims, 'email')
  if (typeof email !== 'string') return undefined
  const verified = own(claims, 'email_verified')
  // some providers send the boolean as a string
  if (verified === false || verified === 'false') return undefined
  return email
}

/** Whether `value`, or for an array any of its elements, passes `test`. */
function anyValue(value: unknown, test: (v: unknown) => boolean): boolean {
  if (!Array.isArray(value)) return test(value)
  for (let i = 0; i < value.length; i++) if (test(value[i])) return true
  return false
}

function compileClaim(c: ClaimTest): Test {
  const read = claimReader(c.name)
  if ('equals' in c) {
    const expected = c.equals
    return (claims) => read(claims) === expected
  }
  if ('in' in c) {
    const set = new Set<unknown>(c.in)
    return (claims) => anyValue(read(claims), (v) => set.has(v))
  }
  const re = new RegExp(`^(?:${c.matches})$`, 'u')
  return (claims) => anyValue(read(claims), (v) => typeof v === 'string' && re.test(v))
}

function compileCondition(c: Condition): Test {
  if (c === true) return () => true
  if ('email' in c) {
    const set = new Set(list(c.email).map(asciiLower))
    return (claims) => {
      const email = verifiedEmail(claims)
      return email !== undefined && set.has(asciiLower(email))
    }
  }
  if ('emailDomain' in c) {
    const set = new Set(list(c.emailDomain).map((d) => asciiLower(d.startsWith('@') ? d.slice(1) : d)))
    return (claims) => {
      const email = verifiedEmail(claims)
      if (email === undefined) return false
      const at = email.lastIndexOf('@')
      return at > 0 && set.has(asciiLower(email.slice(at + 1)))
    }
  }
  if ('group' in c) {
    const set = new Set(list(c.group))
    return (claims) => anyValue(own(claims, 'groups'), (g) => typeof g === 'string' && set.has(g))
  }
  if ('claim' in c) return compileClaim(c.claim)
  if ('all' in c) {
    const tests = c.all.map(compileCondition)
    return (claims) => {
      for (const t of tests) if (!t(claims)) return false
      return true
    }
  }
  if ('any' in c) {
    const tests = c.any.map(compileCondition)
    return (claims) => {
      for (const t of tests) if (t(claims)) return true
      return false
    }
  }
  const inner = compileCondition(c.not)
  return (claims) => !inner(claims)
}

const ANYONE: Decision = Object.freeze({ allow: true, rule: -1 })
const NO_MATCH: Decision = Object.freeze({ allow: false, rule: -1 })

/**
 * Turns checked rules (rulesSchema's output) into one function from claims
 * to a Decision. With no rules, any signed-in user is allowed (rule -1);
 * otherwise the first matching rule decides, and none matching denies
 * (rule -1). The Decision objects are made here, once, and frozen.
 */
export function compileRules(rules: readonly Rule[]): (claims: Claims) => Decision {
  if (rules.length === 0) return () => ANYONE
  const compiled = rules.map((rule, i) => {
    const allow = 'allow' in rule
    return { test: compileCondition(allow ? rule.allow : rule.deny), decision: Object.freeze({ allow, rule: i }) as Decision }
  })
  return (claims) => {
    for (const { test, decision } of compiled) if (test(claims)) return decision
    return NO_MATCH
  }
}

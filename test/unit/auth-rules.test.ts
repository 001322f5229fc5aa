import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { type Claims, type Decision, compileRules, conditionSchema, rulesSchema } from '../../src/auth/rules.ts'

/** Checks the rules with the schema, as the configuration does, and compiles them. */
function rules(input: unknown): (claims: Claims) => Decision {
  return compileRules(rulesSchema.parse(input))
}

/** Whether a single `allow` rule with this condition lets these claims in. */
function matches(condition: unknown, claims: Claims): boolean {
  const d = rules([{ allow: condition }])(claims)
  assert.equal(d.rule, d.allow ? 0 : -1)
  return d.allow
}

/** The messages of every issue, nested unions included. */
function messages(input: unknown): string[] {
  const r = rulesSchema.safeParse(input)
  assert.equal(r.success, false, 'the schema refuses it')
  const out: string[] = []
  const walk = (issues: ReadonlyArray<{ message: string; errors?: unknown }>) => {
    for (const i of issues) {
      out.push(i.message)
      if (Array.isArray(i.errors)) for (const e of i.errors) walk(e as typeof issues)
    }
  }
  walk(r.error!.issues)
  return out
}

test('email: one of the addresses, ASCII case-insensitive', () => {
  assert.ok(matches({ email: 'alice@example.com' }, { email: 'alice@example.com' }))
  assert.ok(matches({ email: 'Alice@Example.COM' }, { email: 'aLICE@example.com' }))
  assert.ok(matches({ email: ['bob@example.com', 'alice@example.com'] }, { email: 'ALICE@EXAMPLE.COM', email_verified: true }))
  assert.ok(!matches({ email: 'alice@example.com' }, { email: 'mallory@example.com' }))
  assert.ok(!matches({ email: 'alice@example.com' }, { email: 'alice@example.com.evil.example' }))
  assert.ok(!matches({ email: 'alice@example.com' }, {}))
  // Unicode case folding is not applied: U+212A KELVIN SIGN is not a K
  assert.ok(!matches({ email: 'k@example.com' }, { email: '\u212a@example.com' }))
})

test('email and emailDomain: an email marked unverified does not match', () => {
  assert.ok(!matches({ email: 'alice@example.com' }, { email: 'alice@example.com', email_verified: false }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'alice@example.com', email_verified: false }))
  assert.ok(!matches({ email: 'alice@example.com' }, { email: 'alice@example.com', email_verified: 'false' }))
  // absent or true is fine
  assert.ok(matches({ emailDomain: 'example.com' }, { email: 'alice@example.com', email_verified: true }))
  assert.ok(matches({ emailDomain: 'example.com' }, { email: 'alice@example.com' }))
})

test('emailDomain: the part after the last @, case-insensitive, a leading @ allowed, subdomains not included', () => {
  assert.ok(matches({ emailDomain: 'example.com' }, { email: 'alice@example.com' }))
  assert.ok(matches({ emailDomain: '@Example.com' }, { email: 'alice@EXAMPLE.COM' }))
  assert.ok(matches({ emailDomain: ['other.example', 'example.com'] }, { email: 'alice@example.com' }))
  assert.ok(matches({ emailDomain: 'example.com' }, { email: '"a@b"@example.com' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'a@sub.example.com' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'a@example.com.evil.example' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'a@notexample.com' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'example.com@evil.example' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: 'example.com' }))
  assert.ok(!matches({ emailDomain: 'example.com' }, { email: '@example.com' }))
})

test('group: the groups claim, a list or one string, exact and case-sensitive', () => {
  assert.ok(matches({ group: 'admins' }, { groups: ['users', 'admins'] }))
  assert.ok(matches({ group: ['ops', 'admins'] }, { groups: 'admins' }))
  assert.ok(!matches({ group: 'admins' }, { groups: ['Admins', 'admin', 'admins '] }))
  assert.ok(!matches({ group: 'admins' }, { groups: 'users' }))
  assert.ok(!matches({ group: 'admins' }, { groups: [] }))
  assert.ok(!matches({ group: 'admins' }, { groups: [['admins']] }))
  assert.ok(!matches({ group: 'admins' }, { group: 'admins' }))
})

test('claim equals: the same value and type', () => {
  assert.ok(matches({ claim: { name: 'tier', equals: 'gold' } }, { tier: 'gold' }))
  assert.ok(matches({ claim: { name: 'level', equals: 3 } }, { level: 3 }))
  assert.ok(matches({ claim: { name: 'staff', equals: true } }, { staff: true }))
  assert.ok(!matches({ claim: { name: 'level', equals: 3 } }, { level: '3' }))
  assert.ok(!matches({ claim: { name: 'staff', equals: true } }, { staff: 'true' }))
  assert.ok(!matches({ claim: { name: 'tier', equals: 'gold' } }, { tier: 'Gold' }))
  assert.ok(!matches({ claim: { name: 'tier', equals: 'gold' } }, {}))
})

test('claim in: the value, or any element of an array claim, is one of the list', () => {
  const c = { claim: { name: 'roles', in: ['admin', 'editor', 7] } }
  assert.ok(matches(c, { roles: 'editor' }))
  assert.ok(matches(c, { roles: ['viewer', 'admin'] }))
  assert.ok(matches(c, { roles: 7 }))
  assert.ok(matches(c, { roles: [1, 7] }))
  assert.ok(!matches(c, { roles: '7' }))
  assert.ok(!matches(c, { roles: ['viewer'] }))
  assert.ok(!matches(c, { roles: [] }))
  assert.ok(!matches(c, { roles: { admin: true } }))
})

test('claim name: a dotted path into nested objects, or a claim whose name holds dots', () => {
  const c = { claim: { name: 'realm_access.roles', in: ['admin'] } }
  assert.ok(matches(c, { realm_access: { roles: ['user', 'admin'] } }))
  assert.ok(!matches(c, { realm_access: { roles: ['user'] } }))
  assert.ok(!matches(c, { realm_access: ['admin'] }))
  assert.ok(!matches(c, { realm_access: null }))
  assert.ok(!matches(c, { realm_access: 'roles' }))
  assert.ok(matches({ claim: { name: 'a.b.c', equals: 1 } }, { a: { b: { c: 1 } } }))
  // a namespaced claim's own name wins over the path
  assert.ok(matches({ claim: { name: 'https://example.com/roles', in: ['admin'] } }, { 'https://example.com/roles': ['admin'] }))
  // nothing from a prototype
  assert.ok(!matches({ claim: { name: 'a.constructor.name', equals: 'Object' } }, { a: {} }))
  assert.ok(!matches({ claim: { name: 'toString', matches: '.*' } }, {}))
})

test('claim matches: the whole string must match (anchored), any string element of an array', () => {
  assert.ok(matches({ claim: { name: 'role', matches: 'adm' } }, { role: 'adm' }))
  assert.ok(!matches({ claim: { name: 'role', matches: 'adm' } }, { role: 'admin' }))
  assert.ok(!matches({ claim: { name: 'role', matches: 'min' } }, { role: 'admin' }))
  assert.ok(matches({ claim: { name: 'role', matches: 'adm.*' } }, { role: 'admin' }))
  // an alternation stays inside the anchors
  assert.ok(!matches({ claim: { name: 'role', matches: 'x|adm' } }, { role: 'admin' }))
  assert.ok(matches({ claim: { name: 'role', matches: 'x|adm' } }, { role: 'adm' }))
  assert.ok(matches({ claim: { name: 'roles', matches: 'team-[a-z]+' } }, { roles: [1, 'other', 'team-ops'] }))
  assert.ok(!matches({ claim: { name: 'roles', matches: 'team-[a-z]+' } }, { roles: ['team-OPS'] }))
  assert.ok(!matches({ claim: { name: 'level', matches: '\\d+' } }, { level: 12 }))
  // the u flag: \p{...} and a whole code point for .
  assert.ok(matches({ claim: { name: 'name', matches: '\\p{Lu}.' } }, { name: 'É😀' }))
})

test('claim matches: an invalid regular expression is refused by the schema, with a message', () => {
  const r = rulesSchema.safeParse([{ deny: { claim: { name: 'role', matches: '(adm' } } }])
  assert.equal(r.success, false)
  const issue = r.error!.issues[0]!
  assert.deepEqual(issue.path, [0, 'deny', 'claim', 'matches'])
  assert.match(issue.message, /"\(adm" is not a regular expression/)
  // one that would escape the anchors is not a regular expression on its own
  assert.ok(messages([{ allow: { claim: { name: 'role', matches: 'x)|(.*' } } }]).some((m) => /is not a regular expression/.test(m)))
  // invalid only with the u flag
  assert.ok(messages([{ allow: { claim: { name: 'role', matches: '\\-' } } }]).some((m) => /is not a regular expression/.test(m)))
})

test('the schema refuses conditions with no key, two keys, unknown keys or empty lists', () => {
  for (const c of [{}, { email: 'a@example.com', group: 'x' }, { emial: 'a@example.com' }, { all: [] }, { any: [] }, { email: [] }, { email: 'not-an-email' }, { emailDomain: 'a@b' }, { group: '' }, false, 'true', null, { claim: { name: 'x' } }, { claim: { name: 'x', equals: 1, in: [1] } }, { claim: { name: '', equals: 1 } }, { claim: { name: 'x', in: [] } }, { claim: { name: 'x', equals: null } }, { not: [] }]) {
    assert.equal(conditionSchema.safeParse(c).success, false, JSON.stringify(c))
  }
  for (const r of [{}, { allow: true, deny: true }, { permit: true }, true]) assert.equal(rulesSchema.safeParse([r]).success, false, JSON.stringify(r))
  assert.equal(conditionSchema.safeParse({ all: [true, { not: { any: [{ group: 'a' }, { claim: { name: 'x', in: [1, 'a', false] } }] } }] }).success, true)
})

test('true matches anyone, including no claims at all', () => {
  assert.ok(matches(true, {}))
  assert.ok(matches(true, { email: 'x@example.com' }))
})

test('all, any and not, nested', () => {
  const c = {
    all: [{ emailDomain: 'example.com' }, { any: [{ group: 'admins' }, { claim: { name: 'tier', equals: 'gold' } }] }, { not: { email: 'mallory@example.com' } }],
  }
  assert.ok(matches(c, { email: 'alice@example.com', groups: ['admins'] }))
  assert.ok(matches(c, { email: 'bob@example.com', tier: 'gold' }))
  assert.ok(!matches(c, { email: 'bob@example.com', tier: 'silver' }))
  assert.ok(!matches(c, { email: 'mallory@example.com', groups: ['admins'] }))
  assert.ok(!matches(c, { email: 'alice@other.example', groups: ['admins'] }))
  assert.ok(matches({ not: { not: { group: 'a' } } }, { groups: 'a' }))
  assert.ok(matches({ not: { group: 'a' } }, {}))
})

test('the first matching rule decides', () => {
  const allowThenDeny = rules([{ allow: { group: 'admins' } }, { deny: { emailDomain: 'example.com' } }, { allow: true }])
  assert.deepEqual(allowThenDeny({ email: 'a@example.com', groups: ['admins'] }), { allow: true, rule: 0 })
  assert.deepEqual(allowThenDeny({ email: 'a@example.com' }), { allow: false, rule: 1 })
  assert.deepEqual(allowThenDeny({ email: 'a@other.example' }), { allow: true, rule: 2 })

  const denyThenAllow = rules([{ deny: { group: 'suspended' } }, { allow: { emailDomain: 'example.com' } }])
  assert.deepEqual(denyThenAllow({ email: 'a@example.com', groups: ['suspended'] }), { allow: false, rule: 0 })
  assert.deepEqual(denyThenAllow({ email: 'a@example.com', groups: [] }), { allow: true, rule: 1 })
})

test('no rule matching denies with rule -1; no rules at all allows with rule -1', () => {
  assert.deepEqual(rules([{ allow: { group: 'admins' } }])({ groups: ['users'] }), { allow: false, rule: -1 })
  assert.deepEqual(rules([{ deny: { group: 'admins' } }])({ groups: ['users'] }), { allow: false, rule: -1 })
  assert.deepEqual(rules([])({}), { allow: true, rule: -1 })
  assert.deepEqual(compileRules([])({ anything: 1 }), { allow: true, rule: -1 })
})

test('a decision is frozen', () => {
  const d = rules([{ allow: true }])({})
  assert.ok(Object.isFrozen(d))
  assert.ok(Object.isFrozen(rules([{ deny: { group: 'x' } }])({})))
})

// Every kind of condition, and claims of every odd shape under the names the conditions read.
const every = rulesSchema.parse([
  { deny: { email: 'mallory@example.com' } },
  { allow: { all: [{ emailDomain: 'example.com' }, { not: { group: 'suspended' } }] } },
  { allow: { any: [{ claim: { name: 'a.b', equals: 1 } }, { claim: { name: 'roles', in: ['x', 2, true] } }] } },
  { allow: { claim: { name: 'realm_access.roles', matches: 'adm.*' } } },
  { deny: { not: { claim: { name: 'a.b.c.d', equals: 'x' } } } },
])
const odd = fc.oneof(
  fc.constantFrom(null, undefined, 0, -0, Number.NaN, Infinity, true, false, '', 'false', 'mallory@example.com', '@', 'x@example.com', [], {}, [null], { b: null }, { roles: 'adm' }),
  fc.anything(),
)
const names = fc.constantFrom('email', 'email_verified', 'groups', 'a', 'roles', 'realm_access', '__proto__', 'constructor', 'a.b', 'toString')

test('property: odd claim values never throw, and the decision is always one of the rules or -1', () => {
  const decide = compileRules(every)
  fc.assert(
    fc.property(fc.dictionary(names, odd, { maxKeys: 6 }), (claims) => {
      const d = decide(claims)
      assert.equal(typeof d.allow, 'boolean')
      assert.ok(Number.isInteger(d.rule) && d.rule >= -1 && d.rule < every.length)
      if (d.rule === -1) assert.equal(d.allow, false)
      else assert.equal(d.allow, 'allow' in every[d.rule]!)
    }),
    { numRuns: 3000 },
  )
  // not even claims that are not an object
  for (const claims of [null, undefined, 'x', 1, [] as unknown]) assert.doesNotThrow(() => decide(claims as Claims))
})

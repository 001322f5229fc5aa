import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { MAX_JSON_DEPTH, jsonDepthProblem, jsonNesting } from '../../src/http/json-limits.ts'

const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n)
const objects = (n: number) => '{"a":'.repeat(n) + 'null' + '}'.repeat(n)

/** The nesting of a parsed value, by walking it (for values shallow enough to walk). */
function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf))
  if (typeof v === 'object' && v !== null) return 1 + Math.max(0, ...Object.values(v).map(depthOf))
  return 0
}

test('the limit is 64 levels', () => {
  assert.equal(MAX_JSON_DEPTH, 64)
})

test('jsonNesting counts arrays and objects, mixed, without parsing', () => {
  const cases: Array<[string, number]> = [
    ['', 0],
    ['1', 0],
    ['"text"', 0],
    ['[]', 1],
    ['{}', 1],
    ['[1,[2,[3]],4]', 3],
    ['{"a":[{"b":{}}],"c":[]}', 4],
    ['[[],[[]],[]]', 3],
    [' [ \n\t[ ] ] ', 2],
    [arrays(64), 64],
    [objects(65), 65],
  ]
  for (const [text, depth] of cases) assert.equal(jsonNesting(text), depth, text)
})

test('brackets inside strings do not count, escaped quotes do not end a string, an escaped backslash does not escape the quote after it', () => {
  const cases: Array<[string, number]> = [
    ['"[[[[{{{{"', 0],
    ['["[[[["]', 1],
    ['{"[[[": "{{{"}', 1],
    ['["\\"[[[["]', 1], // \" stays inside the string: the brackets after it are text
    ['["\\\\",[[]]]', 3], // \\ is one backslash: the quote after it ends the string, and the arrays after count
    ['["\\\\\\"[[[", []]', 2], // \\ then \": still inside the string until the last quote
    ['["\\u005b\\u007b", {}]', 2], // escaped brackets are text anyway
    ['["\\/\\b\\f\\n\\r\\t[", [[]]]', 3],
    ['{"k\\"}":"]]]]","v":[[{}]]}', 4],
  ]
  for (const [text, depth] of cases) {
    assert.equal(jsonNesting(text), depth, text)
    assert.equal(depthOf(JSON.parse(text)), depth, `the parser agrees on ${text}`)
  }
})

test('text that is not JSON: closers without openers never lower the count below zero', () => {
  assert.equal(jsonNesting(']]]]' + arrays(3)), 3)
  assert.equal(jsonNesting('}}' + '['.repeat(70)), 70)
  assert.equal(jsonNesting('"unterminated [[['), 0)
  assert.equal(jsonNesting('[[[[[['), 6)
})

test('jsonNesting stops counting once past the bound, so a deep text costs one partial pass', () => {
  assert.equal(jsonNesting(arrays(100_000), 64), 65)
  assert.equal(jsonNesting(objects(100_000), 10), 11)
  assert.equal(jsonNesting(arrays(10), 64), 10)
})

test('jsonDepthProblem names the limit, or says nothing for text within it', () => {
  assert.equal(jsonDepthProblem(arrays(64)), undefined)
  assert.equal(jsonDepthProblem(arrays(65)), 'JSON nested deeper than 64 levels')
  assert.equal(jsonDepthProblem(arrays(100_000)), 'JSON nested deeper than 64 levels')
  assert.equal(jsonDepthProblem(objects(100_000)), 'JSON nested deeper than 64 levels')
  assert.equal(jsonDepthProblem(`["${'['.repeat(100_000)}"]`), undefined, 'brackets in a string')
  assert.equal(jsonDepthProblem(arrays(3), 2), 'JSON nested deeper than 2 levels')
  assert.equal(jsonDepthProblem(arrays(2), 2), undefined)
})

test('property: the count of any JSON text equals the depth of the value it parses to', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }), (v) => {
      const text = JSON.stringify(v)
      assert.equal(jsonNesting(text), depthOf(v), text)
    }),
    { numRuns: 500 },
  )
})

test('property: strings full of brackets, quotes and backslashes count as nothing', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('[', ']', '{', '}', '"', '\\', 'a', ' ', '\\"', '\\\\')), (parts) => {
      const s = parts.join('')
      assert.equal(jsonNesting(JSON.stringify(s)), 0)
      assert.equal(jsonNesting(JSON.stringify([s, { [s]: [s] }])), 3)
    }),
    { numRuns: 500 },
  )
})

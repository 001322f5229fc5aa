import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseCspList, parseSerializedCsp, scriptAllowed } from '../../src/http/csp.ts'

/**
 * Content-Security-Policy parsing (W3C CSP3 §2.2) and the check of one
 * same-origin, parser-inserted `<script src>` (§6.1.3, §6.7.2): what the
 * RUM SDK injection asks before it puts its tag in a page.
 */

const PAGE = 'https://shop.example.test'
const SDK = '/_edgebox/rum/sdk.js'

/** Whether the policies of `field` let a page on `origin` load the SDK, with `nonce` on its tag. */
function allowed(field: string | string[], opts: { origin?: string; nonce?: string } = {}): boolean {
  return scriptAllowed(parseCspList(field), { origin: opts.origin ?? PAGE, path: SDK, nonce: opts.nonce })
}

test('directive names are ASCII case-insensitive; the first of a repeated name wins; empty and non-ASCII tokens are skipped', () => {
  const p = parseSerializedCsp(" ; SCRIPT-SRC 'self'  https://cdn.test ;script-src 'none'; img-src\tdata: ;; style-src 'self' \u00e9; ")
  assert.deepEqual([...p.directives.keys()], ['script-src', 'img-src'])
  assert.deepEqual(p.directives.get('script-src'), ["'self'", 'https://cdn.test'])
  assert.deepEqual(p.directives.get('img-src'), ['data:'])
})

test('a field holds several policies separated by commas, on one line or several; empty ones are dropped', () => {
  assert.equal(parseCspList("default-src 'self', script-src 'none'").length, 2)
  assert.equal(parseCspList(["default-src 'self'", "script-src 'none' , "]).length, 2)
  assert.equal(parseCspList(' , ').length, 0)
  assert.equal(parseCspList(undefined).length, 0)
})

test("'self', *, and no script directive at all allow the same-origin script", () => {
  assert.equal(allowed("script-src 'self'"), true)
  assert.equal(allowed("default-src 'SELF'"), true)
  assert.equal(allowed('script-src *'), true)
  assert.equal(allowed("img-src 'none'; frame-ancestors 'self'"), true)
  assert.equal(allowed(''), true)
})

test("'none', an empty source list, and lists without a matching source block it", () => {
  assert.equal(allowed("script-src 'none'"), false)
  assert.equal(allowed("script-src 'NONE'"), false)
  assert.equal(allowed('script-src'), false)
  assert.equal(allowed("script-src 'unsafe-inline' 'unsafe-eval'"), false)
  assert.equal(allowed("script-src 'sha256-abc='"), false)
  assert.equal(allowed('script-src https://cdn.test'), false)
  // 'none' among other sources matches nothing itself
  assert.equal(allowed("script-src 'none' 'self'"), true)
})

test('the effective directive is script-src-elem, else script-src, else default-src', () => {
  assert.equal(allowed("default-src 'none'; script-src 'self'"), true)
  assert.equal(allowed("default-src 'self'; script-src 'none'"), false)
  assert.equal(allowed("script-src 'none'; script-src-elem 'self'"), true)
  assert.equal(allowed("script-src 'self'; script-src-elem 'none'"), false)
  assert.equal(allowed("default-src 'none'"), false)
})

test('every policy applies: one that blocks is enough', () => {
  assert.equal(allowed("script-src 'self', script-src 'none'"), false)
  assert.equal(allowed(["default-src 'self'", "script-src 'none'"]), false)
  assert.equal(allowed("script-src 'self', default-src *"), true)
})

test("a matching nonce allows (the value compared exactly); 'strict-dynamic' blocks a parser-inserted script without one", () => {
  assert.equal(allowed("script-src 'nonce-AbC123=='", { nonce: 'AbC123==' }), true)
  assert.equal(allowed("script-src 'NONCE-AbC123=='", { nonce: 'AbC123==' }), true)
  assert.equal(allowed("script-src 'nonce-AbC123=='", { nonce: 'abc123==' }), false)
  assert.equal(allowed("script-src 'nonce-AbC123=='"), false)
  assert.equal(allowed("script-src 'strict-dynamic' 'nonce-n1' 'self'"), false)
  assert.equal(allowed("script-src 'strict-dynamic' 'nonce-n1' 'self'", { nonce: 'n1' }), true)
  assert.equal(allowed("script-src 'Strict-Dynamic' 'self'", { nonce: 'other' }), false)
})

test('host sources match by scheme, host, port and path (CSP3 §6.7.2.8)', () => {
  assert.equal(allowed('script-src shop.example.test'), true)
  assert.equal(allowed('script-src SHOP.example.test:443'), true)
  assert.equal(allowed('script-src https://shop.example.test'), true)
  assert.equal(allowed('script-src http://shop.example.test'), true, 'http: allows the secure upgrade')
  assert.equal(allowed('script-src https://shop.example.test', { origin: 'http://shop.example.test' }), false)
  assert.equal(allowed('script-src *.example.test'), true)
  assert.equal(allowed('script-src *.shop.example.test'), false, 'a wildcard matches subdomains only')
  assert.equal(allowed('script-src shop.example.test:8443'), false)
  assert.equal(allowed('script-src shop.example.test:8443', { origin: 'https://shop.example.test:8443' }), true)
  assert.equal(allowed('script-src shop.example.test:*', { origin: 'https://shop.example.test:8443' }), true)
  assert.equal(allowed('script-src shop.example.test', { origin: 'https://shop.example.test:8443' }), false)
  assert.equal(allowed('script-src 127.0.0.1:8080', { origin: 'http://127.0.0.1:8080' }), true)
  assert.equal(allowed('script-src shop.example.test/_edgebox/'), true)
  assert.equal(allowed('script-src shop.example.test/_edgebox/rum/sdk.js'), true)
  assert.equal(allowed('script-src shop.example.test/_edgebox/rum'), false, 'without a trailing slash the path is exact')
  assert.equal(allowed('script-src shop.example.test/assets/'), false)
  assert.equal(allowed('script-src other.test'), false)
})

test('scheme sources: https: allows an https page, http: also allows the upgrade, data: does not', () => {
  assert.equal(allowed('script-src https:'), true)
  assert.equal(allowed('script-src http:'), true)
  assert.equal(allowed('script-src https:', { origin: 'http://shop.example.test' }), false)
  assert.equal(allowed('script-src data: blob:'), false)
})

test('a sandbox without allow-scripts runs no script', () => {
  assert.equal(allowed("sandbox; script-src 'self'"), false)
  assert.equal(allowed('sandbox allow-forms'), false)
  assert.equal(allowed('sandbox allow-scripts allow-same-origin'), true)
})

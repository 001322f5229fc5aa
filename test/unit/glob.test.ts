import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { compileGlob } from '../../src/http/glob.ts'

test('compileGlob', () => {
  const cases: Array<[string, string, boolean]> = [
    // no `/`: matches the basename
    ['*.css', '/site.css', true],
    ['*.css', '/a/b/site.css', true],
    ['*.css', 'site.css', true],
    ['*.css', '/a/site.css/x', false],
    ['*.css', '/a/site.js', false],
    ['*.css', '/a/site.css.map', false],
    ['*.css', '/a/.css', true],
    ['favicon.ico', '/favicon.ico', true],
    ['favicon.ico', '/img/favicon.ico', true],
    ['favicon.ico', '/favicon.icon', false],
    ['favicon.ico', '/favicon_ico', false], // `.` is literal
    ['*', '/a/b', true],
    ['?.js', '/x/a.js', true],
    ['?.js', '/x/ab.js', false],
    ['*.{js,mjs}', '/a/b.mjs', true],
    ['*.{js,mjs}', '/a/b.cjs', false],
    ['*.[jt]s', '/a/b.ts', true],
    ['*.[jt]s', '/a/b.rs', false],
    ['**', '/a/b/c', true],
    // leading `/`: the whole path
    ['/index.html', '/index.html', true],
    ['/index.html', '/a/index.html', false],
    ['/*.html', '/index.html', true],
    ['/*.html', '/a/index.html', false], // `*` stays within a segment
    ['/assets/*', '/assets/a.js', true],
    ['/assets/*', '/assets/a/b.js', false],
    ['/assets/*', '/assets/', true],
    ['/assets/**', '/assets/a/b.js', true],
    ['/assets/**', '/assets/', true],
    ['/assets/**', '/assets', false],
    ['/assets/**', '/assetsx/a', false],
    ['/a/**/b', '/a/b', true], // `/**/` matches zero segments
    ['/a/**/b', '/a/x/b', true],
    ['/a/**/b', '/a/x/y/b', true],
    ['/a/**/b', '/a/xb', false],
    ['/a/**/b', '/ab', false],
    ['/**/*.js', '/a.js', true],
    ['/**/*.js', '/a/b/c.js', true],
    ['/**', '/', true],
    ['/**', '/anything/at/all', true],
    ['/a/**/**/b', '/a/b', true], // repeated `**/` still allows zero segments
    ['/a/**/**/b', '/a/x/b', true],
    ['/a**', '/abc/d', true], // `**` crosses segments even inside one
    ['/?', '/a', true],
    ['/?', '/', false],
    ['/a?c', '/a/c', false], // `?` does not match `/`
    // a `/` elsewhere: anchored at the root, leading `/` implied
    ['assets/*.css', '/assets/site.css', true],
    ['assets/*.css', '/x/assets/site.css', false],
    ['**/node_modules/**', '/node_modules/x', true],
    ['**/node_modules/**', '/a/b/node_modules/x/y', true],
    ['**/node_modules/**', '/a/node_modulesx/y', false],
    // braces
    ['/{a,b}/x', '/a/x', true],
    ['/{a,b}/x', '/b/x', true],
    ['/{a,b}/x', '/c/x', false],
    ['/{a,b}/x', '/{a,b}/x', false],
    ['/x.{png,jp{e,}g}', '/x.jpeg', true], // nested
    ['/x.{png,jp{e,}g}', '/x.jpg', true],
    ['/x.{png,jp{e,}g}', '/x.jpgg', false],
    ['/{*.js,docs/**}', '/a.js', true],
    ['/{*.js,docs/**}', '/docs/a/b.md', true],
    ['/{*.js,docs/**}', '/src/a.js', false],
    ['/x/{**/a,b}', '/x/a', true],
    ['/x/{**/a,b}', '/x/y/z/a', true],
    ['/{,a}b', '/b', true],
    ['/{,a}b', '/ab', true],
    ['/{a', '/{a', true], // unclosed: literal
    ['/a}', '/a}', true],
    // classes
    ['/[abc].txt', '/b.txt', true],
    ['/[abc].txt', '/d.txt', false],
    ['/[a-c].txt', '/c.txt', true],
    ['/[a-c].txt', '/-.txt', false],
    ['/[!a-c].txt', '/d.txt', true],
    ['/[!a-c].txt', '/a.txt', false],
    ['/[^a].txt', '/b.txt', true],
    ['/[!a]', '//', false], // a class never matches `/`
    ['/a[/]b', '/a/b', false],
    ['/[a-]', '/-', true],
    ['/[-a]', '/-', true],
    ['/[]a]', '/]', true],
    ['/[\\]]', '/]', true],
    ['/[^]', '/^', false], // unclosed after negation: literal `[^]`
    ['/[^]', '/[^]', true],
    ['/[ab', '/[ab', true], // unclosed: literal
    ['/x[.]y', '/x.y', true],
    ['/x[.]y', '/xzy', false],
    // escapes and RegExp metacharacters are literal
    ['/a\\*b', '/a*b', true],
    ['/a\\*b', '/axb', false],
    ['/a\\?', '/a?', true],
    ['/(x)+$^|.', '/(x)+$^|.', true],
    ['/a+', '/aa', false],
    ['/é/*', '/é/ü', true],
    ['/?', '/😀', true], // one code point
    ['/a b', '/a b', true],
    ['/A', '/a', false], // case-sensitive
  ]
  for (const [pattern, path, expected] of cases) {
    assert.equal(compileGlob(pattern)(path), expected, `${pattern} ~ ${path}`)
  }
})

test('compileGlob throws on a reversed class range', () => {
  assert.throws(() => compileGlob('/[z-a]'), SyntaxError)
})

test('property: a glob without metacharacters matches exactly itself', () => {
  const segment = fc.stringMatching(/^[a-zA-Z0-9._~()+$^|-]{1,8}$/)
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.array(segment, { minLength: 1, maxLength: 4 }), (a, b) => {
      const p = '/' + a.join('/')
      const q = '/' + b.join('/')
      assert.equal(compileGlob(p)(q), p === q)
    }),
    { numRuns: 500 },
  )
})

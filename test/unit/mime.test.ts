import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isCompressible, mimeType } from '../../src/http/mime.ts'

test('mimeType', () => {
  const cases: Array<[string, string]> = [
    ['/index.html', 'text/html; charset=utf-8'],
    ['/a/page.htm', 'text/html; charset=utf-8'],
    ['/site.css', 'text/css; charset=utf-8'],
    ['/app.js', 'text/javascript; charset=utf-8'],
    ['/app.mjs', 'text/javascript; charset=utf-8'],
    ['/data.json', 'application/json; charset=utf-8'],
    ['/app.js.map', 'application/json; charset=utf-8'],
    ['/notes.txt', 'text/plain; charset=utf-8'],
    ['/logo.svg', 'image/svg+xml; charset=utf-8'],
    ['/feed.xml', 'application/xml; charset=utf-8'],
    ['/README.md', 'text/markdown; charset=utf-8'],
    ['/table.csv', 'text/csv; charset=utf-8'],
    ['/site.webmanifest', 'application/manifest+json; charset=utf-8'],
    ['/a.png', 'image/png'],
    ['/a.jpg', 'image/jpeg'],
    ['/a.jpeg', 'image/jpeg'],
    ['/a.gif', 'image/gif'],
    ['/a.webp', 'image/webp'],
    ['/a.avif', 'image/avif'],
    ['/favicon.ico', 'image/x-icon'],
    ['/f.woff', 'font/woff'],
    ['/f.woff2', 'font/woff2'],
    ['/f.ttf', 'font/ttf'],
    ['/f.otf', 'font/otf'],
    ['/v.mp4', 'video/mp4'],
    ['/v.webm', 'video/webm'],
    ['/s.mp3', 'audio/mpeg'],
    ['/s.ogg', 'audio/ogg'],
    ['/s.wav', 'audio/wav'],
    ['/doc.pdf', 'application/pdf'],
    ['/a.zip', 'application/zip'],
    ['/a.tar.gz', 'application/gzip'],
    ['/app.js.gz', 'application/gzip'],
    ['/app.js.br', 'application/x-brotli'],
    ['/m.wasm', 'application/wasm'],
    ['/INDEX.HTML', 'text/html; charset=utf-8'], // extensions are case-insensitive
    ['/Photo.JPG', 'image/jpeg'],
    ['/unknown.xyz', 'application/octet-stream'],
    ['/Makefile', 'application/octet-stream'],
    ['/.htaccess', 'application/octet-stream'], // a dotfile has no extension
    ['/dir.d/file', 'application/octet-stream'], // the dot is in a directory name
    ['/trailing.', 'application/octet-stream'],
    ['/', 'application/octet-stream'],
    ['', 'application/octet-stream'],
    ['/x.constructor', 'application/octet-stream'], // not an Object.prototype property
    ['/x.__proto__', 'application/octet-stream'],
    ['styles.css', 'text/css; charset=utf-8'],
  ]
  for (const [path, expected] of cases) assert.equal(mimeType(path), expected, path)
})

test('isCompressible', () => {
  const cases: Array<[string, boolean]> = [
    ['text/html; charset=utf-8', true],
    ['text/css', true],
    ['text/plain', true],
    ['TEXT/PLAIN; charset=UTF-8', true],
    ['text/javascript; charset=utf-8', true],
    ['application/javascript', true],
    ['application/json; charset=utf-8', true],
    ['application/ld+json', true],
    ['application/manifest+json; charset=utf-8', true],
    ['application/xml', true],
    ['application/atom+xml', true],
    ['image/svg+xml; charset=utf-8', true],
    ['application/wasm', true],
    ['font/ttf', true],
    ['font/otf', true],
    ['application/vnd.ms-fontobject', true],
    [' application/json ', true],
    ['image/png', false],
    ['image/jpeg', false],
    ['image/webp', false],
    ['image/avif', false],
    ['video/mp4', false],
    ['audio/mpeg', false],
    ['application/zip', false],
    ['application/gzip', false],
    ['application/x-brotli', false],
    ['font/woff', false],
    ['font/woff2', false],
    ['application/pdf', false],
    ['application/octet-stream', false],
    ['', false],
  ]
  for (const [type, expected] of cases) assert.equal(isCompressible(type), expected, type)
})

test('every text type from mimeType is compressible, and has a charset', () => {
  for (const ext of ['html', 'css', 'js', 'mjs', 'json', 'txt', 'svg', 'xml', 'md', 'csv', 'webmanifest', 'map']) {
    const type = mimeType(`/f.${ext}`)
    assert.ok(type.endsWith('; charset=utf-8'), ext)
    assert.ok(isCompressible(type), ext)
  }
})

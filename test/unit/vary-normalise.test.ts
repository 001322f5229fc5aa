import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Headers } from '../../src/http/cache-control.ts'
import { varyKey } from '../../src/http/freshness.ts'
import { varyOf } from '../../src/http/cache-key.ts'

/**
 * Vary normalisation (RFC 9111 §4.1): two requests select the same stored
 * variant when their nominated fields differ only in ways the fields' syntax
 * says carry no meaning.
 */

const key = (field: string, value: string | string[] | undefined) => varyKey(field, value === undefined ? {} : ({ [field.toLowerCase()]: value } as Headers))
const same = (field: string, a: string | string[], b: string | string[]) => assert.equal(key(field, a), key(field, b), `${field}: ${JSON.stringify(a)} = ${JSON.stringify(b)}`)
const differ = (field: string, a: string | string[] | undefined, b: string | string[] | undefined) =>
  assert.notEqual(key(field, a), key(field, b), `${field}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`)

test('Accept-Encoding: order, whitespace, case, duplicates, lines and q=1 carry no meaning', () => {
  same('Accept-Encoding', 'gzip, br', 'br,gzip')
  same('Accept-Encoding', 'gzip, br', 'gzip,br')
  same('Accept-Encoding', 'gzip, br', ['br', 'gzip'])
  same('Accept-Encoding', 'gzip, br', 'GZIP, Br')
  same('Accept-Encoding', 'gzip, br', 'gzip, br, gzip')
  same('Accept-Encoding', 'gzip, br', 'gzip;q=1, br;q=1.000')
  same('Accept-Encoding', 'gzip, br', 'gzip , ,br,')
  same('Accept-Encoding', 'gzip;q=0.5, br', 'br;Q=1.0, gzip ; q=0.50')
  same('Accept-Encoding', 'gzip;q=0, br', 'br, gzip;q=0.000')
  assert.equal(key('Accept-Encoding', 'br;q=0.80, GZIP'), 'accept-encoding:br;q=0.8,gzip')
  differ('Accept-Encoding', 'gzip, br', 'gzip')
  differ('Accept-Encoding', 'gzip;q=0.5, br', 'gzip, br;q=0.5')
  differ('Accept-Encoding', 'gzip', 'gzip;q=0')
  differ('Accept-Encoding', '', undefined) // empty (identity only) is not absent (anything)
})

test('Accept-Encoding: the same coding with different weights keeps its order (first or last may win)', () => {
  differ('Accept-Encoding', 'gzip, gzip;q=0', 'gzip;q=0, gzip')
  differ('Accept-Encoding', 'gzip, gzip;q=0, gzip', 'gzip, gzip;q=0')
  same('Accept-Encoding', 'GZIP, gzip;q=0', 'gzip,gzip;q=0.0')
})

test('Accept-Charset: like Accept-Encoding, charsets are case-insensitive and unordered', () => {
  same('Accept-Charset', 'utf-8, ISO-8859-1;q=0.5', 'iso-8859-1;q=0.500,UTF-8')
  differ('Accept-Charset', 'utf-8', 'utf-8, iso-8859-1')
})

test('Accept: media types and parameter names are case-insensitive, parameter values are not', () => {
  same('Accept', 'text/html, application/json;q=0.9', 'application/json; q=0.90,Text/HTML')
  same('Accept', 'text/html;level=1', 'TEXT/html ; Level=1')
  same('Accept', 'text/html;level="1"', 'text/html;level=1') // quoted and unquoted tokens are equivalent (RFC 9110 §5.6.6)
  same('Accept', ['text/html', '*/*;q=0.8'], '*/*;q=0.8, text/html')
  differ('Accept', 'text/html;charset=UTF-8', 'text/html;charset=utf-8')
  differ('Accept', 'text/html;a=1;b=2', 'text/html;b=2;a=1')
  differ('Accept', 'text/html', 'text/html;level=1')
  // a comma inside a quoted parameter value does not split the list
  assert.equal(key('Accept', 'text/x;p="a, b", text/html'), 'accept:text/html,text/x;p="a, b"')
})

test('Accept-Language: q-values order the ranges; among equal weights the order is kept (RFC 9110 §12.5.4)', () => {
  same('Accept-Language', 'en-US, fr;q=0.5', 'fr;q=0.50, EN-us')
  same('Accept-Language', 'de, en;q=0.8, fr;q=0.5', ['fr;q=0.5', 'de', 'en;q=0.8'])
  same('Accept-Language', 'en,fr', 'EN , Fr, en')
  differ('Accept-Language', 'en, fr', 'fr, en')
  differ('Accept-Language', 'en', 'en-US')
  assert.equal(key('Accept-Language', 'fr;q=0.5, en-GB, de;q=0.9, en'), 'accept-language:en-gb,en,de;q=0.9,fr;q=0.5')
})

test('Access-Control-Request-Headers is a set of case-insensitive field names', () => {
  same('Access-Control-Request-Headers', 'Content-Type, X-Trace', 'x-trace,content-type')
  differ('Access-Control-Request-Headers', 'content-type', 'content-type, x-trace')
})

test('a field of unknown syntax is compared as it came, lines combined and the ends trimmed', () => {
  same('X-Device', 'phone', '  phone ')
  same('X-Device', ['a', 'b'], 'a, b')
  differ('X-Device', 'a, b', 'a,b')
  differ('X-Device', 'a, b', 'b, a')
  differ('X-Device', 'Phone', 'phone')
  differ('Cookie', 'a=1; b=2', 'b=2; a=1')
  differ('Origin', 'https://a.test', 'https://A.test')
  differ('X-Device', '', undefined)
})

test('varyOf: the nominated field names, lowercased, deduplicated and sorted (field names are case-insensitive, RFC 9110 §5.1)', () => {
  assert.equal(varyOf({ vary: 'Accept-Encoding' }), 'accept-encoding')
  assert.equal(varyOf({ vary: ['Accept-Language', 'accept-encoding, ACCEPT-LANGUAGE'] }), 'accept-encoding, accept-language')
  assert.equal(varyOf({ vary: 'Accept-Language,Accept-Encoding' }), varyOf({ vary: 'accept-encoding, accept-language' }))
  assert.equal(varyOf({ vary: 'Origin, *' }), '*')
  assert.equal(varyOf({}), undefined)
})

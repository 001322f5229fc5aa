import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

/**
 * The import rules of docs/architecture.md, checked on the sources:
 *   node --test test/unit/layers.test.ts
 * Each rule lists the files that break it, with the import that does.
 */

const SRC = path.resolve(import.meta.dirname, '../../src')

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : []
  })
}

interface Import {
  file: string
  /** src-relative for project files (`core/context.ts`), the specifier otherwise (`node:fs`). */
  target: string
  typeOnly: boolean
}

const imports: Import[] = sources(SRC).flatMap((file) => {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/^(?:import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'/gm)].map((m) => {
    const spec = m[2]!
    const target = spec.startsWith('.') ? path.relative(SRC, path.resolve(path.dirname(file), spec)) : spec
    return { file: path.relative(SRC, file), target, typeOnly: m[1] !== undefined }
  })
})

function breaking(from: (f: string) => boolean, to: (i: Import) => boolean): string[] {
  return imports.filter((i) => from(i.file) && to(i)).map((i) => `${i.file} imports ${i.target}`)
}

const under = (dir: string) => (p: string) => p.startsWith(dir + '/')

test('http/ holds pure helpers: no I/O modules, nothing from the rest of Edgebox', () => {
  const io = /^node:(fs|fs\/promises|net$|http2|https|tls|dns|dgram|child_process|worker_threads|stream)/
  assert.deepEqual(
    breaking(under('http'), (i) => (!i.target.startsWith('node:') && !i.target.startsWith('http/') && i.target.includes('/')) || (io.test(i.target) && i.target !== 'node:net')),
    [],
  )
  // node:net only for its pure parts (isIP, BlockList), never a socket
  const text = sources(path.join(SRC, 'http')).map((f) => readFileSync(f, 'utf8')).join('\n')
  assert.doesNotMatch(text, /\b(createConnection|createServer|connect)\(/)
})

test('core/ does not import the security filters, the handler modules or the server', () => {
  assert.deepEqual(
    breaking(under('core'), (i) => under('modules')(i.target) || under('server')(i.target) || under('security')(i.target)),
    [],
  )
})

test('filter modules reach core only through its contract (types, context, errors, clock, origin policy, secrets, rate-limit buckets)', () => {
  const contract = new Set(['core/types.ts', 'core/context.ts', 'core/errors.ts', 'core/clock.ts', 'core/origin.ts', 'core/secrets.ts', 'core/rate-limit-store.ts'])
  assert.deepEqual(
    breaking(under('modules/security'), (i) => under('core')(i.target) && !contract.has(i.target)),
    [],
  )
})

test('handler modules do not import each other, except through the shared cache and body helpers', () => {
  const moduleOf = (p: string) => p.split('/')[1]
  const shared = new Set(['cache', 'proxy']) // the forward proxy reuses the proxy's Exchange; the proxy owns its cache
  assert.deepEqual(
    breaking((f) => under('modules')(f) && f.split('/').length > 2, (i) => under('modules')(i.target) && moduleOf(i.target) !== moduleOf(i.file) && moduleOf(i.target) !== undefined && !shared.has(moduleOf(i.target)!)),
    [],
  )
})

test('dns/ holds the DNS server, resolver and client: it never imports the HTTP server or the handler modules', () => {
  assert.deepEqual(
    breaking(under('dns'), (i) => under('server')(i.target) || under('modules')(i.target) || under('cli')(i.target)),
    [],
  )
})

test('auth/ (single sign-on) never imports the HTTP server, the handler modules or the CLI', () => {
  assert.deepEqual(
    breaking(under('auth'), (i) => under('server')(i.target) || under('modules')(i.target) || under('cli')(i.target)),
    [],
  )
})

test('handler modules reach auth/ only for its rules (a channel rule names claims as a route rule does), and the identity provider kind for its provider', () => {
  assert.deepEqual(
    breaking(under('modules'), (i) => under('auth')(i.target) && i.target !== 'auth/rules.ts' && !(under('modules/idp')(i.file) && under('auth/idp')(i.target))),
    [],
  )
})

test('rum/ (real-user monitoring) never imports the HTTP server, the handler modules or the CLI', () => {
  assert.deepEqual(
    breaking(under('rum'), (i) => under('server')(i.target) || under('modules')(i.target) || under('cli')(i.target)),
    [],
  )
})

test('admin/ (the admin listener) never imports the HTTP server, the handler modules or the CLI: the server hands it what it shows', () => {
  assert.deepEqual(
    breaking(under('admin'), (i) => under('server')(i.target) || under('modules')(i.target) || under('cli')(i.target)),
    [],
  )
})

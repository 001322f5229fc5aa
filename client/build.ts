/**
 * Builds the realtime client (client/realtime.ts) for its three audiences:
 *
 *   dist/client/realtime.js + .d.ts     the package's `edgebox/realtime` export (ES module)
 *   lab/www/assets/edgebox-realtime.mjs the same module, for pages: import { connect } from '/assets/edgebox-realtime.mjs'
 *   lab/www/assets/edgebox-realtime.js  a plain script for any HTML page: window.EdgeboxRealtime.connect(...)
 *
 * It first type-checks the file as browser code (the DOM and ES libraries
 * only, no Node types), so a `node:` import or a Node-only global fails the
 * build. The client has no imports, so no bundler is needed: TypeScript's
 * own emitter does it all. Run: node client/build.ts (npm run build:client;
 * `prepare` runs it too).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSync } from 'esbuild'
import ts from 'typescript'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const source = path.join(root, 'client', 'realtime.ts')
const rumSource = path.join(root, 'client', 'rum.ts')
const distDir = path.join(root, 'dist', 'client')
const assets = path.join(root, 'lab', 'www', 'assets')

/** Modern browsers and Node 24 alike (private fields, ??=, optional chaining stay as they are). */
const target = ts.ScriptTarget.ES2022

function fail(diagnostics: readonly ts.Diagnostic[]): never {
  const host: ts.FormatDiagnosticsHost = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host))
  process.exit(1)
}

/** Type-checks realtime.ts and rum.ts as browser code and emits dist/client/{realtime,rum}.{js,d.ts}. */
function buildModule(): void {
  const program = ts.createProgram([source, rumSource], {
    target,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2024.d.ts', 'lib.dom.d.ts'],
    types: [],
    strict: true,
    erasableSyntaxOnly: true,
    skipLibCheck: true,
    declaration: true,
    outDir: distDir,
    rootDir: path.dirname(source),
  })
  const pre = ts.getPreEmitDiagnostics(program)
  if (pre.length > 0) fail(pre)
  const result = program.emit()
  if (result.emitSkipped || result.diagnostics.length > 0) fail(result.diagnostics)
}

function transpile(module: ts.ModuleKind): string {
  const out = ts.transpileModule(readFileSync(source, 'utf8'), {
    fileName: source,
    reportDiagnostics: true,
    compilerOptions: { target, module, removeComments: false },
  })
  if (out.diagnostics && out.diagnostics.length > 0) fail(out.diagnostics)
  return out.outputText
}

const banner = '// Edgebox realtime client, generated from client/realtime.ts by client/build.ts: edit that file, not this one.\n'

/** The ES module for pages. */
export function buildPageModule(): string {
  return banner + transpile(ts.ModuleKind.ES2022)
}

/**
 * The plain script: the CommonJS form of the module run inside a function
 * with its own `exports`, which then becomes window.EdgeboxRealtime.
 */
export function buildScript(): string {
  const body = transpile(ts.ModuleKind.CommonJS)
  return `${banner}// Usage: <script src="/assets/edgebox-realtime.js"></script> then EdgeboxRealtime.connect('/live/')\n(function () {\n'use strict';\nvar exports = {};\n${body}\nglobalThis.EdgeboxRealtime = Object.freeze(exports);\n})();\n`
}

const rumBanner = '/* Edgebox RUM SDK, built from client/rum.ts by client/build.ts (bundles web-vitals, Apache-2.0, Google LLC). */'

/** esbuild's bundle of `contents` (TypeScript, resolved from client/), minified. */
function bundle(contents: string, format: 'esm' | 'iife', globalName?: string): string {
  const out = buildSync({
    stdin: { contents, resolveDir: path.dirname(rumSource), sourcefile: 'edgebox-rum-entry.ts', loader: 'ts' },
    bundle: true,
    write: false,
    format,
    globalName,
    minify: true,
    target: 'es2022',
    platform: 'browser',
    legalComments: 'none',
    banner: { js: rumBanner },
    logLevel: 'silent',
  })
  return out.outputFiles[0]!.text
}

/** The RUM SDK as an ES module for pages (web-vitals bundled in). */
export function buildRumPageModule(): string {
  return bundle("export * from './rum.ts'\n", 'esm')
}

/**
 * The RUM SDK as a plain script: window.EdgeboxRum, initialised from its
 * <script> element's data- attributes (unless data-manual).
 */
export function buildRumScript(): string {
  return bundle("export * from './rum.ts'\nimport { initFromScript } from './rum.ts'\ninitFromScript(document.currentScript)\n", 'iife', 'EdgeboxRum')
}

/** Writes both RUM page builds to lab/www/assets (or `dir`); returns their paths. */
export function writeRumAssets(dir = assets): { module: string; script: string } {
  mkdirSync(dir, { recursive: true })
  const files = { module: path.join(dir, 'edgebox-rum.mjs'), script: path.join(dir, 'edgebox-rum.js') }
  writeFileSync(files.module, buildRumPageModule())
  writeFileSync(files.script, buildRumScript())
  return files
}

/**
 * The monitoring lab's demo shop (client/lab/shop.ts), minified with its
 * source map beside it, as a site's bundler makes them: the lab page throws
 * from it, and Edgebox maps the collected stack back with the map it keeps
 * from browsers (`rum.serveMaps` is off). The map names its source
 * `src/shop.ts`, so mapped frames read `/lab/src/shop.ts:line:column`.
 */
export function writeLabShop(dir = path.join(root, 'lab', 'www', 'lab')): { script: string; map: string } {
  const out = buildSync({
    entryPoints: [path.join(root, 'client', 'lab', 'shop.ts')],
    bundle: true,
    format: 'esm',
    minify: true,
    sourcemap: 'linked',
    sourcesContent: true,
    outfile: path.join(dir, 'shop.min.js'),
    write: false,
    target: 'es2022',
    legalComments: 'none',
  })
  const files = { script: path.join(dir, 'shop.min.js'), map: path.join(dir, 'shop.min.js.map') }
  for (const f of out.outputFiles) {
    if (f.path.endsWith('.map')) {
      const map = JSON.parse(f.text) as { sources: string[] }
      map.sources = map.sources.map(() => 'src/shop.ts')
      writeFileSync(files.map, JSON.stringify(map))
    } else writeFileSync(files.script, f.text)
  }
  return files
}

function main(): void {
  buildModule()
  mkdirSync(assets, { recursive: true })
  writeFileSync(path.join(assets, 'edgebox-realtime.mjs'), buildPageModule())
  writeFileSync(path.join(assets, 'edgebox-realtime.js'), buildScript())
  process.stdout.write(`realtime client: ${path.relative(root, distDir)}/realtime.{js,d.ts}, lab/www/assets/edgebox-realtime.{mjs,js}\n`)
  writeRumAssets()
  writeLabShop()
  process.stdout.write(`rum sdk: ${path.relative(root, distDir)}/rum.{js,d.ts}, lab/www/assets/edgebox-rum.{mjs,js}\n`)
}

// Imported (by the browser test, for the page builds), it only exports.
if (import.meta.main) main()

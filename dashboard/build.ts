/**
 * Builds the dashboard (dashboard/, a Vue 3 app) into dist/dashboard: the
 * index.html and its hashed assets that the admin listener serves at its
 * root with the SPA fallback (docs/admin.md). Run: node dashboard/build.ts
 * (npm run build:dashboard; `prepare` runs it too).
 *
 * Before Vite builds, the app's TypeScript modules are type-checked as
 * browser code (the DOM and ES libraries, no Node types): Vite only strips
 * types. After, the output is checked against the strict Content Security
 * Policy the admin listener sends (`script-src 'self'; style-src 'self'`):
 * an inline `<script>`, `<style>` or `style=` in index.html fails the build,
 * as would an asset turned into a `data:` URL other than an image.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const here = path.dirname(fileURLToPath(import.meta.url))
export const DASHBOARD_OUT = path.join(here, '..', 'dist', 'dashboard')

/** The app's .ts files, with the shim that types `import X from './X.vue'`. */
function sources(): string[] {
  const src = path.join(here, 'src')
  const out = [path.join(here, 'env.d.ts')]
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.ts')) out.push(p)
    }
  }
  walk(src)
  return out
}

/** Type-checks the app's modules as browser code; throws with the diagnostics. */
export function typecheck(): void {
  const program = ts.createProgram(sources(), {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2024.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: [],
    strict: true,
    erasableSyntaxOnly: true,
    verbatimModuleSyntax: true,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
    noEmit: true,
  })
  const diagnostics = ts.getPreEmitDiagnostics(program)
  if (diagnostics.length === 0) return
  const host: ts.FormatDiagnosticsHost = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => here, getNewLine: () => '\n' }
  throw new Error(`the dashboard does not type-check:\n${ts.formatDiagnostics(diagnostics, host)}`)
}

/** Throws when the built index.html would need anything the strict CSP refuses. */
export function checkCsp(dir = DASHBOARD_OUT): void {
  const html = readFileSync(path.join(dir, 'index.html'), 'utf8')
  const problems: string[] = []
  if (/<script(?![^>]*\ssrc=)[^>]*>/i.test(html)) problems.push('an inline <script>')
  if (/<style[\s>]/i.test(html)) problems.push('an inline <style>')
  if (/\sstyle=/i.test(html)) problems.push('a style= attribute')
  if (/\son[a-z]+=/i.test(html)) problems.push('an inline event handler')
  const assets = readdirSync(path.join(dir, 'assets'))
  for (const name of assets.filter((n) => n.endsWith('.css'))) {
    if (/url\(\s*['"]?data:(?!image\/)/i.test(readFileSync(path.join(dir, 'assets', name), 'utf8'))) problems.push(`a non-image data: URL in ${name}`)
  }
  if (!assets.some((n) => n.endsWith('.js'))) problems.push('no script in assets/')
  if (problems.length > 0) throw new Error(`dist/dashboard/index.html breaks the strict CSP: ${problems.join(', ')}`)
}

/** Type-checks, builds with Vite (dashboard/vite.config.ts) into dist/dashboard, and checks the result. */
export async function buildDashboard(): Promise<string> {
  typecheck()
  const { build } = await import('vite')
  await build({ configFile: path.join(here, 'vite.config.ts'), logLevel: 'warn' })
  checkCsp()
  return DASHBOARD_OUT
}

if (import.meta.main) {
  try {
    const out = await buildDashboard()
    process.stdout.write(`dashboard: ${path.relative(process.cwd(), out) || '.'}/index.html and assets/\n`)
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`)
    process.exit(1)
  }
}

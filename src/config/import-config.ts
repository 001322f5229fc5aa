import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { registerHooks } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/**
 * Importing a `.ts`, `.mts`, `.js` or `.mjs` configuration as an ES module,
 * whatever the `type` of the project it lives in, and saying precisely why
 * when it cannot be imported.
 *
 * A configuration is an ES module (`export default defineConfig(...)`), but
 * Node decides a `.ts` or `.js` file's format from the nearest package.json:
 * in a default `npm init -y` project (`"type": "commonjs"`) it would read the
 * file as CommonJS and fail on `import`/`export`. A synchronous module hook
 * (`module.registerHooks`, in-thread) tells Node the format of exactly the
 * configuration file and nothing else. It is the cleanest of the ways to do
 * this: the file is imported from where it is, so `import ... from 'edgebox'`
 * and relative imports resolve from the configuration's folder exactly as
 * the user expects; nothing is written next to the user's files (a temporary
 * `.mts` copy would be, and would leak on a crash); a `data:` URL cannot
 * resolve bare or relative specifiers at all; and no loader thread or
 * command-line flag is needed. Modules the configuration imports keep Node's
 * usual rules.
 */

/** Configuration files to import as ES modules: path -> the format Node is told. */
const forced = new Map<string, 'module' | 'module-typescript'>()
let hooked = false

function hookOnce(): void {
  if (hooked) return
  hooked = true
  registerHooks({
    load(url, context, nextLoad) {
      if (url.startsWith('file:')) {
        const format = forced.get(fileURLToPath(url.replace(/[?#].*$/, '')))
        if (format) return nextLoad(url, { ...context, format })
      }
      return nextLoad(url, context)
    },
  })
}

/**
 * Imports the configuration module at `abs`; `search` (e.g. `?load=2`) makes
 * Node read it again. Throws a ConfigLoadError whose message says why.
 */
export async function importConfig(abs: string, search: string): Promise<{ default?: unknown }> {
  const ext = path.extname(abs)
  // .mts and .mjs are ES modules by their extension already
  if (ext === '.ts') forced.set(abs, 'module-typescript')
  else if (ext === '.js') forced.set(abs, 'module')
  hookOnce()
  const url = pathToFileURL(abs)
  url.search = search
  try {
    return (await import(url.href)) as { default?: unknown }
  } catch (err) {
    throw new ConfigLoadError(await describeImportError(err, abs))
  }
}

export class ConfigLoadError extends Error {}

/** What went wrong importing the configuration, in one line naming the module or file, line and column. */
async function describeImportError(err: unknown, abs: string): Promise<string> {
  const e = err as NodeJS.ErrnoException
  if (e?.code === 'ERR_MODULE_NOT_FOUND') {
    const m = /Cannot find (?:package|module) '([^']+)' imported from (.+)$/.exec(e.message)
    if (m) return `module "${m[1]}" not found (imported from ${m[2]})`
  }
  if (e instanceof SyntaxError) {
    // TypeScript syntax errors carry their place in the stack; a JavaScript
    // module's SyntaxError carries none, so the file is checked on its own to find it
    const where = syntaxErrorPlace(e.stack ?? '') ?? (path.extname(abs).endsWith('js') ? await checkSyntax(abs) : null)
    if (where) return `syntax error at ${where.file}:${where.line}:${where.column}: ${e.message}`
    return `syntax error: ${e.message}`
  }
  return e instanceof Error ? e.message : String(err)
}

interface Place {
  file: string
  line: number
  column: number
}

/** Node's "file:line / source line / ^^^" heading of a syntax error, as file, line and column (1-based). */
function syntaxErrorPlace(text: string, file?: string): Place | null {
  // the source lines shown may include some before the faulty one; the carets sit under it
  const m = /^(.+):(\d+)\n(?:.*\n)*?([ \t]*)\^+[ \t]*$/m.exec(text)
  if (!m) return null
  const at = m[1]!.replace(/[?#].*$/, '')
  return { file: file ?? (at.startsWith('file:') ? fileURLToPath(at) : at), line: Number(m[2]), column: m[3]!.length + 1 }
}

/** Where the JavaScript module `abs` has its first syntax error, from `node --check`; null when it parses. */
async function checkSyntax(abs: string): Promise<Place | null> {
  let source: string
  try {
    source = await readFile(abs, 'utf8')
  } catch {
    return null
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--check', '--input-type=module', '-'], { stdio: ['pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', () => resolve(null))
    child.on('close', () => resolve(syntaxErrorPlace(stderr, abs)))
    child.stdin.on('error', () => {})
    child.stdin.end(source)
  })
}

import { access, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { z } from 'zod'
import { ConfigError } from '../core/errors.ts'
import { ConfigLoadError, importConfig } from './import-config.ts'
import { configSchema, type EdgeboxConfig, type EdgeboxConfigInput } from './schema.ts'

/** `['sites', 0, 'routes', 2, 'static', 'root']` -> `sites[0].routes[2].static.root` */
export function formatPath(p: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k)
  return out || '(root)'
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path)
  if (issue.code === 'unrecognized_keys') return `${where}: unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  if (issue.code === 'invalid_union' && issue.errors.length) {
    // report the most specific branch
    const inner = issue.errors.flat().sort((a, b) => b.path.length - a.path.length)[0]
    if (inner) return describeIssue({ ...inner, path: [...issue.path, ...inner.path] })
  }
  return `${where}: ${issue.message}`
}

/**
 * Validates a configuration object; throws a ConfigError listing every
 * problem with its path. The result is frozen, all the way down: it is
 * checked once here and then only read, so nothing can change a value after
 * the check that made it safe.
 */
export function validateConfig(input: unknown): EdgeboxConfig {
  const result = configSchema.safeParse(input)
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue))
  return deepFreeze(result.data)
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value
  for (const v of Object.values(value)) deepFreeze(v)
  return Object.freeze(value)
}

let loads = 0

/**
 * Loads `edgebox.config.ts|mts|js|mjs|json`: the default export (or the JSON
 * document). `.ts` and `.js` files are ES modules whatever the project's
 * `type` (./import-config.ts). Each call reads the file again (a reload sees its changes; the
 * modules it imports stay as first loaded).
 */
export async function loadConfigFile(file: string): Promise<EdgeboxConfigInput> {
  const abs = path.resolve(file)
  const ext = path.extname(abs)
  if (ext === '.json') {
    let text: string
    try {
      text = await readFile(abs, 'utf8')
    } catch (err) {
      throw new ConfigError([`${file}: cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? String(err)})`])
    }
    try {
      return JSON.parse(text) as EdgeboxConfigInput
    } catch (err) {
      throw new ConfigError([`${file}: not valid JSON (${(err as Error).message})`])
    }
  }
  if (!['.ts', '.mts', '.js', '.mjs'].includes(ext)) throw new ConfigError([`${file}: a configuration file is .ts, .mts, .js, .mjs or .json`])
  // a file that is not there is "not found"; any other failure says what failed
  try {
    await access(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError([code === 'ENOENT' ? `${file}: configuration file not found` : `${file}: cannot read the configuration file (${code ?? String(err)})`])
  }
  let mod: { default?: unknown }
  try {
    mod = await importConfig(abs, loads++ > 0 ? `?load=${loads}` : '')
  } catch (err) {
    if (err instanceof ConfigLoadError) throw new ConfigError([`${file}: cannot load the configuration: ${err.message}`])
    throw err
  }
  if (mod.default === undefined) throw new ConfigError([`${file}: the configuration file has no default export (export default defineConfig({...}))`])
  return mod.default as EdgeboxConfigInput
}

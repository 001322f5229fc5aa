/**
 * The public API of the `edgebox` package.
 *
 *   import { defineConfig } from 'edgebox'
 *   export default defineConfig({ sites: [{ routes: [{ path: '/', static: { root: './public' } }] }] })
 */
import type { EdgeboxConfigInput } from './config/schema.ts'

export type { EdgeboxConfig, EdgeboxConfigInput } from './config/schema.ts'
export { startEdgebox, type Edgebox } from './server/app.ts'
export { validateConfig } from './config/load.ts'

/** Returns its argument: it exists so editors type-check and autocomplete a configuration file. */
export function defineConfig(config: EdgeboxConfigInput): EdgeboxConfigInput {
  return config
}

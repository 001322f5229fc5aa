import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryRumStore, NO_EVENT_COLUMNS, openSqliteRumStore, type RumRow, type RumStore } from '../../src/rum/store.ts'
import { openWorkerRumStore } from '../../src/rum/worker-store.ts'

/** What the RUM store tests share: a row with every column, and every RumStore to run a contract on. */

/** A receive time the rows start from (ms since the epoch). */
export const T0 = 1_700_000_000_000

/** A `nav` row of page view `pv1` on `/`, every column set to its empty value: a test names what it is about. */
export const BASE_ROW: RumRow = Object.freeze({
  time: T0,
  offset: 0,
  pv: 'pv1',
  page: '/',
  release: null,
  env: null,
  cached: false,
  deviceClass: 'desktop',
  browser: 'chromium',
  country: null,
  address: '192.0.2.0',
  conn: null,
  kind: 'nav',
  ...NO_EVENT_COLUMNS,
})

/** BASE_ROW with `over`. */
export const rumRow = (over: Partial<RumRow> = {}): RumRow => ({ ...BASE_ROW, ...over })

/**
 * Every RumStore a contract runs on, each made in a fresh temporary folder
 * (removed by `cleanup`, which a test file calls in its `after`).
 */
export function rumStores(prefix: string): { stores: Array<{ name: string; make: () => Promise<RumStore> }>; tempDir(): string; cleanup(): void } {
  const dirs: string[] = []
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    dirs.push(dir)
    return dir
  }
  return {
    stores: [
      { name: 'MemoryRumStore', make: async () => new MemoryRumStore() },
      { name: 'SqliteRumStore', make: async () => openSqliteRumStore(tempDir()) },
      { name: 'WorkerRumStore', make: async () => openWorkerRumStore(tempDir()) },
    ],
    tempDir,
    cleanup: () => {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * A two-file program the symbolication tests bundle and minify: a click
 * handler calling `explode`, which throws. Its mapped stack names both
 * functions in their source files.
 */
export const SAMPLE_BOOM = `export function explode(label: string): never {
  const detail = label.toUpperCase()
  throw new Error(\`boom: \${detail}\`)
}
`
export const SAMPLE_MAIN = `import { explode } from './boom.ts'
function handleClick(which: string): void {
  explode(which)
}
export function start(): void {
  handleClick('go')
}
start()
`

import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import { DatabaseSync } from 'node:sqlite'
import path from 'node:path'

/**
 * Edgebox's data folder (docs/deploy.md): the one place that holds what it
 * must keep across restarts and upgrades: the local certificate authority
 * and its certificates, the ACME account and the certificates it obtained.
 * Everything in it is private to the user Edgebox runs as: folders 0700,
 * files 0600, each file written whole (a temporary file, flushed, then
 * renamed or linked into place), so a crash never leaves a half-written key.
 * It is never inside Edgebox's own package folder, which npm replaces on
 * every install.
 */

/** The folder Edgebox's package is installed in (or checked out in). */
const PACKAGE_DIR = path.resolve(import.meta.dirname, '..', '..')

/** The default data folder: $EDGEBOX_HOME, else $XDG_DATA_HOME/edgebox, else ~/.local/share/edgebox. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EDGEBOX_HOME) return path.resolve(env.EDGEBOX_HOME)
  if (env.XDG_DATA_HOME) return path.resolve(env.XDG_DATA_HOME, 'edgebox')
  return path.join(os.homedir(), '.local', 'share', 'edgebox')
}

/** The data folder a configuration names (`dataDir`, relative to the configuration's folder), else the default. */
export function resolveDataDir(configured: string | undefined, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return configured === undefined ? defaultDataDir(env) : path.resolve(baseDir, configured)
}

/** Why a folder cannot be the data folder, or null: it is (inside) Edgebox's package folder. */
export function dataDirProblem(dir: string): string | null {
  const rel = path.relative(PACKAGE_DIR, path.resolve(dir))
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    return `${dir} is inside Edgebox's package folder ${PACKAGE_DIR}, which npm replaces on every install; keep the data elsewhere (docs/deploy.md)`
  }
  return null
}

/**
 * Makes `dir` (and the folders to it that do not exist) with mode 0700 and
 * returns it. An existing folder that others can read or enter is made
 * private (chmod 0700) when it is this user's own; otherwise, and for
 * anything that is not a folder, it throws a message naming the path.
 */
export async function ensurePrivateDir(dir: string): Promise<string> {
  const problem = dataDirProblem(dir)
  if (problem) throw new Error(problem)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await stat(dir)
  if (!st.isDirectory()) throw new Error(`${dir} is not a folder`)
  if ((st.mode & 0o077) !== 0) {
    try {
      await chmod(dir, 0o700)
    } catch (err) {
      const mode = (st.mode & 0o777).toString(8)
      throw new Error(`${dir} can be read by other users (mode ${mode}) and cannot be made private (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run: chmod 700 ${dir}`)
    }
  }
  return dir
}

/** A file's text, or undefined when there is none. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Writes `data` to a new temporary file (mode 0600) beside `file`, flushed to disk, and returns its path. */
async function writeTemp(file: string, data: string): Promise<string> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (err) {
    await handle.close()
    await rm(tmp, { force: true })
    throw err
  }
  await handle.close()
  return tmp
}

/** Puts a complete private file (0600) at `file`, replacing what was there in one step. */
export async function writePrivateFile(file: string, data: string): Promise<void> {
  const tmp = await writeTemp(file, data)
  try {
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/**
 * Puts a complete private file (0600) at `file` only if there is none: a
 * hard link fails when the name exists, so a file another process created
 * meanwhile is never overwritten. Returns false when the file exists.
 */
export async function writeNewPrivateFile(file: string, data: string): Promise<boolean> {
  const tmp = await writeTemp(file, data)
  try {
    await link(tmp, file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    await rm(tmp, { force: true })
  }
}

/** How long, in ms, a connection `openPrivateDatabase` opens waits for another process's lock unless told otherwise. */
export const DEFAULT_BUSY_TIMEOUT_MS = 2000

export interface PrivateDatabaseOptions {
  /**
   * How long, in ms, a statement waits for another connection's lock before
   * failing with SQLITE_BUSY, "database is locked" (SQLite's busy_timeout,
   * https://sqlite.org/pragma.html#pragma_busy_timeout); 0: it fails at
   * once. node:sqlite is synchronous, so the wait holds the event loop: a
   * connection written to while requests are being served wants a short
   * one. Default DEFAULT_BUSY_TIMEOUT_MS.
   */
  readonly busyTimeout?: number
}

/**
 * Opens an SQLite database in the data folder as a private file: `file`
 * (in a folder `ensurePrivateDir` made) is created 0600 before SQLite opens
 * it, since SQLite would follow the umask, and SQLite gives its -wal and
 * -shm files the same mode; an existing file open to others is made 0600.
 * The connection waits up to `busyTimeout` ms (2 seconds by default) for
 * another process's lock. Each store checks its own schema version after.
 */
export async function openPrivateDatabase(file: string, opts: PrivateDatabaseOptions = {}): Promise<DatabaseSync> {
  const busyTimeout = opts.busyTimeout ?? DEFAULT_BUSY_TIMEOUT_MS
  // SQLite reads the pragma's value as a 32-bit int
  if (!Number.isInteger(busyTimeout) || busyTimeout < 0 || busyTimeout > 0x7fffffff) throw new RangeError(`busyTimeout is a whole number of ms from 0 to 2147483647, not ${busyTimeout}`)
  const handle = await open(file, constants.O_RDWR | constants.O_CREAT, 0o600)
  try {
    if (((await handle.stat()).mode & 0o077) !== 0) await handle.chmod(0o600)
  } finally {
    await handle.close()
  }
  const db = new DatabaseSync(file)
  try {
    db.exec(`PRAGMA busy_timeout = ${busyTimeout}`)
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

/**
 * Runs `fn` while holding `lock`, a file made with O_EXCL beside what it
 * guards, so read-modify-write cycles of several processes (the workers of
 * one machine) on one file take turns. A lock older than `stale` ms is left
 * by a process that died holding it and is taken over; waiting longer than
 * `wait` ms is an error naming the lock file.
 */
export async function withFileLock<T>(lock: string, fn: () => Promise<T>, opts: { wait?: number; stale?: number } = {}): Promise<T> {
  const wait = opts.wait ?? 10_000
  const stale = opts.stale ?? 30_000
  const end = Date.now() + wait
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600)
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const held = await stat(lock).catch(() => undefined)
    if (held !== undefined && Date.now() - held.mtimeMs > stale) {
      await rm(lock, { force: true })
      continue
    }
    if (Date.now() > end) throw new Error(`${lock} has been held by another process for more than ${Math.round(wait / 1000)} s; if no Edgebox is running, remove it`)
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 30))
  }
  try {
    return await fn()
  } finally {
    await rm(lock, { force: true })
  }
}

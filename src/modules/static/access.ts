import { realpath, stat } from 'node:fs/promises'
import path from 'node:path'

/**
 * Where a request path lands on disk, found before anything is read,
 * created or removed: links are followed with realpath, so a folder inside
 * the root that is a link to a folder outside it is seen for what it is.
 */
export interface Landing {
  /** The path on disk (links not followed). */
  readonly fsPath: string
  /** Whether the path itself exists (following links). */
  readonly exists: boolean
  /** The deepest part of the path that exists: the path itself, or its nearest existing ancestor. */
  readonly existing: string
  /** The names below `existing` that do not exist yet, outermost first (the last is the path's own name). */
  readonly missing: readonly string[]
  /**
   * Whether everything the path touches stays inside the root once links
   * are followed: its existing folder (where its entry lives or would be
   * created) and, when it exists, the path itself.
   */
  readonly inside: boolean
}

/** `rel` is a normalized request path below the route (`/a/b.txt`). */
export async function land(root: string, rootReal: string, rel: string): Promise<Landing> {
  const names = rel.split('/').filter((s) => s !== '')
  const fsPath = path.join(root, ...names)
  let real = await realOrNull(fsPath)
  let found = names.length
  if (real === null) {
    // Walk down from the root to the first name that does not exist: a
    // request for a deep made-up path stops at its first missing name.
    found = 0
    while (found < names.length && (await exists(path.join(root, ...names.slice(0, found + 1))))) found++
    real = await realOrNull(path.join(root, ...names.slice(0, found)))
  }
  let inside = within(real, rootReal)
  if (inside && found === names.length && found > 0) {
    // The path exists: its own folder must be inside too (a link out of the
    // root and back in lands inside, but its entry would live outside).
    inside = within(await realOrNull(path.dirname(fsPath)), rootReal)
  }
  return { fsPath, exists: found === names.length, existing: path.join(root, ...names.slice(0, found)), missing: names.slice(found), inside }
}

/** Whether a real (link-free) path is the root or below it. */
export function within(real: string | null, rootReal: string): boolean {
  if (real === null) return false
  return real === rootReal || real.startsWith(rootReal.endsWith(path.sep) ? rootReal : rootReal + path.sep)
}

export async function realOrNull(p: string): Promise<string | null> {
  try {
    return await realpath(p)
  } catch {
    return null
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}

import { realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import { httpError } from '../../core/errors.ts'

export interface PathRuleOptions {
  readonly root: string
  readonly rootReal: string
  /** Names starting with a dot: `ignore` (404), `deny` (403) or `allow`. `.well-known` is never hidden. */
  readonly dotfiles: 'ignore' | 'deny' | 'allow'
  /** Links leading outside the root: refused (`inside`) or followed (`follow`). */
  readonly symlinks: 'inside' | 'follow'
}

export interface Reach extends Landing {
  /** Whether clients may see the path at all; when false every method treats it as absent (404). */
  readonly visible: boolean
}

/**
 * The one rule for what a static route lets clients reach, applied the same
 * way to every method (GET and HEAD read through it, PUT and DELETE write
 * through it), so a name hidden from readers can be neither replaced nor
 * removed, and a link that leads out of the root is absent for all of them:
 * - a hidden dot name is answered at once, 404 (`ignore`) or 403 (`deny`),
 *   as for a GET;
 * - with `symlinks: 'inside'`, a path whose existing part leads outside the
 *   root once links are followed is not visible (404, as if it did not exist).
 * Uploads add their own limits on top (upload.ts): they never write outside
 * the root, not even with `symlinks: 'follow'`, and never write a dot name.
 */
export function createPathRule(opts: PathRuleOptions): (rel: string) => Promise<Reach> {
  const { root, rootReal, dotfiles, symlinks } = opts
  return async function reach(rel: string): Promise<Reach> {
    if (hiddenName(rel, dotfiles)) {
      throw dotfiles === 'deny' ? httpError('EB_ERR_FORBIDDEN', 'dotfiles are not served') : httpError('EB_ERR_NOT_FOUND')
    }
    const at = await land(root, rootReal, rel)
    return { ...at, visible: at.inside || symlinks === 'follow' }
  }
}

function hiddenName(rel: string, dotfiles: PathRuleOptions['dotfiles']): boolean {
  if (dotfiles === 'allow' || !rel.includes('/.')) return false
  return rel.split('/').some((seg) => seg.startsWith('.') && seg !== '.well-known')
}

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

import { redactSecrets } from '../config/redact.ts'

/**
 * What a reload or a load changed in the configuration, for the admin API's
 * `GET /api/v1/config/changes` (docs/admin.md): the options that differ, as
 * flattened JSON paths (`sites[0].routes[1].proxy.upstreams[0]`), each with
 * its value before and after, secrets redacted exactly as
 * `edgebox config --print` redacts them. A secret that changed shows as a
 * change from "<redacted>" to "<redacted>": the operator sees that and where
 * it changed, never what it is.
 */

/** One option that changed; `before` is absent for an option that was added, `after` for one that was removed. */
export interface DiffEntry {
  readonly path: string
  readonly before?: unknown
  readonly after?: unknown
}

/** One applied reload or load. */
export interface ConfigChange {
  /** When it was applied (ISO 8601). */
  readonly at: string
  /** What asked for it: `SIGHUP`, `api reload`, `api load`, `reload` (a program calling Edgebox.reload). */
  readonly source: string
  readonly diff: readonly DiffEntry[]
  /** Entries left out beyond MAX_DIFF (a configuration replaced wholesale). */
  readonly more?: number
}

/** The most entries one change keeps. */
export const MAX_DIFF = 500
/** The changes kept, newest last. */
export const MAX_CHANGES = 20

/** A leaf of the flattened configuration: what is shown (redacted), and what is compared (the real value, as JSON). */
interface Leaf {
  readonly shown: unknown
  readonly real: string
}

/**
 * Walks the redacted configuration and the real one side by side: the
 * redacted one decides the shape (a redacted secret is one leaf, whatever
 * it held), the real one what is compared.
 */
function flatten(shown: unknown, real: unknown, path: string, out: Map<string, Leaf>): void {
  if (Array.isArray(shown) && shown.length > 0) {
    const r = Array.isArray(real) ? real : []
    shown.forEach((v, i) => flatten(v, r[i], `${path}[${i}]`, out))
    return
  }
  if (shown !== null && typeof shown === 'object' && !Array.isArray(shown) && Object.keys(shown).length > 0) {
    const r = real !== null && typeof real === 'object' ? (real as Record<string, unknown>) : {}
    for (const [k, v] of Object.entries(shown)) {
      if (v === undefined) continue
      flatten(v, r[k], path ? `${path}.${k}` : k, out)
    }
    return
  }
  out.set(path, { shown, real: JSON.stringify(real) ?? 'undefined' })
}

/** The flattened leaves of a configuration (through JSON, as the API shows it). */
function leaves(config: unknown): Map<string, Leaf> {
  const real = JSON.parse(JSON.stringify(config ?? null)) as unknown
  const out = new Map<string, Leaf>()
  flatten(redactSecrets(real), real, '', out)
  return out
}

/** The options that differ between two configurations, in path order; secrets redacted. */
export function configDiff(before: unknown, after: unknown): { diff: DiffEntry[]; more: number } {
  const a = leaves(before)
  const b = leaves(after)
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort()
  const diff: DiffEntry[] = []
  let more = 0
  for (const path of paths) {
    const x = a.get(path)
    const y = b.get(path)
    if (x && y && x.real === y.real) continue
    if (diff.length >= MAX_DIFF) {
      more++
      continue
    }
    diff.push({ path, ...(x ? { before: x.shown } : {}), ...(y ? { after: y.shown } : {}) })
  }
  return { diff, more }
}

/** The last MAX_CHANGES changes, newest first when read. */
export class ChangeLog {
  private readonly kept: ConfigChange[] = []

  /** Records an applied configuration and returns its change. */
  record(source: string, before: unknown, after: unknown, at = Date.now()): ConfigChange {
    const { diff, more } = configDiff(before, after)
    const change: ConfigChange = { at: new Date(at).toISOString(), source, diff, ...(more ? { more } : {}) }
    this.kept.push(change)
    if (this.kept.length > MAX_CHANGES) this.kept.shift()
    return change
  }

  /** Newest first. */
  list(): readonly ConfigChange[] {
    return [...this.kept].reverse()
  }
}

import { z } from 'zod'

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 }
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses `1024`, `'64k'`, `'10 MiB'` to a byte count (binary units). */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value)
  const unit = m && SIZE_UNITS[m[2]!.toLowerCase()]
  return m && unit ? Math.round(Number(m[1]) * unit) : undefined
}

/** Parses `1500` (milliseconds), `'15s'`, `'2m'`, `'1h'` to milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value)
  return m ? Math.round(Number(m[1]) * TIME_UNITS[m[2]!.toLowerCase()]!) : undefined
}

/** A byte count: a number, or a string such as `'64k'` or `'10 MiB'`. */
export const size = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseSize(v)
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a size (use bytes, or a number with k, m or g)` })
      return z.NEVER
    }
    return n
  })

/** A duration in milliseconds: a number, or a string such as `'15s'` or `'500ms'`. */
export const duration = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseDuration(v)
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration (use milliseconds, or a number with ms, s, m, h or d)` })
      return z.NEVER
    }
    return n
  })

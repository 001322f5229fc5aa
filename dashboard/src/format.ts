/**
 * How the dashboard writes numbers: the same figure reads the same on every
 * page, and a missing one (no answer in the interval: `null`, NaN) is an en
 * dash, never `NaN` or `0`.
 */

const DASH = '\u2013'

const missing = (v: number | null | undefined): v is null | undefined => v === null || v === undefined || !Number.isFinite(v)

/** A count or a rate: `1234`, `12.5`, `0.25` (at most 2 decimals, none for whole numbers). */
export function num(v: number | null | undefined): string {
  if (missing(v)) return DASH
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) >= 100 ? 0 : 2).replace(/\.?0+$/, '')
}

/** Bytes in binary units (IEC): `512 B`, `1.5 KiB`, `3.2 MiB`. */
export function bytes(v: number | null | undefined): string {
  if (missing(v)) return DASH
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let n = v
  let i = 0
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`
}

/** Milliseconds: `0.42 ms`, `12.3 ms`, `1.20 s`. */
export function ms(v: number | null | undefined): string {
  if (missing(v)) return DASH
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ms`
}

/** A ratio (0..1) as a percentage: `97.5 %`. */
export function percent(v: number | null | undefined): string {
  if (missing(v)) return DASH
  return `${(v * 100).toFixed(1)} %`
}

/** A moment (ms since the epoch, or an ISO date) in the viewer's time zone. */
export function time(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return DASH
  const d = new Date(v)
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleString()
}

/** The time of day only: `14:03:22`. */
export function clock(v: number): string {
  return new Date(v).toLocaleTimeString([], { hour12: false })
}

/** Seconds as `3d 4h`, `2h 5m`, `42s`. */
export function duration(seconds: number | null | undefined): string {
  if (missing(seconds)) return DASH
  const s = Math.floor(seconds)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}

/** Any JSON value, short: strings as they are, the rest as JSON. */
export function json(v: unknown): string {
  if (v === undefined) return DASH
  return typeof v === 'string' ? v : JSON.stringify(v)
}

import { z } from 'zod'
import { cidrProblem } from '../http/address.ts'

/**
 * One set of validators for every address, CIDR and host the configuration
 * names, so that a value accepted here is one the code that uses it can
 * use (no RangeError at start), and a refusal names the value and why, at
 * its exact path (`trustedProxies[1]: 1.2.3.4/99 is not ...`).
 */

/** An IP address or CIDR range: `10.0.0.0/8`, `192.0.2.7`, `::1`, `fd00::/8`. */
export function cidr() {
  return z.string().superRefine((value, ctx) => {
    const problem = cidrProblem(value)
    if (problem) ctx.addIssue({ code: 'custom', message: problem })
  })
}

const NAME = /^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$/i
const V6 = /^\[?([0-9a-f:.]+)\]?$/i

function hostProblem(value: string, wildcard: boolean): string | null {
  const star = wildcard && value.startsWith('*.')
  const v = star ? value.slice(2) : value
  if (NAME.test(v)) return null
  const m = V6.exec(v)
  if (!star && m && !m[1]!.includes('/') && cidrProblem(m[1]!) === null) return null
  return `${JSON.stringify(value)} is not a host name${wildcard ? ', *.wildcard' : ''} or IP address`
}

/** A host name or IP address (`example.com`, `127.0.0.1`, `::1`); with `wildcard`, also `*.example.com`. */
export function host(opts: { wildcard?: boolean; any?: boolean } = {}) {
  return z.string().superRefine((value, ctx) => {
    if (opts.any && value === '*') return
    const problem = hostProblem(value, opts.wildcard === true)
    if (problem) ctx.addIssue({ code: 'custom', message: opts.any ? problem.replace(' or IP address', ', IP address or *') : problem })
  })
}

/** A web origin (`https://app.example.com`, `https://*.example.com`) or `*`. */
export function origin() {
  return z.string().superRefine((value, ctx) => {
    if (value === '*') return
    const m = /^https?:\/\/([^/?#]+)$/i.exec(value)
    const authority = m?.[1] ?? ''
    const hostPart = authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d{1,5}$/, '')
    if (!m || hostProblem(hostPart, true) !== null || !/^(?:\[[^\]]*\]|[^:]*)(?::\d{1,5})?$/.test(authority)) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not an origin like https://app.example.com, https://*.example.com, or *` })
    }
  })
}

const STATUS_RANGE = /^([1-5]\d\d)(?:-([1-5]\d\d))?$/

/**
 * A range of HTTP statuses a health probe counts as healthy: `'200-399'` or
 * `'204'` in a configuration, `{ min, max }` once checked. The checked form is
 * taken as input too, so a configuration already checked (the one in force,
 * handed back to a reload) checks again to the same value.
 */
export function statusRange() {
  const text = z.string().transform((v, ctx) => {
    const m = STATUS_RANGE.exec(v.trim())
    const lo = m ? Number(m[1]) : 0
    const hi = m ? Number(m[2] ?? m[1]) : 0
    if (!m || lo > hi) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a status range like 200-399 or 204` })
      return z.NEVER
    }
    return { min: lo, max: hi }
  })
  const checked = z
    .strictObject({ min: z.number().int().min(100).max(599), max: z.number().int().min(100).max(599) })
    .refine((r) => r.min <= r.max, 'min is at most max')
  return z.union([text, checked])
}

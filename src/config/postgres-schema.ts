import { z } from 'zod'
import { duration } from './units.ts'

/**
 * `postgres`: the PostgreSQL several Edgebox nodes share (docs/scale.md) for
 * the data that outgrows node:sqlite: real-user monitoring's events and the
 * built-in identity provider's users, sessions and keys. A URL, `true` (the
 * URL from the DATABASE_URL environment variable), or an object:
 *
 *     postgres: 'postgres://edgebox:secret@db.internal:5432/edgebox'
 *     postgres: true                        # DATABASE_URL
 *     postgres: { url: 'postgres://...', max: 20 }
 */

export const postgresUrlCheck = (v: string): boolean => {
  try {
    const u = new URL(v)
    return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== ''
  } catch {
    return false
  }
}

const URL_MESSAGE = 'is a postgres://user:password@host:port/database URL'

const postgresObject = z.strictObject({
  /** Absent: the DATABASE_URL environment variable. */
  url: z.string().refine(postgresUrlCheck, URL_MESSAGE).optional(),
  /** Connections in this process's pool. */
  max: z.number().int().min(1).max(1000).default(10),
  /** A connection that cannot be made in this time fails (and what asked is refused or counted as dropped). */
  connectTimeout: duration().default(5_000),
})

export const postgresSchema = z.union([
  z.literal(true).transform(() => postgresObject.parse({})),
  z.string().refine(postgresUrlCheck, URL_MESSAGE).transform((url) => postgresObject.parse({ url })),
  postgresObject,
])
export type PostgresConfig = z.output<typeof postgresObject>

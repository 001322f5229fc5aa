import { z } from 'zod'
import { duration } from './units.ts'

/**
 * `redis`: the Redis several Edgebox nodes share (docs/scale.md). A URL, or
 * an object with the URL and its settings:
 *
 *     redis: 'redis://10.0.0.5:6379'
 *     redis: { url: 'rediss://edgebox:secret@redis.internal:6380', ca: 'redis-ca.pem' }
 *     redis: { url: 'redis://:secret@mymaster/0', sentinel: { name: 'mymaster', hosts: ['10.0.0.1:26379', '10.0.0.2:26379'] } }
 *     redis: { url: 'rediss://edgebox:secret@cluster', cluster: ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379'] }
 */

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'is host:port')

const redisUrl = z.string().refine((v) => {
  try {
    const u = new URL(v)
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== ''
  } catch {
    return false
  }
}, 'is a redis://host:port or rediss://host:port URL (user and password before the host: redis://user:password@host:port)')

const redisObject = z.strictObject({
  url: redisUrl,
  /** Prefix of every key and pub/sub channel (several deployments can share one Redis). */
  keyPrefix: z.string().regex(/^[A-Za-z0-9:_.-]{0,64}$/, 'is 0-64 of A-Z a-z 0-9 : _ - .').default('edgebox:'),
  /** PEM file of the authority that signed a rediss:// server's certificate, relative to the configuration's folder. */
  ca: z.string().min(1).optional(),
  /** A command that takes longer fails, and what asked falls back to this node alone. */
  commandTimeout: duration().default(2_000),
  /**
   * Redis Sentinel: the master is the one the sentinels name for `name`,
   * found again after a failover. The URL then gives only the user,
   * password, database and scheme (its host is not used: write the master
   * group's name there).
   */
  sentinel: z
    .strictObject({
      name: z.string().min(1),
      hosts: z.array(hostPort).min(1),
      /** The sentinels' own password (`requirepass` in their configuration), when they have one. */
      password: z.string().min(1).optional(),
    })
    .optional(),
  /**
   * Redis Cluster: some of its nodes (any one that answers tells the
   * others), and the slots are followed as they move (resharding,
   * failover). The URL then gives only the user, password and scheme (its
   * host is not used: write `cluster` there); a cluster has database 0 only.
   */
  cluster: z.array(hostPort).min(1).optional(),
})
  .superRefine((v, ctx) => {
    if (v.cluster === undefined) return
    if (v.sentinel !== undefined) ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'is not used with sentinel: a Redis is either watched by sentinels or a cluster' })
    const db = URL.parse(v.url)?.pathname.replace(/^\//, '') ?? ''
    if (db !== '' && db !== '0') ctx.addIssue({ code: 'custom', path: ['url'], message: `names database ${db}, but a Redis Cluster has database 0 only` })
  })

export const redisSchema = z.union([redisUrl.transform((url) => redisObject.parse({ url })), redisObject])
export type RedisConfig = z.output<typeof redisObject>

import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { ensurePrivateDir, readIfExists, writeNewPrivateFile } from './data-dir.ts'
import type { Logger } from './log.ts'
import type { RedisBus } from './redis.ts'

/**
 * A secret every Edgebox process of a deployment signs with (the CSRF
 * tokens' key), so what one process signed the others accept: after a
 * reload, after a restart, on another worker, on another node.
 *
 * - With a shared Redis it lives there (`<keyPrefix>secret:<name>`), set
 *   by whichever node asks first (SET NX) and read by the others.
 * - Otherwise, and when Redis cannot be reached at start, it is a private
 *   file in the data folder (`secrets/<name>`, 0600), made once: the
 *   processes of one machine share it, and it outlives restarts.
 */
export async function sharedSecret(name: string, where: { dataDir: string; redis?: RedisBus | null; log: Logger }): Promise<Buffer> {
  const fresh = randomBytes(32).toString('base64url')
  if (where.redis?.up) {
    const key = `${where.redis.keyPrefix}secret:${name}`
    try {
      await where.redis.command.set(key, fresh, 'NX')
      const value = await where.redis.command.get(key)
      if (value) return Buffer.from(value, 'base64url')
    } catch (err) {
      where.log.warn({ err: (err as Error).message, secret: name }, 'redis: cannot read the shared secret; using this machine\'s (tokens signed by other nodes are refused here until a restart with redis)')
    }
  }
  const dir = await ensurePrivateDir(path.join(where.dataDir, 'secrets'))
  const file = path.join(dir, name)
  await writeNewPrivateFile(file, fresh)
  const value = (await readIfExists(file))?.trim()
  if (!value) throw new Error(`${file} is empty: remove it and Edgebox makes a new one`)
  return Buffer.from(value, 'base64url')
}

import { randomBytes } from 'node:crypto'
import { createWriteStream, renameSync, statSync, unlinkSync, type Stats } from 'node:fs'
import { mkdir, stat, unlink } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { pipeBody, type BodyLimits } from '../../core/body.ts'
import type { Context } from '../../core/context.ts'
import { ConfigError, httpError } from '../../core/errors.ts'
import { safeEqual } from '../../core/secrets.ts'
import { evaluatePreconditions } from '../../http/conditional.ts'
import { compileGlob } from '../../http/glob.ts'
import { encodePath } from '../../http/target.ts'
import { size } from '../../config/units.ts'
import { realOrNull, within, type Landing, type Reach } from './access.ts'
import { etagOf, type FileCache } from './files.ts'

/**
 * Uploads: PUT creates (201 + Location) or replaces (204) a file, DELETE
 * removes it (204). Only when enabled, and only with a configured credential
 * (401 + WWW-Authenticate without one; 403 when it may not write that path).
 *
 * Safety: the body goes to a temporary file in the target's directory and is
 * renamed over the target only once complete and flushed to disk, so readers
 * see the old file or the new one, never a part; a cut upload, a full disk
 * (507) or a failed precondition leaves the old file as it was. The final
 * precondition check and the rename happen in one synchronous step, so two
 * concurrent writers using If-Match / If-None-Match cannot both win (412).
 */
export const uploadSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Who may write: a bearer token or a user/password pair (Basic), each limited to path globs. */
  credentials: z
    .array(
      z.union([
        z.strictObject({ token: z.string().min(16, 'tokens must be at least 16 characters'), paths: z.array(z.string().min(1)).min(1).default(['**']) }),
        z.strictObject({ user: z.string().min(1), password: z.string().min(8, 'passwords must be at least 8 characters'), paths: z.array(z.string().min(1)).min(1).default(['**']) }),
      ]),
    )
    .default([]),
  /** Largest upload (default: limits.maxBodySize). */
  maxBodySize: size().optional(),
})

type UploadConfig = z.output<typeof uploadSchema>

interface Credential {
  readonly secret: Buffer
  readonly scheme: 'Bearer' | 'Basic'
  readonly allows: ((p: string) => boolean)[]
}

const TEMP_PREFIX = '.edgebox-upload-'

/** `reach` is the static route's path rule (access.ts), the same one its GET and HEAD follow. */
export function createUploads(cfg: UploadConfig, reach: (rel: string) => Promise<Reach>, rootReal: string, cache: FileCache, configPath: string, limits: BodyLimits) {
  if (cfg.credentials.length === 0) {
    throw new ConfigError([`${configPath}.upload.credentials: uploads are enabled but no credential is configured`])
  }
  const creds: Credential[] = cfg.credentials.map((c) => ({
    scheme: 'token' in c ? 'Bearer' : 'Basic',
    secret: Buffer.from('token' in c ? c.token : Buffer.from(`${c.user}:${c.password}`).toString('base64')),
    allows: c.paths.map(compileGlob),
  }))
  const bodyLimits: BodyLimits = { ...limits, maxBodySize: cfg.maxBodySize ?? limits.maxBodySize }
  const challenge = 'Basic realm="edgebox uploads", charset="UTF-8", Bearer realm="edgebox uploads"'

  function authorize(ctx: Context): void {
    const auth = ctx.header('authorization')
    const m = auth && /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(auth)
    const given = m ? Buffer.from(m[2]!) : null
    const scheme = m ? (m[1]!.toLowerCase() === 'bearer' ? 'Bearer' : 'Basic') : null
    const matching = given ? creds.filter((c) => c.scheme === scheme && safeEqual(c.secret, given)) : []
    if (matching.length === 0) {
      throw httpError('EB_ERR_UNAUTHORIZED', auth ? 'the credential is not valid' : 'uploads need a credential', { 'WWW-Authenticate': challenge })
    }
    if (!matching.some((c) => c.allows.some((t) => t(ctx.routePath)))) throw httpError('EB_ERR_FORBIDDEN', `this credential may not write ${ctx.path}`)
  }

  async function target(ctx: Context): Promise<string> {
    const rel = ctx.routePath
    // Check first, then create: nothing is made before the path is known to be visible and inside the root.
    const at = await reach(rel)
    if (!at.visible) throw httpError('EB_ERR_NOT_FOUND')
    if (!at.inside) throw outsideRoot()
    if (rel.endsWith('/')) throw httpError('EB_ERR_BAD_REQUEST', `${ctx.method} needs a file path, not a directory`)
    // Beyond what readers may see: temporary uploads are dot names, and so are files such as .htaccess.
    if (rel.split('/').some((s) => s.startsWith('.'))) throw httpError('EB_ERR_FORBIDDEN', 'names starting with a dot cannot be written')
    await createFolders(at)
    return at.fsPath
  }

  /**
   * Creates the folders missing above the file, one level at a time, each in
   * a folder already proven inside the root, and proves each new one again
   * (something else, such as a link, may have appeared there meanwhile).
   */
  async function createFolders(at: Landing): Promise<void> {
    if (at.missing.length === 0) return
    if (!(await stat(at.existing)).isDirectory()) throw parentIsFile()
    let dir = at.existing
    for (const name of at.missing.slice(0, -1)) {
      const next = path.join(dir, name)
      await mkdir(next).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOTDIR') throw parentIsFile()
        if (err.code !== 'EEXIST') throw err
      })
      if (!within(await realOrNull(next), rootReal)) throw outsideRoot()
      if (!(await stat(next)).isDirectory()) throw parentIsFile()
      dir = next
    }
  }

  function check(ctx: Context, st: Stats | null): void {
    const h = ctx.req.headers
    if (st?.isDirectory()) throw httpError('EB_ERR_BAD_REQUEST', `${ctx.path} is a directory`)
    const result = evaluatePreconditions(
      ctx.method,
      { ifMatch: h['if-match'], ifNoneMatch: h['if-none-match'], ifModifiedSince: undefined, ifUnmodifiedSince: h['if-unmodified-since'] },
      st ? { etag: etagOf(st), lastModified: Math.floor(st.mtimeMs / 1000) * 1000, exists: true } : { exists: false },
    )
    if (result !== 'ok') throw httpError('EB_ERR_PRECONDITION_FAILED', st ? 'the file does not match the precondition' : 'the file does not exist')
  }

  async function put(ctx: Context): Promise<void> {
    authorize(ctx)
    const file = await target(ctx)
    check(ctx, statOrNull(file)) // early, before reading the body
    const temp = path.join(path.dirname(file), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`)
    const out = createWriteStream(temp, { flags: 'wx', flush: true })
    try {
      await pipeBody(ctx, out, bodyLimits)
      // One synchronous step: no other request can run between the check and the rename.
      const before = statOrNull(file)
      check(ctx, before)
      renameSync(temp, file)
      cache.clear()
      const st = statSync(file)
      const headers = { ETag: etagOf(st), 'Content-Type': 'text/plain; charset=utf-8' }
      if (before) return ctx.send(204, { ETag: headers.ETag })
      ctx.send(201, { ...headers, Location: encodePath(ctx.path) }, `created ${ctx.path}\n`)
    } catch (err) {
      // The temporary file is created asynchronously when the stream opens:
      // wait until the stream is closed (destroy waits for a pending open),
      // or the unlink can run first and the file appears after it, left behind.
      await new Promise<void>((resolve) => {
        if (out.closed) return resolve()
        out.once('close', () => resolve())
        out.destroy()
      })
      await unlink(temp).catch(() => {})
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOSPC' || code === 'EDQUOT') throw httpError('EB_ERR_INSUFFICIENT_STORAGE', 'the disk is full; the old file is unchanged')
      throw err
    }
  }

  async function remove(ctx: Context): Promise<void> {
    authorize(ctx)
    const at = await reach(ctx.routePath)
    if (!at.visible || !at.exists) throw httpError('EB_ERR_NOT_FOUND')
    if (!at.inside) throw outsideRoot()
    const st = statOrNull(at.fsPath)
    if (!st) throw httpError('EB_ERR_NOT_FOUND')
    check(ctx, st)
    unlinkSync(at.fsPath)
    cache.clear()
    ctx.send(204, {})
  }

  return {
    handle(ctx: Context): Promise<void> {
      return ctx.method === 'PUT' ? put(ctx) : remove(ctx)
    },
  }
}

function outsideRoot() {
  return httpError('EB_ERR_FORBIDDEN', 'the path leads outside the root')
}

function parentIsFile() {
  return httpError('EB_ERR_BAD_REQUEST', 'a parent of this path is a file')
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p)
  } catch {
    return null
  }
}

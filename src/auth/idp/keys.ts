import { generateKeyPair as generateKeyPairCb, randomBytes, type JsonWebKey } from 'node:crypto'
import path from 'node:path'
import { promisify } from 'node:util'
import { calculateJwkThumbprint, type JWK } from 'jose'
import type { Clock } from '../../core/clock.ts'
import { ensurePrivateDir, readIfExists, withFileLock, writeNewPrivateFile, writePrivateFile } from '../../core/data-dir.ts'
import type { Logger } from '../../core/log.ts'

/**
 * The built-in provider's keys, in `<dataDir>/auth/idp-keys.json` (0600,
 * written whole), or for nodes that share a PostgreSQL in its `idp_keys`
 * table (pg-store.ts): generations of keys, the newest first. Each generation
 * has an RS256 key (RFC 7518 §3.3, what relying parties expect by default,
 * OpenID Connect Registration 1.0 §2) and an ES256 key (§3.4) for signing,
 * and a key for the provider's signed cookies.
 *
 * - The first start makes generation 0 and stores it only if there is
 *   none (two processes or nodes starting at once end up with the same
 *   keys: the second one reads the first one's).
 * - After `rotation`, a new generation is made: its keys sign from then on.
 * - The previous generations' public keys stay in the JWKS (and their cookie
 *   keys still verify) for `retention` after they stopped signing: the
 *   longest lifetime of anything they signed (tokens, the sign-in session,
 *   whose ID token comes back as `id_token_hint` at sign-out); then they are
 *   dropped.
 *
 * Times are read from the clock Edgebox gives, so tests move them by hand.
 */

const generateKeyPair = promisify(generateKeyPairCb)

/** One generation of keys. */
export interface KeyGeneration {
  /** When it was made (ms since the epoch, by the Edgebox clock). */
  readonly createdAt: number
  /** Private signing keys as JWKs with `kid`, `alg` and `use: sig`. */
  readonly signing: readonly JWK[]
  /** The cookie-signing key (base64url, 32 random bytes). */
  readonly cookie: string
}

/** What is stored: the generations, newest first (the file's JSON, PostgreSQL's `idp_keys.doc`). */
export interface KeyDocument {
  readonly version: 1
  /** Newest first. */
  readonly generations: readonly KeyGeneration[]
}

/**
 * Where the generations are kept: the key file (one node), or PostgreSQL
 * for nodes that share one (pg-store.ts). It hands over documents as
 * stored, unchecked: IdpKeys checks them.
 */
export interface KeyVault {
  /** What it is, in logs and errors: the file's path, or the table and database. */
  readonly where: string
  /**
   * The stored document; when there is none, `first()`'s, stored. Of
   * processes doing this at once one stores its document and every one of
   * them reads that one. `made`: this call stored it.
   */
  load(first: () => Promise<KeyDocument>): Promise<{ readonly doc: unknown; readonly made: boolean }>
  /**
   * Hands the stored document (undefined: there is none any more) to
   * `change` and stores what it returns (null: nothing changes), with other
   * processes' updates held off meanwhile where the vault can.
   */
  update(change: (doc: unknown) => Promise<KeyDocument | null>): Promise<void>
}

/** How keys are rotated and pruned, and on which clock. */
export interface KeyOptions {
  /** How long a generation signs (ms). */
  readonly rotation: number
  /** How long after that it is still published (ms). */
  readonly retention: number
  readonly clock: Clock
  readonly log: Logger
}

/** A new generation: an RSA 2048 and a P-256 key, and a cookie key. */
export async function newGeneration(createdAt: number): Promise<KeyGeneration> {
  const [rsa, ec] = await Promise.all([generateKeyPair('rsa', { modulusLength: 2048 }), generateKeyPair('ec', { namedCurve: 'P-256' })])
  const jwk = async (key: JsonWebKey, alg: string): Promise<JWK> => {
    const j = key as JWK
    // RFC 7638 thumbprint of the public key: the same key always has the same kid
    return { ...j, kid: await calculateJwkThumbprint(j, 'sha256'), alg, use: 'sig' }
  }
  return {
    createdAt,
    signing: [await jwk(rsa.privateKey.export({ format: 'jwk' }), 'RS256'), await jwk(ec.privateKey.export({ format: 'jwk' }), 'ES256')],
    cookie: randomBytes(32).toString('base64url'),
  }
}

/** A stored document, checked: the generations newest first; an Error naming `where` when it is not one. */
function checkKeys(data: unknown, where: string): KeyDocument {
  const f = data as Partial<KeyDocument> | null
  const ok =
    f &&
    f.version === 1 &&
    Array.isArray(f.generations) &&
    f.generations.length > 0 &&
    f.generations.every((g) => g && typeof g.createdAt === 'number' && typeof g.cookie === 'string' && g.cookie.length >= 32 && Array.isArray(g.signing) && g.signing.length > 0 && g.signing.every((k: Partial<JWK>) => k && typeof k.kid === 'string' && typeof k.alg === 'string' && typeof k.d === 'string'))
  if (!ok) throw new Error(`${where} is not an Edgebox key file (version 1, generations with signing keys and a cookie key); restore it from a backup, or remove it to make new keys`)
  return { version: 1, generations: [...f.generations!].sort((a, b) => b.createdAt - a.createdAt) }
}

function parseKeyFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); restore it from a backup, or remove it to make new keys (every token and sign-in of the provider then ends)`)
  }
}

/**
 * The key file, `<dataDir>/auth/idp-keys.json` (0600, written whole). The
 * first document is put only if there is no file (two processes starting
 * at once end up with the same file: the second one reads the first one's).
 */
export async function fileKeyVault(dataDir: string): Promise<KeyVault> {
  const dir = await ensurePrivateDir(path.join(dataDir, 'auth'))
  const file = path.join(dir, 'idp-keys.json')
  const write = (doc: KeyDocument) => JSON.stringify(doc, null, 1) + '\n'
  return {
    where: file,
    async load(first) {
      let text = await readIfExists(file)
      let made = false
      if (text === undefined) {
        // another process starting at the same moment may have put its own first: then that one is the file
        made = await writeNewPrivateFile(file, write(await first()))
        text = await readIfExists(file)
        if (text === undefined) throw new Error(`${file} disappeared while it was being made`)
      }
      return { doc: parseKeyFile(text, file), made }
    },
    async update(change) {
      // the workers of one machine share the file: one rotation at a time, each reading what the one before wrote
      await withFileLock(`${file}.lock`, async () => {
        const text = await readIfExists(file)
        const next = await change(text === undefined ? undefined : parseKeyFile(text, file))
        if (next !== null) await writePrivateFile(file, write(next))
      })
    },
  }
}

/** The provider's key generations, rotated and pruned on the clock. */
export class IdpKeys {
  /** Where they are kept (the key file, or PostgreSQL's table), for logs and errors. */
  readonly where: string
  readonly #vault: KeyVault
  readonly #rotation: number
  readonly #retention: number
  readonly #clock: Clock
  readonly #log: Logger
  #generations: readonly KeyGeneration[]
  #version = 0
  #refreshing: Promise<boolean> | null = null

  private constructor(vault: KeyVault, gens: readonly KeyGeneration[], opts: KeyOptions) {
    this.where = vault.where
    this.#vault = vault
    this.#generations = gens
    this.#rotation = opts.rotation
    this.#retention = opts.retention
    this.#clock = opts.clock
    this.#log = opts.log
  }

  /**
   * Reads `<dataDir>/auth/idp-keys.json`, making it on the first start, and
   * brings it up to date (a rotation or a drop that fell due while Edgebox
   * was stopped). `rotation`: how long a generation signs; `retention`: how
   * long after that it is still published.
   */
  static async open(dataDir: string, opts: KeyOptions): Promise<IdpKeys> {
    return IdpKeys.openIn(await fileKeyVault(dataDir), opts)
  }

  /** As {@link IdpKeys.open}, with the keys kept in `vault` (PostgreSQL's, for nodes that share their keys: pg-store.ts). */
  static async openIn(vault: KeyVault, opts: KeyOptions): Promise<IdpKeys> {
    const { doc, made } = await vault.load(async () => ({ version: 1, generations: [await newGeneration(opts.clock.now())] }))
    if (made) opts.log.info({ keys: vault.where }, 'identity provider: new signing keys made')
    const keys = new IdpKeys(vault, checkKeys(doc, vault.where).generations, opts)
    await keys.refresh()
    return keys
  }

  /** Changes each time the key set changes: a provider made with an older version is rebuilt. */
  get version(): number {
    return this.#version
  }

  /** The generations, newest first. */
  get generations(): readonly KeyGeneration[] {
    return this.#generations
  }

  /** The private JWKS oidc-provider signs with (the newest generation first: the first key of an algorithm signs) and publishes (public parts). */
  jwks(): { keys: JWK[] } {
    return { keys: this.#generations.flatMap((g) => g.signing.map((k) => ({ ...k }))) }
  }

  /** The cookie keys, the newest (which signs) first. */
  cookieKeys(): string[] {
    return this.#generations.map((g) => g.cookie)
  }

  /** When the next change falls due: the next rotation, or the next drop. */
  #nextChange(gens: readonly KeyGeneration[]): number {
    let next = gens[0]!.createdAt + this.#rotation
    // generation i stopped signing when generation i-1 was made
    for (let i = 1; i < gens.length; i++) next = Math.min(next, gens[i - 1]!.createdAt + this.#retention)
    return next
  }

  /**
   * Rotates and drops keys that fell due (reading the stored keys first, so
   * a rotation another process made is taken, not repeated). Cheap when
   * nothing is due: one comparison. Resolves true when the key set changed.
   */
  refresh(): Promise<boolean> {
    if (this.#clock.now() < this.#nextChange(this.#generations)) return Promise.resolve(false)
    this.#refreshing ??= this.#update().finally(() => (this.#refreshing = null))
    return this.#refreshing
  }

  async #update(): Promise<boolean> {
    const before = this.#generations
    let kept = before
    await this.#vault.update(async (doc) => {
      let gens = doc === undefined ? before : checkKeys(doc, this.where).generations
      let changed = false
      const now = this.#clock.now()
      if (now >= gens[0]!.createdAt + this.#rotation) {
        gens = [await newGeneration(now), ...gens]
        changed = true
        this.#log.info({ kids: gens[0]!.signing.map((k) => k.kid) }, 'identity provider: signing keys rotated')
      }
      kept = gens.filter((_, i) => i === 0 || gens[i - 1]!.createdAt + this.#retention > now)
      if (kept.length !== gens.length) {
        this.#log.info({ kids: gens.filter((g) => !kept.includes(g)).flatMap((g) => g.signing.map((k) => k.kid)) }, 'identity provider: retired signing keys dropped')
        changed = true
      }
      return changed ? { version: 1, generations: kept } : null
    })
    const differs = kept.length !== before.length || kept.some((g, i) => g.signing[0]!.kid !== before[i]!.signing[0]!.kid)
    this.#generations = kept
    if (differs) this.#version++
    return differs
  }
}

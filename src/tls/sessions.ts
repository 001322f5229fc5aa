import { hkdfSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type tls from 'node:tls'
import { LRUCache } from 'lru-cache'
import type { EdgeboxConfig } from '../config/schema.ts'

/**
 * TLS session resumption (docs/tls.md): a resumed handshake skips the
 * certificate and the key exchange's signature, one round trip and most of
 * the CPU of a full one.
 *
 * - Tickets (RFC 8446 §4.6.1 for TLS 1.3, RFC 5077 for 1.2): the server
 *   keeps nothing; the client holds its session encrypted under the
 *   server's ticket key. The 48-byte key is derived (HKDF-SHA256) from a
 *   secret and the current rotation window, so it changes every
 *   `ticketRotation`, and every process that reads the same `ticketKeyFile`
 *   derives the same key at the same time: the workers of one node resume
 *   each other's sessions without talking to each other.
 * - Session IDs (TLS 1.2, RFC 5246 §7.4.1.2): the server keeps the session
 *   in a bounded cache, for clients that do not take tickets.
 */

type TlsConfig = EdgeboxConfig['tls']

export interface SessionResumption {
  /** Installs the ticket keys (and their rotation) and the session cache on a TLS server. */
  attach(server: tls.Server): void
  /** The ticket keys of the current window (none without tickets): a server's new secure context (a reload) must keep them. */
  ticketKeys(): Buffer | undefined
  /** Stops the rotation timer. */
  close(): void
  /** Sessions held in the TLS 1.2 session-ID cache. */
  cached(): number
}

/** TLS 1.3's protocol version number (RFC 8446 §4.1.2). */
const TLS13 = 0x0304

/**
 * The protocol version of a serialized session (OpenSSL's SSL_SESSION
 * ASN.1: SEQUENCE { version INTEGER 1, ssl_version INTEGER, ... }), or 0
 * when it does not read as one.
 */
export function sessionVersion(der: Buffer): number {
  if (der[0] !== 0x30 || der.length < 8) return 0
  let i = 2
  if (der[1]! & 0x80) i += der[1]! & 0x7f
  if (der[i] !== 0x02 || der[i + 1] !== 0x01) return 0
  i += 3
  if (der[i] !== 0x02 || der[i + 1] !== 0x02) return 0
  return (der[i + 2]! << 8) | der[i + 3]!
}

/** The ticket secret: the configured file's bytes, else the deployment's (`shared`: workers or nodes), else random bytes for this process. */
function ticketSecret(cfg: TlsConfig, baseDir: string, shared: Buffer | undefined): Buffer {
  if (!cfg.ticketKeyFile) return shared ?? randomBytes(32)
  const file = path.resolve(baseDir, cfg.ticketKeyFile)
  let bytes: Buffer
  try {
    bytes = readFileSync(file)
  } catch (err) {
    throw [`tls.ticketKeyFile: cannot read ${cfg.ticketKeyFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]
  }
  if (bytes.length < 32) throw [`tls.ticketKeyFile: ${cfg.ticketKeyFile} holds ${bytes.length} bytes; it needs at least 32 random bytes (head -c 48 /dev/urandom > ${cfg.ticketKeyFile})`]
  return bytes
}

/** The 48 bytes of ticket keys (name, HMAC key, AES key) for one rotation window. */
export function ticketKeys(secret: Buffer, window: number): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.from('edgebox tls ticket keys'), Buffer.from(`window ${window}`), 48))
}

/**
 * `shared`: the deployment's ticket secret (core/shared-secret.ts) when
 * there are several processes (workers, nodes on one Redis) and no
 * `ticketKeyFile`: a session resumes on whichever of them a client's next
 * connection reaches.
 */
export function sessionResumption(cfg: TlsConfig, baseDir: string, shared?: Buffer): SessionResumption {
  const secret = cfg.sessionTickets ? ticketSecret(cfg, baseDir, shared) : null
  const servers = new Set<tls.Server>()
  const window = () => Math.floor(Date.now() / cfg.ticketRotation)
  let current = window()
  let keys = secret ? ticketKeys(secret, current) : undefined
  let timer: NodeJS.Timeout | undefined
  const rotate = () => {
    current = window()
    keys = ticketKeys(secret!, current)
    for (const s of servers) s.setTicketKeys(keys)
    schedule()
  }
  const schedule = () => {
    const next = (current + 1) * cfg.ticketRotation - Date.now()
    timer = setTimeout(rotate, Math.max(1000, next))
    timer.unref()
  }
  if (secret) schedule()

  // TLS 1.2 session IDs: the cache is shared by every listener of this process.
  const cache = cfg.sessionCacheSize > 0 ? new LRUCache<string, Buffer>({ max: cfg.sessionCacheSize, ttl: cfg.sessionTimeout }) : null
  const keyOf = (id: Buffer) => id.toString('base64url')

  return {
    attach(server) {
      if (secret) {
        servers.add(server)
        server.setTicketKeys(keys!)
        server.once('close', () => servers.delete(server))
      }
      if (cache) {
        server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
          // A TLS 1.3 session resumes from a ticket (RFC 8446 §4.6.1), never by the ClientHello's
          // legacy session ID that Node looks up: keeping it would only cost every full handshake.
          if (sessionVersion(data) !== TLS13) cache.set(keyOf(id), data)
          done()
        })
        server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
          done(null, cache.get(keyOf(id)) ?? null)
        })
      }
    },
    ticketKeys: () => keys,
    close() {
      clearTimeout(timer)
    },
    cached: () => cache?.size ?? 0,
  }
}

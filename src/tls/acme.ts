import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import type { Client as AcmeClient } from 'acme-client'
import { X509Certificate, createPrivateKey, randomInt } from 'node:crypto'
import https from 'node:https'
import { isIP } from 'node:net'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import tls from 'node:tls'
import { Agent, fetch } from 'undici'
import type { EdgeboxConfig } from '../config/schema.ts'
import type { Clock, Timer } from '../core/clock.ts'
import { ensurePrivateDir, readIfExists, writePrivateFile } from '../core/data-dir.ts'
import type { Broadcast } from '../core/broadcast.ts'
import type { Logger } from '../core/log.ts'
import { covers, namesOf, type LoadedCertificate } from './certificates.ts'

/**
 * Automatic certificates from an ACME authority (RFC 8555; docs/tls.md,
 * "Automatic HTTPS with ACME"). One manager per process, beside the
 * listeners: it loads what it stored, orders what is missing or due, one
 * name at a time, answers the authority's challenges (HTTP-01 through the
 * pipeline, TLS-ALPN-01 through the TLS listener), stores each certificate
 * under the data folder and hands it to the certificate set. Renewal
 * follows ACME Renewal Information (RFC 9773) when the authority offers
 * it, else two thirds of the lifetime; failures back off and never take a
 * certificate that still serves away.
 */

type AcmeConfig = NonNullable<EdgeboxConfig['tls']['acme']>
export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01'

const DIRECTORIES: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
}

const MINUTE = 60_000
const HOUR = 60 * MINUTE
/** Timers are set at most this far ahead (Node's timers overflow past 24.8 days); on firing, the due time is computed again. */
const MAX_TIMER = 24 * HOUR
/** Failed orders are retried after 1 minute, doubling up to this. */
const MAX_BACKOFF = 6 * HOUR
/** How long an ACME Renewal Information answer holds without a Retry-After (RFC 9773 §4.3 suggests 6 hours). */
const ARI_RECHECK = 6 * HOUR

/** Reserved suffixes no public authority issues for: RFC 2606, RFC 6761, RFC 6762 (.local), RFC 8375 (.home.arpa), and .internal. */
const RESERVED = ['.test', '.example', '.invalid', '.localhost', '.local', '.internal', '.home.arpa']

export interface NamePlan {
  /** Names to order certificates for, lowercased, in configuration order. */
  names: string[]
  /** Names left out, each with the reason (logged at start). */
  skipped: Array<{ name: string; reason: string }>
}

/** Which site names an ACME authority can validate; the rest, with why not. */
export function planAcmeNames(sites: EdgeboxConfig['sites'], configured: readonly LoadedCertificate[], dnsServes: (name: string) => boolean = () => false): NamePlan {
  const names: string[] = []
  const skipped: NamePlan['skipped'] = []
  for (const [i, site] of sites.entries()) {
    if (site.hosts.length === 0) skipped.push({ name: `sites[${i}]`, reason: 'a site with hosts: [] answers any name; list the names to get certificates for' })
    for (const raw of site.hosts) {
      const name = raw.toLowerCase().replace(/\.$/, '')
      if (names.includes(name) || skipped.some((s) => s.name === name)) continue
      const reason = whyNot(name, configured, dnsServes)
      if (reason) skipped.push({ name, reason })
      else names.push(name)
    }
  }
  return { names, skipped }
}

function whyNot(name: string, configured: readonly LoadedCertificate[], dnsServes: (name: string) => boolean): string | null {
  const bare = name.replace(/^\[|\]$/g, '')
  if (isIP(bare)) return 'an IP address; public authorities validate names'
  if (name === 'localhost' || name.endsWith('.localhost')) return 'a localhost name exists only on this machine'
  if (name.startsWith('*.') && !dnsServes(name)) return "a wildcard needs the DNS-01 challenge, which Edgebox answers only for names in a zone of its own (dns.zones) with 'dns-01' in tls.acme.challenges; serve the zone, or give the wildcard a certificate in tls.certificates"
  if (name.startsWith('*.') && name.slice(2).includes('*')) return 'only the leftmost label can be a wildcard'
  const reserved = RESERVED.find((s) => name.endsWith(s))
  if (reserved) return `${reserved} is reserved for testing and local networks and never in public DNS`
  if (!name.includes('.')) return 'not a fully qualified public name'
  const cert = configured.find((c) => covers(c.cert, name))
  if (cert) return `already covered by ${cert.id}`
  return null
}

export interface AcmeOptions {
  config: AcmeConfig
  /** Relative paths (tls.acme.ca) are resolved against this. */
  baseDir: string
  dataDir: string
  clock: Clock
  log: Logger
  /** The challenge types this process's listeners can answer. */
  challenges: readonly ChallengeType[]
  names: readonly string[]
  /** DNS-01 (RFC 8555 §8.4), when Edgebox serves DNS: which names its zones hold, and the TXT records of pending challenges. */
  dns01?: { serves(name: string): boolean; add(name: string, value: string): void; remove(name: string, value: string): void }
  /** A certificate was obtained or renewed: rebuild the certificate set. */
  onChange(): void
  /**
   * The other workers of this machine (docs/scale.md). With it, this
   * process's pending HTTP-01 and TLS-ALPN-01 challenges are also written to
   * the data folder, where whichever worker the authority's validation
   * reaches reads them, and each certificate stored is announced, so the
   * followers load it from the folder at once.
   */
  peers?: Broadcast
  /** A follower (workers 2 and up): it serves the certificates and challenges the orderer stores, and never orders. */
  follow?: boolean
}

export interface AcmeManager {
  /** The certificates held now, one per name. */
  certificates(): readonly LoadedCertificate[]
  /** HTTP-01 (RFC 8555 §8.3): the key authorization for a pending token, or undefined. */
  http01(token: string): string | undefined
  /** TLS-ALPN-01 (RFC 8737): the challenge certificate's context for a name with a pending challenge, or undefined. */
  alpn01(servername: string): tls.SecureContext | undefined
  /** Orders what is missing or due and keeps renewing; call once the listeners are bound. */
  start(): void
  /** Which names are managed (after a reload): new names are ordered, removed ones no longer renewed. */
  setNames(names: readonly string[]): void
  /** Resolves when no order is running or queued (tests, shutdown). */
  idle(): Promise<void>
  close(): void
}

interface Entry {
  name: string
  cert?: LoadedCertificate
  timer?: Timer
  failures: number
  retryAt: number
  /** From ACME Renewal Information: when to renew, and when to ask again. */
  ari?: { at: number; recheckAt: number }
}

/** A name's certificate file: `www.example.com.pem`, `_wildcard.example.com.pem` for `*.example.com`. */
function certFile(name: string): string {
  return `${name.replace(/^\*\./, '_wildcard.')}.pem`
}

/** The directory URL a configuration names. */
export function directoryUrl(cfg: AcmeConfig): string {
  return DIRECTORIES[cfg.directory] ?? cfg.directory
}

/** A folder name for a directory URL: `acme-v02.api.letsencrypt.org-directory`. */
export function directoryFolder(url: string): string {
  const u = new URL(url)
  return `${u.host}${u.pathname}`.replace(/[^a-z0-9.-]+/gi, '-').replace(/^-+|-+$/g, '').toLowerCase()
}

export async function createAcme(opts: AcmeOptions): Promise<AcmeManager> {
  const { config: cfg, clock, log } = opts
  const directory = directoryUrl(cfg)
  const home = path.join(opts.dataDir, 'acme', directoryFolder(directory))
  const certDir = path.join(home, 'certificates')
  // acme-client (and its HTTP stack) is loaded only when ACME is configured: it is not cheap to load
  const acme = (await import('acme-client')).default
  const ca = cfg.ca === undefined ? undefined : [...tls.rootCertificates, readFileSync(path.resolve(opts.baseDir, cfg.ca), 'utf8')]
  // acme-client talks through one axios instance; a private authority is trusted on it
  acme.axios.defaults.httpsAgent = ca ? new https.Agent({ ca, keepAlive: false }) : undefined
  const dispatcher = ca ? new Agent({ connect: { ca } }) : undefined

  const tokens = new Map<string, string>()
  const alpn = new Map<string, tls.SecureContext>()
  const shared = opts.peers ? sharedChallenges(path.join(home, 'challenges')) : undefined
  const entries = new Map<string, Entry>()
  let closed = false
  let started = false
  let queue: Promise<void> = Promise.resolve()
  let client: AcmeClient | undefined
  let meta: { renewalInfo?: string } | undefined
  /** The certificates held, as one list (read on every TLS handshake; replaced when one changes). */
  let held: readonly LoadedCertificate[] = []
  const changed = () => {
    held = [...entries.values()].flatMap((e) => (e.cert ? [e.cert] : []))
    opts.onChange()
  }

  for (const name of opts.names) entries.set(name, await loadEntry(name))
  held = [...entries.values()].flatMap((e) => (e.cert ? [e.cert] : []))

  async function loadEntry(name: string): Promise<Entry> {
    const entry: Entry = { name, failures: 0, retryAt: 0 }
    const file = path.join(certDir, certFile(name))
    const text = await readIfExists(file)
    if (text === undefined) return entry
    try {
      entry.cert = parseStored(name, file, text, clock.now())
    } catch (err) {
      log.warn({ name, file, reason: (err as Error).message }, 'a stored ACME certificate cannot be used; a new one will be ordered')
    }
    return entry
  }

  async function account(): Promise<AcmeClient> {
    if (client) return client
    await ensurePrivateDir(opts.dataDir)
    await ensurePrivateDir(path.dirname(home))
    await ensurePrivateDir(home)
    const file = path.join(home, 'account.json')
    const stored = await readIfExists(file)
    const eab = cfg.eab ? { externalAccountBinding: { kid: cfg.eab.kid, hmacKey: cfg.eab.hmacKey } } : {}
    if (stored !== undefined) {
      const a = JSON.parse(stored) as { key: string; url: string; email: string }
      client = new acme.Client({ directoryUrl: directory, accountKey: a.key, accountUrl: a.url, ...eab })
      if (a.email !== cfg.email) {
        await client.updateAccount({ contact: [`mailto:${cfg.email}`] })
        await writePrivateFile(file, JSON.stringify({ ...a, email: cfg.email }, null, 2) + '\n')
      }
      return client
    }
    const key = (await acme.crypto.createPrivateEcdsaKey()).toString()
    const c = new acme.Client({ directoryUrl: directory, accountKey: key, ...eab })
    await c.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${cfg.email}`] })
    await writePrivateFile(file, JSON.stringify({ key, url: c.getAccountUrl(), email: cfg.email }, null, 2) + '\n')
    log.info({ directory, account: c.getAccountUrl() }, 'ACME account created')
    return (client = c)
  }

  /** The directory's renewalInfo resource (RFC 9773 §3), or undefined: none, or the directory unreachable (asked again next time). */
  async function renewalInfoUrl(): Promise<string | undefined> {
    if (meta) return meta.renewalInfo
    try {
      const res = await fetch(directory, dispatcher ? { dispatcher } : {})
      if (!res.ok) return undefined
      const dir = (await res.json()) as { renewalInfo?: unknown }
      return (meta = typeof dir.renewalInfo === 'string' ? { renewalInfo: dir.renewalInfo } : {}).renewalInfo
    } catch {
      return undefined
    }
  }

  /** RFC 9773 §4.2: asks when to renew; keeps the answer until its Retry-After. Failures fall back to two thirds of the lifetime. */
  async function askRenewalInfo(e: Entry): Promise<void> {
    const now = clock.now()
    if (!e.cert || (e.ari && e.ari.recheckAt > now)) return
    const url = await renewalInfoUrl()
    if (!url) return
    try {
      const res = await fetch(`${url.replace(/\/$/, '')}/${ariCertId(e.cert.certPem)}`, dispatcher ? { dispatcher } : {})
      if (!res.ok) throw new Error(`renewal information answered ${res.status}`)
      const body = (await res.json()) as { suggestedWindow?: { start?: string; end?: string } }
      const at = renewalMoment(body.suggestedWindow, (n) => randomInt(0, n))
      if (at === undefined) throw new Error('renewal information without a valid suggestedWindow')
      const retry = retryAfterMs(res.headers.get('retry-after'), now) ?? ARI_RECHECK
      e.ari = { at, recheckAt: now + Math.min(Math.max(retry, MINUTE), 24 * HOUR) }
    } catch (err) {
      log.debug({ name: e.name, reason: (err as Error).message }, 'no ACME renewal information; renewing at two thirds of the lifetime')
      e.ari = undefined
    }
  }

  /** When a held certificate is to be renewed: the renewal information's moment, else two thirds of its lifetime. */
  const renewAt = (cert: LoadedCertificate, ari: Entry['ari']): number => ari?.at ?? renewAtTwoThirds(cert.cert)

  /** When to look at a name again: a retry after a failure, at once without a certificate, else its renewal (or the next renewal-information check). */
  function dueAt(e: Entry): number {
    if (e.failures > 0) return e.retryAt
    if (!e.cert) return clock.now()
    return e.ari ? Math.min(e.ari.at, e.ari.recheckAt) : renewAt(e.cert, e.ari)
  }

  function schedule(e: Entry): void {
    if (closed || entries.get(e.name) !== e) return
    clock.clearTimeout(e.timer)
    const due = dueAt(e)
    log.debug({ name: e.name, at: new Date(due).toISOString() }, 'ACME: next check scheduled')
    const wait = Math.min(Math.max(0, due - clock.now()), MAX_TIMER)
    e.timer = clock.setTimeout(() => enqueue(e), wait)
    e.timer.unref()
  }

  function enqueue(e: Entry): void {
    queue = queue.then(() => check(e))
  }

  async function check(e: Entry): Promise<void> {
    if (closed || entries.get(e.name) !== e) return
    await askRenewalInfo(e)
    const now = clock.now()
    const at = e.cert ? renewAt(e.cert, e.ari) : now
    if (e.cert && e.failures === 0 && at > now) {
      log.debug({ name: e.name, renewAt: new Date(at).toISOString(), by: e.ari ? 'renewal information' : 'two thirds of the lifetime' }, 'ACME certificate not due for renewal')
      return schedule(e)
    }
    if (e.failures > 0 && e.retryAt > now) return schedule(e)
    try {
      await order(e)
      e.failures = 0
      e.retryAt = 0
      e.ari = undefined
      await askRenewalInfo(e)
    } catch (err) {
      if (closed) return
      e.failures++
      const wait = backoff(e.failures, err)
      e.retryAt = now + wait
      log.warn(
        { name: e.name, directory, reason: (err as Error).message, retryInSeconds: Math.round(wait / 1000), serving: e.cert ? `the certificate valid until ${e.cert.cert.validToDate.toISOString()}` : 'no certificate for this name yet' },
        'ACME order failed; trying again later',
      )
    }
    schedule(e)
  }

  /** One order (RFC 8555 §7.4): new key, challenges answered, finalized, stored, swapped in. */
  async function order(e: Entry): Promise<void> {
    const c = await account()
    // RFC 9773 §5: a renewal names the certificate it replaces, where the authority speaks renewal information
    const replaces = e.cert && (await renewalInfoUrl()) ? ariCertId(e.cert.certPem) : undefined
    log.info({ name: e.name, directory, renewal: e.cert !== undefined }, e.cert ? 'renewing the ACME certificate' : 'ordering an ACME certificate')
    const ord = await c.createOrder({ identifiers: [{ type: 'dns', value: e.name }], ...(replaces ? { replaces } : {}) } as Parameters<AcmeClient['createOrder']>[0])
    for (const authz of await c.getAuthorizations(ord)) {
      if (authz.status === 'valid') continue
      // a wildcard's authorization names its base name (RFC 8555 §7.1.4); DNS-01 only where Edgebox's own zones hold the name
      const authzName = (authz.wildcard ? '*.' : '') + authz.identifier.value.toLowerCase()
      const usable = opts.challenges.filter((t) => t !== 'dns-01' || opts.dns01?.serves(authzName))
      const challenge = usable.map((t) => authz.challenges.find((ch) => ch.type === t)).find((ch) => ch !== undefined)
      if (!challenge) throw new Error(`the authority offers ${authz.challenges.map((ch) => ch.type).join(', ')} for ${authzName}; this Edgebox answers ${usable.join(', ') || 'none (no listener for them)'} for it`)
      const keyAuth = await c.getChallengeKeyAuthorization(challenge)
      const token = (challenge as { token: string }).token
      const alpnName = authz.identifier.value.toLowerCase()
      try {
        if (challenge.type === 'http-01') {
          tokens.set(token, keyAuth)
          await shared?.put('http-01', token, keyAuth)
        }
        // DNS-01: keyAuth is already the record's value, base64url(SHA-256(key authorization)) (RFC 8555 §8.4)
        else if (challenge.type === 'dns-01') opts.dns01!.add(authzName, keyAuth)
        else {
          const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuth, await acme.crypto.createPrivateEcdsaKey())
          alpn.set(alpnName, tls.createSecureContext({ key, cert }))
          await shared?.put('tls-alpn-01', alpnName, key.toString().trim() + '\n' + cert.toString().trim() + '\n')
        }
        // the other workers can answer too before the authority is told to validate
        await c.completeChallenge(challenge)
        await c.waitForValidStatus(challenge)
      } finally {
        tokens.delete(token)
        alpn.delete(alpnName)
        const kind = challenge.type as ChallengeType
        if (kind === 'http-01') await shared?.remove('http-01', token)
        else if (kind === 'tls-alpn-01') await shared?.remove('tls-alpn-01', alpnName)
        else opts.dns01!.remove(authzName, keyAuth)
      }
    }
    const [keyBuf, csr] = await acme.crypto.createCsr({ commonName: e.name, altNames: [e.name] }, await acme.crypto.createPrivateEcdsaKey())
    const finalized = await c.finalizeOrder(ord, csr)
    const chain = await c.getCertificate(finalized)
    const keyPem = keyBuf.toString()
    const file = path.join(certDir, certFile(e.name))
    const text = keyPem.trim() + '\n' + chain.trim() + '\n'
    const cert = parseStored(e.name, file, text, clock.now())
    await ensurePrivateDir(certDir)
    await writePrivateFile(file, text)
    e.cert = cert
    log.info({ name: e.name, notAfter: cert.cert.validToDate.toISOString(), file }, 'ACME certificate obtained')
    changed()
    void opts.peers?.send(STORED_TOPIC, { name: e.name }).catch(() => false)
  }

  /** A follower reads a name's certificate again (the orderer stored a new one); the one held stays if the file does not serve. */
  async function reload(name: string): Promise<void> {
    const e = entries.get(name)
    if (!e || closed) return
    const fresh = await loadEntry(name)
    if (entries.get(name) !== e || !fresh.cert || fresh.cert.certPem === e.cert?.certPem) return
    e.cert = fresh.cert
    log.info({ name, notAfter: fresh.cert.cert.validToDate.toISOString() }, 'ACME certificate taken from the worker that ordered it')
    changed()
  }
  const stopHearing = opts.follow && opts.peers ? opts.peers.on(STORED_TOPIC, (m) => void reload(String((m as { name?: unknown } | null)?.name))) : undefined
  // an announcement missed (a follower restarting at that moment) is caught up with on the hour
  const rescan = opts.follow ? clock.setInterval(() => void Promise.all([...entries.keys()].map(reload)), HOUR) : undefined
  rescan?.unref()

  return {
    certificates: () => held,
    http01: (token) => tokens.get(token) ?? shared?.keyAuthorization(token),
    alpn01: (servername) => alpn.get(servername.toLowerCase()) ?? shared?.alpnContext(servername.toLowerCase()),
    start() {
      if (started || opts.follow) return
      started = true
      for (const e of entries.values()) enqueue(e)
    },
    setNames(names) {
      for (const [name, e] of entries) {
        if (!names.includes(name)) {
          clock.clearTimeout(e.timer)
          entries.delete(name)
        }
      }
      changed()
      for (const name of names) {
        if (entries.has(name)) continue
        queue = queue.then(async () => {
          if (closed || entries.has(name)) return
          const e = await loadEntry(name)
          entries.set(name, e)
          if (e.cert) changed()
          if (started) await check(e)
        })
      }
    },
    async idle() {
      let seen: Promise<void>
      do {
        seen = queue
        await seen
      } while (seen !== queue)
    },
    close() {
      closed = true
      stopHearing?.()
      if (rescan) clock.clearInterval(rescan)
      for (const e of entries.values()) clock.clearTimeout(e.timer)
      void dispatcher?.close()
    },
  }
}

/** The broadcast topic of a certificate stored by the orderer. */
const STORED_TOPIC = 'acme:stored'
/** An HTTP-01 token is base64url (RFC 8555 §8.1); a TLS-ALPN-01 name a DNS name: nothing else becomes a file name. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/
const DNS_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/

/**
 * Pending challenges in the data folder (`<acme home>/challenges/http-01/<token>`,
 * `…/tls-alpn-01/<name>.pem`, 0600), written by the orderer before it asks
 * the authority to validate and removed after: the validation reaches
 * whichever worker the kernel hands the connection to. Reads are synchronous
 * (the challenge paths are rare and the files tiny): the pipeline and the
 * TLS handshake ask without waiting.
 */
function sharedChallenges(dir: string) {
  const file = (kind: 'http-01' | 'tls-alpn-01', id: string) => path.join(dir, kind, kind === 'http-01' ? id : `${id}.pem`)
  const read = (f: string): string | undefined => {
    try {
      return readFileSync(f, 'utf8')
    } catch {
      return undefined
    }
  }
  let alpnCache: { text: string; context: tls.SecureContext } | undefined
  return {
    async put(kind: 'http-01' | 'tls-alpn-01', id: string, text: string): Promise<void> {
      await ensurePrivateDir(path.join(dir, kind))
      await writePrivateFile(file(kind, id), text)
    },
    async remove(kind: 'http-01' | 'tls-alpn-01', id: string): Promise<void> {
      await rm(file(kind, id), { force: true })
    },
    keyAuthorization(token: string): string | undefined {
      return TOKEN.test(token) ? read(file('http-01', token)) : undefined
    },
    alpnContext(name: string): tls.SecureContext | undefined {
      if (!DNS_NAME.test(name)) return undefined
      const text = read(file('tls-alpn-01', name))
      if (text === undefined) return undefined
      if (alpnCache?.text !== text) alpnCache = { text, context: tls.createSecureContext({ key: text, cert: text }) }
      return alpnCache.context
    },
  }
}

/** Reads a stored `<name>.pem` (the key, then the chain) and checks it: it parses, the key matches, it covers the name, it has not expired. */
function parseStored(name: string, file: string, text: string, now: number): LoadedCertificate {
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  const keyPem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(text)?.[0]
  if (!keyPem || certs.length === 0) throw new Error(`${file} does not hold a private key and a certificate`)
  const cert = new X509Certificate(certs[0]!)
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`the key in ${file} does not match its certificate`)
  if (!covers(cert, name)) throw new Error(`the certificate in ${file} does not cover ${name}`)
  if (cert.validToDate.getTime() <= now) throw new Error(`the certificate in ${file} expired on ${cert.validToDate.toISOString()}`)
  return { id: `tls.acme (${name})`, cert, certPem: certs.join('\n') + '\n', keyPem: keyPem + '\n', names: namesOf(cert) }
}

/** The pause before retrying a failed order: 1 minute, doubling up to 6 hours; a rate limit (RFC 8555 §6.7 `rateLimited`) at least an hour. */
export function backoff(failures: number, err: unknown): number {
  const base = Math.min(MAX_BACKOFF, MINUTE * 2 ** Math.max(0, failures - 1))
  return /rateLimited|too many/i.test(String((err as Error)?.message)) ? Math.max(base, HOUR) : base
}

/** Two thirds into a certificate's lifetime (day 60 of 90): when to renew without renewal information. */
export function renewAtTwoThirds(cert: X509Certificate): number {
  const from = cert.validFromDate.getTime()
  const to = cert.validToDate.getTime()
  return from + Math.floor(((to - from) * 2) / 3)
}

/** RFC 9773 §4.2: a moment chosen uniformly inside the suggested window; undefined for a window that is missing or ends before it starts. */
export function renewalMoment(window: { start?: string; end?: string } | undefined, random: (n: number) => number): number | undefined {
  const start = Date.parse(window?.start ?? '')
  const end = Date.parse(window?.end ?? '')
  if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return undefined
  const span = end - start
  return span === 0 ? start : start + random(Math.min(span, 2 ** 47))
}

/** Retry-After (RFC 9110 §10.2.3): seconds or an HTTP-date, as milliseconds from now. */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

/**
 * RFC 9773 §4.1: the certificate identifier for renewal information: the
 * base64url Authority Key Identifier keyIdentifier, a dot, and the
 * base64url DER content octets of the serial number.
 */
export function ariCertId(certPem: string): string {
  const cert = new x509.X509Certificate(certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0])
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)
  if (!aki?.keyId) throw new Error('the certificate has no Authority Key Identifier')
  let serial = Buffer.from(cert.serialNumber.length % 2 ? '0' + cert.serialNumber : cert.serialNumber, 'hex')
  // the INTEGER's content octets: minimal, with a leading zero when the high bit is set (X.690 §8.3)
  while (serial.length > 1 && serial[0] === 0 && serial[1]! < 0x80) serial = serial.subarray(1)
  if (serial[0]! >= 0x80) serial = Buffer.concat([Buffer.from([0]), serial])
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serial.toString('base64url')}`
}

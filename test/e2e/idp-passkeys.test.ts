import assert from 'node:assert/strict'
import { captureLog } from '../helpers/server.ts'
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { UserStore } from '../../src/auth/users.ts'
import { userCommand } from '../../src/cli/user.ts'
import { startEdgebox, type Edgebox } from '../../src/server/app.ts'
import { ManualClock } from '../helpers/clock.ts'
import { Browser } from '../helpers/oidc.ts'
import { freePort } from '../helpers/pebble.ts'

/**
 * Passkeys as the built-in provider's second factor (docs/idp.md,
 * "Passkeys"), end to end without a browser: a software authenticator in
 * this file (an EC P-256 key from node:crypto; clientDataJSON, authenticator
 * data and the attestation object built by hand, W3C WebAuthn Level 3 §5.8.1,
 * §6.1, §6.5; 'none' attestation, §8.7; ES256 signatures in ASN.1 DER) registers
 * a passkey on the enrolment page of a provider whose secondFactor is
 * 'required', then signs in with it. A wrong origin, a challenge used
 * already, a signature by another key and a counter going backwards are
 * each refused with a page that says so, and each takes an attempt from the
 * login limits (a manual clock: the buckets refill only when told). Then
 * `edgebox user passkeys` lists and removes the passkey.
 */

const PASSWORDS = { paula: 'paula keeps a long password', quinn: 'quinn has both factors', rita: 'rita brings a security key' } as const
const TOOL_SECRET = 'the tool client secret, long enough'
const REDIRECT = 'http://127.0.0.1:9/cb'
/** paula's attempts per 15 minutes: the tests below count them. */
const PER_ACCOUNT = 10

let box: Edgebox
let dataDir: string
let port: number
let issuer: string
let optIssuer: string
const clock = new ManualClock()
const captured = captureLog('debug')
const logLines = captured.lines

before(async () => {
  port = await freePort()
  issuer = `http://id.localhost:${port}`
  optIssuer = `http://opt.localhost:${port}`
  dataDir = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-passkeys-'))
  const users = await UserStore.open(dataDir)
  await users.add({ username: 'paula', password: PASSWORDS.paula, name: 'Paula P.' })
  await users.add({ username: 'quinn', password: PASSWORDS.quinn })
  users.setTotpSecret('quinn', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP')
  await users.add({ username: 'rita', password: PASSWORDS.rita })
  users.close()
  const tool = { clientId: 'tool', clientSecret: TOOL_SECRET, redirectUris: [REDIRECT] }
  const log = captured.logger
  box = await startEdgebox(
    {
      listen: [{ host: '127.0.0.1', port }],
      dataDir,
      log: { access: false, level: 'silent' },
      sites: [
        {
          hosts: ['id.localhost'],
          routes: [
            {
              path: '/',
              idp: {
                issuer,
                name: 'Passkey ID',
                secondFactor: 'required',
                loginLimits: { perAccount: { attempts: PER_ACCOUNT, per: '15m' }, perAddress: { attempts: 1000, per: '15m' } },
                clients: [tool],
              },
            },
          ],
        },
        // 'optional' (the default), for a user with both factors
        { hosts: ['opt.localhost'], routes: [{ path: '/', idp: { issuer: optIssuer, clients: [tool] } }] },
      ],
    },
    { log, clock },
  )
})

after(async () => {
  await box?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

// ---- a software authenticator ----

/** CBOR (RFC 8949 §3) as far as WebAuthn's structures need: integers, byte and text strings, maps. */
function cbor(v: number | string | Uint8Array | Map<number | string, unknown>): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.from([(major << 5) | n])
    if (n < 0x100) return Buffer.from([(major << 5) | 24, n])
    if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff])
    const b = Buffer.alloc(5)
    b[0] = (major << 5) | 26
    b.writeUInt32BE(n, 1)
    return b
  }
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v)
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)])
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), v])
  return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x as Parameters<typeof cbor>[0])])])
}

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url')
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest()

/** Flags of authenticator data (§6.1): user present, user verified, attested credential data included. */
const UP = 0x01
const UV = 0x04
const AT = 0x40

/**
 * An authenticator holding one ES256 credential: it answers
 * `create()` with 'none' attestation and `get()` with a signature over
 * authenticator data and the hash of clientDataJSON (§6.3.3).
 */
class SoftAuthenticator {
  readonly id = randomBytes(32)
  readonly key = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  readonly rpId: string
  userHandle = ''

  constructor(rpId: string) {
    this.rpId = rpId
  }

  /** The credential public key as a COSE_Key (RFC 9052 §7, RFC 9053 §7.1.1): EC2, ES256, P-256, x, y. */
  coseKey(): Buffer {
    const jwk = this.key.publicKey.export({ format: 'jwk' })
    return cbor(
      new Map<number, unknown>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    )
  }

  authData(flags: number, counter: number, attested?: Buffer, rpId = this.rpId): Buffer {
    const c = Buffer.alloc(4)
    c.writeUInt32BE(counter)
    return Buffer.concat([sha256(rpId), Buffer.from([flags]), c, ...(attested ? [attested] : [])])
  }

  static clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }))
  }

  /** `navigator.credentials.create()`'s answer, as the provider's script posts it (RegistrationResponseJSON). */
  register(options: { challenge: string; user: { id: string } }, o: { origin: string; counter?: number; packed?: boolean }): string {
    this.userHandle = options.user.id
    const idLen = Buffer.alloc(2)
    idLen.writeUInt16BE(this.id.length)
    // attested credential data (§6.5.1): AAGUID (zeros: 'none'), the credential ID's length and the ID, the public key
    const attested = Buffer.concat([Buffer.alloc(16), idLen, this.id, this.coseKey()])
    const authData = this.authData(UP | UV | AT, o.counter ?? 0, attested)
    // 'packed' (§8.2) with a statement no one could check: what a device may send although 'none' was asked for
    const attestationObject = cbor(
      new Map<string, unknown>([
        ['fmt', o.packed ? 'packed' : 'none'],
        [
          'attStmt',
          o.packed
            ? new Map<string, unknown>([
                ['alg', -7],
                ['sig', randomBytes(70)],
                ['x5c', new Map()],
              ])
            : new Map(),
        ],
        ['authData', authData],
      ]),
    )
    return JSON.stringify({
      id: b64u(this.id),
      rawId: b64u(this.id),
      type: 'public-key',
      authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64u(SoftAuthenticator.clientData('webauthn.create', options.challenge, o.origin)), attestationObject: b64u(attestationObject), transports: ['internal'] },
    })
  }

  /** `navigator.credentials.get()`'s answer (AuthenticationResponseJSON); `key` signs instead of the credential's own. */
  assert(options: { challenge: string }, o: { origin: string; counter: number; key?: KeyObject }): string {
    const authData = this.authData(UP | UV, o.counter)
    const clientDataJSON = SoftAuthenticator.clientData('webauthn.get', options.challenge, o.origin)
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), o.key ?? this.key.privateKey)
    return JSON.stringify({
      id: b64u(this.id),
      rawId: b64u(this.id),
      type: 'public-key',
      authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authData), signature: b64u(signature), userHandle: this.userHandle },
    })
  }
}

// ---- the provider's pages, as a browser without JavaScript sees them ----

type Step = { kind: 'page'; url: string; res: Response; html: string } | { kind: 'callback'; url: URL }

/** Follows redirects from an answer until a page, or the redirect back to the client. */
async function follow(b: Browser, res: Response, url: string): Promise<Step> {
  let current = url
  for (let i = 0; i < 10; i++) {
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer()
      const next = new URL(location, current)
      if (next.href.startsWith(REDIRECT)) return { kind: 'callback', url: next }
      current = next.href
      res = await b.fetch(current)
      continue
    }
    return { kind: 'page', url: current, res, html: await res.text() }
  }
  throw new Error(`too many redirects from ${url}`)
}

function page(s: Step): Extract<Step, { kind: 'page' }> {
  assert.equal(s.kind, 'page', s.kind === 'callback' ? `went back to the client: ${s.url.href}` : '')
  return s as Extract<Step, { kind: 'page' }>
}

/** Posts a form of `at` (its action, relative) as the page's own origin would. */
async function submit(b: Browser, at: Extract<Step, { kind: 'page' }>, action: string, fields: Record<string, string>): Promise<Step> {
  const url = new URL(action, at.url).href
  const res = await b.fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin }, body: new URLSearchParams(fields).toString() })
  return follow(b, res, url)
}

/** A new sign-in at `iss` for the tool client, through the password: the page after it. */
async function afterPassword(b: Browser, username: keyof typeof PASSWORDS, iss = issuer): Promise<Step> {
  const q = new URLSearchParams({
    client_id: 'tool',
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid',
    state: randomBytes(8).toString('hex'),
    code_challenge: sha256(randomBytes(32).toString('base64url')).toString('base64url'),
    code_challenge_method: 'S256',
  })
  const login = page(await follow(b, await b.fetch(`${iss}/auth?${q}`), `${iss}/auth`))
  const action = /<form method="post" action="([^"]+\/login)"/.exec(login.html)![1]!
  return submit(b, login, action, { username, password: PASSWORDS[username] })
}

const unescapeHtml = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')

/** The passkey form of a page: its action, kind and the options for the browser. */
function passkeyForm(html: string): { action: string; kind: string; options: Record<string, unknown> & { challenge: string } } {
  const m = /<form method="post" action="([^"]+)" class="passkey" data-passkey="(get|create)" data-options="([^"]*)"[^>]* hidden>/.exec(html)
  assert.ok(m, `no passkey form in: ${html.slice(0, 2000)}`)
  return { action: m[1]!, kind: m[2]!, options: JSON.parse(unescapeHtml(m[3]!)) as Record<string, unknown> & { challenge: string } }
}

/** The error a page announces. */
const errorOf = (html: string) => /<p id="form-error" class="error" role="alert">([^<]*)<\/p>/.exec(html)?.[1]

const refusals = (reason: string) => logLines.filter((l) => l.msg === 'identity provider: passkey refused' && l.reason === reason)

async function withUsers<T>(fn: (users: UserStore) => T | Promise<T>): Promise<T> {
  const users = await UserStore.open(dataDir)
  try {
    return await fn(users)
  } finally {
    users.close()
  }
}

const paula = () => new SoftAuthenticator('id.localhost')
let authenticator: SoftAuthenticator

describe('passkeys, secondFactor required', () => {
  test('a user with no second factor registers a passkey on the enrolment page (the TOTP set-up stays), and is signed in', async () => {
    authenticator = paula()
    const b = new Browser()
    const enrol = page(await afterPassword(b, 'paula'))
    assert.equal(enrol.res.status, 200)
    assert.match(enrol.html, /<title>Set up two-step verification<\/title>/)
    // the TOTP set-up as before, the first form of the page
    assert.match(enrol.html, /<form method="post" action="\/interaction\/[A-Za-z0-9_-]+\/enrol" class="stack">/)
    assert.match(enrol.html, /<button type="submit">Register a passkey instead<\/button>/)
    // the passkey form is hidden until the provider's script shows it, which runs under the page's nonce only
    const nonce = /<script src="\/interaction\/passkey\.js\?v=[A-Za-z0-9_-]+" nonce="([A-Za-z0-9+/=]+)" defer><\/script>/.exec(enrol.html)?.[1]
    assert.ok(nonce, 'the script tag, with its nonce')
    const csp = enrol.res.headers.get('content-security-policy')!
    assert.ok(csp.includes(`script-src 'nonce-${nonce}';`), csp)
    assert.equal(enrol.html.match(/<script/g)?.length, 1)
    assert.doesNotMatch(enrol.html, /\son[a-z]+=/i)

    const form = passkeyForm(enrol.html)
    assert.equal(form.kind, 'create')
    assert.match(form.action, /^\/interaction\/[A-Za-z0-9_-]+\/passkey-register$/)
    const o = form.options as unknown as { rp: { id: string; name: string }; user: { id: string; name: string; displayName: string }; challenge: string; pubKeyCredParams: { alg: number }[]; attestation: string; authenticatorSelection: { userVerification: string; residentKey: string }; excludeCredentials: unknown[] }
    assert.deepEqual(o.rp, { name: 'Passkey ID', id: 'id.localhost' })
    assert.equal(o.user.name, 'paula')
    assert.equal(o.user.displayName, 'Paula P.')
    assert.equal(Buffer.from(o.user.id, 'base64url').length, 64)
    assert.equal(Buffer.from(o.challenge, 'base64url').length, 32)
    assert.deepEqual(o.pubKeyCredParams.map((p) => p.alg), [-8, -7, -257])
    assert.equal(o.attestation, 'none')
    assert.equal(o.authenticatorSelection.userVerification, 'preferred')
    assert.deepEqual(o.excludeCredentials, [])

    // the script itself: served by the provider, cached for good under its versioned URL
    const src = /<script src="([^"]+)"/.exec(enrol.html)![1]!
    const js = await b.fetch(new URL(unescapeHtml(src), issuer).href)
    assert.equal(js.status, 200)
    assert.match(js.headers.get('content-type')!, /^text\/javascript/)
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.match(await js.text(), /navigator\.credentials\.create/)

    // made for another origin: refused, the page says why, a new challenge
    const wrong = page(await submit(b, enrol, form.action, { response: authenticator.register(o, { origin: `http://evil.localhost:${port}` }) }))
    assert.equal(wrong.res.status, 200)
    assert.equal(errorOf(wrong.html), 'That passkey answer was made for another site, so it was not accepted.')
    // the error is about the passkey: the code field is not marked
    assert.doesNotMatch(wrong.html, / aria-invalid="true"/)
    const again = passkeyForm(wrong.html)
    assert.notEqual(again.options.challenge, o.challenge)
    assert.equal((again.options as unknown as typeof o).user.id, o.user.id, 'the same user handle for the whole set-up')
    assert.equal(refusals('origin').length, 1)

    const done = await submit(b, wrong, again.action, { response: authenticator.register(again.options as unknown as typeof o, { origin: issuer }) })
    assert.equal(done.kind, 'callback')
    assert.ok((done as { url: URL }).url.searchParams.get('code'))

    const stored = await withUsers((u) => ({ keys: u.passkeys('paula'), user: u.get('paula')! }))
    assert.equal(stored.keys.length, 1)
    assert.equal(stored.keys[0]!.id, b64u(authenticator.id))
    assert.equal(stored.keys[0]!.userHandle, o.user.id)
    assert.equal(stored.keys[0]!.counter, 0)
    assert.deepEqual(stored.keys[0]!.transports, ['internal'])
    assert.equal(stored.keys[0]!.lastUsedAt, null)
    assert.equal(stored.user.totpSecret, null, 'a passkey instead of TOTP, not both')
    assert.ok(logLines.some((l) => l.msg === 'identity provider: passkey registered' && l.user === 'paula' && l.passkey === b64u(authenticator.id)))
    assert.ok(logLines.some((l) => l.msg === 'identity provider: signed in' && l.user === 'paula' && JSON.stringify(l.amr) === '["pwd","pop"]'))
  })

  test('the next sign-in asks for the passkey (no code field: no TOTP) and is let in with it; its counter and time of use are stored', async () => {
    const b = new Browser()
    const asked = page(await afterPassword(b, 'paula'))
    assert.match(asked.html, /<title>Two-step verification<\/title>/)
    assert.doesNotMatch(asked.html, /\/totp"/, 'no code field for a user without TOTP')
    assert.doesNotMatch(asked.html, /\/enrol"/, 'not set up again')
    // without JavaScript the page says what is needed
    assert.match(asked.html, /<p class="muted" data-passkey-unsupported>Signing in with a passkey needs JavaScript/)
    assert.match(asked.html, /<button type="submit" class="primary">Use a passkey<\/button>/)
    const form = passkeyForm(asked.html)
    assert.equal(form.kind, 'get')
    assert.match(form.action, /\/passkey$/)
    const o = form.options as unknown as { rpId: string; userVerification: string; allowCredentials: { id: string; type: string; transports: string[] }[]; challenge: string }
    assert.equal(o.rpId, 'id.localhost')
    assert.equal(o.userVerification, 'preferred')
    assert.deepEqual(o.allowCredentials, [{ id: b64u(authenticator.id), type: 'public-key', transports: ['internal'] }])

    const done = await submit(b, asked, form.action, { response: authenticator.assert(o, { origin: issuer, counter: 5 }) })
    assert.equal(done.kind, 'callback')
    assert.ok((done as { url: URL }).url.searchParams.get('code'))
    const key = await withUsers((u) => u.passkeys('paula')[0]!)
    assert.equal(key.counter, 5)
    assert.equal(key.lastUsedAt, clock.now())
  })

  test('a wrong origin, a challenge used already, a signature by another key, a counter going backwards: each refused with a page that says so, and counted by the limits', async () => {
    // paula's attempts so far: a password, a refused and a good registration; a password and a passkey. This sign-in's password: the 6th
    const b = new Browser()
    let at = page(await afterPassword(b, 'paula'))
    const first = passkeyForm(at.html)

    // 1. made for another origin (a phishing site relaying the challenge)
    const good = authenticator.assert(first.options, { origin: issuer, counter: 6 })
    at = page(await submit(b, at, first.action, { response: authenticator.assert(first.options, { origin: `http://id.localhost.evil.example:${port}`, counter: 6 }) }))
    assert.equal(at.res.status, 200)
    assert.equal(errorOf(at.html), 'That passkey answer was made for another site, so it was not accepted.')
    assert.equal(refusals('origin').length, 2)

    // 2. a right answer, but to the challenge the refused one used up
    at = page(await submit(b, at, passkeyForm(at.html).action, { response: good }))
    assert.equal(errorOf(at.html), 'That passkey answer was for an earlier request (already used, or from another tab). Try again.')
    assert.equal(refusals('challenge').length, 1)

    // 3. the right credential ID, signed by another key
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    let form = passkeyForm(at.html)
    at = page(await submit(b, at, form.action, { response: authenticator.assert(form.options, { origin: issuer, counter: 7, key: other }) }))
    assert.equal(errorOf(at.html), 'That passkey answer could not be verified, so it was not accepted.')
    assert.equal(refusals('signature').length, 1)

    // 4. a good signature, but the counter went backwards (5 stored): a cloned authenticator (§6.1.1)
    form = passkeyForm(at.html)
    at = page(await submit(b, at, form.action, { response: authenticator.assert(form.options, { origin: issuer, counter: 3 }) }))
    assert.match(errorOf(at.html)!, /^That passkey&#39;s signature counter went backwards/)
    assert.equal(refusals('counter').length, 1)
    assert.equal((await withUsers((u) => u.passkeys('paula')[0]!)).counter, 5, 'nothing stored for a refused answer')

    // each refusal took an attempt: the 10 of the bucket are used up, so a right answer now is held back
    form = passkeyForm(at.html)
    at = page(await submit(b, at, form.action, { response: authenticator.assert(form.options, { origin: issuer, counter: 8 }) }))
    assert.equal(at.res.status, 429)
    assert.match(at.res.headers.get('retry-after')!, /^[1-9][0-9]*$/)
    assert.match(errorOf(at.html)!, /^Too many sign-in attempts\. Wait /)
    assert.equal((await withUsers((u) => u.passkeys('paula')[0]!)).counter, 5)

    // one attempt back after 90 seconds (10 per 15 minutes): the right answer lets paula in
    clock.advance(90_000)
    form = passkeyForm(at.html)
    const done = await submit(b, at, form.action, { response: authenticator.assert(form.options, { origin: issuer, counter: 8 }) })
    assert.equal(done.kind, 'callback')
    assert.equal((await withUsers((u) => u.passkeys('paula')[0]!)).counter, 8)

    // the log names the reasons, never the answers
    for (const l of logLines) {
      const text = JSON.stringify(l)
      assert.ok(!text.includes(good.slice(0, 40)) && !text.includes(PASSWORDS.paula), text)
    }
  })

  test("an attestation statement sent although 'none' was asked for is dropped unread, as a browser may drop it (nothing checked or fetched)", async () => {
    const key = new SoftAuthenticator('id.localhost')
    const b = new Browser()
    const enrol = page(await afterPassword(b, 'rita'))
    const form = passkeyForm(enrol.html)
    const done = await submit(b, enrol, form.action, { response: key.register(form.options as unknown as { challenge: string; user: { id: string } }, { origin: issuer, packed: true }) })
    assert.equal(done.kind, 'callback')
    assert.deepEqual(
      (await withUsers((u) => u.passkeys('rita'))).map((p) => p.id),
      [b64u(key.id)],
    )
  })

  test('`edgebox user passkeys` lists the passkey and removes it; paula then sets up a second factor again', async () => {
    let out = ''
    let err = ''
    const run = (args: string[]) =>
      userCommand(
        [...args, '--data-dir', dataDir],
        new Writable({ write: (c, _e, cb) => void ((out += String(c)), cb()) }),
        new Writable({ write: (c, _e, cb) => void ((err += String(c)), cb()) }),
        new PassThrough().end(''),
      )
    const id = b64u(authenticator.id)
    assert.equal(await run(['passkeys', 'paula']), 0, err)
    const lines = out.trimEnd().split('\n')
    assert.match(lines[0]!, /^ID\s+CREATED\s+LAST USED\s+TRANSPORTS$/)
    assert.match(lines[1]!, new RegExp(`^${id}\\s+\\d{4}-\\d\\d-\\d\\d\\s+\\d{4}-\\d\\d-\\d\\d\\s+internal$`))
    out = ''
    assert.equal(await run(['passkeys', 'paula', '--json']), 0, err)
    assert.deepEqual(JSON.parse(out), { id, createdAt: new Date(clock.now() - 90_000).toISOString(), lastUsedAt: new Date(clock.now()).toISOString(), counter: 8, transports: ['internal'] })
    out = ''
    assert.equal(await run(['list', '--json']), 0, err)
    const listed = out.trimEnd().split('\n').map((l) => JSON.parse(l) as { username: string; secondFactor: boolean; passkeys: number; totp: boolean })
    assert.deepEqual(listed.find((u) => u.username === 'paula'), { ...listed.find((u) => u.username === 'paula'), secondFactor: true, totp: false, passkeys: 1 })

    out = ''
    assert.equal(await run(['passkeys', 'paula', '--remove', 'not-a-passkey-of-hers']), 1)
    assert.match(err, /paula has no passkey "not-a-passkey-of-hers"/)
    assert.equal(await run(['passkeys', 'paula', '--remove', id, '--remove-all']), 2)
    err = ''
    assert.equal(await run(['passkeys', 'paula', '--remove', id]), 0, err)
    assert.equal(out, `passkey ${id} of paula removed\n`)
    out = ''
    assert.equal(await run(['passkeys', 'paula', '--remove-all']), 0, err)
    assert.equal(out, 'paula had no passkeys\n')
    out = ''
    assert.equal(await run(['passkeys', 'paula']), 0, err)
    assert.match(out, /^paula has no passkeys/)

    // with no factor left, under 'required' the next sign-in sets one up again
    clock.advance(15 * 60_000)
    const enrol = page(await afterPassword(new Browser(), 'paula'))
    assert.match(enrol.html, /<title>Set up two-step verification<\/title>/)
    assert.equal(passkeyForm(enrol.html).kind, 'create')
  })
})

describe('passkeys, secondFactor optional', () => {
  test('a user with TOTP and a passkey is offered both: the code field and "Use a passkey"; the passkey lets them in', async () => {
    const quinn = new SoftAuthenticator('opt.localhost')
    quinn.userHandle = b64u(randomBytes(64))
    await withUsers((u) => u.addPasskey('quinn', { id: b64u(quinn.id), userHandle: quinn.userHandle, publicKey: quinn.coseKey(), counter: 0, transports: ['usb'] }))
    const b = new Browser()
    const asked = page(await afterPassword(b, 'quinn', optIssuer))
    assert.match(asked.html, /<form method="post" action="\/interaction\/[A-Za-z0-9_-]+\/totp" class="stack">/)
    assert.match(asked.html, /Enter the 6-digit code your authenticator app shows for this account, or use a passkey\./)
    assert.doesNotMatch(asked.html, /data-passkey-unsupported/, 'the code works without JavaScript')
    const form = passkeyForm(asked.html)
    assert.equal((form.options as { rpId?: string }).rpId, 'opt.localhost')
    // a passkey made for another RP ID (id.localhost's) is refused
    const elsewhere = new SoftAuthenticator('id.localhost')
    Object.assign(elsewhere, { id: quinn.id, key: quinn.key, userHandle: quinn.userHandle })
    const refused = page(await submit(b, asked, form.action, { response: elsewhere.assert(form.options, { origin: optIssuer, counter: 0 }) }))
    assert.equal(errorOf(refused.html), 'That passkey belongs to another site, so it was not accepted.')
    const next = passkeyForm(refused.html)
    const done = await submit(b, refused, next.action, { response: quinn.assert(next.options, { origin: optIssuer, counter: 0 }) })
    assert.equal(done.kind, 'callback')
    // an authenticator that does not count (0 and 0) is fine; its time of use is stored
    const key = await withUsers((u) => u.passkeys('quinn')[0]!)
    assert.equal(key.counter, 0)
    assert.equal(key.lastUsedAt, clock.now())
  })

  test('a passkey answer posted from another site, or without the sign-in cookie, is refused as the other forms are', async () => {
    const quinn = new SoftAuthenticator('opt.localhost')
    const b = new Browser()
    const asked = page(await afterPassword(b, 'quinn', optIssuer))
    const form = passkeyForm(asked.html)
    const url = new URL(form.action, asked.url).href
    const body = new URLSearchParams({ response: quinn.assert(form.options, { origin: optIssuer, counter: 1 }) }).toString()
    const crossSite = await b.fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body })
    assert.equal(crossSite.status, 403)
    const stranger = await new Browser().fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: optIssuer }, body })
    assert.equal(stranger.status, 400)
    assert.match(await stranger.text(), /Sign-in expired/)
  })
})

/**
 * The security response headers of one response, judged the way browsers
 * apply them, for `edgebox inspect`: each check says what is there, what it
 * does, and why it matters when it is missing or weak. Pure functions.
 */

import net from 'node:net'

export type SecurityStatus = 'ok' | 'missing' | 'weak' | 'info'

export interface SecurityFinding {
  /** What was checked: `Content-Security-Policy`, `Frame protection`, `Cookie sid: SameSite`, ... */
  check: string
  status: SecurityStatus
  /** The header value the finding is about (cookie values are replaced by …). */
  value?: string
  /** Plain words: what is there, what it means, why it matters. */
  explain: string
}

export type SecurityScore = Record<SecurityStatus, number>

/** A response header map; names in any case (Node gives lower case). */
export type ResponseHeaders = Record<string, string | string[] | undefined>

const HALF_YEAR = 180 * 24 * 3600
const YEAR = 365 * 24 * 3600

const REFERRER_POLICIES = new Set([
  'no-referrer',
  'no-referrer-when-downgrade',
  'origin',
  'origin-when-cross-origin',
  'same-origin',
  'strict-origin',
  'strict-origin-when-cross-origin',
  'unsafe-url',
])

/** Every field line of a header, case-insensitively. */
function lines(headers: ResponseHeaders, name: string): string[] {
  const out: string[] = []
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name && v !== undefined) out.push(...([] as string[]).concat(v))
  return out
}

/** The header's field lines combined with ", " (RFC 9110 §5.3); undefined when absent. */
function combined(headers: ResponseHeaders, name: string): string | undefined {
  const l = lines(headers, name)
  return l.length ? l.join(', ') : undefined
}

/** Whether the response is a document a browser renders (and so runs scripts in, or frames). */
function isDocument(headers: ResponseHeaders): boolean {
  const type = combined(headers, 'content-type')
  if (type === undefined) return true // browsers sniff: it may well render as HTML
  const essence = type.split(';')[0]!.trim().toLowerCase()
  return essence === 'text/html' || essence === 'application/xhtml+xml' || essence === 'image/svg+xml' || essence === 'text/xml' || essence === 'application/xml' || essence.endsWith('+xml')
}

/** Secure contexts for cookies: https, and localhost / loopback addresses (browsers trust them). */
function isTrustworthy(url: URL): boolean {
  if (url.protocol === 'https:' || url.protocol === 'wss:') return true
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'))
}

// ---------------------------------------------------------------- CSP

type Policy = Map<string, string[]>

/** CSP policies: a comma separates policies in one field, `;` directives; the first of a repeated directive counts. */
function parsePolicies(values: string[]): Policy[] {
  const policies: Policy[] = []
  for (const value of values) {
    for (const text of value.split(',')) {
      const policy: Policy = new Map()
      for (const directive of text.split(';')) {
        const [name, ...sources] = directive.trim().split(/\s+/)
        if (!name) continue
        const key = name.toLowerCase()
        if (!policy.has(key)) policy.set(key, sources)
      }
      if (policy.size) policies.push(policy)
    }
  }
  return policies
}

/** What weakens a policy against injected scripts, in words; empty when it holds. */
function scriptProblems(policy: Policy): string[] {
  const directive = policy.has('script-src') ? 'script-src' : policy.has('default-src') ? 'default-src' : null
  if (!directive) return ['it has neither script-src nor default-src, so scripts from anywhere may run']
  const sources = policy.get(directive)!.map((s) => s.toLowerCase())
  const nonceOrHash = sources.some((s) => s.startsWith("'nonce-") || /^'sha(256|384|512)-/.test(s))
  const strictDynamic = sources.includes("'strict-dynamic'") && nonceOrHash
  const problems: string[] = []
  if (sources.includes("'unsafe-inline'") && !nonceOrHash) {
    problems.push(`${directive} has 'unsafe-inline': any inline script runs, including one an attacker injects, so the policy does little against XSS (with a nonce or hash browsers would ignore 'unsafe-inline')`)
  }
  if (sources.includes("'unsafe-eval'")) problems.push(`${directive} has 'unsafe-eval': eval() and new Function() may turn injected text into code (a nonce or hash does not change that)`)
  if (!strictDynamic) {
    const wide = sources.filter((s) => s === '*' || s === 'http:' || s === 'https:' || s === 'data:')
    if (wide.length) problems.push(`${directive} allows ${wide.join(' ')}: scripts from any host${wide.includes('data:') ? ' or data: URL' : ''} may run`)
  }
  return problems
}

function cspFindings(headers: ResponseHeaders, document: boolean): SecurityFinding[] {
  const enforced = lines(headers, 'content-security-policy')
  const reportOnly = lines(headers, 'content-security-policy-report-only')
  const check = 'Content-Security-Policy'
  const notDocument = document ? '' : ` This response is ${combined(headers, 'content-type')}, not a page: CSP matters most for HTML documents, so this is only a note.`
  if (!enforced.length) {
    if (reportOnly.length) {
      return [
        {
          check,
          status: document ? 'weak' : 'info',
          value: reportOnly.join(', '),
          explain: `Only Content-Security-Policy-Report-Only: browsers report violations but enforce nothing, so injected scripts still run. Useful while testing a policy; send it as Content-Security-Policy to enforce it.${notDocument}`,
        },
      ]
    }
    return [
      {
        check,
        status: document ? 'missing' : 'info',
        explain: `No Content-Security-Policy: the browser runs any script the page ends up containing, so one injection flaw (XSS) lets an attacker run code as your site. A policy limits where scripts may come from (a <meta http-equiv> policy in the HTML would not show here).${notDocument}`,
      },
    ]
  }
  const policies = parsePolicies(enforced)
  const problemsPerPolicy = policies.map(scriptProblems)
  const value = enforced.join(', ')
  const also = reportOnly.length ? ' A Content-Security-Policy-Report-Only policy is also being tried out (reported, not enforced).' : ''
  // With several policies, a script must pass all of them: one strong policy is enough.
  if (problemsPerPolicy.some((p) => p.length === 0)) {
    const notes: string[] = []
    for (const policy of policies) {
      const src = policy.get('script-src') ?? policy.get('default-src') ?? []
      const lower = src.map((s) => s.toLowerCase())
      if (lower.includes("'unsafe-inline'") && lower.some((s) => s.startsWith("'nonce-") || s.startsWith("'sha"))) {
        notes.push("'unsafe-inline' is there for old browsers only: current ones ignore it next to a nonce or hash")
      }
    }
    return [
      {
        check,
        status: 'ok',
        value,
        explain: `Scripts are limited to the sources the policy names, so an injected script does not run.${notes.length ? ` ${notes.join('; ')}.` : ''}${also}`,
      },
    ]
  }
  const problems = [...new Set(problemsPerPolicy.flat())]
  return [{ check, status: document ? 'weak' : 'info', value, explain: `The policy is there but weak against XSS: ${problems.join('; ')}.${also}${notDocument}` }]
}

// ---------------------------------------------------------------- framing

function frameFinding(headers: ResponseHeaders, document: boolean): SecurityFinding {
  const check = 'Frame protection'
  const notDocument = document ? '' : ` This response is ${combined(headers, 'content-type')}, not a page, so framing matters little here.`
  const ancestors = parsePolicies(lines(headers, 'content-security-policy'))
    .map((p) => p.get('frame-ancestors'))
    .find((v) => v !== undefined)
  const xfo = combined(headers, 'x-frame-options')
  if (ancestors) {
    const value = `frame-ancestors ${ancestors.join(' ')}`
    const lower = ancestors.map((s) => s.toLowerCase())
    const ignored = xfo ? ` (X-Frame-Options: ${xfo} is then ignored by browsers; it still helps very old ones)` : ''
    if (lower.length === 0 || lower.includes("'none'")) return { check, status: 'ok', value, explain: `CSP frame-ancestors 'none': no site may show this page in a frame, which rules out clickjacking${ignored}.` }
    if (lower.some((s) => s === '*' || s === 'https:' || s === 'http:')) {
      return { check, status: document ? 'weak' : 'info', value, explain: `CSP frame-ancestors allows ${ancestors.join(' ')}: any site may frame this page and trick users into clicking on it (clickjacking)${ignored}.${notDocument}` }
    }
    const who = lower.length === 1 && lower[0] === "'self'" ? 'only this site' : `only ${ancestors.join(' ')}`
    return { check, status: 'ok', value, explain: `CSP frame-ancestors: ${who} may show this page in a frame, which keeps other sites from clickjacking it${ignored}.` }
  }
  if (xfo !== undefined) {
    const values = [...new Set(xfo.split(',').map((v) => v.trim().toLowerCase()))]
    if (values.length === 1 && (values[0] === 'deny' || values[0] === 'sameorigin')) {
      const who = values[0] === 'deny' ? 'no site may' : 'only this site may'
      return { check, status: 'ok', value: xfo, explain: `X-Frame-Options ${values[0].toUpperCase()}: ${who} show this page in a frame, which prevents clickjacking. CSP frame-ancestors is the modern equivalent.` }
    }
    if (values.length > 1 && values.some((v) => v === 'deny' || v === 'sameorigin')) {
      return { check, status: 'weak', value: xfo, explain: 'X-Frame-Options has conflicting values: browsers then refuse all framing, which protects but may not be what you meant. Send one value, or use CSP frame-ancestors.' }
    }
    if (values.some((v) => v.startsWith('allow-from'))) {
      return {
        check,
        status: document ? 'weak' : 'info',
        value: xfo,
        explain: `X-Frame-Options ALLOW-FROM is obsolete: current browsers ignore it, so any site may frame this page (clickjacking). Use CSP frame-ancestors with the sites allowed.${notDocument}`,
      }
    }
    return { check, status: document ? 'weak' : 'info', value: xfo, explain: `X-Frame-Options ${xfo} is not a value browsers know (DENY or SAMEORIGIN), so it is ignored and any site may frame this page.${notDocument}` }
  }
  return {
    check,
    status: document ? 'missing' : 'info',
    explain: `Neither CSP frame-ancestors nor X-Frame-Options: any site may show this page in an invisible frame and trick users into clicking buttons on it (clickjacking).${notDocument}`,
  }
}

// ---------------------------------------------------------------- HSTS

function hstsFinding(url: URL, headers: ResponseHeaders): SecurityFinding {
  const check = 'Strict-Transport-Security'
  const all = lines(headers, 'strict-transport-security')
  const value = all[0]
  if (url.protocol !== 'https:') {
    if (value !== undefined) return { check, status: 'info', value, explain: 'HSTS works only over HTTPS; browsers ignore it here on plain http://.' }
    return { check, status: 'info', explain: `This is plain http://, where HSTS does not apply: check https://${url.host}/ instead. Anyone on the network can read and change plain HTTP.` }
  }
  if (value === undefined) {
    return {
      check,
      status: 'missing',
      explain:
        'No HSTS: a browser may still try http:// first (a typed address, an old link), and a network attacker can intercept that request before any redirect to HTTPS. HSTS makes browsers go straight to HTTPS for max-age seconds.',
    }
  }
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (net.isIP(host)) return { check, status: 'info', value, explain: 'HSTS is set, but browsers ignore it when the host is an IP address: it applies to host names only.' }
  const directives = new Map<string, string | true>()
  let duplicate = false
  for (const part of value.split(';')) {
    const [k, ...rest] = part.split('=')
    const key = k!.trim().toLowerCase()
    if (!key) continue
    if (directives.has(key)) duplicate = true
    directives.set(key, rest.length ? rest.join('=').trim().replace(/^"(.*)"$/, '$1') : true)
  }
  const raw = directives.get('max-age')
  if (duplicate || typeof raw !== 'string' || !/^\d+$/.test(raw)) {
    return { check, status: 'weak', value, explain: `The header is invalid (${duplicate ? 'a directive appears twice' : 'max-age is missing or not a number of seconds'}), so browsers ignore it: there is no HSTS.` }
  }
  const maxAge = Number(raw)
  const sub = directives.has('includesubdomains')
  const preload = directives.has('preload')
  const days = Math.floor(maxAge / 86400)
  const notes: string[] = []
  notes.push(sub ? 'includeSubDomains: every subdomain is HTTPS-only too' : 'without includeSubDomains, subdomains are not covered')
  if (preload) {
    notes.push(
      maxAge >= YEAR && sub
        ? 'preload: it asks to be built into browsers (hstspreload.org), so even a first visit is HTTPS-only; leaving that list takes months'
        : 'preload is set, but the browsers\' preload list also requires max-age of at least 1 year (31536000) and includeSubDomains',
    )
  }
  if (maxAge === 0) return { check, status: 'weak', value, explain: 'max-age=0 tells browsers to forget HSTS for this host: plain http:// is allowed again.' }
  if (maxAge < HALF_YEAR) {
    return {
      check,
      status: 'weak',
      value,
      explain: `max-age is ${maxAge} s (${days} days), under 180 days: visitors who come back after it lapses are unprotected on their first request. One year (31536000) is usual. ${notes.join('; ')}.`,
    }
  }
  return { check, status: 'ok', value, explain: `Browsers will use only HTTPS for this host for ${days} days after each visit. ${notes.join('; ')}.` }
}

// ---------------------------------------------------------------- simple headers

function nosniffFinding(headers: ResponseHeaders): SecurityFinding {
  const check = 'X-Content-Type-Options'
  const value = combined(headers, 'x-content-type-options')
  if (value === undefined) {
    return {
      check,
      status: 'missing',
      explain: 'No X-Content-Type-Options: nosniff: browsers may guess a type from the content, and run an uploaded file or a text response as a script or page.',
    }
  }
  if (value.split(',')[0]!.trim().toLowerCase() === 'nosniff') return { check, status: 'ok', value, explain: 'nosniff: browsers use the declared Content-Type and never guess, and refuse scripts and styles served with the wrong type.' }
  return { check, status: 'weak', value, explain: `"${value}" is not a known value: only nosniff is defined, so browsers may still guess types.` }
}

function referrerFinding(headers: ResponseHeaders): SecurityFinding {
  const check = 'Referrer-Policy'
  const value = combined(headers, 'referrer-policy')
  if (value === undefined) {
    return {
      check,
      status: 'missing',
      explain:
        'No Referrer-Policy: current browsers default to strict-origin-when-cross-origin (other sites see only your origin, never paths or query strings, and nothing over http://). Setting it pins that behaviour, including in older browsers that sent full URLs.',
    }
  }
  // Browsers use the last value they recognise.
  const policy = value
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => REFERRER_POLICIES.has(v))
    .pop()
  if (!policy) return { check, status: 'weak', value, explain: 'No value browsers recognise, so they use their default (strict-origin-when-cross-origin).' }
  if (policy === 'unsafe-url') return { check, status: 'weak', value, explain: 'unsafe-url sends the full address (path and query string, which may hold tokens or personal data) to every site linked or loaded, even over http://.' }
  if (policy === 'no-referrer-when-downgrade') {
    return { check, status: 'weak', value, explain: 'no-referrer-when-downgrade sends the full address (path and query string) to every other HTTPS site: strict-origin-when-cross-origin sends them only the origin.' }
  }
  const words: Record<string, string> = {
    'no-referrer': 'no Referer header is ever sent',
    origin: 'only the origin is sent, never paths',
    'origin-when-cross-origin': 'other sites see only the origin (also over http://)',
    'same-origin': 'the full address goes only to this site; other sites get nothing',
    'strict-origin': 'only the origin is sent, and nothing over http://',
    'strict-origin-when-cross-origin': 'other sites see only the origin, and nothing over http:// (the browser default)',
  }
  return { check, status: 'ok', value, explain: `${policy}: ${words[policy]}.` }
}

function permissionsFinding(headers: ResponseHeaders): SecurityFinding {
  const check = 'Permissions-Policy'
  const value = combined(headers, 'permissions-policy')
  if (value !== undefined) return { check, status: 'info', value, explain: 'Limits which browser features (camera, microphone, geolocation, ...) this page and the frames it embeds may use.' }
  const legacy = combined(headers, 'feature-policy')
  if (legacy !== undefined) return { check, status: 'info', value: legacy, explain: 'Only the old Feature-Policy header, which current browsers no longer read: send Permissions-Policy to limit browser features.' }
  return { check, status: 'info', explain: 'No Permissions-Policy: browser features (camera, geolocation, ...) follow the browser defaults, each still asking the user. Useful to turn off what the site never uses, for it and the frames it embeds.' }
}

function disclosureFindings(headers: ResponseHeaders): SecurityFinding[] {
  const out: SecurityFinding[] = []
  const server = combined(headers, 'server')
  if (server !== undefined && /\d/.test(server)) {
    out.push({ check: 'Server', status: 'info', value: server, explain: 'Reveals the server software and its version: harmless on its own, but it tells attackers which known vulnerabilities to try. Nothing needs the version.' })
  }
  const powered = combined(headers, 'x-powered-by')
  if (powered !== undefined) {
    out.push({
      check: 'X-Powered-By',
      status: 'info',
      value: powered,
      explain: `Advertises the framework${/\d/.test(powered) ? ' and its version' : ''}: no browser uses it, and it helps attackers pick known vulnerabilities. It can be turned off.`,
    })
  }
  return out
}

// ---------------------------------------------------------------- cookies

/** Set-Cookie lines; a single string may be several cookies joined with ", " (a comma before the next `name=`). */
function setCookies(headers: ResponseHeaders): string[] {
  const out: string[] = []
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== 'set-cookie' || v === undefined) continue
    if (Array.isArray(v)) out.push(...v)
    else out.push(...v.split(/,\s*(?=[^;=,\s]+=)/))
  }
  return out.map((c) => c.trim()).filter(Boolean)
}

function cookieFindings(url: URL, headers: ResponseHeaders): SecurityFinding[] {
  const out: SecurityFinding[] = []
  const https = url.protocol === 'https:'
  const trustworthy = isTrustworthy(url)
  for (const line of setCookies(headers)) {
    const [pair, ...attrParts] = line.split(';')
    const eq = pair!.indexOf('=')
    const name = (eq >= 0 ? pair!.slice(0, eq) : '').trim()
    const attrs = new Map<string, string>()
    for (const a of attrParts) {
      const i = a.indexOf('=')
      const key = (i >= 0 ? a.slice(0, i) : a).trim().toLowerCase()
      if (key) attrs.set(key, i >= 0 ? a.slice(i + 1).trim() : '') // the last one counts
    }
    const shown = [`${name}=…`, ...attrParts.map((a) => a.trim()).filter(Boolean)].join('; ')
    const label = `Cookie ${name || '(no name)'}`
    const secure = attrs.has('secure')
    const add = (aspect: string, status: SecurityStatus, explain: string) => out.push({ check: `${label}: ${aspect}`, status, value: shown, explain })

    // Secure
    if (secure && !trustworthy) add('Secure', 'weak', 'Marked Secure but set over plain http://: browsers refuse to store it.')
    else if (secure) add('Secure', 'ok', 'Secure: the browser sends it only over HTTPS, never in clear text.')
    else if (https) add('Secure', 'weak', 'Not Secure: the browser would also send it over plain http:// to this site, where anyone on the network can read it. Add Secure.')
    else add('Secure', 'info', 'Not Secure, on a plain-HTTP site: the cookie travels unencrypted. Over HTTPS it should be marked Secure.')

    // HttpOnly
    if (attrs.has('httponly')) add('HttpOnly', 'ok', 'HttpOnly: scripts cannot read it (document.cookie), so an injected script cannot steal it.')
    else add('HttpOnly', 'info', 'Not HttpOnly: scripts can read it (document.cookie). Fine only when they must (a CSRF token, a UI setting); a session cookie should be HttpOnly.')

    // SameSite
    const sameSite = attrs.get('samesite')?.toLowerCase()
    if (sameSite === 'strict') add('SameSite', 'ok', 'SameSite=Strict: never sent with requests started by other sites, not even links to you, which stops cross-site request forgery.')
    else if (sameSite === 'lax') add('SameSite', 'ok', "SameSite=Lax: sent when a user follows a link from another site, but not with other sites' forms, frames or scripts: a good defence against cross-site request forgery.")
    else if (sameSite === 'none' && !secure) add('SameSite', 'weak', 'SameSite=None without Secure: browsers reject the cookie. SameSite=None requires Secure.')
    else if (sameSite === 'none') add('SameSite', 'info', 'SameSite=None: sent with every cross-site request (needed for embeds and third-party use), so requests that change state need their own CSRF protection.')
    else {
      add(
        'SameSite',
        'weak',
        `${sameSite === undefined ? 'No SameSite' : `SameSite=${attrs.get('samesite')} is not a known value, so it counts as absent`}: Chromium then treats it as Lax (and for 2 minutes after it is set, also sends it with cross-site top-level POSTs), while Firefox and Safari send it with cross-site requests. Set it explicitly: Lax or Strict, or None (which requires Secure) for cross-site use.`,
      )
    }

    // Prefixes (matched case-insensitively, as current browsers do)
    const lower = name.toLowerCase()
    if (lower.startsWith('__host-')) {
      const broken: string[] = []
      if (!secure) broken.push('it lacks Secure')
      if (!trustworthy) broken.push('it is set over plain http://')
      if (attrs.has('domain')) broken.push('it has a Domain attribute')
      if (attrs.get('path') !== '/') broken.push('its Path is not /')
      if (broken.length) add('prefix', 'weak', `A __Host- cookie must be Secure, set over HTTPS, with Path=/ and no Domain; ${broken.join(', ')}, so browsers reject it.`)
      else add('prefix', 'ok', '__Host-: browsers guarantee it was set over HTTPS by this exact host, for the whole site; no subdomain can set or override it.')
    } else if (lower.startsWith('__secure-')) {
      if (!secure || !trustworthy) add('prefix', 'weak', `A __Secure- cookie must be Secure and set over HTTPS; ${!secure ? 'it lacks Secure' : 'it is set over plain http://'}, so browsers reject it.`)
      else add('prefix', 'ok', '__Secure-: browsers guarantee it was set over HTTPS with Secure, so an http:// page cannot overwrite it.')
    }
  }
  return out
}

// ---------------------------------------------------------------- report

/** Every check for one response fetched from `url`, in a stable order. */
export function securityReport(url: URL, headers: ResponseHeaders): SecurityFinding[] {
  const document = isDocument(headers)
  return [
    ...cspFindings(headers, document),
    frameFinding(headers, document),
    hstsFinding(url, headers),
    nosniffFinding(headers),
    referrerFinding(headers),
    permissionsFinding(headers),
    ...cookieFindings(url, headers),
    ...disclosureFindings(headers),
  ]
}

/** How many findings have each status. */
export function securityScore(findings: readonly Pick<SecurityFinding, 'status'>[]): SecurityScore {
  const score: SecurityScore = { ok: 0, missing: 0, weak: 0, info: 0 }
  for (const f of findings) score[f.status]++
  return score
}

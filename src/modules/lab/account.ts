import { randomBytes } from 'node:crypto'
import { readForm, readJson, type BodyLimits } from '../../core/body.ts'
import type { Context } from '../../core/context.ts'
import { httpError } from '../../core/errors.ts'
import type { Handler } from '../../core/types.ts'
import { cookieValue } from '../../http/cookie.ts'
import { escapeHtml } from '../../http/html.ts'

/**
 * `lab: { demo: 'account' }`: the victim of the attacker's page
 * (lab/www/lab/attacker.html). A toy bank account that a cookie signs in to,
 * mounted on a route with `csrf: { token: true }` and the site's strict
 * security headers, so that what stops each attack is Edgebox's own
 * configuration, not the toy:
 *
 *   GET  <prefix>            the account page (it signs the browser in: an HttpOnly, SameSite=Lax session cookie)
 *   GET  <prefix>state       the balance and the transfers, as JSON
 *   POST <prefix>transfer    to=<name>&amount=<1-1000> (a form or JSON), for a signed-in browser
 *   POST <prefix>reset       the balance back to 1000
 *   GET  <prefix>search?q=   a deliberately vulnerable page: it echoes q into its HTML unescaped,
 *                            so that the strict Content-Security-Policy is what keeps injected code from running
 *
 * One account for everybody, in memory: it shows what reached the server.
 */

const START_BALANCE = 1000
const NAME = /^[a-z0-9 ]{1,32}$/i
const MAX_SESSIONS = 10_000
const SESSION_COOKIE = 'edgebox_lab_session'

interface Transfer {
  to: string
  amount: number
  at: string
  /** The page that asked for it (`Origin`), as the browser said. */
  origin: string
}

export function createAccountDemo(prefix: string, limits: BodyLimits): Handler {
  let balance = START_BALANCE
  let transfers: Transfer[] = []
  const sessions = new Set<string>()

  const sessionOf = (ctx: Context): string | undefined => {
    const value = cookieValue(ctx.header('cookie'), SESSION_COOKIE)
    return value !== undefined && sessions.has(value) ? value : undefined
  }

  const json = (ctx: Context, status: number, body: unknown) => ctx.send(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(body))
  const state = (ctx: Context) => json(ctx, 200, { balance, transfers, signedIn: sessionOf(ctx) !== undefined })

  const page = (title: string, body: string) =>
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Edgebox lab</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/lab-account.js"></script>
</head>
<body>
<header class="site">
  <a class="brand" href="/"><img src="/assets/favicon.svg" alt="" width="22" height="22"> Edgebox</a>
  <nav><a href="/">Home</a> · <a href="${prefix}">Account</a> · <a href="/lab/cross-origin.html">Cross-origin lab</a></nav>
</header>
<main>
${body}
</main>
</body>
</html>
`

  function accountPage(ctx: Context): void {
    if (!sessionOf(ctx)) {
      if (sessions.size >= MAX_SESSIONS) sessions.clear()
      const id = randomBytes(18).toString('base64url')
      sessions.add(id)
      const secure = ctx.secure ? '; Secure' : ''
      ctx.setCookies = [...(ctx.setCookies ?? []), `${SESSION_COOKIE}=${id}; Path=${prefix}; HttpOnly; SameSite=Lax${secure}`]
    }
    const html = page(
      'Your account',
      `  <h1>Your account</h1>
  <p class="lead">A toy bank account, the victim of the <a id="attacker-link" href="/lab/attacker.html">attacker's page</a>. Opening this page signed your browser in with a session cookie (<code>HttpOnly; SameSite=Lax</code>). Its route has <code>csrf: { token: true }</code> and the site's strict security headers.</p>
  <p>Balance: <strong id="balance">…</strong></p>
  <form id="transfer" method="post" action="${prefix}transfer">
    <label>To <input name="to" value="a friend" maxlength="32" required></label>
    <label>Amount <input name="amount" type="number" min="1" max="1000" value="10" required></label>
    <button type="submit" class="primary">Send</button>
    <button type="button" id="reset">Reset to ${START_BALANCE}</button>
    <output id="transfer-status"></output>
  </form>
  <p class="note">The form is sent by this page's script with the <code>X-CSRF-Token</code> header, which repeats the signed <code>edgebox_csrf</code> cookie Edgebox issued: a page of another origin can neither read the cookie nor pass Edgebox's check of <code>Sec-Fetch-Site</code> and <code>Origin</code>.</p>
  <h2>Transfers</h2>
  <table class="log"><thead><tr><th>when</th><th>to</th><th>amount</th><th>asked by</th></tr></thead><tbody id="transfers"></tbody></table>`,
    )
    ctx.send(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }, html)
  }

  function searchPage(ctx: Context): void {
    const q = new URLSearchParams(ctx.query).get('q') ?? ''
    if (q.length > 500) throw httpError('EB_ERR_BAD_REQUEST', 'q: at most 500 characters')
    // Deliberately unescaped: the reflected-XSS hole the strict CSP is there to defuse.
    const html = page(
      'Search',
      `  <h1>Search</h1>
  <p class="note">This page is vulnerable on purpose: it copies <code>q</code> into its HTML without escaping it. The site's strict <code>Content-Security-Policy</code> (<code>script-src 'self'</code>) is what keeps injected code from running; the page reports each violation below.</p>
  <p>Results for: ${q}</p>
  <ul id="violations"></ul>
  <p>The same query, escaped: <code>${escapeHtml(q)}</code></p>`,
    )
    ctx.send(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }, html)
  }

  async function transfer(ctx: Context): Promise<void> {
    if (!sessionOf(ctx)) throw httpError('EB_ERR_UNAUTHORIZED', `not signed in: open ${prefix} first (it sets the session cookie)`)
    const isJson = /json/i.test(ctx.header('content-type') ?? '')
    const fields = isJson ? ((await readJson(ctx, limits, 4096)) as Record<string, unknown>) : Object.fromEntries(await readForm(ctx, limits, 4096))
    const to = String(fields?.to ?? '')
    const amount = Number(fields?.amount)
    if (!NAME.test(to)) throw httpError('EB_ERR_BAD_REQUEST', 'to: 1 to 32 letters, digits or spaces')
    if (!Number.isInteger(amount) || amount < 1 || amount > 1000) throw httpError('EB_ERR_BAD_REQUEST', 'amount: a whole number from 1 to 1000')
    if (amount > balance) throw httpError('EB_ERR_BAD_REQUEST', `amount: ${amount} is more than the balance of ${balance}`)
    balance -= amount
    transfers = [{ to, amount, at: new Date().toISOString(), origin: ctx.header('origin') ?? '' }, ...transfers].slice(0, 20)
    if (isJson) return state(ctx)
    ctx.send(303, { location: prefix, 'cache-control': 'no-store' })
  }

  return {
    kind: 'lab',
    methods: ['GET', 'HEAD', 'POST'],
    async handle(ctx: Context) {
      const rest = ctx.path.slice(prefix.length)
      const read = ctx.method === 'GET' || ctx.method === 'HEAD'
      if (rest === '' && read) return accountPage(ctx)
      if (rest === 'state' && read) return state(ctx)
      if (rest === 'search' && read) return searchPage(ctx)
      if (rest === 'transfer' && ctx.method === 'POST') return transfer(ctx)
      if (rest === 'reset' && ctx.method === 'POST') {
        if (!sessionOf(ctx)) throw httpError('EB_ERR_UNAUTHORIZED', `not signed in: open ${prefix} first (it sets the session cookie)`)
        balance = START_BALANCE
        transfers = []
        return state(ctx)
      }
      if (rest === '' || rest === 'state' || rest === 'search') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'GET, HEAD' })
      if (rest === 'transfer' || rest === 'reset') throw httpError('EB_ERR_METHOD_NOT_ALLOWED', undefined, { Allow: 'POST' })
      throw httpError('EB_ERR_NOT_FOUND', `no account endpoint ${ctx.path}`)
    },
  }
}

import type { Context } from '../core/context.ts'
import { escapeHtml } from '../http/html.ts'
import { ownPage } from '../http/page.ts'

/**
 * The sign-on pages a browser sees: denied (403), the provider down (502), a
 * failed login, the provider chooser, sign-out. Plain HTML forms and links,
 * no JavaScript; never cached; the sign-out button is a POST form (a GET
 * cannot sign anybody out: a link or an image elsewhere could).
 */

const HEAD = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } as const

export function sendPage(ctx: Context, status: number, title: string, body: string): void {
  ctx.send(status, { ...HEAD }, ownPage(title, body, ctx.nonce()))
}

const signOutForm = `<form method="post" action="/_edgebox/auth/logout"><button type="submit" class="primary">Sign out</button></form>`

/** 403: signed in, but this route's rules do not let this account in. */
export function deniedPage(ctx: Context, who: string, provider: string): void {
  sendPage(
    ctx,
    403,
    'Access denied',
    `<p>You are signed in as <strong>${escapeHtml(who)}</strong> (${escapeHtml(provider)}), and this account may not open <code>${escapeHtml(ctx.rawPath)}</code>.</p>
<p>To use another account, sign out first.</p>
${signOutForm}`,
  )
}

/** 502: the identity provider could not be reached to start or finish a login. */
export function providerDownPage(ctx: Context, message: string): void {
  sendPage(ctx, 502, 'Sign-in is unavailable', `<p>The identity provider could not be reached, so you cannot sign in right now.</p><p class="muted">${escapeHtml(message)}</p><p><a href="/">Try again</a> in a moment.</p>`)
}

/** 503: the store of logins under way (the sessions' store: Redis, the data folder) cannot be reached: try again soon. */
export function storeDownPage(ctx: Context): void {
  ctx.send(
    503,
    { ...HEAD, 'retry-after': '30' },
    ownPage('Sign-in is unavailable', '<p>Signing in is not possible at the moment: this server cannot reach the store that keeps sign-ins.</p><p class="muted">Nothing was lost. Wait a minute, then <a href="/">try again</a>.</p>', ctx.nonce()),
  )
}

/** 4xx: the login failed (a refused code, a mismatched state, an error from the provider). */
export function loginFailedPage(ctx: Context, status: number, message: string): void {
  sendPage(ctx, status, 'Sign-in failed', `<p>${escapeHtml(message)}</p><p><a href="/">Start again</a></p>`)
}

/** 200: pick one of several providers. */
export function chooserPage(ctx: Context, choices: ReadonlyArray<{ label: string; href: string }>): void {
  sendPage(ctx, 200, 'Sign in', `<p>Choose how to sign in:</p>\n<ul class="choices">${choices.map((c) => `<li><a href="${escapeHtml(c.href)}">${escapeHtml(c.label)}</a></li>`).join('')}</ul>`)
}

/** 200: the sign-out button (GET /_edgebox/auth/logout). */
export function signOutPage(ctx: Context, who: string | null): void {
  sendPage(ctx, 200, 'Sign out', who ? `<p>You are signed in as <strong>${escapeHtml(who)}</strong>.</p>\n${signOutForm}` : `<p>You are not signed in.</p><p><a href="/">Home</a></p>`)
}

/**
 * 200: signed out here, on to the provider's end-session page. A page that
 * moves on by itself (`<meta http-equiv="refresh">`, a navigation), not a
 * redirect of the sign-out form's POST: a browser checks a form's redirects
 * against the page's CSP `form-action` (CSP Level 3 §6.4.1), and a site's
 * policy that allows only 'self' would stop the sign-out at the provider.
 */
export function continueToProviderPage(ctx: Context, url: string): void {
  const href = escapeHtml(url)
  ctx.send(
    200,
    { ...HEAD },
    ownPage('Signing out', `<p>You are signed out here. Now signing out at the identity provider…</p><p><a id="continue" href="${href}">Continue</a></p>`, ctx.nonce()).replace('<title>', `<meta http-equiv="refresh" content="0; url=${href}">\n<title>`),
  )
}

/** 200: where a sign-out ends. */
export function signedOutPage(ctx: Context): void {
  sendPage(ctx, 200, 'Signed out', `<p>You are signed out.</p><p><a href="/">Home</a></p>`)
}

/** The name to show for a user: email, else preferred_username or name, else the subject. */
export function displayName(claims: Readonly<Record<string, unknown>>, sub: string): string {
  for (const k of ['email', 'preferred_username', 'name']) if (typeof claims[k] === 'string' && claims[k] !== '') return claims[k] as string
  return sub
}

import { randomBytes } from 'node:crypto'
import { escapeHtml } from '../../http/html.ts'
import { ownPage } from '../../http/page.ts'
import { groupedSecret } from './totp.ts'

/**
 * The built-in provider's own pages: sign-in, the second factor, setting
 * one up, sign-out, errors. Plain HTML forms (no JavaScript: each step is a
 * form POST answered by the next page or a redirect), accessible (one h1,
 * labels tied to their fields, an error tied to the fields it is about with
 * `aria-describedby` and announced with `role="alert"`, autocomplete tokens
 * for password managers and one-time codes, `lang`), never cached, never
 * framed, with a Content-Security-Policy that allows only their own inline
 * style (by nonce) and forms sent to the provider itself and the clients'
 * registered origins (browsers check `form-action` along the redirects that
 * follow a form, CSP Level 3 §6.3.1).
 */

/** A page as the internal server sends it. */
export interface Page {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const STYLE = [
  'form.stack{max-width:24rem;margin:1.25rem 0}',
  '.field{margin:0 0 1rem}',
  'label{display:block;font-weight:600;margin:0 0 .3rem}',
  'input{font:inherit;width:100%;padding:.5rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}',
  'input:focus-visible,button:focus-visible{outline:2px solid var(--accent);outline-offset:2px}',
  'input[aria-invalid=true]{border-color:#cf222e}',
  '.error{color:#cf222e;font-weight:600;border-left:4px solid #cf222e;padding:.25rem .75rem;margin:1rem 0}',
  '@media (prefers-color-scheme:dark){.error{color:#ff7b72;border-color:#ff7b72}input[aria-invalid=true]{border-color:#ff7b72}}',
  '.actions{display:flex;gap:.75rem;flex-wrap:wrap;align-items:center}',
  'form.inline{display:inline}',
  'code.secret{display:inline-block;font-size:1.1em;letter-spacing:.05em;padding:.25rem .5rem;background:var(--panel);border:1px solid var(--line);border-radius:6px;overflow-wrap:anywhere}',
  'p.uri code{overflow-wrap:anywhere}',
].join('')

/** Builds one page: the template, a fresh nonce, and the headers every page has. */
export function renderPage(status: number, title: string, body: string, formAction: string, extra: Record<string, string> = {}): Page {
  const nonce = randomBytes(16).toString('base64')
  return {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; img-src data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      ...extra,
    },
    body: ownPage(title, body, nonce, STYLE),
  }
}

/** What a sign-in page says above its form, and how its fields are marked. */
export interface FormState {
  /** The error (text), shown once and tied to the fields. */
  readonly error?: string
}

const ERROR_ID = 'form-error'

function errorBlock(s: FormState): string {
  return s.error ? `<p id="${ERROR_ID}" class="error" role="alert">${escapeHtml(s.error)}</p>\n` : ''
}

function invalid(s: FormState): string {
  return s.error ? ` aria-invalid="true" aria-describedby="${ERROR_ID}"` : ''
}

function cancelForm(action: string): string {
  return `<form method="post" action="${escapeHtml(action)}" class="inline"><button type="submit">Cancel</button></form>`
}

/** Paths of one interaction's forms. */
export interface InteractionPaths {
  readonly login: string
  readonly totp: string
  readonly enrol: string
  readonly abort: string
}

/** The username and password form. */
export function loginPage(p: { status: number; provider: string; client: string; username: string; paths: InteractionPaths; formAction: string; state: FormState; headers?: Record<string, string> }): Page {
  const inv = invalid(p.state)
  const body = `<p>Sign in to ${escapeHtml(p.provider)} to continue to <strong>${escapeHtml(p.client)}</strong>.</p>
${errorBlock(p.state)}<form method="post" action="${escapeHtml(p.paths.login)}" class="stack">
<div class="field"><label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="256" value="${escapeHtml(p.username)}"${inv}${p.username ? '' : ' autofocus'}></div>
<div class="field"><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="4096"${inv}${p.username ? ' autofocus' : ''}></div>
<div class="actions"><button type="submit" class="primary">Sign in</button></div>
</form>
${cancelForm(p.paths.abort)}`
  return renderPage(p.status, 'Sign in', body, p.formAction, p.headers)
}

/** The second-factor form: a code from the user's authenticator app. */
export function totpPage(p: { status: number; username: string; paths: InteractionPaths; formAction: string; state: FormState; headers?: Record<string, string> }): Page {
  const body = `<p>Signing in as <strong>${escapeHtml(p.username)}</strong>. Enter the 6-digit code your authenticator app shows for this account.</p>
${errorBlock(p.state)}<form method="post" action="${escapeHtml(p.paths.totp)}" class="stack">
<div class="field"><label for="code">Code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" minlength="6" maxlength="6" required autofocus${invalid(p.state)}></div>
<div class="actions"><button type="submit" class="primary">Verify</button></div>
</form>
${cancelForm(p.paths.abort)}`
  return renderPage(p.status, 'Two-step verification', body, p.formAction, p.headers)
}

/** Setting up a second factor: the secret as an otpauth:// URI and as text, then a code to show it works. */
export function enrolPage(p: { status: number; username: string; uri: string; secret: string; paths: InteractionPaths; formAction: string; state: FormState; headers?: Record<string, string> }): Page {
  const body = `<p>Signing in as <strong>${escapeHtml(p.username)}</strong>. This provider asks for a code from an authenticator app at each sign-in; set one up now.</p>
<ol>
<li><p>In your authenticator app, add an account with this key (time-based, 6 digits, every 30 seconds):</p>
<p><code class="secret" id="secret">${escapeHtml(groupedSecret(p.secret))}</code></p>
<p class="uri muted">Or, where the app takes a link: <code>${escapeHtml(p.uri)}</code></p></li>
<li><p>Enter the code it shows.</p></li>
</ol>
${errorBlock(p.state)}<form method="post" action="${escapeHtml(p.paths.enrol)}" class="stack">
<div class="field"><label for="code">Code from the app</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" minlength="6" maxlength="6" required${invalid(p.state)}></div>
<div class="actions"><button type="submit" class="primary">Turn on and sign in</button></div>
</form>
${cancelForm(p.paths.abort)}`
  return renderPage(p.status, 'Set up two-step verification', body, p.formAction, p.headers)
}

/** A page with a message and nothing to fill in (an expired sign-in, a refused form, an error). */
export function messagePage(status: number, title: string, html: string, formAction: string, headers?: Record<string, string>): Page {
  return renderPage(status, title, html, formAction, headers)
}

/** The sign-out confirmation: oidc-provider's form (`xsrf` bound to the session) with two buttons that submit it. */
export function logoutPage(provider: string, host: string, form: string, formAction: string): Page {
  const body = `<p>Sign out of ${escapeHtml(provider)} (<code>${escapeHtml(host)}</code>)? Applications you signed in to with it are told too.</p>
${form}
<div class="actions">
<button type="submit" form="op.logoutForm" name="logout" value="yes" class="primary" autofocus>Sign out</button>
<button type="submit" form="op.logoutForm">Stay signed in</button>
</div>`
  return renderPage(200, 'Sign out', body, formAction)
}

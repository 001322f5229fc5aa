import { randomBytes } from 'node:crypto'
import { escapeHtml } from '../../http/html.ts'
import { ownPage } from '../../http/page.ts'
import { groupedSecret } from './totp.ts'

/**
 * The built-in provider's own pages: sign-in, the second factor, setting
 * one up, sign-out, errors. Plain HTML forms (each step is a form POST
 * answered by the next page or a redirect; no JavaScript needed, except for
 * passkeys, whose forms a script of the provider's shows and fills in:
 * webauthn.ts), accessible (one h1, labels tied to their fields, an error
 * tied to the fields it is about with `aria-describedby` and announced with
 * `role="alert"`, autocomplete tokens for password managers and one-time
 * codes, `lang`), never cached, never framed, with a
 * Content-Security-Policy that allows only their own inline style and the
 * provider's passkey script (by nonce) and forms sent to the provider
 * itself and the clients' registered origins (browsers check `form-action`
 * along the redirects that follow a form, CSP Level 3 §6.3.1).
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
  'form.passkey{max-width:24rem;margin:1.25rem 0}',
  'h2{font-size:1.2rem;margin:1.75rem 0 .5rem}',
].join('')

/**
 * Builds one page: the template, a fresh nonce, and the headers every page
 * has. `script`: the URL of a script of the provider's to load (the passkey
 * forms'), allowed by the same nonce (CSP Level 3 nonce-sources in
 * `script-src`; no other script runs).
 */
export function renderPage(status: number, title: string, body: string, formAction: string, extra: Record<string, string> = {}, script?: string): Page {
  const nonce = randomBytes(16).toString('base64')
  const scriptSrc = script ? ` script-src 'nonce-${nonce}';` : ''
  const scriptTag = script ? `\n<script src="${escapeHtml(script)}" nonce="${nonce}" defer></script>` : ''
  return {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none';${scriptSrc} style-src 'nonce-${nonce}'; img-src data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      ...extra,
    },
    body: ownPage(title, body + scriptTag, nonce, STYLE),
  }
}

/** What a sign-in page says above its form, and how its fields are marked. */
export interface FormState {
  /** The error (text), shown once and tied to the fields. */
  readonly error?: string
  /** The error is about a passkey, not what was typed: no field is marked invalid. */
  readonly passkey?: boolean
}

const ERROR_ID = 'form-error'

function errorBlock(s: FormState): string {
  return s.error ? `<p id="${ERROR_ID}" class="error" role="alert">${escapeHtml(s.error)}</p>\n` : ''
}

function invalid(s: FormState): string {
  return s.error && !s.passkey ? ` aria-invalid="true" aria-describedby="${ERROR_ID}"` : ''
}

function cancelForm(action: string): string {
  return `<form method="post" action="${escapeHtml(action)}" class="inline"><button type="submit">Cancel</button></form>`
}

/** Paths of one interaction's forms. */
export interface InteractionPaths {
  readonly login: string
  readonly totp: string
  readonly enrol: string
  /** A passkey's answer at sign-in. */
  readonly passkey: string
  /** A new passkey's answer, at enrolment. */
  readonly passkeyRegister: string
  readonly abort: string
}

/** A passkey ceremony a page offers: the options for the browser (their JSON form, W3C WebAuthn Level 3 §5.1.8-9) and the script that runs it. */
export interface PasskeyOffer {
  /** `PublicKeyCredentialCreationOptionsJSON` (enrolment) or `PublicKeyCredentialRequestOptionsJSON` (sign-in), as JSON. */
  readonly options: string
  /** The provider's passkey script (webauthn.ts). */
  readonly script: string
}

/**
 * A passkey form: hidden until the script shows it (a browser with
 * JavaScript and WebAuthn), which runs the ceremony on submit and posts the
 * credential's answer in `response`. Its status line tells what the browser
 * said when nothing could be posted (the user cancelled).
 */
function passkeyForm(o: { action: string; kind: 'get' | 'create'; options: string; button: string; primary: boolean; intro?: string }): string {
  return `<form method="post" action="${escapeHtml(o.action)}" class="passkey" data-passkey="${o.kind}" data-options="${escapeHtml(o.options)}"${o.primary ? ' data-passkey-focus' : ''} hidden>
${o.intro ?? ''}<input type="hidden" name="response" value="">
<div class="actions"><button type="submit"${o.primary ? ' class="primary"' : ''}>${escapeHtml(o.button)}</button></div>
<p class="error" role="alert" data-passkey-status hidden></p>
</form>
`
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

/**
 * The second-factor page: a code from the user's authenticator app (when
 * they have TOTP), and "Use a passkey" (when they have passkeys, shown by
 * the script). A user with passkeys only is told, without JavaScript, that
 * signing in needs it.
 */
export function totpPage(p: { status: number; username: string; paths: InteractionPaths; formAction: string; state: FormState; headers?: Record<string, string>; totp?: boolean; passkey?: PasskeyOffer }): Page {
  const totp = p.totp ?? true
  const who = `Signing in as <strong>${escapeHtml(p.username)}</strong>.`
  const intro = totp
    ? `<p>${who} Enter the 6-digit code your authenticator app shows for this account${p.passkey ? ', or use a passkey' : ''}.</p>`
    : `<p>${who} Confirm it with a passkey registered for this account: this device, a phone or a security key.</p>
<p class="muted" data-passkey-unsupported>Signing in with a passkey needs JavaScript, in a browser that supports passkeys (WebAuthn). Turn JavaScript on, or use another browser.</p>`
  const codeForm = totp
    ? `<form method="post" action="${escapeHtml(p.paths.totp)}" class="stack">
<div class="field"><label for="code">Code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" minlength="6" maxlength="6" required autofocus${invalid(p.state)}></div>
<div class="actions"><button type="submit" class="primary">Verify</button></div>
</form>
`
    : ''
  const passkey = p.passkey ? passkeyForm({ action: p.paths.passkey, kind: 'get', options: p.passkey.options, button: 'Use a passkey', primary: !totp }) : ''
  const body = `${intro}
${errorBlock(p.state)}${codeForm}${passkey}${cancelForm(p.paths.abort)}`
  return renderPage(p.status, 'Two-step verification', body, p.formAction, p.headers, p.passkey?.script)
}

/**
 * Setting up a second factor: the secret as an otpauth:// URI and as text,
 * then a code to show it works; or, with `passkey` (shown by the script),
 * "Register a passkey instead".
 */
export function enrolPage(p: { status: number; username: string; uri: string; secret: string; paths: InteractionPaths; formAction: string; state: FormState; headers?: Record<string, string>; passkey?: PasskeyOffer }): Page {
  const passkey = p.passkey
    ? passkeyForm({
        action: p.paths.passkeyRegister,
        kind: 'create',
        options: p.passkey.options,
        button: 'Register a passkey instead',
        primary: false,
        intro: '<h2>Or a passkey</h2>\n<p>A passkey on this device, a phone or a security key can confirm your sign-ins instead of a code.</p>\n',
      })
    : ''
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
${passkey}${cancelForm(p.paths.abort)}`
  return renderPage(p.status, 'Set up two-step verification', body, p.formAction, p.headers, p.passkey?.script)
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

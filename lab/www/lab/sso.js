// Edgebox lab: single sign-on across three host names, with the wire trace
// (/lab/demo/trace/events: the head of each answer on the demo sites, values
// shortened). CSP-friendly: an external module, DOM built with textContent.

import { $, el } from '/assets/lab.js'

const port = location.port ? `:${location.port}` : ''
const scheme = location.protocol
for (const id of ['app1', 'app2']) $(id).href = `${scheme}//${id}.localhost${port}/`

/** What an answer means, in a few words, from its head. */
function meaning(e) {
  const to = e.location ? new URL(e.location, `${scheme}//${e.host}`) : null
  const cookies = e.cookies.map((c) => c.split(';')[0].split('=')[0])
  if (e.target.startsWith('/_edgebox/auth/callback')) return e.status === 302 ? `code exchanged, session made (${cookies.join(', ')})` : 'the login failed'
  if (e.target.startsWith('/_edgebox/auth/backchannel-logout')) return e.status === 200 ? 'the provider ended this site\'s sessions (back-channel logout)' : 'a logout token was refused'
  if (e.target.startsWith('/_edgebox/auth/logout') && e.method === 'POST') return 'signed out here; on to the provider to end its session'
  if (to && to.pathname === '/auth' && e.host.startsWith('app')) return 'no session: off to the provider (code flow, PKCE, state, nonce)'
  if (to && to.pathname.endsWith('/_edgebox/auth/callback')) return 'the provider knows the user: back to the site with a code'
  if (e.host.startsWith('id.') && e.method === 'POST' && e.status >= 300 && e.status < 400) return 'password checked: the provider\'s own session begins'
  if (e.host.startsWith('id.') && e.status === 200 && e.method === 'GET') return 'the provider\'s page'
  if (e.auth && e.auth.startsWith('allow')) return 'signed in: the page is served'
  return e.auth ?? ''
}

function row(e) {
  const t = new Date(e.at).toISOString().slice(11, 23)
  const site = e.host.split('.')[0]
  const req = el('td', {}, el('code', {}, `${e.method} ${e.target}`))
  if (e.location) req.append(el('br'), el('small', {}, '→ ', el('code', {}, e.location)))
  for (const c of e.cookies) req.append(el('br'), el('small', {}, 'Set-Cookie: ', el('code', {}, c)))
  return el('tr', { 'data-site': site, 'data-status': String(e.status) }, el('td', {}, t), el('td', {}, site), req, el('td', {}, e.status), el('td', {}, meaning(e)))
}

const body = $('wire').tBodies[0]
$('clear').addEventListener('click', () => body.replaceChildren())

const status = $('status')
const source = new EventSource('/lab/demo/trace/events')
source.addEventListener('open', () => {
  status.dataset.state = 'live'
  status.textContent = 'live: open app1 to begin'
})
source.addEventListener('error', () => {
  status.dataset.state = 'retrying'
  status.textContent = 'the trace is not reachable; retrying…'
})
source.addEventListener('message', (m) => {
  const e = JSON.parse(m.data)
  body.append(row(e))
  status.dataset.events = String(body.rows.length)
})

// the demo sites answer only when Edgebox listens on loopback
fetch('/lab/demo/trace/sites', { cache: 'no-store' })
  .then((r) => r.json())
  .then((s) => {
    if (!s.running) $('not-localhost').hidden = false
  })
  .catch(() => {})

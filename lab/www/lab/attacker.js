// Edgebox lab: the attacker's page (origin B) against the account demo on
// origin A (?target=..., default: the same host, port - 1). CSP-friendly: an
// external module, DOM built with textContent only. Each row writes its
// outcome into its <output>: data-result (stopped | not stopped | error),
// data-ok (whether that is the row's data-expect) and data-detail.

import { $, el, wireChecks } from '/assets/lab.js'

const ME = location.origin
const WAIT = 2500

function originTarget() {
  const given = new URLSearchParams(location.search).get('target')
  if (given) {
    const u = new URL(given)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`?target= must be an http(s) origin, got ${given}`)
    return u.origin
  }
  const port = Number(location.port || (location.protocol === 'https:' ? 443 : 80)) - 1
  return `${location.protocol}//${location.hostname}:${port}`
}
const A = originTarget()
const ACCOUNT = `${A}/lab/account/`

const stopped = (detail) => ({ result: 'stopped', detail })
const notStopped = (detail) => ({ result: 'not stopped', detail })
const error = (detail) => ({ result: 'error', detail })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Messages from origin A's account pages (lab-account.js reports what happened to it). */
const fromA = []
addEventListener('message', (e) => {
  if (e.origin === A && e.data && (e.data.lab === 'account' || e.data.lab === 'xss')) fromA.push({ source: e.source, data: e.data })
})

/** The first message from A after `since` that passes `accept`, or null after `ms`. */
async function messageFromA(since, accept, ms = WAIT) {
  const end = performance.now() + ms
  while (performance.now() < end) {
    const m = fromA.slice(since).find(accept)
    if (m) return m
    await sleep(50)
  }
  return null
}

/** What reached the server: the account's state, from this origin (the same Edgebox; a real attacker could not read it). */
async function serverState() {
  const r = await fetch('/lab/account/state', { cache: 'no-store' })
  if (!r.ok) throw new Error(`state: ${r.status}`)
  return r.json()
}

/** The victim's window: opened from a click (browsers block pop-ups otherwise), it signs the browser in to the account. */
let victim = null
function openVictim() {
  if (!victim || victim.closed) victim = window.open(ACCOUNT, 'edgebox-lab-victim', 'popup,width=720,height=560')
  return victim
}
async function signedIn() {
  const w = openVictim()
  if (!w) throw new Error('the browser blocked the window: allow pop-ups for this page')
  const since = fromA.length
  w.location.href = ACCOUNT
  const m = await messageFromA(since, (x) => x.source === w && x.data.event === 'rendered', 10_000)
  if (!m) throw new Error('the account page did not load in its window')
}

const attacks = {
  async clickjack() {
    const since = fromA.length
    const f = el('iframe', { src: ACCOUNT, title: 'the victim, framed', class: 'clickjack' })
    $('frames').append(f)
    const loaded = new Promise((r) => f.addEventListener('load', r, { once: true }))
    const rendered = await messageFromA(since, (x) => x.source === f.contentWindow && x.data.event === 'rendered')
    await Promise.race([loaded, sleep(WAIT)])
    if (rendered) return notStopped('the account page rendered and ran inside this page: it could be clicked through the decoy')
    return stopped(`the account page sent no sign of life from the frame within ${WAIT / 1000} s: the browser refused to render it (X-Frame-Options: SAMEORIGIN, frame-ancestors 'self')`)
  },

  async csrf() {
    await signedIn()
    const before = await serverState()
    const form = el('form', { method: 'post', action: `${ACCOUNT}transfer`, target: 'csrf-sink', hidden: '' })
    form.append(el('input', { name: 'to', value: 'attacker' }), el('input', { name: 'amount', value: '100' }))
    document.body.append(form)
    const sink = $('csrf-sink')
    const landed = new Promise((r) => sink.addEventListener('load', r, { once: true }))
    form.submit()
    form.remove()
    await Promise.race([landed, sleep(WAIT)])
    await sleep(100)
    const after = await serverState()
    const forged = after.transfers.filter((t) => t.to === 'attacker' && !before.transfers.some((b) => b.at === t.at))
    if (after.balance !== before.balance || forged.length) return notStopped(`the transfer went through: balance ${before.balance} -> ${after.balance}`)
    return stopped(`the form was sent with the session cookie, and the balance is still ${after.balance}: Edgebox answered 403 (its access log names the reason: csrf=...)`)
  },

  async xss() {
    const w = openVictim()
    if (!w) return error('the browser blocked the window: allow pop-ups for this page')
    const payload = "<script>opener.postMessage({ lab: 'xss', event: 'ran' }, '*')</script><img src=x onerror=\"opener.postMessage({ lab: 'xss', event: 'ran' }, '*')\">"
    const since = fromA.length
    w.location.href = `${ACCOUNT}search?q=${encodeURIComponent(payload)}`
    const loaded = await messageFromA(since, (x) => x.source === w && x.data.event === 'search-loaded', 10_000)
    if (!loaded) return error('the search page did not load')
    await sleep(300) // the image's error event comes after the page's DOMContentLoaded
    const ran = fromA.slice(since).filter((x) => x.data.lab === 'xss')
    const violations = fromA.slice(since).filter((x) => x.source === w && x.data.event === 'csp-violation')
    if (ran.length) return notStopped(`the injected code ran (${ran.length} message${ran.length === 1 ? '' : 's'} from it)`)
    if (!violations.length) return error('the injected code did not run, but no violation was reported either')
    return stopped(`the injected code never ran; the browser reported ${violations.length} violation${violations.length === 1 ? '' : 's'}: ${violations.map((v) => `${v.data.directive} refused ${v.data.blocked}`).join(', ')}`)
  },
}

// ---------------------------------------------------------------- wiring

wireChecks(attacks, {
  summary: (wrong, total) => (wrong === 0 ? `all ${total} attacks were stopped` : `${wrong} of ${total} were not: hover them for details`),
  // the victim's window is opened inside the click, while the browser allows a pop-up
  beforeRun: (key) => {
    if (key !== 'clickjack') openVictim()
  },
})
$('origin-me').textContent = ME
$('origin-target').textContent = A
$('account-link').href = ACCOUNT
$('decoy-button').addEventListener('click', () => ($('all-status').textContent = 'you clicked the decoy: with the frame refused, the click hit nothing else'))
document.documentElement.dataset.labReady = 'true'

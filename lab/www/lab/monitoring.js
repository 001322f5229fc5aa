// Edgebox lab: front-end monitoring. The SDK reports to this site's collector; every event it sends is also shown
// here (its beforeSend hook). CSP-friendly: an external module, DOM built with textContent.

import { $, el } from '/assets/lab.js'
import { init } from '/assets/edgebox-rum.mjs'
// a minified bundle, as a site ships one; its source map stays on the server (rum.serveMaps is off)
import { checkout } from '/lab/shop.min.js'

const body = $('events').tBodies[0]
const describe = (e) => {
  switch (e.t) {
    case 'vital': return `${e.name} ${Math.round(e.value * 1000) / 1000} (${e.rating})${e.attr ? ' ' + JSON.stringify(e.attr) : ''}`
    case 'nav': return `${e.type}, ${e.protocol || 'protocol unknown'}`
    case 'resource': return `${e.initiator} ${e.url}: ${e.failed ? 'failed' : Math.round(e.duration) + ' ms'}`
    case 'error': return `${e.kind}: ${e.message}${e.count > 1 ? ` (x${e.count})` : ''}`
    case 'api': return `${e.method} ${e.url}: ${e.status || e.outcome} in ${Math.round(e.duration)} ms`
    case 'route': return `${e.from} -> ${e.to} (page view ${e.pv})`
    default: return ''
  }
}

// the page's own questions to Edgebox (what it stored) go through the fetch the SDK has not wrapped, and are not reported
const plainFetch = globalThis.fetch.bind(globalThis)
const STORED = '/lab/demo/rum/page-view'

const rum = init({
  release: 'lab',
  env: 'npm start',
  // every resource counts as slow here, so the image below shows (the default is 1000 ms)
  slowResourceMs: 0,
  beforeSend(e) {
    if ((e.t === 'resource' || e.t === 'api') && String(e.url).includes(STORED)) return null
    body.append(el('tr', { 'data-t': e.t, ...(e.name ? { 'data-name': e.name } : {}) }, el('td', {}, e.t), el('td', {}, Math.round(e.at)), el('td', {}, describe(e))))
    return e
  },
})
$('pv').textContent = rum.pv
$('pv').dataset.value = rum.pv

// this load's phases, from the navigation entry the SDK reads too
const nav = performance.getEntriesByType('navigation')[0]
if (nav) {
  const phases = {
    redirect: nav.redirectEnd - nav.redirectStart,
    dns: nav.domainLookupEnd - nav.domainLookupStart,
    tcp: nav.connectEnd - nav.connectStart,
    tls: nav.secureConnectionStart > 0 ? nav.connectEnd - nav.secureConnectionStart : 0,
    ttfb: nav.responseStart - nav.requestStart,
    transfer: nav.responseEnd - nav.responseStart,
    dom: nav.domContentLoadedEventEnd - nav.responseEnd,
  }
  $('phases').tBodies[0].append(...Object.entries(phases).map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, Math.round(v * 10) / 10))))
}

const runs = {
  slow: () => document.body.append(el('img', { src: `/assets/favicon.svg?v=${Date.now()}`, alt: '', width: '1', height: '1' })),
  // a bug in the minified shop: the second line's price is not a number
  error: () => setTimeout(() => checkout([{ sku: 'mug', price: '12.50 EUR', quantity: 1 }, { sku: 'tee', price: 'about 20 EUR', quantity: 2 }], 'LAB10')),
  rejection: () => void Promise.reject(new Error('the lab rejected this on purpose')),
  fetch: () => fetch('/lab/no-such-api?token=secret').catch(() => {}),
  shift: () => {
    const box = $('shift-box')
    box.style.height = box.style.height === '120px' ? '0px' : '120px'
  },
  route: () => history.pushState({}, '', `/lab/monitoring.html?view=${Date.now()}`),
}
for (const button of document.querySelectorAll('button[data-run]')) {
  button.addEventListener('click', () => runs[button.dataset.run]())
}
$('send').addEventListener('click', () => {
  rum.flush()
  const s = $('status')
  s.dataset.state = 'sent'
  s.textContent = `sent at ${new Date().toISOString().slice(11, 19)}`
  void showStored()
})

// ---- what Edgebox stored for this page view ----

/** This page view's id, from its HTML answer's Server-Timing: a route change starts another, reported under its own id. */
const pageView = rum.pv
/** The errors this page view saw (by message): the report is complete once as many are stored. */
const thrown = new Set()
addEventListener('error', (e) => {
  if (rum.pv === pageView) thrown.add(String(e.message))
})
addEventListener('unhandledrejection', (e) => {
  if (rum.pv === pageView) thrown.add(String(e.reason?.message ?? e.reason))
})

const POLL_MS = 500
const POLL_FOR_MS = 10_000
let polling = 0

const ms = (v) => (typeof v === 'number' ? `${Math.round(v * 100) / 100} ms` : '—')
const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v))

/** The server row and the browser's report, measure by measure: [field, label, Edgebox's, the browser's]. */
function pairRows(r) {
  const s = r.server
  const b = r.browser
  return [
    ['status', 'HTTP status', text(s?.status), '—'],
    ['edge', 'in Edgebox, to the headers (edge)', ms(s?.edge), '—'],
    ['duration', 'to the last byte (duration)', ms(s?.duration), '—'],
    ['ttfb', 'time to first byte (TTFB)', '—', ms(b?.TTFB)],
    ['lcp', 'largest contentful paint (LCP)', '—', ms(b?.LCP)],
    ['protocol', 'protocol', text(s?.protocol), text(b?.nav?.protocol)],
    ['cache', 'cache', text(s?.cache), '—'],
    ['navigation', 'navigation type', '—', text(b?.nav?.type)],
  ]
}

function renderPair(r) {
  $('stored-pair').tBodies[0].replaceChildren(
    ...pairRows(r).map(([field, label, server, browser]) =>
      el('tr', { 'data-field': field }, el('th', { scope: 'row' }, label), el('td', { 'data-side': 'server' }, server), el('td', { 'data-side': 'browser' }, browser))),
  )
}

function renderPhases(breakdown) {
  $('stored-phases').tBodies[0].replaceChildren(
    ...Object.entries(breakdown.phases).map(([phase, v]) => {
      const dominant = phase === breakdown.dominant
      return el('tr', { 'data-phase': phase, ...(dominant ? { class: 'hl', 'data-dominant': 'true' } : {}) }, el('th', { scope: 'row' }, phase), el('td', {}, ms(v)), el('td', {}, dominant ? 'the longest' : ''))
    }),
  )
}

/** One stack, captioned. */
const stackFigure = (side, caption, stack) => el('figure', { 'data-side': side }, el('figcaption', {}, caption), el('pre', { class: 'stack' }, stack ?? '(no stack)'))

function renderErrors(errors) {
  $('stored-errors').replaceChildren(
    ...errors.map((e) =>
      el(
        'article',
        { class: 'stored-error', 'data-kind': text(e.kind), 'data-mapped': String(e.mapped) },
        el('h4', {}, `${text(e.kind)}: ${text(e.message)}${e.count > 1 ? ` (x${e.count})` : ''}`),
        el(
          'div',
          { class: 'grid2' },
          stackFigure('raw', 'as the browser sent it', e.rawStack),
          stackFigure('mapped', e.mapped ? 'as Edgebox mapped it (source map)' : 'as stored (no frame had a map: kept as sent)', e.stack),
        ),
      )),
  )
}

/** The report is all there: Edgebox's row, the browser's navigation timing, and every error this page view saw. */
const complete = (r) => r.server !== null && r.browser?.nav != null && r.errors.length >= thrown.size

/** Asks Edgebox what it stored for this page view, every POLL_MS until complete (or POLL_FOR_MS), and shows each answer. */
async function showStored() {
  const run = ++polling
  const out = $('stored-status')
  const until = performance.now() + POLL_FOR_MS
  out.dataset.state = 'polling'
  out.textContent = 'asking Edgebox…'
  for (;;) {
    let answer
    try {
      const res = await plainFetch(`${STORED}?pv=${encodeURIComponent(pageView ?? '')}`, { cache: 'no-store' })
      const body = await res.text()
      let parsed
      try {
        parsed = JSON.parse(body)
      } catch {
        parsed = { error: body.trim() }
      }
      answer = { status: res.status, body: parsed }
    } catch (err) {
      answer = { status: 0, body: { error: String(err) } }
    }
    if (run !== polling) return
    if (answer.status === 200) {
      const r = answer.body
      renderPair(r)
      renderPhases(r.breakdown)
      renderErrors(r.errors)
      if (complete(r)) {
        out.dataset.state = 'done'
        out.textContent = `stored: ${r.rows} rows, ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}`
        return
      }
    }
    // a bad id, or monitoring off on this site: asking again will not change it
    const final = answer.status === 400 || (answer.status === 404 && /monitoring is off/.test(answer.body.error ?? ''))
    if (final || performance.now() + POLL_MS > until) {
      out.dataset.state = answer.status === 200 ? 'partial' : 'failed'
      out.textContent = answer.status === 200 ? 'only part of the report is stored so far' : `${answer.status}: ${answer.body.error ?? 'no answer'}`
      return
    }
    out.textContent = answer.status === 200 ? 'part of it is stored, asking again…' : 'not stored yet, asking again…'
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    if (run !== polling) return
  }
}

// Edgebox lab: front-end monitoring. The SDK reports to this site's collector; every event it sends is also shown
// here (its beforeSend hook). CSP-friendly: an external module, DOM built with textContent.

import { $, el } from '/assets/lab.js'
import { init } from '/assets/edgebox-rum.mjs'

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

const rum = init({
  release: 'lab',
  env: 'npm start',
  // every resource counts as slow here, so the image below shows (the default is 1000 ms)
  slowResourceMs: 0,
  beforeSend(e) {
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
  error: () => setTimeout(() => {
    throw new TypeError('the lab threw this on purpose')
  }),
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
})

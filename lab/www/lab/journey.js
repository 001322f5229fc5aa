// Edgebox lab: what happens when you type a URL, as one waterfall. This page's own load (Navigation Timing), then what
// it does next, each request timed by Resource Timing: a DNS question to Edgebox's DNS over HTTPS, a demo object
// through an edge cache and its parent, a realtime subscription, the monitoring beacon. Beside it, `edgebox inspect
// --json` of this URL, run by Edgebox; below, comparisons Edgebox runs against its own listener (/lab/demo/journey/).
// CSP-friendly: an external module, DOM built with textContent; bars placed through the CSSOM. Each phase's row gets
// data-state (pending, running, done, skipped, error) for the browser test.

import { $, el } from '/assets/lab.js'

const API = '/lab/demo/journey/'
const PHASES = ['dns', 'tcp', 'tls', 'http', 'cache', 'realtime', 'beacon']
const DEMO_NAME = 'www.edgebox.test'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ms = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * 10) / 10} ms`)
const randomId = () => Math.random().toString(36).slice(2, 10)

/** Each phase's bars ({ from, to, label }, ms since the navigation started) and its total. */
const bars = Object.fromEntries(PHASES.map((p) => [p, []]))

const row = (phase) => document.querySelector(`tr[data-phase="${phase}"]`)
const detail = (phase) => document.querySelector(`tr[data-detail="${phase}"] td`)

function setPhase(phase, state, total, ...content) {
  const r = row(phase)
  r.dataset.state = state
  r.querySelector('td.ms').textContent = total === null ? '' : ms(total)
  const d = detail(phase)
  d.replaceChildren(...content)
  render()
}

function addBar(phase, from, to, label, kind = '') {
  bars[phase].push({ from, to: Math.max(to, from), label, kind })
  render()
}

/** Draws every bar on one scale: 0 is the navigation's start, the right edge the latest end. */
function render() {
  const all = PHASES.flatMap((p) => bars[p])
  const end = Math.max(1, ...all.map((b) => b.to))
  for (const p of PHASES) {
    const track = row(p).querySelector('td.track')
    track.replaceChildren(
      ...bars[p].map((b) => {
        const span = el('span', { class: `bar ${b.kind}`, title: `${b.label}: ${ms(b.from)} → ${ms(b.to)} (${ms(b.to - b.from)})` })
        span.style.left = `${(b.from / end) * 100}%`
        span.style.width = `max(2px, ${((b.to - b.from) / end) * 100}%)`
        return span
      }),
    )
    track.dataset.bars = String(bars[p].length)
  }
}

/** The Resource Timing entry of a URL this page fetched (it is added once the response has ended). */
async function entryFor(url) {
  const abs = new URL(url, location.href).href
  for (let i = 0; i < 60; i++) {
    const list = performance.getEntriesByName(abs)
    if (list.length) return list[list.length - 1]
    await sleep(50)
  }
  return null
}

/** A fetch, its answer and its Resource Timing entry; the bar spans startTime to responseEnd. */
async function timedFetch(url, init) {
  const res = await fetch(url, { cache: 'no-store', ...init })
  const text = await res.text()
  const entry = await entryFor(url)
  return { res, text, entry }
}

const kv = (pairs) => el('table', { class: 'kv' }, el('tbody', {}, ...pairs.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))))

// ---------------------------------------------------------------- the page's own load

const nav = performance.getEntriesByType('navigation')[0]

function navigationPhases() {
  const ip = /^[\d.]+$|^\[/.test(location.hostname)
  // DNS: this page's own lookup, then Edgebox's DNS asked over HTTPS for the lab's demo name (dnsQuestion below)
  addBar('dns', nav.domainLookupStart, nav.domainLookupEnd, `this page's lookup of ${location.hostname}`, 'own')
  const tlsStart = nav.secureConnectionStart > 0 ? nav.secureConnectionStart : nav.connectEnd
  const reused = nav.connectStart === nav.connectEnd
  addBar('tcp', nav.connectStart, tlsStart, 'TCP handshake', 'own')
  setPhase('tcp', 'done', tlsStart - nav.connectStart, kv([
    ['connectStart → connectEnd', `${ms(nav.connectStart)} → ${ms(nav.connectEnd)}`],
    ['what happened', reused ? 'connectStart equals connectEnd: the browser used a connection it already had (or opened it before this navigation)' : `a TCP handshake with ${location.host} (SYN, SYN-ACK, ACK)`],
  ]))
  if (nav.secureConnectionStart > 0) {
    addBar('tls', nav.secureConnectionStart, nav.connectEnd, 'TLS handshake', 'own')
    setPhase('tls', 'done', nav.connectEnd - nav.secureConnectionStart, kv([
      ['secureConnectionStart → connectEnd', `${ms(nav.secureConnectionStart)} → ${ms(nav.connectEnd)}`],
      ['protocol after it', nav.nextHopProtocol || '(not exposed)'],
      ['in depth', 'the TLS version, cipher suite, ALPN and certificate chain: /lab/tls.html'],
    ]))
  } else {
    setPhase('tls', 'skipped', null, kv([
      ['secureConnectionStart', '0: no TLS on this connection'],
      ['why', location.protocol === 'https:' ? 'the connection was reused: its handshake happened before this page' : 'this page came over http://. Run npm start -- --https (and trust the local authority: npx edgebox cert) to see the handshake here.'],
    ]))
  }
  // the HTTP exchange: the request goes out, the head comes back (time to first byte), the body follows
  addBar('http', nav.requestStart, nav.responseStart, 'request → first byte', 'wait')
  addBar('http', nav.responseStart, nav.responseEnd, 'response body', 'own')
  const protocol = nav.nextHopProtocol || '(not exposed)'
  const h2 = protocol === 'h2'
  const exchangeOut = el('div', { id: 'exchange' })
  const button = el('button', { type: 'button', id: 'run-exchange' }, h2 ? 'Compare with Edgebox\'s own client (HTTP/1.1 and h2)' : 'Measure h2 with Edgebox\'s own client')
  button.addEventListener('click', () => void runExchange(button, exchangeOut))
  setPhase('http', 'done', nav.responseEnd - nav.requestStart,
    kv([
      ['nextHopProtocol', protocol],
      ['requestStart → responseStart', `${ms(nav.requestStart)} → ${ms(nav.responseStart)} (waiting: ${ms(nav.responseStart - nav.requestStart)})`],
      ['responseStart → responseEnd', `${ms(nav.responseStart)} → ${ms(nav.responseEnd)} (${nav.transferSize} bytes on the wire, ${nav.decodedBodySize} decoded)`],
    ]),
    el('p', { class: h2 ? 'explain' : 'note', id: 'h2-note' }, h2
      ? 'Your browser spoke HTTP/2 to Edgebox (RFC 9113): every request of this page shares one TLS connection.'
      : `Your browser spoke ${protocol} here. Browsers speak HTTP/2 only over TLS (negotiated by ALPN), never in cleartext (h2c), and they do not trust Edgebox's local authority unless told to: run npm start -- --https, trust it (npx edgebox cert), and this row shows your browser's own h2 figures. Meanwhile Edgebox can measure h2 with its own client:`),
    el('div', { class: 'toolbar' }, button),
    exchangeOut,
  )
  if (ip) return `${location.hostname} is an address: the browser had nothing to look up`
  return `${location.hostname}: ${ms(nav.domainLookupEnd - nav.domainLookupStart)} (0 when the answer was cached or the name is this machine's own)`
}

async function runExchange(button, out) {
  button.disabled = true
  out.dataset.state = 'running'
  out.replaceChildren(el('p', { class: 'muted' }, 'measuring…'))
  try {
    const r = await api(`exchange?path=${encodeURIComponent(location.pathname)}`)
    const line = (x) => el('tr', { 'data-protocol': x.protocol }, ...[x.protocol, x.status, ms(x.connectMs), ms(x.tlsMs), ms(x.waitMs), ms(x.totalMs), x.bytes].map((v) => el('td', {}, v)))
    out.replaceChildren(
      el('table', { class: 'cmp', id: 'exchange-table' },
        el('thead', {}, el('tr', {}, ...['protocol', 'status', 'TCP connect', 'TLS', 'waiting', 'total', 'bytes'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, line(r.http1), line(r.http2))),
      el('p', { class: 'explain' }, `${r.url}, each on a new connection. ${r.note}`),
    )
    out.dataset.state = 'done'
  } catch (err) {
    out.replaceChildren(el('p', { class: 'note' }, err.message))
    out.dataset.state = 'error'
  } finally {
    button.disabled = false
  }
}

// ---------------------------------------------------------------- after the load: DNS, caches, realtime, beacon

async function api(path) {
  const res = await fetch(API + path, { cache: 'no-store' })
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }))
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`)
  return body
}

async function dnsPhase(own) {
  const url = `/dns-query?name=${DEMO_NAME}&type=A`
  const { res, text, entry } = await timedFetch(url, { headers: { accept: 'application/dns-json' } })
  if (res.status === 404) {
    setPhase('dns', 'skipped', nav.domainLookupEnd - nav.domainLookupStart, kv([['this page', own], ['Edgebox\'s DNS', 'the DNS lab is off here (no /dns-query): npm start runs it on 127.0.0.1-127.0.0.4']]))
    return
  }
  if (!res.ok) throw new Error(`/dns-query: HTTP ${res.status}`)
  const answer = JSON.parse(text)
  if (entry) addBar('dns', entry.startTime, entry.responseEnd, `DNS over HTTPS: ${DEMO_NAME} A`)
  const records = (answer.Answer ?? []).map((a) => `${a.name} ${a.TTL} ${a.data}`)
  setPhase('dns', 'done', entry ? entry.responseEnd - entry.startTime : null, kv([
    ['this page', own],
    [`${DEMO_NAME} A (DoH)`, records.length ? records.join(', ') : answer.Comment],
    ['asked', `GET ${url} (RFC 8484's JSON form), answered by Edgebox's resolver on 127.0.0.1: ${ms(entry && entry.responseEnd - entry.startTime)}`],
    ['how it was found', (answer.Explain ?? []).join(' → ') || '(not shown)'],
  ]))
}

/** The demo object through the edge and parent caches: cold, again (an edge hit), and from another edge (a parent hit). */
async function cachePhase() {
  const name = `journey-${randomId()}`
  const steps = [
    ['cold: both tiers miss', `cache/edge/${name}`],
    ['again: the edge has it', `cache/edge/${name}`],
    ['another edge: the parent has it', `cache/edge/${name}?edge=b`],
  ]
  const rows = []
  let total = 0
  for (const [label, path] of steps) {
    const { res, entry } = await timedFetch(API + path)
    const status = res.headers.get('cache-status') ?? ''
    const tiers = Object.fromEntries(status.split(',').map((s) => s.trim()).filter(Boolean).map((s) => [s.split(';')[0].trim(), s.slice(s.indexOf(';') + 1).trim()]))
    if (entry) {
      addBar('cache', entry.startTime, entry.responseEnd, label, tiers.edge?.startsWith('hit') ? 'hit' : '')
      total += entry.responseEnd - entry.startTime
    }
    rows.push(el('tr', { 'data-step': String(rows.length) }, ...[label, res.status, tiers.edge ?? '–', tiers.parent ?? '–', res.headers.get('age') ?? '–', ms(entry && entry.responseEnd - entry.startTime)].map((v) => el('td', {}, v))))
  }
  setPhase('cache', 'done', total,
    el('table', { class: 'cmp', id: 'cache-table' },
      el('thead', {}, el('tr', {}, ...['request', 'status', 'Cache-Status: edge', 'Cache-Status: parent', 'Age', 'time'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rows)),
    el('p', { class: 'explain' }, `${API}cache/edge/ is a proxy with a cache named edge; its upstream is this Edgebox's own ${API}cache/parent/, a proxy with a cache named parent in front of a demo origin. Each tier adds its entry to Cache-Status (RFC 9211), nearest the origin first. ?edge=b stands for another edge location: a new key at the edge, the same object at the parent.`),
  )
}

/** The realtime hub over Server-Sent Events: connected, its first message (the subscription), a published message delivered. */
async function realtimePhase() {
  const channel = `lab:journey-${randomId()}`
  const start = performance.now()
  const source = new EventSource(`/live/sse?ch=${encodeURIComponent(channel)}`)
  try {
    const events = []
    let wake = () => {}
    source.onmessage = (ev) => {
      events.push({ at: performance.now(), env: JSON.parse(ev.data) })
      wake()
    }
    const next = async (test, what) => {
      const limit = performance.now() + 5000
      for (;;) {
        const hit = events.find(test)
        if (hit) return hit
        if (performance.now() > limit) throw new Error(`no ${what} within 5 s`)
        await Promise.race([new Promise((r) => (wake = r)), sleep(200)])
      }
    }
    const opened = await new Promise((resolve, reject) => {
      source.onopen = () => resolve(performance.now())
      source.onerror = () => reject(new Error('the SSE stream did not open'))
    })
    const first = await next(() => true, 'first message')
    const sentAt = performance.now()
    const res = await fetch('/live/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ t: 'pub', ch: channel, d: { hello: 'journey' } }) })
    if (!res.ok) throw new Error(`publish: HTTP ${res.status}`)
    const delivered = await next((e) => e.env.t === 'msg', 'published message')
    addBar('realtime', start, opened, 'SSE connected')
    addBar('realtime', opened, first.at, `first message (${first.env.t})`, 'hit')
    addBar('realtime', sentAt, delivered.at, 'published → delivered', 'own')
    setPhase('realtime', 'done', first.at - start, kv([
      ['stream', `GET /live/sse?ch=${channel} (text/event-stream)`],
      ['connected', ms(opened - start)],
      ['time to first message', `${ms(first.at - start)} (the hub's "${first.env.t}" envelope)`],
      ['publish → delivery', `${ms(delivered.at - sentAt)} (POST /live/publish, then the message on the stream)`],
    ]))
  } finally {
    source.close()
  }
}

/** The monitoring SDK Edgebox injected into this page: flush its report, find the beacon's Resource Timing entry. */
async function beaconPhase() {
  const rum = globalThis[Symbol.for('edgebox.rum')]
  if (!rum) {
    setPhase('beacon', 'skipped', null, kv([['SDK', 'not on this page: the site has no rum.inject (npm start injects it into every page)']]))
    return
  }
  const seen = []
  const observer = new PerformanceObserver((list) => seen.push(...list.getEntries().filter((e) => e.name.includes('/_edgebox/rum/'))))
  observer.observe({ type: 'resource', buffered: true })
  const before = performance.now()
  rum.flush()
  const limit = performance.now() + 5000
  let entry
  while (!(entry = seen.find((e) => e.startTime >= before - 1)) && performance.now() < limit) await sleep(100)
  observer.disconnect()
  if (!entry) {
    setPhase('beacon', 'skipped', null, kv([['page view', String(rum.pv)], ['beacon', 'sent, but this browser gave it no Resource Timing entry']]))
    return
  }
  addBar('beacon', entry.startTime, entry.responseEnd || entry.startTime + entry.duration, `${entry.initiatorType} → ${new URL(entry.name).pathname}`)
  setPhase('beacon', 'done', entry.duration, kv([
    ['page view', String(rum.pv)],
    ['request', `${new URL(entry.name).pathname} (initiatorType ${entry.initiatorType}${entry.initiatorType === 'beacon' ? ': navigator.sendBeacon' : ''})`],
    ['startTime → responseEnd', `${ms(entry.startTime)} → ${ms(entry.responseEnd)}`],
    ['why it is cheap', 'sendBeacon hands the report to the browser, which sends it without holding the page, even as it closes'],
  ]))
}

async function inspectPanel() {
  const status = $('inspect-status')
  status.dataset.state = 'running'
  status.textContent = 'running edgebox inspect…'
  try {
    const r = await api(`inspect?path=${encodeURIComponent(location.pathname)}`)
    const rep = r.report ?? {}
    const hop = (rep.hops ?? [])[0] ?? {}
    const ex = hop.exchange ?? {}
    const t = ex.timings ?? {}
    $('inspect-summary').tBodies[0].replaceChildren(...[
      ['command', r.command],
      ['status', `${ex.status ?? hop.status ?? '–'} ${ex.httpVersion ?? ''}`],
      ...Object.entries(t).map(([k, v]) => [k, ms(v)]),
    ].map(([k, v]) => el('tr', { 'data-field': k }, el('th', {}, k), el('td', {}, String(v)))))
    $('inspect-json').textContent = JSON.stringify(r.report, null, 2)
    status.dataset.state = 'done'
    status.dataset.ok = 'true'
    status.textContent = `exit ${r.exitCode}`
  } catch (err) {
    status.dataset.state = 'error'
    status.dataset.ok = 'false'
    status.textContent = err.message
  }
}

// ---------------------------------------------------------------- server-side comparisons

const cells = (...values) => values.map((v) => el('td', {}, v === null || v === undefined ? '–' : String(v)))

const comparisons = {
  async connections() {
    const r = await api('connections?n=10')
    const line = (label, x) => x && el('tr', { 'data-mode': label }, el('th', {}, label), ...cells(x.requests, `${x.connections} / ${x.serverConnections}`, ms(x.medianMs), ms(x.connectMedianMs), ms(x.tlsMedianMs), x.resumed))
    $('connections-table').tBodies[0].replaceChildren(...[line('one kept-alive', r.reused), line('new each time', r.fresh), line('new, TLS resumed', r.resumed)].filter(Boolean))
    $('connections-note').textContent = r.note
  },
  async hol() {
    const r = await api('hol?n=50&slow=6&delay=100')
    const line = (x) => el('tr', { 'data-protocol': x.protocol }, el('th', {}, x.protocol), ...cells(x.requests, `${x.connections} / ${x.serverConnections}`, ms(x.totalMs), ms(x.fastMedianMs), ms(x.fastMaxMs), ms(x.slowMedianMs)))
    $('hol-table').tBodies[0].replaceChildren(line(r.http1), line(r.http2))
  },
  async dns() {
    const r = await api('dns')
    const line = (label, x) => el('tr', { 'data-transport': label }, el('th', {}, label), ...cells(ms(x.ms), x.bytes ?? '–', x.tc ? 'set' : 'clear', x.answers))
    $('dns-table').tBodies[0].replaceChildren(line(`UDP to ${r.server}`, r.udp), line('TCP', r.tcp), line(`Edgebox's client (${r.retry.transport} in the end)`, r.retry))
  },
}

for (const button of document.querySelectorAll('button[data-compare]')) {
  button.addEventListener('click', async () => {
    const key = button.dataset.compare
    const status = $(`${key === 'dns' ? 'dns' : key}-status`)
    button.disabled = true
    status.dataset.state = 'running'
    delete status.dataset.ok
    status.textContent = 'running…'
    try {
      await comparisons[key]()
      status.dataset.state = 'done'
      status.dataset.ok = 'true'
      status.textContent = 'done'
    } catch (err) {
      status.dataset.state = 'error'
      status.dataset.ok = 'false'
      status.textContent = err.message
    } finally {
      button.disabled = false
    }
  })
}

// ---------------------------------------------------------------- the run

async function phase(name, work) {
  row(name).dataset.state = 'running'
  try {
    await work()
  } catch (err) {
    setPhase(name, 'error', null, el('p', { class: 'note' }, err.message))
  }
}

async function run() {
  const status = $('journey-status')
  status.dataset.state = 'running'
  status.textContent = 'measuring…'
  if (!nav) {
    for (const p of PHASES) setPhase(p, 'error', null, el('p', { class: 'note' }, 'this browser gives no Navigation Timing entry'))
    return
  }
  const own = navigationPhases()
  const inspecting = inspectPanel()
  await phase('dns', () => dnsPhase(own))
  await phase('cache', cachePhase)
  await phase('realtime', realtimePhase)
  await phase('beacon', beaconPhase)
  await inspecting
  const failed = PHASES.filter((p) => row(p).dataset.state === 'error')
  status.dataset.state = 'done'
  status.dataset.ok = String(failed.length === 0)
  status.textContent = failed.length ? `failed: ${failed.join(', ')}` : 'every phase measured'
}

// after the load event, so that the navigation entry is complete (loadEventEnd) and the monitoring SDK has started
if (document.readyState === 'complete') void run()
else addEventListener('load', () => setTimeout(() => void run(), 0), { once: true })

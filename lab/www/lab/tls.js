// Edgebox lab: what this browser just negotiated with Edgebox. The connection
// details come from /lab/connection/ (the `lab` handler with demo
// 'connection'), which describes the connection its own request came on; the
// navigation's protocol and the Early Hints come from the Performance API.
// CSP-friendly: an external module, DOM built with textContent only. Every
// value is written into an element with a stable id and a data-value (or
// data-count) attribute, so a browser test can read it.

import { $, el } from '/assets/lab.js'

const ENDPOINT = '/lab/connection/'

const HTTP_NAMES = { h2: 'HTTP/2 (h2)', h2c: 'HTTP/2 without TLS (h2c)', h3: 'HTTP/3 (h3)', 'http/1.1': 'HTTP/1.1', 'http/1.0': 'HTTP/1.0' }
const TLS_NAMES = { 'TLSv1.3': 'TLS 1.3', 'TLSv1.2': 'TLS 1.2', 'TLSv1.1': 'TLS 1.1', TLSv1: 'TLS 1.0' }
const SOURCES = { presented: 'presented by Edgebox', 'local authority': "not sent: Edgebox's local certificate authority", 'root store': 'not sent: a root certificate authority' }

/** Writes a value: its machine form in data-value, its words as the text. */
function show(id, value, words) {
  const node = $(id)
  node.dataset.value = String(value)
  node.textContent = words ?? String(value)
}

const ms = (t) => `${t.toFixed(1)} ms`
const path = (url) => {
  const u = new URL(url)
  return u.origin === location.origin ? u.pathname + u.search : u.href
}

function showNavigation(nav) {
  const hop = nav?.nextHopProtocol || 'unknown'
  show('next-hop', hop, HTTP_NAMES[hop] ?? hop)
}

/** The 103 and the preloads it started (Resource Timing entries with initiatorType 'early-hints'). */
function showHints(nav) {
  const entries = performance.getEntriesByType('resource').filter((e) => e.initiatorType === 'early-hints')
  const out = $('early-hints')
  out.dataset.count = String(entries.length)
  // a hint the browser did not act on is no failure: it may already have been fetching the file for the page
  if (entries.length) out.dataset.ok = 'true'
  out.textContent = entries.length === 1 ? '1 preload from a 103' : `${entries.length} preloads from a 103`
  const list = $('hints')
  list.replaceChildren(
    ...entries.map((e) =>
      el(
        'li',
        { 'data-url': path(e.name), 'data-initiator': e.initiatorType },
        el('code', {}, path(e.name)),
        // the entry marks the file the page got from the hint's preload; its sizes and times are the page's use, not the preload's
        ` preloaded because of the 103${e.nextHopProtocol ? `, over ${e.nextHopProtocol}` : ''}`,
      ),
    ),
  )
  // Chromium records when the first 1xx (the 103) and when the final response's headers arrived
  const interim = nav?.firstInterimResponseStart
  if (!entries.length) {
    const overH2 = nav?.nextHopProtocol === 'h2' || nav?.nextHopProtocol === 'h3'
    const why = !overH2
      ? 'Chromium acts on Early Hints over HTTP/2 and HTTP/3 only'
      : interim
        ? "a 103 arrived, but the page came right behind it, so the browser fetched the stylesheet for the page's own <link> instead; reload to try again"
        : 'no 103 arrived with this page'
    list.append(el('li', { class: 'muted' }, `none: ${why}`))
  }
  if (interim) show('interim', interim.toFixed(1), `at ${ms(interim)} after the navigation started`)
  else show('interim', 'none', interim === undefined ? 'not reported by this browser' : 'none')
  const final = nav?.finalResponseHeadersStart || nav?.responseStart
  if (final) show('final-headers', final.toFixed(1), `at ${ms(final)}${interim ? `: ${ms(final - interim)} after the hints` : ''}`)
  else show('final-headers', 'unknown', 'unknown')
}

function days(from, to) {
  const left = Math.floor((Date.parse(to) - Date.now()) / 86_400_000)
  return `${from.slice(0, 10)} to ${to.slice(0, 10)} (${left < 0 ? 'expired' : `${left} days left`})`
}

function certificateTable(c, i) {
  const row = (name, value, props = {}) => el('tr', {}, el('th', {}, name), el('td', props, value))
  const names = (c.subjectAltName ?? '').replace(/IP Address:/g, 'IP:') || 'none'
  return el(
    'table',
    { class: 'kv', id: `cert-${i}`, 'data-subject': c.subject, 'data-issuer': c.issuer, 'data-fingerprint': c.fingerprint256, 'data-source': c.source, 'data-ca': String(c.ca) },
    el('caption', {}, `${i + 1}. ${i === 0 ? 'the leaf' : c.ca ? 'certificate authority' : 'issuer'}, ${SOURCES[c.source] ?? c.source}`),
    el(
      'tbody',
      {},
      row('subject', c.subject),
      row('issuer', c.issuer === c.subject ? `${c.issuer} (itself: a root)` : c.issuer),
      row('names', names),
      row('valid', days(c.validFrom, c.validTo)),
      row('key', c.key),
      row('serial', c.serialNumber, { class: 'hash' }),
      row('SHA-256', c.fingerprint256, { class: 'hash' }),
      row('can issue', c.ca ? 'yes (a CA)' : 'no'),
    ),
  )
}

function showConnection(c) {
  show('protocol', c.protocol, HTTP_NAMES[c.protocol] ?? c.protocol)
  show('stream', c.streamId ?? 'none', c.streamId ? `stream ${c.streamId}` : 'none: HTTP/1.1 has one request at a time per connection')
  const t = c.tls
  $('cleartext').hidden = t !== null
  if (!t) {
    for (const id of ['tls-version', 'cipher', 'alpn', 'resumed', 'sni', 'key-exchange']) show(id, 'none', 'none: plain HTTP')
    $('chain').replaceChildren(el('p', { class: 'muted' }, 'No certificate: plain HTTP proves nothing about who answered.'))
    show('chain-note', 'none', 'Run npm start -- --https to see the chain.')
    return
  }
  show('tls-version', t.version, TLS_NAMES[t.version] ?? t.version)
  const cipher = $('cipher')
  cipher.dataset.value = t.cipher?.name ?? ''
  cipher.dataset.standard = t.cipher?.standardName ?? ''
  cipher.textContent = t.cipher ? (t.cipher.standardName && t.cipher.standardName !== t.cipher.name ? `${t.cipher.name} (${t.cipher.standardName})` : t.cipher.name) : 'unknown'
  show('alpn', t.alpn ?? 'none', t.alpn ? `${t.alpn}: chosen in the handshake` : 'none: the browser offered no protocol list')
  show('resumed', t.resumed ? 'resumed' : 'full', t.resumed ? 'resumed: a session ticket (or ID) skipped the certificate and the signature' : 'full: certificate sent and signature checked')
  show('sni', t.servername ?? 'none', t.servername ?? 'none (an IP address is not sent as a server name)')
  const known = t.ephemeralKey && Object.keys(t.ephemeralKey).length
  show('key-exchange', known ? JSON.stringify(t.ephemeralKey) : 'not-reported', known ? JSON.stringify(t.ephemeralKey) : 'ephemeral (EC)DHE; which group, only the browser can tell')
  $('key-exchange').title = t.ephemeralKeyNote
  $('chain').replaceChildren(...t.certificate.map(certificateTable))
  show('chain-note', t.certificate.length, t.chainNote)
}

async function ask() {
  const status = $('status')
  status.dataset.state = 'loading'
  delete status.dataset.ok
  status.textContent = 'reading the connection…'
  try {
    const res = await fetch(ENDPOINT, { cache: 'no-store' })
    if (!res.ok) throw new Error(`${ENDPOINT} answered ${res.status}`)
    showConnection(await res.json())
    status.dataset.state = 'done'
    status.dataset.ok = 'true'
    status.textContent = location.protocol === 'https:' ? 'read from the connection' : 'read: plain HTTP'
  } catch (e) {
    status.dataset.state = 'error'
    status.dataset.ok = 'false'
    status.textContent = `could not read the connection: ${e.message}`
  }
}

async function main() {
  // resource entries are recorded once each file has loaded: wait for the page's load event
  if (document.readyState !== 'complete') await new Promise((r) => addEventListener('load', r, { once: true }))
  const nav = performance.getEntriesByType('navigation')[0]
  if (location.protocol === 'http:') {
    // `npm start -- --https` serves the same ports over TLS
    const link = $('https-link')
    link.href = `https://${location.host}${location.pathname}`
    link.firstElementChild.textContent = link.href
  }
  showNavigation(nav)
  showHints(nav)
  await ask()
  $('again').addEventListener('click', ask)
  document.documentElement.dataset.labReady = 'true'
}

main()

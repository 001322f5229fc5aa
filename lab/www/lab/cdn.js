// Edgebox lab: a proxy route with a shared cache in front of two demo origins
// (the `lab` handler at /lab/demo/). CSP-friendly: an external module, DOM
// built with textContent only. Every tour step writes its outcome into an
// <output> element's data attributes (data-ok, data-state, data-detail) so a
// browser test can check them.

import { $, el, mark } from '/assets/lab.js'

const DEMO = '/lab/demo/'
const CDN = `${DEMO}cdn/`

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const objectUrl = (name, cc) => `${CDN}obj/${encodeURIComponent(name)}?cc=${encodeURIComponent(cc)}`

let state = null

async function loadState() {
  const res = await fetch(`${DEMO}state`, { cache: 'no-store' })
  state = await res.json()
  renderOrigins()
  return state
}

/** This cache's own Cache-Status entry (the last one: entries nearer the origin come first, RFC 9211). */
function ownEntry(cacheStatus) {
  const entries = (cacheStatus ?? '').split(/,(?=\s*[a-z0-9-]+;)/i)
  return entries[entries.length - 1]?.trim() ?? ''
}

/** Cache-Status in plain words. */
function inWords(status, cacheStatus) {
  const e = ownEntry(cacheStatus)
  if (!e) return status >= 500 ? 'error' : 'no Cache-Status'
  const detail = /detail="?([^";]+)"?/.exec(e)?.[1]
  const fwdStatus = /fwd-status=(\d+)/.exec(e)?.[1]
  if (/; hit\b/.test(e) && detail === 'stale-while-revalidate') return 'stale copy served at once; the cache refreshes it in the background'
  if (/; hit\b/.test(e) && detail === 'stale-if-error') return 'the origin failed: stale copy served (stale-if-error)'
  if (/; hit\b/.test(e)) return 'hit: fresh copy from the cache, no origin request'
  if (/fwd=stale/.test(e) && fwdStatus === '304') return 'revalidated: the origin said 304 Not Modified, the stored body was served'
  if (/fwd=stale/.test(e)) return `revalidated: the origin sent a new response (${fwdStatus}), which replaced the stored one`
  if (/collapsed/.test(e)) return 'waited for a concurrent miss and shared its response'
  if (/fwd=(miss|uri-miss)/.test(e) && /stored/.test(e)) return 'miss: fetched from the origin and stored'
  if (/fwd=(miss|uri-miss)/.test(e)) return `miss: fetched from the origin, not stored${detail ? ` (${detail})` : ''}`
  if (/fwd=bypass/.test(e)) return 'bypassed the cache'
  return e
}

/** GET through the cache; returns what the log shows. */
async function get(name, cc) {
  const url = objectUrl(name, cc)
  const res = await fetch(url, { cache: 'no-store' })
  const text = await res.text()
  let body = {}
  try {
    body = JSON.parse(text)
  } catch {
    body = { error: text.trim() }
  }
  const r = {
    request: `GET ${decodeURIComponent(url)}`,
    status: res.status,
    age: res.headers.get('age'),
    cacheStatus: res.headers.get('cache-status') ?? '',
    origin: res.headers.get('x-origin') ?? body.origin ?? '',
    version: body.version,
    servedAt: body.servedAt,
  }
  r.words = inWords(r.status, r.cacheStatus)
  log(r)
  return r
}

async function purge(path, tag) {
  const headers = { Authorization: `Bearer ${state.purgeToken}` }
  if (tag) headers['Edgebox-Purge-Tag'] = tag
  const res = await fetch(path, { method: 'PURGE', headers, cache: 'no-store' })
  const body = await res.json().catch(() => ({}))
  const r = { request: `PURGE ${decodeURIComponent(path)}${tag ? ` (tag ${tag})` : ''}`, status: res.status, age: null, cacheStatus: '', origin: '', version: '', words: `${body.purged ?? 0} stored response(s) removed (${body.what ?? '?'})`, purged: body.purged }
  log(r)
  return r
}

async function post(path) {
  const res = await fetch(path, { method: 'POST', cache: 'no-store' })
  return res.json()
}

// ---------------------------------------------------------------- log

let rows = 0
function log(r) {
  rows++
  const tr = el(
    'tr',
    { 'data-status': String(r.status) },
    el('td', {}, rows),
    el('td', { class: 'req' }, r.request),
    el('td', {}, r.status),
    el('td', {}, r.age ?? '—'),
    el('td', { class: 'cs' }, r.cacheStatus || '—'),
    el('td', {}, r.origin || '—'),
    el('td', {}, r.version ?? '—'),
    el('td', {}, r.words),
  )
  $('log').querySelector('tbody').prepend(tr)
}

// ---------------------------------------------------------------- origins

function renderOrigins() {
  const tbody = $('origins').querySelector('tbody')
  tbody.replaceChildren(
    ...state.origins.map((o) =>
      el(
        'tr',
        { 'data-origin': o.name, 'data-up': String(o.up), 'data-healthy': String(o.healthy) },
        el('th', {}, o.name),
        el('td', {}, o.url),
        el('td', {}, o.up ? 'running' : 'stopped'),
        el('td', {}, o.healthy ? 'healthy' : `out: ${o.reason}`),
        el('td', {}, o.requests),
        el('td', {}, originButton(o)),
      ),
    ),
  )
}

function originButton(o) {
  const b = el('button', { type: 'button', 'data-action': o.up ? 'stop' : 'start', 'data-origin': o.name }, o.up ? `Stop ${o.name}` : `Start ${o.name}`)
  b.addEventListener('click', async () => {
    b.disabled = true
    state = await post(`${DEMO}origins/${o.name}/${o.up ? 'stop' : 'start'}`)
    renderOrigins()
  })
  return b
}

let trafficTimer = null
async function trafficOnce() {
  let label = '×'
  let ok = false
  try {
    const res = await fetch(`${CDN}nostore`, { cache: 'no-store' })
    label = res.ok ? (res.headers.get('x-origin') ?? '?') : String(res.status)
    ok = res.ok
    await res.arrayBuffer()
  } catch {
    label = 'error'
  }
  const strip = $('traffic-strip')
  strip.append(el('span', { class: ok ? `hit origin-${label}` : 'fail', 'data-origin': label }, label))
  while (strip.childElementCount > 40) strip.firstElementChild.remove()
  return { ok, origin: label }
}

function toggleTraffic() {
  const button = $('traffic')
  if (trafficTimer) {
    clearInterval(trafficTimer)
    trafficTimer = null
    button.textContent = 'Send traffic'
    return
  }
  trafficTimer = setInterval(() => {
    void trafficOnce()
    loadState().then(() => (document.documentElement.dataset.labReady = 'true'))
  }, 250)
  button.textContent = 'Stop traffic'
}

// ---------------------------------------------------------------- tour

async function waitFor(check, ms) {
  const end = performance.now() + ms
  for (;;) {
    const s = await loadState()
    if (check(s)) return true
    if (performance.now() > end) return false
    await sleep(200)
  }
}

async function tour() {
  const tag = Math.random().toString(36).slice(2, 8)
  const own = (r) => ownEntry(r.cacheStatus)

  // 1-2. miss, then hit with a growing Age
  const fresh = `tour-${tag}-fresh`
  const m = await get(fresh, 'public, max-age=60')
  mark('step-miss', m.status === 200 && /fwd=miss/.test(own(m)) && /stored/.test(own(m)), own(m))
  await sleep(1100)
  const h = await get(fresh, 'public, max-age=60')
  mark('step-hit', h.status === 200 && /; hit\b/.test(own(h)) && Number(h.age) >= 1 && h.servedAt === m.servedAt, `${own(h)}; Age ${h.age}`)

  // 3. stale-while-revalidate
  const swr = `tour-${tag}-swr`
  const cc = 'public, max-age=1, stale-while-revalidate=30'
  const s1 = await get(swr, cc)
  await sleep(2100)
  const s2 = await get(swr, cc)
  // the background revalidation (a 304 here) restarts the stored copy's freshness and keeps its body
  let s3
  for (let i = 0; i < 10; i++) {
    await sleep(150)
    s3 = await get(swr, cc)
    if (/; hit; ttl=\d+$/.test(own(s3))) break
  }
  const refreshed = /; hit; ttl=\d+$/.test(own(s3))
  mark('step-swr', /stale-while-revalidate/.test(own(s2)) && s2.servedAt === s1.servedAt && refreshed, `${own(s2)} then ${own(s3)}`)

  // 4. revalidated with 304
  const nc = `tour-${tag}-nocache`
  const r1 = await get(nc, 'public, no-cache')
  const r2 = await get(nc, 'public, no-cache')
  mark('step-revalidated', /stored/.test(own(r1)) && /fwd=stale/.test(own(r2)) && /fwd-status=304/.test(own(r2)) && r2.servedAt === r1.servedAt, own(r2))

  // 5. changed at the origin: the revalidation brings the new version
  await post(`${DEMO}objects/${nc}/change`)
  const r3 = await get(nc, 'public, no-cache')
  mark('step-changed', /fwd-status=200/.test(own(r3)) && r3.version === r1.version + 1, `${own(r3)}; version ${r3.version}`)

  // 6. purge, then a miss again
  const p = await purge(objectUrl(fresh, 'public, max-age=60'))
  const after = await get(fresh, 'public, max-age=60')
  mark('step-purge', p.status === 200 && p.purged === 1 && /fwd=miss/.test(own(after)), `purged ${p.purged}; then ${own(after)}`)

  // 7. failover: stop a, traffic goes to b without errors, a is taken out; start a, it comes back
  await post(`${DEMO}origins/a/stop`)
  await loadState()
  const during = []
  for (let i = 0; i < 6; i++) during.push(await trafficOnce())
  // the failed request ejected a at once (passive); wait for the active checks to see it down too,
  // so that their first good probe after the restart brings it back
  const out = await waitFor((st) => st.origins[0].healthy === false && /health check/.test(st.origins[0].reason), 4000)
  await post(`${DEMO}origins/a/start`)
  const back = await waitFor((st) => st.origins[0].healthy === true, 6000)
  const later = []
  for (let i = 0; i < 6; i++) later.push(await trafficOnce())
  const noErrors = during.every((x) => x.ok && x.origin === 'b')
  const returned = later.every((x) => x.ok) && later.some((x) => x.origin === 'a')
  mark('step-failover', noErrors && out && back && returned, `while a was down: ${during.map((x) => x.origin).join(' ')}; a taken out: ${out}; back: ${back}; after restart: ${later.map((x) => x.origin).join(' ')}`)
}

// ---------------------------------------------------------------- wiring

$('tour').addEventListener('click', async () => {
  const button = $('tour')
  const status = $('tour-status')
  button.disabled = true
  status.dataset.state = 'running'
  delete status.dataset.ok
  status.textContent = 'running…'
  for (const o of document.querySelectorAll('#tour-steps output')) {
    o.dataset.state = 'idle'
    delete o.dataset.ok
  }
  try {
    await tour()
    const failed = [...document.querySelectorAll('#tour-steps output')].filter((o) => o.dataset.ok !== 'true')
    status.dataset.ok = String(failed.length === 0)
    status.textContent = failed.length === 0 ? 'every step behaved as described' : `${failed.length} step(s) did not: hover them for details`
  } catch (err) {
    status.dataset.ok = 'false'
    status.textContent = `error: ${err.message}`
  } finally {
    status.dataset.state = 'done'
    button.disabled = false
  }
})

$('send').addEventListener('click', () => get($('object').value, $('cc').value))
$('change').addEventListener('click', async () => {
  const r = await post(`${DEMO}objects/${encodeURIComponent($('object').value)}/change`)
  log({ request: `POST ${DEMO}objects/${r.object}/change`, status: 200, age: null, cacheStatus: '', origin: '', version: r.version, words: `the origins now serve version ${r.version}` })
})
$('purge').addEventListener('click', () => purge(objectUrl($('object').value, $('cc').value)))
$('purge-tag').addEventListener('click', () => purge(CDN, 'lab'))
$('clear').addEventListener('click', () => {
  rows = 0
  $('log').querySelector('tbody').replaceChildren()
})
$('traffic').addEventListener('click', toggleTraffic)

loadState().then(() => (document.documentElement.dataset.labReady = 'true'))

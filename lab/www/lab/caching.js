// Edgebox lab: caching and resumable downloads, run live in the browser.
// CSP-friendly: an external module, no eval, no inline handlers, DOM built
// with textContent only. Every experiment writes its outcome into an
// <output> element's data attributes (data-result, data-status, data-ok,
// data-state) so a browser test can check them.

import { $, el } from '/assets/lab.js'

const SAMPLE = '/lab/sample.txt'
const ABORT_AFTER = 256 * 1024
const TIMING_WAIT_MS = 3000

performance.setResourceTimingBufferSize(1000)

/** The URL the caching experiments share (a fresh query per run keeps reruns honest). */
let cachedUrl = null

// ---------------------------------------------------------------- helpers

const absolute = (url) => new URL(url, location.href).href

function formatBytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB (${n.toLocaleString('en')} B)`
  return `${(n / 1024 / 1024).toFixed(2)} MiB (${n.toLocaleString('en')} B)`
}

/** Waits until the resource timing buffer holds at least `count` entries for `url`; returns the last. */
async function timingEntry(url, count) {
  const name = absolute(url)
  const deadline = performance.now() + TIMING_WAIT_MS
  for (;;) {
    const entries = performance.getEntriesByName(name, 'resource')
    if (entries.length >= count) return entries[count - 1]
    if (performance.now() > deadline) return undefined
    await new Promise((r) => setTimeout(r, 25))
  }
}

const entryCount = (url) => performance.getEntriesByName(absolute(url), 'resource').length

/** Fetches `url`, reads the whole body, and returns the response, the body and its timing entry. */
async function fetchTimed(url, init) {
  const before = entryCount(url)
  const res = await fetch(url, init)
  const body = new Uint8Array(await res.arrayBuffer())
  const timing = await timingEntry(url, before + 1)
  return { res, body, timing }
}

function ageOf(res) {
  const date = res.headers.get('date')
  if (!date) return '—'
  const secs = Math.max(0, Math.round((Date.now() - Date.parse(date)) / 1000))
  const age = res.headers.get('age')
  return `${age ? `Age: ${age}; ` : 'no Age header (no shared cache in between); '}${secs} s since Date`
}

function freshness(res) {
  const maxAge = Number(/(?:^|[,\s])max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1])
  if (!Number.isFinite(maxAge)) return 'no max-age: the browser has to ask'
  const age = Math.max(0, Math.round((Date.now() - Date.parse(res.headers.get('date') ?? '')) / 1000))
  return age < maxAge ? `max-age=${maxAge} and age ${age} s < ${maxAge} s: fresh, reused without asking` : `age ${age} s >= max-age=${maxAge}: stale, must revalidate`
}

const HEADER_NAMES = ['Cache-Control', 'ETag', 'Last-Modified', 'Date', 'Age', 'Expires', 'Vary', 'Content-Encoding', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'Server-Timing']

/** A two-column table; rows whose value is undefined are left out, `hl` rows are highlighted. */
function kvTable(caption, rows, hl = [], extraClass = '') {
  const table = el('table', { class: `kv ${extraClass}`.trim() }, el('caption', {}, caption))
  const body = el('tbody')
  for (const [k, v] of rows) {
    if (v === undefined || v === null) continue
    body.append(el('tr', hl.includes(k) ? { class: 'hl' } : {}, el('th', { scope: 'row' }, k), el('td', {}, v)))
  }
  table.append(body)
  return table
}

function responseHeaders(res, caption, hl = [], names = HEADER_NAMES) {
  const rows = names.map((n) => [n, res.headers.get(n) ?? undefined])
  return kvTable(caption, rows, hl)
}

function timingTable(t, caption = 'Resource Timing (performance.getEntriesByName)') {
  if (!t) return kvTable(caption, [['entry', 'not found']])
  return kvTable(
    caption,
    [
      ['transferSize', formatBytes(t.transferSize)],
      ['encodedBodySize', formatBytes(t.encodedBodySize)],
      ['decodedBodySize', formatBytes(t.decodedBodySize)],
      ['responseStatus', t.responseStatus === undefined ? undefined : String(t.responseStatus)],
      ['duration', `${t.duration.toFixed(1)} ms`],
      ['serverTiming', t.serverTiming?.length ? t.serverTiming.map((s) => `${s.name};dur=${s.duration}`).join(', ') : '(none: nothing came from the server)'],
    ],
    ['transferSize'],
  )
}

/** Sets an experiment's <output>: text, data attributes, pass/fail styling. */
function report(id, text, data, ok) {
  const out = $(id)
  out.textContent = text
  for (const [k, v] of Object.entries(data)) out.dataset[k] = String(v)
  out.dataset.ok = String(ok)
  out.dataset.state = 'done'
}

function details(id, ...nodes) {
  const box = $(`${id}-details`)
  box.replaceChildren(...nodes)
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes)
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}

function concat(parts) {
  const total = parts.reduce((n, p) => n + p.length, 0)
  const out = new Uint8Array(total)
  let pos = 0
  for (const p of parts) {
    out.set(p, pos)
    pos += p.length
  }
  return out
}

async function ensureCached() {
  if (cachedUrl) return cachedUrl
  cachedUrl = `${SAMPLE}?run=${Date.now().toString(36)}`
  await fetchTimed(cachedUrl)
  return cachedUrl
}

// ------------------------------------------------------------ experiments

/** 1. Two plain fetches: the second is served from the HTTP cache (transferSize 0). */
async function strong() {
  cachedUrl = `${SAMPLE}?run=${Date.now().toString(36)}`
  const first = await fetchTimed(cachedUrl)
  const second = await fetchTimed(cachedUrl)
  const t = second.timing
  const hit = second.res.status === 200 && t !== undefined && t.transferSize === 0 && t.decodedBodySize > 0
  report('strong-hit', hit ? 'cache hit: no request sent' : 'not a cache hit', { result: hit ? 'hit' : 'miss', status: second.res.status }, hit)
  details(
    'strong-hit',
    el('p', {}, `First fetch: ${first.res.status}, transferSize ${formatBytes(first.timing?.transferSize)} (went to the server). Second fetch: ${second.res.status}, transferSize ${formatBytes(t?.transferSize)}.`),
    el(
      'div',
      { class: 'grid2' },
      responseHeaders(second.res, 'Headers the page sees on the second fetch (stored copy)', ['Cache-Control']),
      timingTable(t, 'Resource Timing of the second fetch'),
    ),
    kvTable('Freshness', [['url', cachedUrl], ['age', ageOf(second.res)], ['verdict', freshness(second.res)]]),
  )
  return hit
}

/** 2. cache: 'no-cache' forces a conditional request: 304 on the wire, 200 to the page. */
async function revalidate() {
  const url = await ensureCached()
  const { res, body, timing: t } = await fetchTimed(url, { cache: 'no-cache' })
  let result = 'unknown'
  if (t && t.transferSize === 0) result = 'cache-hit'
  else if (t && t.transferSize > 0 && t.transferSize < t.encodedBodySize) result = '304-revalidated'
  else if (t) result = 'full-200'
  const ok = res.status === 200 && result === '304-revalidated'

  // The same exchange by hand: with 'no-store' the cache stays out of it and the page sees the 304.
  const etag = res.headers.get('etag')
  const lastModified = res.headers.get('last-modified')
  const inm = await fetch(url, { cache: 'no-store', headers: { 'If-None-Match': etag ?? '' } })
  await inm.arrayBuffer()
  const ims = await fetch(url, { cache: 'no-store', headers: { 'If-Modified-Since': lastModified ?? '' } })
  await ims.arrayBuffer()
  const manualOk = inm.status === 304 && ims.status === 304

  report(
    'revalidate',
    ok ? `304 on the wire, ${res.status} to the page` : `not revalidated (${result})`,
    { result, status: result, pageStatus: res.status, manualInm: inm.status, manualIms: ims.status },
    ok && manualOk,
  )
  details(
    'revalidate',
    el('p', {}, `The page got status ${res.status} and ${formatBytes(body.length)} of body, but only ${formatBytes(t?.transferSize)} crossed the network: the server's 304 (headers only), after which the browser used its stored body.`),
    el(
      'div',
      { class: 'grid2' },
      kvTable('Request (validators added by the browser cache, invisible to fetch)', [
        ['If-None-Match', etag ?? '—'],
        ['If-Modified-Since', lastModified ?? '—'],
      ]),
      timingTable(t),
    ),
    responseHeaders(res, 'Headers the page sees (the stored response, updated by the 304)', ['ETag', 'Last-Modified']),
    kvTable(
      'By hand, cache: no-store (the page sees the server\'s status)',
      [
        [`If-None-Match: ${etag}`, `${inm.status} ${inm.statusText}`],
        [`If-Modified-Since: ${lastModified}`, `${ims.status} ${ims.statusText}`],
        ['304 Server-Timing', inm.headers.get('server-timing') ?? '—'],
      ],
      [`If-None-Match: ${etag}`, `If-Modified-Since: ${lastModified}`],
      'wide',
    ),
  )
  return ok && manualOk
}

/** 3. cache: 'reload' goes to the network with no validators: a full 200. */
async function full() {
  const url = await ensureCached()
  const { res, body, timing: t } = await fetchTimed(url, { cache: 'reload' })
  const whole = t !== undefined && t.encodedBodySize > 0 && t.transferSize >= t.encodedBodySize
  const ok = res.status === 200 && whole
  report('full', ok ? `full ${res.status}: whole body sent` : `unexpected (${res.status})`, { result: ok ? 'full-200' : 'other', status: res.status }, ok)
  details(
    'full',
    el('p', {}, `Status ${res.status}; ${formatBytes(t?.transferSize)} transferred for ${formatBytes(body.length)} of text${res.headers.get('content-encoding') ? ` (${res.headers.get('content-encoding')}-compressed on the wire)` : ''}.`),
    el('div', { class: 'grid2' }, responseHeaders(res, 'Response headers', ['Content-Encoding', 'ETag']), timingTable(t)),
  )
  return ok
}

/** Reads `res`'s body until at least `limit` bytes arrived, then aborts the fetch. */
async function readThenAbort(res, controller, limit) {
  const reader = res.body.getReader()
  const parts = []
  let received = 0
  while (received < limit) {
    const { done, value } = await reader.read()
    if (done) break
    parts.push(value)
    received += value.length
  }
  controller.abort()
  let aborted = false
  try {
    await reader.read() // rejects with AbortError now that the signal fired
  } catch (err) {
    aborted = err instanceof DOMException && err.name === 'AbortError'
  }
  return { bytes: concat(parts), aborted }
}

/** 4. Abort a download after >= 256 KiB, resume with Range + If-Range, verify SHA-256. */
async function resume() {
  const controller = new AbortController()
  const first = await fetch(SAMPLE, { cache: 'no-store', headers: { Range: 'bytes=0-' }, signal: controller.signal })
  const etag = first.headers.get('etag') ?? ''
  const firstHeaders = responseHeaders(first, `First request: ${first.status} (Range: bytes=0-), aborted`, ['ETag', 'Content-Range'])
  const { bytes: read, aborted } = await readThenAbort(first, controller, ABORT_AFTER)
  // On a fast local link one read can hold most of the file. If it held all of
  // it there is nothing left to resume: keep the first 256 KiB instead, as if
  // the connection had dropped there.
  const total = Number(/\/(\d+)$/.exec(first.headers.get('content-range') ?? '')?.[1]) || Infinity
  const head = read.length >= total ? read.subarray(0, ABORT_AFTER) : read
  const n = head.length

  const rest = await fetch(SAMPLE, { cache: 'no-store', headers: { Range: `bytes=${n}-`, 'If-Range': etag } })
  const tail = new Uint8Array(await rest.arrayBuffer())
  const contentRange = rest.headers.get('content-range') ?? ''

  const whole = await fetch(SAMPLE, { cache: 'no-store' })
  const fullBytes = new Uint8Array(await whole.arrayBuffer())

  const assembled = concat([head, tail])
  const [hAssembled, hFull] = await Promise.all([sha256Hex(assembled), sha256Hex(fullBytes)])
  const size = fullBytes.length
  const expectedRange = `bytes ${n}-${size - 1}/${size}`
  const pass = rest.status === 206 && contentRange === expectedRange && assembled.length === size && hAssembled === hFull && n >= ABORT_AFTER && n < size

  report(
    'resume',
    pass ? 'PASS: resumed download is identical' : 'FAIL',
    { result: pass ? 'pass' : 'fail', status: rest.status, contentRange, received: n, read: read.length, total: size, aborted, sha256: hAssembled },
    pass,
  )
  details(
    'resume',
    kvTable(
      'Download',
      [
        [
          'read before abort',
          `${formatBytes(read.length)}, then AbortController.abort(): ${aborted ? 'the pending read rejected with AbortError and the transfer stopped' : 'the whole body had already arrived (a fast local link), so there was nothing left to cut'}`,
        ],
        ['kept (resume point)', n === read.length ? formatBytes(n) : `${formatBytes(n)} (the whole file had arrived; keeping only a prefix)`],
        ['resume request', `Range: bytes=${n}-  If-Range: ${etag}`],
        ['resume answer', `${rest.status} ${rest.statusText}, ${formatBytes(tail.length)}`],
        ['Content-Range', contentRange || '—'],
        ['assembled', formatBytes(assembled.length)],
        ['full download', formatBytes(size)],
      ],
      ['resume answer', 'Content-Range'],
    ),
    kvTable(
      'SHA-256',
      [
        ['assembled', hAssembled],
        ['full download', hFull],
        ['verdict', pass ? 'PASS: identical bytes' : 'FAIL: the parts do not add up to the file'],
      ],
      ['verdict'],
    ),
    el('div', { class: 'grid2' }, firstHeaders, responseHeaders(rest, `Resume: ${rest.status}`, ['Content-Range', 'ETag'])),
  )
  return pass
}

/** 5. A Range with an If-Range that does not match gets the whole file as a 200. */
async function ifRange() {
  // The file's size, from a one-byte range: Content-Range: bytes 0-0/<size>.
  const probe = await fetch(SAMPLE, { cache: 'no-store', headers: { Range: 'bytes=0-0' } })
  await probe.arrayBuffer()
  const total = Number(/\/(\d+)$/.exec(probe.headers.get('content-range') ?? '')?.[1]) || undefined
  const wrong = '"not-the-current-etag"'
  const res = await fetch(SAMPLE, { cache: 'no-store', headers: { Range: `bytes=${ABORT_AFTER}-`, 'If-Range': wrong } })
  const body = new Uint8Array(await res.arrayBuffer())

  // The compressed representation's ETag: a plain download gets it.
  const plain = await fetch(SAMPLE, { cache: 'no-store' })
  await plain.arrayBuffer()
  const codedTag = plain.headers.get('etag') ?? ''
  const coded = await fetch(SAMPLE, { cache: 'no-store', headers: { Range: `bytes=${ABORT_AFTER}-`, 'If-Range': codedTag } })
  const codedBody = new Uint8Array(await coded.arrayBuffer())

  const ok = res.status === 200 && !res.headers.has('content-range') && (total === undefined || body.length === total)
  report(
    'if-range-mismatch',
    ok ? `${res.status}: whole file, range ignored` : `unexpected ${res.status}`,
    { result: ok ? 'full-200' : 'other', status: res.status, bytes: body.length, codedStatus: coded.status },
    ok,
  )
  details(
    'if-range-mismatch',
    kvTable(
      'Requests',
      [
        [`Range: bytes=${ABORT_AFTER}-\nIf-Range: ${wrong}`, `${res.status} ${res.statusText}, ${formatBytes(body.length)}, Content-Range: ${res.headers.get('content-range') ?? '(none)'}`],
        [
          `Range: bytes=${ABORT_AFTER}-\nIf-Range: ${codedTag}`,
          `${coded.status} ${coded.statusText}, ${formatBytes(codedBody.length)}${plain.headers.get('content-encoding') ? ` (that tag is the ${plain.headers.get('content-encoding')} representation's)` : ''}`,
        ],
      ],
      [`Range: bytes=${ABORT_AFTER}-\nIf-Range: ${wrong}`],
      'wide',
    ),
    responseHeaders(res, 'Response headers (wrong If-Range)', ['ETag', 'Content-Length']),
  )
  return ok
}

// ------------------------------------------------------------------- wiring

const EXPERIMENTS = { strong, revalidate, full, resume, ifRange }
const OUTPUT_OF = { strong: 'strong-hit', revalidate: 'revalidate', full: 'full', resume: 'resume', ifRange: 'if-range-mismatch' }

async function run(name) {
  const out = $(OUTPUT_OF[name])
  out.dataset.state = 'running'
  delete out.dataset.ok
  out.textContent = 'running…'
  try {
    return await EXPERIMENTS[name]()
  } catch (err) {
    report(OUTPUT_OF[name], `error: ${err instanceof Error ? err.message : String(err)}`, { result: 'error', error: String(err) }, false)
    console.error(err)
    return false
  }
}

function setBusy(busy) {
  for (const b of document.querySelectorAll('button')) b.disabled = busy
}

async function runAll() {
  const status = $('run-all-status')
  status.dataset.state = 'running'
  delete status.dataset.ok
  status.textContent = 'running…'
  setBusy(true)
  const results = []
  try {
    cachedUrl = null
    for (const name of Object.keys(EXPERIMENTS)) results.push(await run(name))
  } finally {
    setBusy(false)
  }
  const passed = results.filter(Boolean).length
  status.textContent = `${passed} of ${results.length} as expected`
  status.dataset.ok = String(passed === results.length)
  status.dataset.passed = String(passed)
  status.dataset.state = 'done'
}

for (const button of document.querySelectorAll('button[data-run]')) {
  button.addEventListener('click', async () => {
    setBusy(true)
    try {
      await run(button.dataset.run)
    } finally {
      setBusy(false)
    }
  })
}
$('run-all').addEventListener('click', () => void runAll())
document.documentElement.dataset.labReady = 'true'

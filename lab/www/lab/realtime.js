// Edgebox lab: the realtime hub's four transports side by side (/live/,
// docs/realtime.md). Each panel speaks the wire protocol itself, not through
// the client SDK, so that it can count what crosses the wire: WebSocket
// frames, the SSE stream's bytes (read with fetch and a stream reader, so
// keep-alive comments and id: lines are seen too), and poll responses with
// their header bytes (rebuilt from the headers fetch exposes; Resource
// Timing's figure is shown beside it, see observeTimings). CSP-friendly: an
// external module, DOM built with textContent only. Results go into data
// attributes (data-received, data-in-order, data-units-per-message,
// data-overhead-per-message, data-latency-median, ...) for the browser test.

import { $, el } from '/assets/lab.js'

const PREFIX = '/live/'
const COUNT = 20
const SPACING = 200 // ms between two publishes
const RETRY = 1000 // ms before a panel reconnects
const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'poll']
const UNIT = { websocket: 'frame', sse: 'event', 'long-poll': 'request', poll: 'request' }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** The clock publishers stamp messages with and receivers compare against. */
const now = () => performance.timeOrigin + performance.now()
const encoder = new TextEncoder()
const utf8 = (s) => encoder.encode(s).length
const randomId = () => Math.random().toString(36).slice(2, 10)

const channel = `lab:transports-${randomId()}`
let currentRun = null // the run id the panels count for, while a batch is on

// ---------------------------------------------------------------- panels

function newWindow(run) {
  return { run, closed: false, units: 0, bytes: 0, payload: 0, headerBytes: 0, responses: 0, got: [], latencies: [], gaps: 0 }
}

const panels = Object.fromEntries(
  TRANSPORTS.map((name) => [
    name,
    {
      name,
      position: undefined, // { e, o }: where to resume after a reconnect
      connection: 'idle',
      clientId: `lab-${randomId()}`,
      win: newWindow(null),
      total: { units: 0, bytes: 0, messages: 0 },
      /** Polls: responses seen by the fetch loop, Resource Timing entries seen for them, and the last entry's header figure. */
      responses: 0,
      timings: 0,
      rtHeaderBytes: NaN,
    },
  ]),
)

function setConnection(p, state, detail) {
  p.connection = state
  const out = $(`state-${p.name}`)
  out.dataset.state = state
  out.textContent = detail ? `${state}: ${detail}` : state
  $(`p-${p.name}`).dataset.connection = state
}

/**
 * One frame, event or response arrived: `bytes` on the wire (as far as the
 * page sees), of which `payload` were message envelopes.
 */
function unit(p, { bytes, payload = 0, messages = 0, label, title, bytesCounted = false }) {
  const w = p.win.closed ? { units: 0, bytes: 0, payload: 0 } : p.win // a finished batch's figures stay as they were
  w.units++
  p.total.units++
  w.payload += payload
  if (!bytesCounted) {
    w.bytes += bytes
    p.total.bytes += bytes
  }
  const strip = $(`wire-${p.name}`)
  strip.append(el('span', { class: messages > 0 ? 'origin-b' : '', title }, label))
  while (strip.childElementCount > 40) strip.firstElementChild.remove()
  scheduleRender()
}

/** Raw bytes that are not a unit of their own (SSE chunks are counted as they arrive). */
function bytesIn(p, n) {
  if (!p.win.closed) p.win.bytes += n
  p.total.bytes += n
}

/** An envelope from the hub, on any transport. */
function envelope(p, env) {
  if (env.ch !== channel) return
  if (env.t === 'sub' || env.t === 'gap') {
    p.position = { e: env.e, o: env.o }
    if (env.t === 'gap') p.win.gaps++
    if (p.connection !== 'connected') setConnection(p, 'connected', `after offset ${env.o}`)
    return
  }
  if (env.t !== 'msg') return
  p.position = { e: env.e, o: env.o }
  p.total.messages++
  const d = env.d ?? {}
  if (currentRun !== null && d.run === currentRun && p.win.run === currentRun && !p.win.closed) {
    p.win.got.push(d.n)
    p.win.latencies.push(now() - d.sentAt)
  }
  scheduleRender()
}

const channelParam = (p) => encodeURIComponent(p.position ? `${channel}@${p.position.e}/${p.position.o}` : channel)

// ---------------------------------------------------------------- WebSocket

function startWebSocket(p) {
  const url = new URL(`${PREFIX}ws`, location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  setConnection(p, 'connecting')
  const ws = new WebSocket(url, 'edgebox.v1')
  ws.onopen = () => {
    // Resume after the last message seen (or start now): the hub answers `sub`, then the messages.
    ws.send(JSON.stringify(p.position ? { t: 'sub', ch: channel, e: p.position.e, o: p.position.o } : { t: 'sub', ch: channel }))
  }
  ws.onmessage = (ev) => {
    const text = String(ev.data)
    const len = utf8(text)
    // RFC 6455 §5.2: a server frame is unmasked; 2 header bytes up to 125 bytes of payload, 4 up to 64 KiB, else 10.
    const head = len < 126 ? 2 : len < 65536 ? 4 : 10
    let env
    try {
      env = JSON.parse(text)
    } catch {
      return
    }
    const isMsg = env.t === 'msg' && env.ch === channel
    unit(p, { bytes: head + len, payload: isMsg ? len : 0, messages: isMsg ? 1 : 0, label: String(head + len), title: `text frame: ${head}-byte header + ${len} bytes (${env.t})` })
    envelope(p, env)
  }
  ws.onclose = (ev) => {
    setConnection(p, 'reconnecting', `closed ${ev.code}`)
    setTimeout(() => startWebSocket(p), RETRY)
  }
}

// ---------------------------------------------------------------- SSE (fetch + stream reader)

async function startSse(p) {
  for (;;) {
    setConnection(p, 'connecting')
    try {
      const res = await fetch(`${PREFIX}sse?ch=${channelParam(p)}`, { cache: 'no-store', headers: { accept: 'text/event-stream' } })
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
      const reader = res.body.getReader()
      const decoder = new TextDecoder()
      let buffer = ''
      let event = { bytes: 0, data: [], comment: false }
      for (;;) {
        const { value, done } = await reader.read()
        if (done) throw new Error('the stream ended')
        bytesIn(p, value.byteLength) // every byte, as it arrives
        buffer += decoder.decode(value, { stream: true })
        let nl
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl).replace(/\r$/, '')
          buffer = buffer.slice(nl + 1)
          event.bytes += utf8(line) + 1
          if (line === '') {
            dispatchSse(p, event)
            event = { bytes: 0, data: [], comment: false }
          } else if (line.startsWith(':')) event.comment = true
          else if (line.startsWith('data:')) event.data.push(line.slice(5).replace(/^ /, ''))
          // id: and retry: lines are framing: counted in the bytes, nothing else to do
        }
      }
    } catch (err) {
      setConnection(p, 'reconnecting', err.message)
      await sleep(RETRY)
    }
  }
}

function dispatchSse(p, event) {
  if (event.data.length === 0) {
    // a comment block (`: keep-alive`) or the opening `retry:`: bytes only, already counted
    const strip = $(`wire-${p.name}`)
    strip.append(el('span', { title: `${event.bytes} bytes: ${event.comment ? 'comment (keep-alive)' : 'retry: field'}` }, event.comment ? 'ka' : 'retry'))
    while (strip.childElementCount > 40) strip.firstElementChild.remove()
    return
  }
  const text = event.data.join('\n')
  let env
  try {
    env = JSON.parse(text)
  } catch {
    return
  }
  const isMsg = env.t === 'msg' && env.ch === channel
  const len = utf8(text)
  // the bytes were counted per chunk, as they arrived
  unit(p, { bytes: event.bytes, bytesCounted: true, payload: isMsg ? len : 0, messages: isMsg ? 1 : 0, label: String(event.bytes), title: `event: ${event.bytes} bytes, ${len} of them the envelope (${env.t}); ${event.bytes - len} of id:/data: framing` })
  envelope(p, env)
}

// ---------------------------------------------------------------- polling

function interval() {
  return Number($('interval').value)
}

/**
 * The size of a response's header block as HTTP/1.1 sent it: the status
 * line, `name: value` lines and the blank line. Rebuilt from what fetch
 * exposes (every header of a same-origin response but Set-Cookie, names in
 * lower case: the same length), so it is exact unless a header was sent
 * twice (fetch joins the values) or the connection is HTTP/2 (HPACK sends
 * far fewer bytes for headers repeated from one response to the next).
 */
function responseHeaderBytes(res) {
  let n = utf8(`HTTP/1.1 ${res.status} ${res.statusText}\r\n`) + 2
  for (const [name, value] of res.headers) n += utf8(name) + 2 + utf8(value) + 2
  return n
}

async function startPolling(p, long) {
  setConnection(p, 'connecting')
  for (;;) {
    // The first poll (no position yet) is answered at once with `sub`; after that a long poll is held.
    const hold = long && p.position !== undefined
    const url = `${PREFIX}poll?ch=${channelParam(p)}${hold ? '&wait=1' : ''}${long ? `&client=${p.clientId}` : ''}`
    try {
      const res = await fetch(url, { cache: 'no-store', headers: { accept: 'application/json' } })
      const text = await res.text()
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const list = JSON.parse(text)
      const body = utf8(text)
      const head = responseHeaderBytes(res)
      let payload = 0
      let messages = 0
      for (const env of list) {
        if (env.t === 'msg' && env.ch === channel) {
          payload += utf8(JSON.stringify(env))
          messages++
        }
      }
      p.responses++
      if (!p.win.closed) {
        p.win.responses++
        p.win.headerBytes += head
      }
      unit(p, {
        bytes: head + body,
        payload,
        messages,
        label: messages ? `${messages}m ${head}+${body}` : `[] ${head}+${body}`,
        title: `${res.status}: ${head} bytes of response headers + ${body} bytes of body, ${messages} message(s)`,
      })
      for (const env of list) envelope(p, env)
    } catch (err) {
      setConnection(p, 'reconnecting', err.message)
      await sleep(RETRY)
      continue
    }
    if (!long) await sleep(interval())
  }
}

/**
 * Resource Timing's view of the polls. Its transferSize is not the header
 * size plus the body any more: the standard now reports the encoded body
 * size plus a fixed 300 bytes, so that a page cannot learn how big the
 * headers (and so the cookies) were. The page shows that figure beside its
 * own count, to say why it does not use it.
 */
function observeTimings() {
  const seen = (entry) => {
    if (entry.initiatorType !== 'fetch' || !entry.name.includes(`${PREFIX}poll?`)) return
    const url = new URL(entry.name)
    if (!url.searchParams.getAll('ch').some((c) => c.split('@')[0] === channel)) return
    const p = url.searchParams.has('client') ? panels['long-poll'] : panels.poll
    p.timings++
    if (entry.transferSize > 0) p.rtHeaderBytes = entry.transferSize - entry.encodedBodySize
    scheduleRender()
  }
  performance.setResourceTimingBufferSize?.(2000)
  performance.addEventListener?.('resourcetimingbufferfull', () => performance.clearResourceTimings())
  new PerformanceObserver((list) => list.getEntries().forEach(seen)).observe({ type: 'resource', buffered: false })
}

// ---------------------------------------------------------------- results

function resultOf(p) {
  const w = p.win
  const expected = Array.from({ length: COUNT }, (_, i) => i + 1)
  const unique = new Set(w.got)
  const inOrder = w.got.length === COUNT && w.got.every((n, i) => n === expected[i])
  const sorted = [...w.latencies].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  const n = w.got.length
  return {
    received: n,
    unique: unique.size,
    duplicates: n - unique.size,
    missing: expected.filter((x) => !unique.has(x)).length,
    inOrder,
    units: w.units,
    perMessage: n ? w.units / n : NaN,
    bytesPerMessage: n ? w.bytes / n : NaN,
    overheadPerMessage: n ? (w.bytes - w.payload) / n : NaN,
    headerBytesPerResponse: w.responses ? w.headerBytes / w.responses : NaN,
    median,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    gaps: w.gaps,
  }
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—')

function render() {
  for (const p of Object.values(panels)) {
    const r = resultOf(p)
    const sec = $(`p-${p.name}`)
    const poll = p.name === 'long-poll' || p.name === 'poll'
    $(`received-${p.name}`).textContent = p.win.run === null ? '—' : `${r.received} of ${COUNT}`
    const order = $(`order-${p.name}`)
    if (p.win.run === null) order.textContent = '—'
    else if (r.inOrder) order.textContent = 'yes: each once, in order'
    else order.textContent = `not yet: ${r.missing} missing, ${r.duplicates} repeated${r.gaps ? `, ${r.gaps} gap(s)` : ''}`
    $(`units-${p.name}`).textContent = r.received ? `${fmt(r.perMessage, 2)} (${r.units} ${UNIT[p.name]}${r.units === 1 ? '' : 's'} for ${r.received})` : '—'
    $(`bytes-${p.name}`).textContent = r.received ? `${fmt(r.bytesPerMessage)} B` : '—'
    let overhead = r.received ? `${fmt(r.overheadPerMessage)} B` : '—'
    if (r.received && poll) {
      overhead += ` (response headers: ${fmt(r.headerBytesPerResponse, 0)} B each`
      overhead += Number.isFinite(p.rtHeaderBytes) ? `; Resource Timing says ${p.rtHeaderBytes}: see below)` : ')'
    }
    $(`overhead-${p.name}`).textContent = overhead
    $(`latency-${p.name}`).textContent = r.received ? `${fmt(r.median)} ms / ${fmt(r.max)} ms` : '—'
    $(`total-${p.name}`).textContent = `${p.total.units} ${UNIT[p.name]}s, ${p.total.bytes} B, ${p.total.messages} messages`
    Object.assign(sec.dataset, {
      received: String(r.received),
      inOrder: String(r.inOrder),
      duplicates: String(r.duplicates),
      missing: String(r.missing),
      unitsPerMessage: fmt(r.perMessage, 3),
      bytesPerMessage: fmt(r.bytesPerMessage, 2),
      overheadPerMessage: fmt(r.overheadPerMessage, 2),
      latencyMedian: fmt(r.median, 2),
      latencyMax: fmt(r.max, 2),
      headerBytesPerResponse: poll ? fmt(r.headerBytesPerResponse, 2) : '',
      rtHeaderBytes: poll && Number.isFinite(p.rtHeaderBytes) ? String(p.rtHeaderBytes) : '',
    })
  }
}

let renderQueued = false
function scheduleRender() {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(() => {
    renderQueued = false
    render()
  })
  // a hidden tab gets no animation frames: render anyway soon after
  setTimeout(() => {
    if (!renderQueued) return
    renderQueued = false
    render()
  }, 250)
}

// ---------------------------------------------------------------- a batch of messages

async function publish(run, n) {
  const sentAt = now()
  const res = await fetch(`${PREFIX}publish`, {
    method: 'POST',
    cache: 'no-store',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ t: 'pub', ch: channel, d: { run, n, sentAt } }),
  })
  const ack = await res.json()
  if (ack.t !== 'ack') throw new Error(`publish ${n}: ${ack.msg ?? res.status}`)
}

async function waitFor(check, ms) {
  const end = performance.now() + ms
  while (!check()) {
    if (performance.now() > end) return false
    await sleep(50)
  }
  return true
}

/** Publishes COUNT messages and waits until every panel has them (or gives up); returns the results. */
async function batch() {
  const run = randomId()
  currentRun = run
  for (const p of Object.values(panels)) {
    p.win = newWindow(run)
    $(`wire-${p.name}`).replaceChildren()
    $(`p-${p.name}`).dataset.state = 'running'
  }
  render()
  const start = performance.now()
  for (let n = 1; n <= COUNT; n++) {
    await publish(run, n)
    const next = start + n * SPACING
    if (n < COUNT && next > performance.now()) await sleep(next - performance.now())
  }
  await waitFor(() => Object.values(panels).every((p) => new Set(p.win.got).size >= COUNT), 2 * interval() + 10_000)
  for (const p of Object.values(panels)) p.win.closed = true
  // Resource Timing entries are queued after a response ends: give the polls' a moment (for the figure shown beside ours).
  const responsesSoFar = { 'long-poll': panels['long-poll'].responses, poll: panels.poll.responses }
  await waitFor(() => ['long-poll', 'poll'].every((t) => panels[t].timings >= responsesSoFar[t]), 1000)
  const results = {}
  for (const p of Object.values(panels)) {
    results[p.name] = resultOf(p)
    $(`p-${p.name}`).dataset.state = 'done'
  }
  currentRun = null
  render()
  return results
}

// ---------------------------------------------------------------- wiring

function busy(on) {
  $('run').disabled = on
  $('send').disabled = on
}

$('send').addEventListener('click', async () => {
  busy(true)
  try {
    await batch()
  } catch (err) {
    $('run-status').textContent = `error: ${err.message}`
  } finally {
    busy(false)
  }
})

$('run').addEventListener('click', async () => {
  const status = $('run-status')
  busy(true)
  status.dataset.state = 'running'
  delete status.dataset.ok
  status.textContent = 'connecting all four…'
  try {
    const up = await waitFor(() => Object.values(panels).every((p) => p.connection === 'connected'), 15_000)
    if (!up) throw new Error(`not connected: ${Object.values(panels).filter((p) => p.connection !== 'connected').map((p) => p.name).join(', ')}`)
    status.textContent = `sending ${COUNT} messages…`
    const results = await batch()
    const failed = Object.entries(results).filter(([, r]) => !r.inOrder)
    status.dataset.ok = String(failed.length === 0)
    const cheapest = Object.entries(results).sort((a, b) => a[1].overheadPerMessage - b[1].overheadPerMessage)[0]
    status.textContent =
      failed.length === 0
        ? `every transport delivered all ${COUNT} messages once, in order; least overhead: ${cheapest[0]} (${fmt(cheapest[1].overheadPerMessage)} B per message)`
        : `${failed.map(([t, r]) => `${t}: ${r.received}/${COUNT}`).join('; ')} did not deliver all messages once, in order`
  } catch (err) {
    status.dataset.ok = 'false'
    status.textContent = `error: ${err.message}`
  } finally {
    status.dataset.state = 'done'
    busy(false)
  }
})

$('channel').textContent = channel
$('channel').dataset.channel = channel
observeTimings()
startWebSocket(panels.websocket)
void startSse(panels.sse)
void startPolling(panels['long-poll'], true)
void startPolling(panels.poll, false)
render()
document.documentElement.dataset.labReady = 'true'

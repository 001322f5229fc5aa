// The chat example: the realtime client (client/realtime.ts) against the
// hub at /live/. CSP-friendly: an external module, DOM built with
// textContent only. The state, the transport and every message are written
// into data attributes so a browser test can follow them.

import { connect } from '/assets/edgebox-realtime.mjs'
import { $, el } from '/assets/lab.js'

const params = new URLSearchParams(location.search)
if (params.get('room')) $('room').value = params.get('room')
if (params.get('transport')) $('transport').value = params.get('transport')
$('name').value = params.get('name') ?? `guest-${Math.random().toString(36).slice(2, 6)}`

let client = null
let stop = null
let room = ''

function setState(text, attrs) {
  const out = $('state')
  out.textContent = text
  Object.assign(out.dataset, attrs)
}

function show(data, meta) {
  const li = el('li', { 'data-offset': String(meta.position.o), 'data-from': String(data.from ?? '') }, el('strong', {}, data.from ?? '?'), ' ', data.text ?? '')
  $('messages').append(li)
  li.scrollIntoView({ block: 'nearest' })
}

// A gap: the chat keeps no state beyond the lines shown, so there is
// nothing to re-fetch; it says what happened and the messages that follow
// (after a restart: every one the new server stored) are appended as usual.
function gap(g) {
  const text = g.restarted ? 'messages may have been lost while the server restarted' : `messages before this point are no longer kept (${g.channel})`
  $('messages').append(el('li', { class: 'muted', 'data-gap': g.restarted ? 'restart' : 'history' }, `… ${text}`))
}

function join(event) {
  event.preventDefault()
  if (client) return
  room = `chat:${$('room').value}`
  const choice = $('transport').value
  client = connect('/live/', choice === 'auto' ? {} : { transports: [choice] })
  client.on('state', (s) => setState(`${s.state}${s.transport ? ` over ${s.transport}` : ''}${s.delay !== undefined ? ` (retry in ${Math.round(s.delay)} ms)` : ''}`, { state: s.state, transport: s.transport ?? '' }))
  client.on('gap', gap)
  client.on('error', (err) => console.warn('realtime:', err.code, err.message))
  stop = client.subscribe(room, show)
  $('who').textContent = `as ${$('name').value} in ${room}`
  for (const id of ['text', 'send', 'leave']) $(id).disabled = false
  $('connect').disabled = true
}

function leave() {
  stop?.()
  client?.close()
  client = null
  setState('not connected', { state: 'closed', transport: '' })
  for (const id of ['text', 'send', 'leave']) $(id).disabled = true
  $('connect').disabled = false
}

async function say(event) {
  event.preventDefault()
  const text = $('text').value.trim()
  if (!text || !client) return
  $('text').value = ''
  try {
    await client.publish(room, { from: $('name').value, text })
  } catch (err) {
    $('messages').append(el('li', { class: 'error' }, `not sent: ${err.message}`))
  }
}

$('join').addEventListener('submit', join)
$('leave').addEventListener('click', leave)
$('say').addEventListener('submit', say)
if (params.get('autojoin') === '1') $('connect').click()
document.documentElement.dataset.chatReady = 'true'

// Edgebox lab: cross-origin techniques between this page (origin A) and
// origin B (?b=..., default: the same host, port + 1). CSP-friendly: an
// external module, DOM built with textContent only. Each row writes its
// outcome into its <output>: data-result (allowed | blocked | error),
// data-ok (whether that is the row's data-expect) and data-detail.

import { $, wireChecks } from '/assets/lab.js'

const TIMEOUT = 5000
const A = location.origin

function originB() {
  const given = new URLSearchParams(location.search).get('b')
  if (given) {
    const u = new URL(given)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`?b= must be an http(s) origin, got ${given}`)
    return u.origin
  }
  const port = Number(location.port || (location.protocol === 'https:' ? 443 : 80)) + 1
  return `${location.protocol}//${location.hostname}:${port}`
}
const B = originB()

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const short = (v) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v)
  return s.length > 160 ? `${s.slice(0, 157)}…` : s
}

/** A verdict: `allowed` when the page read B's data, `blocked` when the browser refused, `error` for anything else (a timeout). */
const allowed = (detail) => ({ result: 'allowed', detail })
const blocked = (detail) => ({ result: 'blocked', detail })
const error = (detail) => ({ result: 'error', detail })

async function read(url, init = {}) {
  try {
    const r = await fetch(url, { cache: 'no-store', ...init, signal: AbortSignal.timeout(TIMEOUT) })
    const body = await r.text()
    return allowed(`${r.status}: ${short(body.trim())}`)
  } catch (e) {
    return e.name === 'TypeError' ? blocked(`fetch rejected: ${e.name}: ${e.message}`) : error(`${e.name}: ${e.message}`)
  }
}

// ---------------------------------------------------------------- frames and messages

let frameCount = 0
/** An iframe in the hidden #frames box; call remove() when done. */
function frame(src, name) {
  const f = document.createElement('iframe')
  f.name = name ?? `xo-frame-${++frameCount}`
  f.src = src
  f.title = 'cross-origin lab helper'
  $('frames').append(f)
  return f
}

/** The next `message` event that passes `accept`, or null after TIMEOUT. */
function nextMessage(accept) {
  return new Promise((resolve) => {
    const done = (v) => {
      clearTimeout(timer)
      removeEventListener('message', on)
      resolve(v)
    }
    const on = (event) => {
      if (accept(event)) done(event)
    }
    const timer = setTimeout(() => done(null), TIMEOUT)
    addEventListener('message', on)
  })
}

const frameUrl = (mode) => `${B}/lab/xo/frame.html?mode=${mode}&parent=${encodeURIComponent(A)}`

// ---------------------------------------------------------------- the techniques

const techniques = {
  a: () => read(`${B}/lab/xo/data.json`),
  b: () => read(`${B}/lab/xo/nocors/data.json`),
  c1: () => read(`${B}/lab/xo/data.json?preflight=x-lab`, { headers: { 'X-Lab': 'allowed' } }),
  c2: () => read(`${B}/lab/xo/data.json?preflight=x-other`, { headers: { 'X-Other': 'not allowed' } }),
  d: () => read(`${B}/lab/xo/cred/data.json`, { credentials: 'include' }),

  // JSONP under this page's own policy: the script from B is refused by CSP.
  e1: () =>
    new Promise((resolve) => {
      const src = `${B}/lab/xo/jsonp/data.json?callback=xoJsonpHere`
      let violation = null
      const onViolation = (e) => {
        if (e.blockedURI && e.blockedURI.startsWith(B)) violation = `${e.effectiveDirective} refused ${e.blockedURI}`
      }
      const s = document.createElement('script')
      const finish = (v) => {
        clearTimeout(timer)
        document.removeEventListener('securitypolicyviolation', onViolation)
        delete window.xoJsonpHere
        s.remove()
        resolve(v)
      }
      window.xoJsonpHere = (data) => finish(allowed(`the callback ran with ${short(data)}`))
      document.addEventListener('securitypolicyviolation', onViolation)
      s.addEventListener('error', async () => {
        await sleep(50) // the violation event is dispatched asynchronously
        finish(blocked(violation ? `Content-Security-Policy: ${violation}` : `the script did not load (${src})`))
      })
      const timer = setTimeout(() => finish(error('no callback, no error within the time limit')), TIMEOUT)
      s.src = src
      document.head.append(s)
    }),

  // JSONP in a variant page whose policy lists B in script-src.
  e2: async () => {
    const f = frame(`/lab/xo-proxy/jsonp.html?b=${encodeURIComponent(B)}`)
    try {
      const m = await nextMessage((e) => e.origin === A && e.source === f.contentWindow && e.data?.xo === 'jsonp')
      if (!m) return error('the variant page did not report within the time limit')
      return m.data.ok ? allowed(`the callback ran with ${short(m.data.data)}`) : blocked(m.data.detail)
    } finally {
      f.remove()
    }
  },

  f: () => read('/lab/xo-proxy/data.json'),

  g: async () => {
    const f = frame(frameUrl('message'))
    try {
      const ready = await nextMessage((e) => e.origin === B && e.source === f.contentWindow && e.data?.xo === 'ready')
      if (!ready) return error('the frame did not say it was ready')
      const nonce = Math.random().toString(36).slice(2)
      const reply = nextMessage((e) => e.origin === B && e.data?.xo === 'reply' && e.data.nonce === nonce)
      f.contentWindow.postMessage({ xo: 'ask', nonce }, B)
      const m = await reply
      if (!m) return blocked('no reply: the frame ignored the message')
      return allowed(`reply from ${m.origin}, which checked event.origin = ${m.data.checked}: ${short(m.data.secret)}`)
    } finally {
      f.remove()
    }
  },

  h: async () => {
    const f = frame(frameUrl('name'))
    try {
      const end = performance.now() + TIMEOUT
      while (performance.now() < end) {
        try {
          // throws a SecurityError while the frame still shows B's page
          if (f.contentWindow.location.origin === A && f.contentWindow.name.startsWith('{')) {
            const data = JSON.parse(f.contentWindow.name)
            return allowed(`window.name after the frame came back to A: ${short(data.secret)}`)
          }
        } catch {
          // still cross-origin
        }
        await sleep(50)
      }
      return error('the frame did not come back to A with a name')
    } finally {
      f.remove()
    }
  },

  i: async () => {
    const got = new Promise((resolve) => {
      const on = () => {
        const m = /^#xo-hash=(.*)$/.exec(location.hash)
        if (!m) return
        removeEventListener('hashchange', on)
        clearTimeout(timer)
        history.replaceState(null, '', location.pathname + location.search)
        resolve(m[1])
      }
      const timer = setTimeout(() => {
        removeEventListener('hashchange', on)
        resolve(null)
      }, TIMEOUT)
      addEventListener('hashchange', on)
    })
    const f = frame(frameUrl('hash'))
    try {
      const raw = await got
      if (raw === null) return error('no hashchange within the time limit')
      const data = JSON.parse(decodeURIComponent(raw))
      return allowed(`read from this page's location.hash: ${short(data.secret)}`)
    } finally {
      f.remove()
    }
  },

  j: async () => {
    const f = frame(frameUrl('domain'))
    try {
      const m = await nextMessage((e) => e.origin === B && e.source === f.contentWindow && e.data?.xo === 'domain')
      if (!m) return error('the frame did not report')
      let mine = null
      try {
        document.domain = document.domain
      } catch (e) {
        mine = `${e.name}: ${e.message}`
      }
      const cluster = `originAgentCluster here ${window.originAgentCluster}, in B's frame ${m.data.originAgentCluster}`
      const setters = `both pages set document.domain to ${document.domain}${mine || m.data.error ? ` (errors: ${mine ?? ''} ${m.data.error ?? ''})` : ''}`
      try {
        const title = f.contentWindow.document.title
        return allowed(`${setters}; this page read the frame's document ("${title}"): the old opt-in still works here. ${cluster}`)
      } catch (e) {
        return blocked(`${setters}; reading the frame's document threw ${e.name}: still two origins. ${cluster}`)
      }
    } finally {
      f.remove()
    }
  },
}

// ---------------------------------------------------------------- wiring

wireChecks(techniques, {
  summary: (wrong, total) => (wrong === 0 ? `all ${total} behaved as described` : `${wrong} of ${total} did not: hover them for details`),
})
$('origin-a').textContent = A
$('origin-b').textContent = B
$('attacker-link').href = `${B}/lab/attacker.html?target=${encodeURIComponent(A)}`
document.documentElement.dataset.labReady = 'true'

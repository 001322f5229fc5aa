// The account demo's pages (src/modules/lab/account.ts): the account page and
// the deliberately vulnerable search page. A classic script loaded in <head>,
// so that its Content-Security-Policy violation listener is in place before
// the reflected query is parsed. CSP-friendly: DOM built with textContent only.
'use strict'
;(() => {
  const prefix = location.pathname.replace(/[^/]*$/, '')
  /** Who opened or framed this page, for the attacker page's live report. */
  const watcher = window.opener || (window.parent !== window ? window.parent : null)
  const tell = (data) => {
    // '*': the lab reports to whichever page opened it; a real page would name the origin
    if (watcher) watcher.postMessage({ lab: 'account', ...data }, '*')
  }

  document.addEventListener('securitypolicyviolation', (e) => {
    const text = `Content-Security-Policy refused ${e.blockedURI || 'inline code'} (${e.effectiveDirective}${e.sample ? `: ${e.sample}` : ''})`
    tell({ event: 'csp-violation', directive: e.effectiveDirective, blocked: e.blockedURI || 'inline', sample: e.sample })
    const show = () => {
      const list = document.getElementById('violations')
      if (!list) return
      const li = document.createElement('li')
      li.textContent = text
      list.append(li)
    }
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', show)
    else show()
  })

  const cookie = (name) => {
    for (const part of document.cookie.split(';')) {
      const [k, ...v] = part.trim().split('=')
      if (k === name) return v.join('=')
    }
    return ''
  }

  async function call(path, body) {
    const r = await fetch(prefix + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json', 'x-csrf-token': cookie('edgebox_csrf') },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    })
    const text = await r.text()
    if (!r.ok) throw new Error(`${r.status}: ${text.trim()}`)
    return JSON.parse(text)
  }

  function render(state) {
    document.getElementById('balance').textContent = String(state.balance)
    const rows = state.transfers.map((t) => {
      const tr = document.createElement('tr')
      for (const v of [new Date(t.at).toLocaleTimeString(), t.to, t.amount, t.origin || '(no Origin)']) {
        const td = document.createElement('td')
        td.textContent = String(v)
        tr.append(td)
      }
      return tr
    })
    document.getElementById('transfers').replaceChildren(...rows)
  }

  function accountPage() {
    const status = document.getElementById('transfer-status')
    const form = document.getElementById('transfer')
    const link = document.getElementById('attacker-link')
    // the attacker lives on the other origin of `npm start`: this port + 1
    const port = Number(location.port || 80) + 1
    link.href = `${location.protocol}//${location.hostname}:${port}/lab/attacker.html?target=${encodeURIComponent(location.origin)}`
    const act = async (fn) => {
      try {
        render(await fn())
        status.textContent = 'done'
      } catch (e) {
        status.textContent = e.message
      }
    }
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      const data = new FormData(form)
      act(() => call('transfer', { to: data.get('to'), amount: Number(data.get('amount')) }))
    })
    document.getElementById('reset').addEventListener('click', () => act(() => call('reset', {})))
    // the pill always says something: ready once the account is shown, else why not
    call('state').then(
      (s) => {
        render(s)
        status.textContent = 'ready'
      },
      (e) => (status.textContent = e.message),
    )
    // Rendered: if this is inside a frame, that frame was allowed (the clickjacking demo listens for this).
    tell({ event: 'rendered', framed: window.parent !== window })
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (document.getElementById('transfer')) accountPage()
    else tell({ event: 'search-loaded' })
  })
})()

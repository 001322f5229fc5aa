// Origin B's helper frame for the cross-origin lab (lab/www/lab/cross-origin.html).
// One page, four techniques, picked by ?mode=. CSP-friendly: an external script only.
//
// The parent's origin comes from location.ancestorOrigins (set by the browser,
// so a page cannot lie about it); browsers without it use ?parent=. A real
// receiver would hard-code the origins it trusts.
'use strict'
;(() => {
  const params = new URLSearchParams(location.search)
  const mode = params.get('mode')
  const parentOrigin = (location.ancestorOrigins && location.ancestorOrigins[0]) || new URL(params.get('parent') || 'null:').origin
  const secret = { from: location.origin, note: 'data that lives on origin B', at: new Date().toISOString() }

  if (mode === 'message') {
    let ignored = 0
    addEventListener('message', (event) => {
      // The receiver's check: answer only messages from the origin it trusts.
      if (event.origin !== parentOrigin) {
        ignored++
        return
      }
      if (!event.data || event.data.xo !== 'ask') return
      event.source.postMessage({ xo: 'reply', nonce: event.data.nonce, checked: event.origin, ignored, secret }, event.origin)
    })
    // targetOrigin names the parent: the message is delivered only if the parent is still that origin.
    parent.postMessage({ xo: 'ready' }, parentOrigin)
  } else if (mode === 'name') {
    // window.name belongs to the frame, not the document: it survives the navigation back to the parent's origin.
    window.name = JSON.stringify({ xo: 'name', secret })
    location.replace(`${parentOrigin}/lab/xo/blank.html`)
  } else if (mode === 'hash') {
    // The child cannot touch its parent's document, but it can load a page of the parent's origin
    // (the relay) with the data in the fragment; the relay is same-origin with the top page.
    const relay = document.createElement('iframe')
    relay.src = `${parentOrigin}/lab/xo/relay.html#${encodeURIComponent(JSON.stringify({ xo: 'hash', secret }))}`
    document.body.append(relay)
  } else if (mode === 'domain') {
    let error = null
    try {
      document.domain = document.domain // the old opt-in; a no-op in an origin-keyed agent cluster
    } catch (e) {
      error = `${e.name}: ${e.message}`
    }
    parent.postMessage({ xo: 'domain', domain: document.domain, originAgentCluster: window.originAgentCluster ?? null, error }, parentOrigin)
  }
})()

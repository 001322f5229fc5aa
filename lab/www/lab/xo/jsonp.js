// The JSONP variant (lab/www/lab/cross-origin.html, row e2). Served to the lab
// through its proxy route, with the policy origin B sends: script-src 'self'
// and B, so B's JSONP answer may run here. Loads B's JSON as a script with
// ?callback=xoJsonp and tells its parent (the same origin) what arrived.
'use strict'
;(() => {
  const report = (msg) => parent.postMessage(msg, location.origin)
  let b
  try {
    b = new URL(new URLSearchParams(location.search).get('b')).origin
  } catch {
    return report({ xo: 'jsonp', ok: false, detail: 'no ?b= origin given' })
  }
  window.xoJsonp = (data) => report({ xo: 'jsonp', ok: true, data })
  const s = document.createElement('script')
  s.src = `${b}/lab/xo/jsonp/data.json?callback=xoJsonp`
  s.addEventListener('error', () => report({ xo: 'jsonp', ok: false, detail: `the script ${s.src} did not load` }))
  document.head.append(s)
})()

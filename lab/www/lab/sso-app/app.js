// A demo app behind the sign-on gate: who am I, from /_edgebox/auth/userinfo.
const me = location.hostname.split('.')[0]
const port = location.port ? `:${location.port}` : ''
document.getElementById('site').textContent = `Demo ${me}`
document.title = `${me} · Edgebox lab`
const other = me === 'app1' ? 'app2' : 'app1'
document.getElementById('other').href = `${location.protocol}//${other}.localhost${port}/`
document.getElementById('other').textContent = `Open ${other}`
document.getElementById('lab').href = `${location.protocol}//localhost${port}/lab/sso.html`
const who = document.getElementById('who')
fetch('/_edgebox/auth/userinfo', { cache: 'no-store' })
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .then((u) => {
    who.dataset.state = 'signed-in'
    who.dataset.user = u.sub
    who.textContent = `Signed in as ${u.preferred_username ?? u.sub}${u.email ? ` (${u.email})` : ''}, through ${u.provider}; this session ends at ${u.session.expiresAt} at the latest.`
  })
  .catch((err) => {
    who.dataset.state = 'error'
    who.textContent = `Not signed in (${err.message})`
  })

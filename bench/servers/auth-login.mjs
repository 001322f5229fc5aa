// Login round trips for bench/auth.sh, with the tests' cookie-jar browser (test/helpers/oidc.ts: Browser, signInAs):
// a navigation to a gated Edgebox page -> 302 to the provider's authorization endpoint -> its development login form
// -> the form post -> the provider's redirects -> Edgebox's callback (/_edgebox/auth/callback: code exchange, ID token
// checks, userinfo, a new session, 302 back) -> the landing page through the gate. Run with the project's pinned Node.
//
// usage: node auth-login.mjs cookie URL          one login; prints the session cookie as NAME=VALUE
//        node auth-login.mjs timed URL N         N complete logins one after the other, each in a new browser (an
//                                                empty cookie jar: the provider's login form every time); prints one
//                                                JSON line: per round trip, milliseconds (median, p95, mean, min, max)
//                                                of the whole trip, of Edgebox's callback request alone, of Edgebox's
//                                                other requests (the first redirect, the landing page) and of the
//                                                provider's requests, and the callback's share of the trip
// Each hop is timed from sending the request to having read the whole answer (Browser.fetch). A trip whose landing
// page is not a 200 of LEN bytes (LEN env, default 1024: the origin's body) counts in "failed" and is left out.
import { performance } from 'node:perf_hooks'
import { Browser, signInAs } from '../../test/helpers/oidc.ts'

const [mode, url, nArg] = process.argv.slice(2)
if (!url || (mode !== 'cookie' && mode !== 'timed')) {
  console.error('usage: node auth-login.mjs cookie URL | timed URL N')
  process.exit(2)
}
const edgebox = new URL(url).origin
const callbackUrl = `${edgebox}/_edgebox/auth/callback`
const wantLen = Number(process.env.LEN ?? 1024)

class TimedBrowser extends Browser {
  times = []
  async fetch(u, init) {
    const t0 = performance.now()
    const res = await super.fetch(u, init)
    this.times.push({ url: u, ms: performance.now() - t0, status: res.status })
    return res
  }
}

async function login() {
  const b = new TimedBrowser()
  const t0 = performance.now()
  const landed = await b.navigate(url, signInAs('alice'))
  const total = performance.now() - t0
  let callback = 0, edgeboxOther = 0, provider = 0, callbacks = 0
  for (const h of b.times) {
    if (h.url.startsWith(callbackUrl)) { callback += h.ms; callbacks++ }
    else if (h.url.startsWith(edgebox + '/')) edgeboxOther += h.ms
    else provider += h.ms
  }
  const ok = landed.res.status === 200 && Buffer.byteLength(landed.text) === wantLen && callbacks === 1 && landed.url === url
  const why = ok ? '' : `landed on ${landed.url} with ${landed.res.status}, ${Buffer.byteLength(landed.text)} bytes, ${callbacks} callback(s); hops: ${b.hops.map((h) => `${h.status} ${h.url.split('?')[0]}`).join(' -> ')}`
  return { b, ok, why, total, callback, edgeboxOther, provider, hops: b.times.length }
}

if (mode === 'cookie') {
  const r = await login()
  if (!r.ok) { console.error(`login failed: ${r.why}`); process.exit(1) }
  const jar = r.b.cookies(url)
  const name = [...jar.keys()].find((k) => /(^|-)edgebox-session$/.test(k))
  if (!name) { console.error(`no session cookie after the login; cookies: ${[...jar.keys()].join(', ')}`); process.exit(1) }
  process.stdout.write(`${name}=${jar.get(name)}\n`)
  process.exit(0)
}

const n = Number(nArg ?? 200)
const trips = []
let failed = 0, firstWhy = ''
const t0 = performance.now()
for (let i = 0; i < n; i++) {
  const r = await login()
  if (r.ok) trips.push(r)
  else { failed++; firstWhy ||= r.why }
}
const wall = (performance.now() - t0) / 1000

const sorted = (k) => trips.map((t) => t[k]).sort((a, b) => a - b)
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.ceil((p / 100) * a.length) - 1)] : 0)
const med = (a) => (a.length ? (a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2) : 0)
const stats = (k) => {
  const a = sorted(k)
  const sum = a.reduce((s, v) => s + v, 0)
  return { median: +med(a).toFixed(2), p95: +pct(a, 95).toFixed(2), mean: +(a.length ? sum / a.length : 0).toFixed(2), min: +(a[0] ?? 0).toFixed(2), max: +(a.at(-1) ?? 0).toFixed(2), sum }
}
const total = stats('total'), callback = stats('callback')
const shares = trips.map((t) => t.callback / t.total).sort((a, b) => a - b)
const out = {
  logins: trips.length,
  failed,
  wall_s: +wall.toFixed(2),
  hops: med(sorted('hops')),
  total_ms: total,
  callback_ms: callback,
  edgebox_other_ms: stats('edgeboxOther'),
  provider_ms: stats('provider'),
  callback_share_median: +med(shares).toFixed(3),
  callback_share_of_sum: +(total.sum > 0 ? callback.sum / total.sum : 0).toFixed(3),
  ...(firstWhy ? { first_failure: firstWhy } : {}),
}
for (const k of ['total_ms', 'callback_ms', 'edgebox_other_ms', 'provider_ms']) delete out[k].sum
process.stdout.write(JSON.stringify(out) + '\n')

// Edgebox lab: DNS step by step (the `lab` handler's DNS demo at /lab/demo/dns/ and
// DNS over HTTPS at /dns-query). CSP-friendly: an external module, DOM built
// with textContent only. Every tour step writes its outcome into an <output>
// element's data attributes (data-ok, data-state, data-detail) for a browser test.

import { $, el, mark } from '/assets/lab.js'

const DEMO = '/lab/demo/dns/'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function json(url, init) {
  const res = await fetch(url, { cache: 'no-store', ...init })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`)
  return res.json()
}

/** The resolver's answer over DNS over HTTPS (JSON form), and how it was found (Explain: cache or network). */
async function lookup(name, type = 'A') {
  const r = await json(`/dns-query?name=${encodeURIComponent(name)}&type=${encodeURIComponent(type)}`)
  const explain = r.Explain ?? []
  return { status: r.Status, answers: (r.Answer ?? []).map((a) => ({ data: a.data, ttl: a.TTL, type: a.type })), fromCache: explain.some((l) => /^recursion \(cache\)/.test(l)), explain }
}

function renderSteps(steps) {
  const body = $('steps').tBodies[0]
  body.replaceChildren(...steps.map((s, i) => el('tr', {}, el('td', {}, i + 1), el('td', {}, el('code', {}, s.server)), el('td', {}, el('code', {}, s.zone)), el('td', {}, el('code', {}, s.question)), el('td', {}, s.outcome), el('td', {}, s.ms))))
}

async function trace(name, type) {
  const r = await json(`${DEMO}trace?name=${encodeURIComponent(name)}&type=${encodeURIComponent(type)}`)
  renderSteps(r.steps)
  $('answer').textContent = `${r.rcode}\n${[...r.answer, ...r.authority].join('\n')}${r.why ? `\n${r.why}` : ''}`
  return r
}

async function renderEdges() {
  const s = await json(`${DEMO}state`)
  $('edges').tBodies[0].replaceChildren(
    ...s.edges.map((e) => {
      const button = el('button', { type: 'button' }, e.up ? 'Stop' : 'Start')
      button.addEventListener('click', async () => {
        await json(`${DEMO}edges/${e.name}/${e.up ? 'stop' : 'start'}`, { method: 'POST' })
        await renderEdges()
      })
      return el('tr', {}, el('td', {}, e.name), el('td', {}, el('code', {}, `${e.address}:${e.port}`)), el('td', {}, e.up ? 'running' : 'stopped'), el('td', {}, e.requests), el('td', {}, button))
    }),
  )
  return s
}

async function waitFor(what, check, ms) {
  const started = Date.now()
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms / 1000} s`)
    await sleep(500)
  }
}

const steps = {
  async trace() {
    const r = await trace('www.edgebox.test', 'A')
    const zones = r.steps.map((s) => s.zone)
    const ok = r.rcode === 'NOERROR' && zones.join(' ') === '. test. edgebox.test.' && r.answer.length > 0
    return [ok, `${r.steps.length} steps: ${r.steps.map((s) => `${s.zone} -> ${s.outcome}`).join('; ')}`]
  },
  async cache() {
    const name = 'edgebox.test'
    const first = await lookup(name, 'TXT')
    await sleep(2100)
    const second = await lookup(name, 'TXT')
    const ok = second.fromCache && second.answers.length > 0 && first.answers.length > 0 && second.answers[0].ttl < first.answers[0].ttl
    $('answer').textContent = `first:  TTL ${first.answers[0]?.ttl} (${first.fromCache ? 'from the cache' : 'asked the servers'})\nsecond: TTL ${second.answers[0]?.ttl} (${second.fromCache ? 'from the cache' : 'asked the servers'})`
    return [ok, `TTL ${first.answers[0]?.ttl} then ${second.answers[0]?.ttl}, second ${second.fromCache ? 'from the cache' : 'not from the cache'}`]
  },
  async failover() {
    const addresses = async () => (await lookup('www.edgebox.test')).answers.map((a) => a.data).sort().join(',')
    await waitFor('both edges answered', async () => (await addresses()) === '127.0.0.2,127.0.0.3', 30_000)
    await json(`${DEMO}edges/edge-a/stop`, { method: 'POST' })
    await renderEdges()
    const started = Date.now()
    await waitFor('edge-a taken out of the answer', async () => (await addresses()) === '127.0.0.3', 30_000)
    const outAfter = ((Date.now() - started) / 1000).toFixed(1)
    await json(`${DEMO}edges/edge-a/start`, { method: 'POST' })
    await renderEdges()
    await waitFor('edge-a back in the answer', async () => (await addresses()) === '127.0.0.2,127.0.0.3', 30_000)
    return [true, `edge-a left the answer ${outAfter} s after it stopped, and came back after it started`]
  },
}

async function tour() {
  const status = $('tour-status')
  status.dataset.state = 'running'
  status.textContent = 'running…'
  let all = true
  for (const [key, run] of Object.entries(steps)) {
    const id = `step-${key}`
    $(id).dataset.state = 'running'
    try {
      const [ok, detail] = await run()
      mark(id, ok, detail)
      all &&= ok
    } catch (err) {
      mark(id, false, String(err.message ?? err))
      all = false
    }
  }
  status.dataset.state = 'done'
  status.dataset.ok = String(all)
  status.textContent = all ? 'every step as described' : 'a step did not go as described (hover it)'
}

$('tour').addEventListener('click', () => void tour())
$('trace').addEventListener('click', () => void trace($('name').value, $('type').value).catch((e) => ($('answer').textContent = String(e.message))))
$('lookup').addEventListener('click', async () => {
  try {
    const r = await lookup($('name').value, $('type').value)
    renderSteps([])
    $('answer').textContent = `${['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'][r.status] ?? r.status}\n${r.answers.map((a) => `TTL ${a.ttl}  ${a.data}`).join('\n')}\n\n${r.explain.join('\n')}`
  } catch (e) {
    $('answer').textContent = String(e.message)
  }
})
void renderEdges().then(() => (document.documentElement.dataset.labReady = 'true'))
setInterval(() => void renderEdges(), 2000)

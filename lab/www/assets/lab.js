// Shared by the lab pages: DOM helpers that build nodes with textContent only
// (no innerHTML), so the pages stay CSP-friendly.

/** The element with this id; a missing one is a bug in the page. */
export const $ = (id) => {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} is missing`)
  return el
}

/** `el('td', { class: 'x' }, 'text', childNode)`: an element with attributes and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v
    else node.setAttribute(k, v)
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c))
  return node
}

/**
 * A table of checks, each with a Run button (`button[data-run=KEY]`) and an
 * outcome `<output id="out-KEY" data-expect="...">`, plus a "run all" button
 * (#run-all) and its status (#all-status). Each check resolves to
 * `{ result, detail }`; its output gets data-result, data-ok (whether the
 * result is the expected one) and data-detail (also its tooltip). A check that
 * throws ends as `error`. `beforeRun(key)` is called synchronously inside the
 * click, while the browser still counts it as a user gesture (pop-ups).
 */
export function wireChecks(checks, { summary, beforeRun = () => {} }) {
  const running = new Set()

  async function run(key) {
    const out = $(`out-${key}`)
    if (running.has(key)) return
    running.add(key)
    out.dataset.state = 'running'
    delete out.dataset.ok
    delete out.dataset.result
    out.textContent = 'running…'
    let v
    try {
      v = await checks[key]()
    } catch (e) {
      v = { result: 'error', detail: `${e.name}: ${e.message}` }
    }
    out.dataset.state = 'done'
    out.dataset.result = v.result
    out.dataset.ok = String(v.result === out.dataset.expect)
    out.dataset.detail = v.detail
    out.title = v.detail
    out.textContent = v.result
    running.delete(key)
  }

  async function runAll() {
    const button = $('run-all')
    const status = $('all-status')
    button.disabled = true
    status.dataset.state = 'running'
    delete status.dataset.ok
    status.textContent = 'running…'
    // one at a time: frames, windows and listeners stay out of each other's way
    for (const key of Object.keys(checks)) await run(key)
    const outs = Object.keys(checks).map((k) => $(`out-${k}`))
    const wrong = outs.filter((o) => o.dataset.ok !== 'true').length
    status.dataset.ok = String(wrong === 0)
    status.dataset.state = 'done'
    status.textContent = summary(wrong, outs.length)
    button.disabled = false
  }

  for (const b of document.querySelectorAll('button[data-run]')) {
    b.addEventListener('click', () => {
      beforeRun(b.dataset.run)
      run(b.dataset.run)
    })
  }
  $('run-all').addEventListener('click', () => {
    beforeRun(null)
    runAll()
  })
}

/** A tour step's outcome on its <output>: data-state done, data-ok, data-detail (also its tooltip), for the page and its browser test. */
export function mark(id, ok, detail) {
  const out = $(id)
  out.dataset.state = 'done'
  out.dataset.ok = String(ok)
  out.dataset.detail = detail
  out.title = detail
}

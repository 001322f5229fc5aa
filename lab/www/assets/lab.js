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

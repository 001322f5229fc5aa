import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { escapeHtml } from '../../http/html.ts'

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

/**
 * An HTML listing of a directory (opt-in: `listing: true`). Names are
 * HTML-escaped and links percent-encoded, so a file called `<script>` is
 * shown, never run. Its one inline style carries the response's CSP nonce.
 */
export async function renderListing(dir: string, urlPath: string, showDotfiles: boolean, nonce: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => showDotfiles || !n.startsWith('.')).sort((a, b) => a.localeCompare(b))
  const rows: string[] = []
  if (urlPath !== '/') rows.push('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
  for (const name of names) {
    let st
    try {
      st = await stat(path.join(dir, name))
    } catch {
      continue // vanished or a broken link
    }
    const isDir = st.isDirectory()
    const href = encodeURIComponent(name) + (isDir ? '/' : '')
    rows.push(
      `<tr><td><a href="${href}">${escapeHtml(name)}${isDir ? '/' : ''}</a></td><td>${isDir ? '' : formatSize(st.size)}</td><td><time datetime="${st.mtime.toISOString()}">${st.mtime.toISOString().slice(0, 16).replace('T', ' ')}</time></td></tr>`,
    )
  }
  const title = escapeHtml(`Index of ${urlPath}`)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title}</title>
<style nonce="${nonce}">body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}table{border-collapse:collapse;width:100%}td{padding:.2rem .8rem .2rem 0}td:nth-child(2){text-align:right;white-space:nowrap}a{text-decoration:none}</style>
</head><body><h1>${title}</h1>
<table>
${rows.join('\n')}
</table>
<p><small>edgebox</small></p>
</body></html>
`
}

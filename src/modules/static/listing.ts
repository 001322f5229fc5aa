import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { escapeHtml } from '../../http/html.ts'
import { ownPage } from '../../http/page.ts'

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
 * shown, never run. Its one inline style carries the response's CSP nonce;
 * it looks like Edgebox's other pages.
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
  return ownPage(`Index of ${urlPath}`, `<table>
${rows.join('\n')}
</table>`, nonce, LISTING_STYLE)
}

/** The listing's table, on top of Edgebox's page style (src/http/page.ts). */
const LISTING_STYLE = [
  'table{border-collapse:collapse;width:100%;font-size:.95rem}',
  'td{padding:.3rem .8rem .3rem 0;border-top:1px solid var(--line);overflow-wrap:anywhere}td:first-child{width:100%}',
  'td:nth-child(2),td:nth-child(3){white-space:nowrap;color:var(--muted);font-family:var(--mono);font-size:.85em}td:nth-child(2){text-align:right}',
].join('')

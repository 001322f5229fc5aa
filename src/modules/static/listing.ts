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
  const title = escapeHtml(`Index of ${urlPath}`)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="${ICON}" type="image/svg+xml">
<style nonce="${nonce}">${STYLE}</style>
</head><body>
<header class="site"><span class="brand"><img src="${ICON}" alt="" width="22" height="22"> Edgebox</span></header>
<main><h1>${title}</h1>
<table>
${rows.join('\n')}
</table></main>
</body></html>
`
}

/**
 * Edgebox's icon (lab/www/assets/favicon.svg) as a `data:` URL: the listing
 * serves any site's folders, which need not hold Edgebox's assets, and the
 * strict CSP allows `img-src data:`.
 */
const ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f4fd1"/><path d="M9 9h14v3.5H13v2h8.5V18H13v2h10v3.5H9z" fill="#fff"/></svg>')}`

/**
 * The look of Edgebox's own pages (lab/www/assets/style.css: the same
 * colours, light and dark, fonts and header), inline under the response's
 * nonce so the listing needs no stylesheet from the site it lists.
 */
const STYLE = [
  ':root{--fg:#1b1f24;--muted:#59636e;--bg:#fff;--panel:#f6f8fa;--line:#d8dee4;--accent:#1f4fd1;--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;color-scheme:light dark}',
  '@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--panel:#161b22;--line:#30363d;--accent:#6ea8fe}}',
  '*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}',
  'body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--fg);background:var(--bg)}',
  'main{max-width:64rem;margin:0 auto;padding:0 1.25rem 2rem}',
  'header.site{padding:1rem 1.25rem .75rem;border-bottom:1px solid var(--line);display:flex;align-items:center}',
  'header.site .brand{display:inline-flex;align-items:center;gap:.5rem;font-weight:650}',
  'h1{font-size:1.9rem;line-height:1.2;margin:1.75rem 0 .75rem;overflow-wrap:anywhere}',
  'a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}',
  'table{border-collapse:collapse;width:100%;font-size:.95rem}',
  'td{padding:.3rem .8rem .3rem 0;border-top:1px solid var(--line);overflow-wrap:anywhere}td:first-child{width:100%}',
  'td:nth-child(2),td:nth-child(3){white-space:nowrap;color:var(--muted);font-family:var(--mono);font-size:.85em}td:nth-child(2){text-align:right}',
].join('')

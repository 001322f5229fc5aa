import { escapeHtml } from './html.ts'

/**
 * Edgebox's own HTML pages (a directory listing, the sign-in pages): one
 * template with the look of lab/www/assets/style.css (colours light and dark,
 * fonts, header), its style inline under the response's CSP nonce so a page
 * needs no stylesheet from the site it is served on. Pure: strings in, a
 * document out; `title` is text (escaped here), `body` is HTML the caller
 * escaped.
 */
export function ownPage(title: string, body: string, nonce: string, style = ''): string {
  const t = escapeHtml(title)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t}</title>
<link rel="icon" href="${ICON}" type="image/svg+xml">
<style nonce="${nonce}">${STYLE}${style}</style>
</head><body>
<header class="site"><span class="brand"><img src="${ICON}" alt="" width="22" height="22"> Edgebox</span></header>
<main><h1>${t}</h1>
${body}
</main>
</body></html>
`
}

/**
 * Edgebox's icon (lab/www/assets/favicon.svg) as a `data:` URL: the pages
 * are served on any site, which need not hold Edgebox's assets, and the
 * strict CSP allows `img-src data:`.
 */
const ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f4fd1"/><path d="M9 9h14v3.5H13v2h8.5V18H13v2h10v3.5H9z" fill="#fff"/></svg>')}`

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
  'button{font:inherit;padding:.45rem 1rem;border:1px solid var(--line);border-radius:6px;background:var(--panel);color:var(--fg);cursor:pointer}',
  'button.primary{background:var(--accent);border-color:var(--accent);color:#fff}',
  'p.muted{color:var(--muted)}code{font-family:var(--mono);font-size:.9em}',
  'ul.choices{list-style:none;padding:0}ul.choices li{margin:.5rem 0}',
].join('')

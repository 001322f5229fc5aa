// The response heads Edgebox sends for static files (200, HEAD, 304, gzip/br, ?download, Range), routes with
// per-request filters (CORS, the strict CSP) and cache hits, over HTTP/1.1 (raw bytes, names as written) and HTTP/2
// over TLS (fields in order): Date, Server-Timing and Age masked. Run it against two trees and diff the outputs to see
// that a change kept every head byte for byte (bench/profiles/h2-static.md).
// usage: node bench/profiles/heads-compare.mjs TREE [DIR] [PORT]   (DIR: fixtures, default /tmp/eb-heads; ports PORT..PORT+2, default 28975)
import { spawn, execFileSync } from 'node:child_process'
import net from 'node:net'
import http from 'node:http'
import http2 from 'node:http2'
import fs from 'node:fs'
const ROOT = process.argv[2], DIR = process.argv[3] ?? '/tmp/eb-heads', BASE = Number(process.argv[4] ?? 28975)
const H1 = BASE, H2 = BASE + 1, OR = BASE + 2
const WWW = `${DIR}/www`
if (!fs.existsSync(`${DIR}/leaf.crt`)) {
  fs.mkdirSync(WWW, { recursive: true })
  const head = '<!doctype html><html><head><meta charset=utf-8><title>bench</title></head><body><p>', tail = '</p></body></html>\n'
  fs.writeFileSync(`${WWW}/index.html`, head + 'x'.repeat(1024 - head.length - tail.length) + tail)
  fs.writeFileSync(`${WWW}/style.css`, 'body{color:red}'.repeat(100))
  fs.writeFileSync(`${WWW}/t.txt`, 'tiny\n')
  for (const f of ['index.html', 'style.css', 't.txt']) fs.utimesSync(`${WWW}/${f}`, new Date('2024-01-01T00:00:00Z'), new Date('2024-01-01T00:00:00Z'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', `${DIR}/leaf.key`, '-out', `${DIR}/leaf.crt`], { stdio: 'ignore' })
}
const origin = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'Cache-Control': 'public, max-age=3600', ETag: '"o1"', 'Server-Timing': 'origin;dur=1' }); res.end('x'.repeat(300)) })
await new Promise((r) => origin.listen(OR, '127.0.0.1', r))
const routes = [
  { path: '/c/', proxy: { upstreams: [`http://127.0.0.1:${OR}`], cache: true } },
  { path: '/cors/', static: { root: WWW }, cors: { origins: ['https://a.test'] } },
  { path: '/strict/', static: { root: WWW }, headers: { csp: 'strict' } },
  { path: '/', static: { root: WWW } },
]
const cfg = { listen: [{ host: '127.0.0.1', port: H1 }, { host: '127.0.0.1', port: H2, tls: true }], tls: { certificates: [{ cert: `${DIR}/leaf.crt`, key: `${DIR}/leaf.key` }] },
  log: { access: false }, sites: [{ headers: { hsts: { maxAge: '1d' }, permissionsPolicy: 'camera=()' }, routes }] }
fs.writeFileSync(`${DIR}/edgebox.json`, JSON.stringify(cfg))
const box = spawn(`${ROOT}/node_modules/.bin/node`, [`${ROOT}/bin/edgebox.js`, '--config', `${DIR}/edgebox.json`], { stdio: ['ignore', 'ignore', 'inherit'] })
for (let i = 0; i < 100; i++) { try { await new Promise((ok, ko) => { const s = net.connect(H1, '127.0.0.1', () => { s.end(); ok() }); s.on('error', ko) }); break } catch { await new Promise((r) => setTimeout(r, 100)) } }
const mask = (n, v) => /^(date|server-timing|age)$/i.test(n) ? '<' + n.toLowerCase() + '>' : v
function h1(path, headers = {}, method = 'GET') {
  return new Promise((resolve) => {
    const s = net.connect(H1, '127.0.0.1', () => s.write(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`))
    s.on('error', (e) => console.log('ERR', e.message)); const chunks = []; s.on('data', (c) => chunks.push(c)); s.on('end', () => {
      const raw = Buffer.concat(chunks).toString('latin1'); const i = raw.indexOf('\r\n\r\n')
      const lines = raw.slice(0, i).split('\r\n').map((l) => { const j = l.indexOf(': '); return j < 0 ? l : l.slice(0, j) + ': ' + mask(l.slice(0, j), l.slice(j + 2)) })
      resolve(lines.join('\n') + `\n[body ${raw.length - i - 4} bytes: ${Buffer.from(raw.slice(i + 4), 'latin1').toString('base64').slice(0, 24)}]`)
    })
  })
}
const session = http2.connect(`https://127.0.0.1:${H2}`, { rejectUnauthorized: false })
function h2(path, headers = {}, method = 'GET') {
  return new Promise((resolve) => {
    const st = session.request({ ':path': path, ':method': method, ...headers })
    let head = ''; const chunks = []
    st.on('response', (_h, _f, raw) => { const out = []; for (let i = 0; i < raw.length; i += 2) out.push(raw[i] + ': ' + mask(raw[i], raw[i + 1])); head = out.join('\n') })
    st.on('data', (c) => chunks.push(c)); st.on('end', () => { const b = Buffer.concat(chunks); resolve(head + `\n[body ${b.length} bytes: ${b.toString('base64').slice(0, 24)}]`) })
  })
}
const cases = [
  ['/index.html'], ['/index.html'], ['/index.html', {}, 'HEAD'], ['/index.html', { 'if-none-match': '<etag>' }],
  ['/style.css', { 'accept-encoding': 'gzip' }], ['/style.css', { 'accept-encoding': 'gzip' }], ['/style.css', { 'accept-encoding': 'br' }],
  ['/style.css', { 'accept-encoding': 'br', 'if-none-match': 'x' }],
  ['/t.txt?download'], ['/t.txt'], ['/t.txt', { range: 'bytes=0-1' }],
  ['/cors/t.txt', { origin: 'https://a.test' }], ['/cors/t.txt'], ['/strict/t.txt'], ['/strict/t.txt'],
  ['/c/obj'], ['/c/obj'], ['/c/obj', {}, 'HEAD'], ['/c/obj', { 'if-none-match': '"o1"' }],
]
const etag = (await h1('/index.html')).match(/ETag: (.*)/i)?.[1]
for (const [p, h = {}, m = 'GET'] of cases) {
  if (h['if-none-match'] === '<etag>') h['if-none-match'] = etag
  console.log(`### h1 ${m} ${p} ${JSON.stringify(h)}\n${await h1(p, h, m)}`)
  console.log(`### h2 ${m} ${p} ${JSON.stringify(h)}\n${await h2(p, h, m)}`)
}
session.close(); box.kill('SIGTERM'); origin.close()

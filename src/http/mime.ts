/**
 * Media types by file extension, for Content-Type (RFC 9110 §8.3), and
 * whether a type is worth compressing. Pure functions, no dependency.
 *
 * Text types carry `; charset=utf-8`: the static files we serve are UTF-8,
 * and without a charset clients guess (§8.3.2).
 */

const UTF8 = '; charset=utf-8'

const TYPES: Record<string, string> = {
  // text and structured text
  html: 'text/html' + UTF8,
  htm: 'text/html' + UTF8,
  css: 'text/css' + UTF8,
  js: 'text/javascript' + UTF8, // RFC 9239
  mjs: 'text/javascript' + UTF8,
  cjs: 'text/javascript' + UTF8,
  json: 'application/json' + UTF8,
  map: 'application/json' + UTF8, // source maps
  jsonld: 'application/ld+json' + UTF8,
  webmanifest: 'application/manifest+json' + UTF8,
  txt: 'text/plain' + UTF8,
  md: 'text/markdown' + UTF8,
  csv: 'text/csv' + UTF8,
  xml: 'application/xml' + UTF8,
  xhtml: 'application/xhtml+xml' + UTF8,
  rss: 'application/rss+xml' + UTF8,
  atom: 'application/atom+xml' + UTF8,
  svg: 'image/svg+xml' + UTF8,
  vtt: 'text/vtt' + UTF8,
  ics: 'text/calendar' + UTF8,
  yaml: 'application/yaml' + UTF8, // RFC 9512
  yml: 'application/yaml' + UTF8,
  // images
  png: 'image/png',
  apng: 'image/apng',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  ico: 'image/x-icon',
  bmp: 'image/bmp',
  // fonts
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  eot: 'application/vnd.ms-fontobject',
  // audio and video
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  webm: 'video/webm',
  ogv: 'video/ogg',
  mov: 'video/quicktime',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  aac: 'audio/aac',
  ogg: 'audio/ogg',
  oga: 'audio/ogg',
  opus: 'audio/ogg',
  wav: 'audio/wav',
  flac: 'audio/flac',
  // documents, archives, binaries
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  br: 'application/x-brotli',
  zst: 'application/zstd',
  tar: 'application/x-tar',
  wasm: 'application/wasm',
}

const OCTET_STREAM = 'application/octet-stream'

/** Content-Type for a path by its extension (case-insensitive); `application/octet-stream` if unknown. */
export function mimeType(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1)
  const dot = base.lastIndexOf('.')
  // No extension, or a dotfile such as `.htaccess`.
  if (dot <= 0) return OCTET_STREAM
  const ext = base.slice(dot + 1).toLowerCase()
  return Object.hasOwn(TYPES, ext) ? TYPES[ext]! : OCTET_STREAM
}

const COMPRESSIBLE = new Set([
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/json',
  'application/xml',
  'application/wasm',
  'application/yaml',
  'application/x-yaml',
  'application/vnd.ms-fontobject',
  'application/x-font-ttf',
  'application/x-font-otf',
  'font/ttf',
  'font/otf',
  'font/collection',
  'image/svg+xml',
])

/**
 * Whether compressing a response of this type is likely to pay off: text and
 * structured text (`text/*`, JSON, XML, JavaScript, `+json`/`+xml` suffixes),
 * WebAssembly and uncompressed fonts. Images (except SVG), audio, video,
 * archives, and WOFF/WOFF2 fonts are already compressed.
 */
export function isCompressible(contentType: string): boolean {
  const semi = contentType.indexOf(';')
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  if (type.startsWith('text/')) return true
  if (COMPRESSIBLE.has(type)) return true
  // Structured syntax suffixes (RFC 6838 §4.2.8), e.g. application/manifest+json.
  return type.startsWith('application/') && (type.endsWith('+json') || type.endsWith('+xml'))
}

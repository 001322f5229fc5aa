/**
 * Writes lab/www/lab/sample.txt: exactly 1.5 MiB of deterministic text
 * (a seeded xorshift32 picks words), so every checkout serves the same bytes
 * and the same SHA-256. Text that is not too repetitive keeps the compressed
 * size realistic (a few times smaller, not a thousand).
 *
 *   node lab/tools/make-sample.ts
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const SAMPLE_SIZE = 1536 * 1024

const WORDS = (
  'edge cache origin proxy range etag header stream byte chunk socket tls hub ' +
  'static listing resume abort status fresh stale revalidate vary encoding gzip ' +
  'brotli request response server client browser window buffer digest hash ' +
  'modified since match none immutable public private max age date expires'
).split(' ')

export function makeSample(size = SAMPLE_SIZE): Buffer {
  let x = 0x2545f491
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  const out = Buffer.alloc(size)
  let pos = 0
  let line = 0
  while (pos < size) {
    let text = `${String(line++).padStart(6, '0')} `
    const n = 6 + (next() % 8)
    for (let i = 0; i < n; i++) text += WORDS[next() % WORDS.length] + (i < n - 1 ? ' ' : '')
    text += ` ${(next() % 100000).toString(16)}\n`
    // The last line pads the file to the exact size instead of being cut short.
    if (size - pos < text.length * 2) text = '-'.repeat(size - pos - 1) + '\n'
    pos += out.write(text, pos, 'latin1')
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'www', 'lab', 'sample.txt')
  writeFileSync(file, makeSample())
  process.stdout.write(`wrote ${file} (${SAMPLE_SIZE} bytes)\n`)
}

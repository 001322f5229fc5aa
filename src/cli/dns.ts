/**
 * `edgebox dns check FILE [--origin NAME]`: reads a zone file as Edgebox
 * would serve it and lists every problem, as `named-checkzone` does. The
 * origin is `--origin`, else the file's first `$ORIGIN`, else the file name
 * without `.zone`/`.db` (`example.test.zone` -> `example.test.`).
 * Exit status: 0 when the zone loads, 1 when it has problems, 2 for usage.
 */

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { NameError, parseAbsolute, toText } from '../dns/names.ts'
import { parseZoneText } from '../dns/zone-file.ts'
import { Zone, ZoneError } from '../dns/zone.ts'

const USAGE = 'usage: edgebox dns check FILE [--origin NAME] [--ttl SECONDS]\n'

export function dnsCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): number {
  if (argv[0] !== 'check') {
    err.write(`edgebox dns: ${argv[0] === undefined ? 'a subcommand is needed' : `unknown subcommand "${argv[0]}"`}\n${USAGE}`)
    return 2
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv.slice(1), allowPositionals: true, options: { origin: { type: 'string' }, ttl: { type: 'string' } } })
  } catch (e) {
    err.write(`edgebox dns check: ${(e as Error).message.split('\n')[0]}\n${USAGE}`)
    return 2
  }
  const file = parsed.positionals[0]
  if (file === undefined || parsed.positionals.length > 1) {
    err.write(`edgebox dns check: one zone file\n${USAGE}`)
    return 2
  }
  const ttl = parsed.values.ttl === undefined ? 3600 : Number(parsed.values.ttl)
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) {
    err.write(`edgebox dns check: --ttl ${parsed.values.ttl} is not a number of seconds\n`)
    return 2
  }
  let text: string
  try {
    text = readFileSync(file, 'latin1')
  } catch (e) {
    err.write(`edgebox dns check: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n`)
    return 2
  }
  const originText = parsed.values.origin ?? /^\$ORIGIN[ \t]+(\S+)/im.exec(text)?.[1] ?? path.basename(file).replace(/\.(zone|db)$/i, '')
  let origin
  try {
    origin = parseAbsolute(originText)
  } catch (e) {
    if (!(e instanceof NameError)) throw e
    err.write(`edgebox dns check: the origin "${originText}" is not a domain name (${e.message}); give one with --origin\n`)
    return 2
  }
  const parsedZone = parseZoneText(text, origin)
  const problems = parsedZone.errors.map((p) => `${file}:${p.replace(/^line (\d+): /, '$1: ')}`)
  let zone: Zone | undefined
  if (problems.length === 0) {
    try {
      zone = new Zone(origin, parsedZone.entries, ttl)
    } catch (e) {
      if (!(e instanceof ZoneError)) throw e
      problems.push(...e.problems.map((p) => `${file}: ${p.replace(/^line (\d+): /, '$1: ')}`))
    }
  }
  const name = toText(origin).replace(/\.$/, '') || '.'
  if (!zone) {
    for (const p of problems) err.write(`${p}\n`)
    err.write(`zone ${name}/IN: not loaded due to errors (${problems.length})\n`)
    return 1
  }
  out.write(`zone ${name}/IN: loaded serial ${zone.serial} (${zone.recordCount} records)\nOK\n`)
  return 0
}

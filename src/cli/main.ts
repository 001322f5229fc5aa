import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ConfigError } from '../core/errors.ts'
import { loadConfigFile, validateConfig } from '../config/load.ts'
import type { EdgeboxConfigInput } from '../config/schema.ts'
import { startEdgebox } from '../server/app.ts'

const HELP = `edgebox: a self-hosted web edge

Usage:
  edgebox [DIR] [options]        serve DIR (zero configuration), or the built-in welcome site and lab
  edgebox --config FILE          run a configuration (edgebox.config.ts, .js, .mjs or .json)
  edgebox config --print [...]   print the resolved configuration (every default filled in) and exit

Options:
  -c, --config FILE    configuration file
  -p, --port N         port to listen on (default 8080; 0 picks a free port)
  -H, --host ADDR      address to bind (default 127.0.0.1; 0.0.0.0 or :: for every interface)
      --listing        list directories that have no index.html (zero-configuration mode)
      --spa            serve index.html for unknown paths without an extension
      --no-access-log  do not log each request
  -v, --version        print the version
  -h, --help           this help
`

/** The package's own folder (two levels above src/cli or dist/cli). */
export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The configuration `npm start` runs: the welcome page, the lab, and a directory listing. */
export function defaultConfig(): EdgeboxConfigInput {
  return {
    sites: [
      {
        // Edgebox's own pages run under the strict Content-Security-Policy preset.
        headers: { csp: 'strict' },
        routes: [
          { path: '/', static: { root: path.join(PACKAGE_DIR, 'lab', 'www') } },
          { path: '/files/', static: { root: path.join(PACKAGE_DIR, 'lab', 'files'), listing: true } },
          { path: '/lab/demo/', lab: {} },
          // the realtime hub behind the chat example (/chat/) and the transport lab (/lab/realtime.html)
          { path: '/live/', realtime: { channels: { 'chat:*': { presence: true, history: { size: 200, age: '1h' } }, 'lab:*': { history: { size: 1000, age: '10m' } } } } },
        ],
      },
    ],
  }
}

export function zeroConfig(dir: string, opts: { listing: boolean; spa: boolean }): EdgeboxConfigInput {
  return { sites: [{ routes: [{ path: '/', static: { root: dir, listing: opts.listing, spa: opts.spa } }] }] }
}

function fail(message: string): never {
  process.stderr.write(`edgebox: ${message}\n`)
  process.exit(2)
}

export async function main(argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string', short: 'H' },
        listing: { type: 'boolean' },
        spa: { type: 'boolean' },
        'access-log': { type: 'boolean', default: true },
        'no-access-log': { type: 'boolean' },
        print: { type: 'boolean' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    fail(`${(err as Error).message}\n\n${HELP}`)
  }
  const { values, positionals } = parsed
  if (values.help) return void process.stdout.write(HELP)
  if (values.version) {
    const { readFileSync } = await import('node:fs')
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }
    return void process.stdout.write(`edgebox ${pkg.version} (node ${process.version})\n`)
  }
  const printOnly = positionals[0] === 'config'
  if (printOnly) positionals.shift()
  if (printOnly && !values.print) fail('usage: edgebox config --print [--config FILE] [DIR]')
  if (positionals.length > 1) fail(`one directory at most, got: ${positionals.join(' ')}`)
  if (values.config && positionals.length) fail('give either a directory or --config, not both')

  let input: EdgeboxConfigInput
  let baseDir = process.cwd()
  try {
    if (values.config) {
      input = await loadConfigFile(values.config)
      baseDir = path.dirname(path.resolve(values.config))
    } else if (positionals[0] !== undefined) {
      const dir = path.resolve(positionals[0])
      if (!existsSync(dir)) fail(`directory ${positionals[0]} does not exist`)
      input = zeroConfig(dir, { listing: values.listing ?? false, spa: values.spa ?? false })
    } else {
      input = defaultConfig()
    }
    input = applyFlags(input, values)
    if (printOnly) {
      process.stdout.write(JSON.stringify(validateConfig(input), null, 2) + '\n')
      return
    }
    const box = await startEdgebox(input, { baseDir })
    for (const url of box.urls) box.log.info({ url }, `edgebox listening on ${url}`)
    let signals = 0
    const stop = (signal: string) => {
      if (++signals > 1) process.exit(1)
      box.log.info({ signal }, 'shutting down: finishing in-flight requests')
      box.close().then(
        () => process.exit(0),
        () => process.exit(1),
      )
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error:\n  ${err.issues.join('\n  ')}`)
    throw err
  }
}

function applyFlags(input: EdgeboxConfigInput, values: { port?: string; host?: string; 'access-log'?: boolean; 'no-access-log'?: boolean }): EdgeboxConfigInput {
  const out: EdgeboxConfigInput = { ...input }
  if (values.port !== undefined || values.host !== undefined) {
    const port = values.port === undefined ? undefined : Number(values.port)
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) fail(`--port: ${values.port} is not a port number (0-65535)`)
    const listen = input.listen?.length ? input.listen : [{}]
    out.listen = listen.map((l) => ({ ...l, ...(port !== undefined ? { port } : {}), ...(values.host ? { host: values.host } : {}) }))
  }
  if (values['no-access-log'] || values['access-log'] === false) out.log = { ...input.log, access: false }
  return out
}

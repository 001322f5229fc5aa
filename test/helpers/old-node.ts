import { spawnSync } from 'node:child_process'

/**
 * How to run a script on a Node.js older than 24, for the `edgebox` command's
 * refusal: a real older Node on PATH (`which -a node`, e.g. the system's
 * /usr/bin/node) when there is one, so the command is also shown to parse
 * there; otherwise this Node made to report itself as v20.0.0 before the
 * script starts.
 */
export function olderNode(): { argv: string[]; version: string; real: boolean } {
  const which = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' })
  const candidates = [...new Set([...(which.stdout ?? '').split('\n').filter(Boolean), '/usr/bin/node', '/usr/local/bin/node'])]
  for (const bin of candidates) {
    const v = spawnSync(bin, ['-p', 'process.version'], { encoding: 'utf8', timeout: 10_000 })
    const version = (v.stdout ?? '').trim()
    if (v.status === 0 && /^v\d+\./.test(version) && Number(version.slice(1).split('.')[0]) < 24) return { argv: [bin], version, real: true }
  }
  const preload = "Object.defineProperty(process, 'version', { value: 'v20.0.0' }); Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '20.0.0' } })"
  return { argv: [process.execPath, '--import', `data:text/javascript,${encodeURIComponent(preload)}`], version: 'v20.0.0', real: false }
}

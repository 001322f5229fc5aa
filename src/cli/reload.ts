import { parseArgs } from 'node:util'
import { readPidFile } from './pid-file.ts'

const USAGE = 'usage: edgebox reload --pid-file FILE (the file the server was started with --pid-file FILE)'

/**
 * `edgebox reload --pid-file FILE`: sends SIGHUP to the server whose PID is
 * in FILE, which reads its configuration and certificates again and reopens
 * its log files. Exit 0 when the signal was sent, 2 for bad usage, 1 when
 * there is no server to signal.
 */
export function reloadCommand(argv: string[], out: (line: string) => void = (l) => process.stdout.write(l + '\n'), err: (line: string) => void = (l) => process.stderr.write(l + '\n')): number {
  let values: { 'pid-file'?: string }
  try {
    ;({ values } = parseArgs({ args: argv, options: { 'pid-file': { type: 'string' } } }))
  } catch (e) {
    err(`edgebox reload: ${(e as Error).message.split('\n')[0]}; ${USAGE}`)
    return 2
  }
  const file = values['pid-file']
  if (file === undefined) {
    err('edgebox reload: needs --pid-file FILE, the file the server was started with (edgebox --pid-file FILE ...); or send SIGHUP to the PID the server printed when it started')
    return 2
  }
  let pid: number
  try {
    pid = readPidFile(file)
  } catch (e) {
    err(`edgebox reload: ${(e as Error).message}`)
    return 1
  }
  try {
    process.kill(pid, 'SIGHUP')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ESRCH') err(`edgebox reload: no process ${pid} is running (from the pid file ${file}): the server has stopped and the pid file is stale`)
    else if (code === 'EPERM') err(`edgebox reload: not allowed to signal process ${pid} (from the pid file ${file}): run as the server's user`)
    else err(`edgebox reload: cannot signal process ${pid} (${code ?? (e as Error).message})`)
    return 1
  }
  out(`edgebox reload: sent SIGHUP to process ${pid}`)
  return 0
}

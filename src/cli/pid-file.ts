import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'

/**
 * The server's PID in a file, for `edgebox reload` and process managers.
 * Written to a temporary file beside it and renamed into place, so a reader
 * never sees a half-written number.
 */
export function writePidFile(file: string, pid = process.pid): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`)
  writeFileSync(tmp, `${pid}\n`)
  try {
    renameSync(tmp, file)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // already gone
    }
    throw err
  }
}

/** Removes the pid file if it still names `pid` (a newer server may have written its own since). */
export function removePidFile(file: string, pid = process.pid): void {
  try {
    if (readPidFile(file) === pid) unlinkSync(file)
  } catch {
    // already gone or unreadable: nothing of ours to remove
  }
}

/** The PID in the file; throws an Error with a message naming the problem. */
export function readPidFile(file: string): number {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`cannot read the pid file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const pid = Number(text.trim())
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(pid) || pid < 1) throw new Error(`the pid file ${file} does not hold a process id (it holds ${JSON.stringify(text.slice(0, 40))})`)
  return pid
}

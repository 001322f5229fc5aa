import { readFileSync } from 'node:fs'
import { processAlive } from '../core/process.ts'

/**
 * Calls `onGone` once when the `npx` that started this process is gone.
 *
 * `npx edgebox` runs the server as npm's grandchild (npm, then `sh -c`,
 * then node), and npm neither passes SIGTERM, SIGHUP or SIGUSR2 on nor
 * takes its children with it when it is killed by one: the server would go
 * on serving as an orphan, holding its port. So, started by npm, the server
 * watches its parent and npm above it (Linux names that one in /proc; where
 * it does not, the parent alone) and stops as on SIGTERM when either goes.
 * A server started directly (node_modules/.bin/edgebox, a process manager)
 * does not watch: `nohup edgebox ... &` must outlive its shell.
 */
export function stopWithNpx(onGone: () => void, everyMs = 500): void {
  if (process.env.npm_command !== 'exec') return
  const parent = process.ppid
  const grandparent = parentOf(parent)
  const timer = setInterval(() => {
    if (process.ppid === parent && (grandparent === null || processAlive(grandparent))) return
    clearInterval(timer)
    onGone()
  }, everyMs)
  timer.unref()
}

/** The parent of process `pid` from /proc (Linux), or null where that is not available. */
function parentOf(pid: number): number | null {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ...", and comm may hold spaces or parentheses
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    return Number.isInteger(ppid) && ppid > 1 ? ppid : null
  } catch {
    return null
  }
}


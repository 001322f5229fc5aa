/**
 * Whether a process with this id is alive: signal 0 checks without sending
 * anything (POSIX kill(2)); EPERM means it exists but belongs to another user.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

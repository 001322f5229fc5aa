/**
 * The last lines a child process wrote (its stdout and stderr, as they come),
 * for the error a test helper throws when the process does not start or
 * answer: `collect` takes each chunk, `output()` gives the last `max` lines.
 */
export function outputTail(max: number): { collect(chunk: Buffer): void; output(): string } {
  const lines: string[] = []
  let partial = ''
  return {
    collect(chunk) {
      const parts = (partial + chunk.toString('utf8')).split('\n')
      partial = parts.pop() ?? ''
      lines.push(...parts)
      if (lines.length > max) lines.splice(0, lines.length - max)
    },
    output: () => [...lines, partial].filter((l) => l !== '').join('\n'),
  }
}

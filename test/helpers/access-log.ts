import { existsSync, readFileSync } from 'node:fs'

/** An access log line (JSON), or the summary of a connection's cancelled streams. */
export interface AccessRecord {
  msg: string
  method?: string
  path?: string
  status?: number
  bytes?: number
  proto?: string
  client?: string
  resets?: number
}

/** Polls a JSON access log file until `until` holds for its lines (bounded); returns them. */
export async function accessLines(file: string, until: (lines: AccessRecord[]) => boolean, ms = 10_000): Promise<AccessRecord[]> {
  const end = Date.now() + ms
  for (;;) {
    const lines = existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .slice(0, -1)
          .map((l) => JSON.parse(l) as AccessRecord)
      : []
    if (until(lines)) return lines
    if (Date.now() > end) throw new Error(`the access log did not get there within ${ms} ms:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * The TXT records of pending ACME DNS-01 challenges (RFC 8555 §8.4): while
 * an order is validated, `_acme-challenge.<name>` answers with the value the
 * authority expects, from a zone Edgebox serves. One store for the process:
 * it outlives reloads, as the orders do.
 */

import { key, parseName, type Labels } from './names.ts'

export class AcmeChallenges {
  private readonly values = new Map<string, { labels: Labels; values: string[] }>()

  /** The name the TXT record goes at for a name (a wildcard's is its base name's, RFC 8555 §8.4). */
  static recordName(name: string): string {
    return `_acme-challenge.${name.replace(/^\*\./, '')}`
  }

  add(name: string, value: string): void {
    const labels = parseName(AcmeChallenges.recordName(name) + '.')
    const k = key(labels)
    const entry = this.values.get(k) ?? { labels, values: [] }
    entry.values.push(value)
    this.values.set(k, entry)
  }

  remove(name: string, value: string): void {
    const k = key(parseName(AcmeChallenges.recordName(name) + '.'))
    const entry = this.values.get(k)
    if (!entry) return
    entry.values = entry.values.filter((v) => v !== value)
    if (entry.values.length === 0) this.values.delete(k)
  }

  /** The pending values at a name (its key), if any. */
  at(nameKey: string): readonly string[] | undefined {
    return this.values.get(nameKey)?.values
  }
}

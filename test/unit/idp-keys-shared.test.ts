import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, existsSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { pino } from 'pino'
import { IdpKeys } from '../../src/auth/idp/keys.ts'
import { withFileLock } from '../../src/core/data-dir.ts'
import { ManualClock } from '../helpers/clock.ts'

/**
 * The identity provider's key file shared by the workers of one machine:
 * two processes' key sets (two IdpKeys on one data folder, as two workers
 * hold them) rotate at the same moment, and both end with the same keys,
 * one new generation in the file, none lost.
 */

const DAY = 24 * 3_600_000
const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const folder = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'edgebox-idp-keys-shared-'))
  dirs.push(d)
  return d
}

test('two workers rotating at the same moment end with one new generation, the same in both and in the file', async () => {
  const dataDir = folder()
  const clock = new ManualClock()
  const opts = { rotation: DAY, retention: 2 * DAY, clock, log: pino({ level: 'silent' }) }
  const [one, two] = await Promise.all([IdpKeys.open(dataDir, opts), IdpKeys.open(dataDir, opts)])
  assert.equal(one.generations[0]!.signing[0]!.kid, two.generations[0]!.signing[0]!.kid, 'the first start made one set of keys')
  clock.advance(DAY + 1)
  await Promise.all([one.refresh(), two.refresh()])
  const file = JSON.parse(readFileSync(path.join(dataDir, 'auth', 'idp-keys.json'), 'utf8')) as { generations: Array<{ signing: Array<{ kid: string }> }> }
  assert.equal(file.generations.length, 2, 'one rotation, not two')
  const kids = (k: IdpKeys) => k.generations.map((g) => g.signing[0]!.kid)
  assert.deepEqual(kids(one), kids(two), 'both sign and publish the same keys')
  assert.deepEqual(kids(one).sort(), file.generations.map((g) => g.signing[0]!.kid).sort())
  assert.equal(existsSync(path.join(dataDir, 'auth', 'idp-keys.json.lock')), false, 'the lock is let go')
})

test('withFileLock: turns are taken one at a time; a stale lock is taken over; a held one times out naming the file', async () => {
  const dir = folder()
  const lock = path.join(dir, 'x.lock')
  let inside = 0
  let most = 0
  await Promise.all(
    Array.from({ length: 8 }, () =>
      withFileLock(lock, async () => {
        inside++
        most = Math.max(most, inside)
        await new Promise((r) => setTimeout(r, 5))
        inside--
      }),
    ),
  )
  assert.equal(most, 1)
  writeFileSync(lock, '1\n')
  const old = (Date.now() - 60_000) / 1000
  utimesSync(lock, old, old)
  assert.equal(await withFileLock(lock, async () => 'taken over'), 'taken over')
  writeFileSync(lock, '1\n')
  await assert.rejects(withFileLock(lock, async () => 'never', { wait: 100 }), { message: `${lock} has been held by another process for more than 0 s; if no Edgebox is running, remove it` })
})

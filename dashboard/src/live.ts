import { ref } from 'vue'
import { connect, type ConnectionState, type RealtimeClient } from '../../client/realtime.ts'
import type { Sample } from './api.ts'

/**
 * The dashboard's live feed: the admin listener's own realtime hub at
 * /live/ (docs/admin.md), read with Edgebox's realtime client
 * (client/realtime.ts, bundled here). Channel `series` carries one `Sample`
 * a second; the charts append them to the history they fetched, and every
 * page's tables fetch their figures again on it (at their own pace) and at
 * once on a message of channel `events` (something was changed). One
 * connection serves every page: it opens with the first listener and stays
 * open while the app runs (the client resumes it after a drop, and sends
 * nothing while the hub is quiet).
 *
 * Server-Sent Events first: the stream is one plain GET, which the strict
 * CSP's `connect-src 'self'` allows, and it needs nothing of the admin
 * listener but HTTP. Long polling is the fallback.
 */

export const LIVE_URL = '/live/'

/** The state shown in the header: `off` until a page asks for live data. */
export const liveState = ref<ConnectionState | 'off'>('off')

let client: RealtimeClient | undefined
const sampleListeners = new Set<(s: Sample) => void>()
/** Told of every message of the hub: `sample` once a second, `event` when the operator changed something (a reload, a purge, a drain). */
const tickListeners = new Set<(kind: 'sample' | 'event') => void>()

function isSample(v: unknown): v is Sample {
  return typeof v === 'object' && v !== null && typeof (v as Sample).at === 'number' && typeof (v as Sample).requests === 'number'
}

function open(): RealtimeClient {
  const c = connect(LIVE_URL, { transports: ['sse', 'long-poll'], sse: 'eventsource', upgradeInterval: 0 })
  c.on('state', (e) => (liveState.value = e.state))
  // A refused subscription or a transport that failed: the state shows it, the client retries.
  c.on('error', () => {})
  c.subscribe('series', (data) => {
    if (!isSample(data)) return
    for (const l of sampleListeners) l(data)
    for (const l of tickListeners) l('sample')
  })
  c.subscribe('events', () => {
    for (const l of tickListeners) l('event')
  })
  return c
}

/** Calls `listener` with each live sample; returns the function that stops it. */
export function onLiveSample(listener: (s: Sample) => void): () => void {
  sampleListeners.add(listener)
  client ??= open()
  return () => sampleListeners.delete(listener)
}

/**
 * Calls `listener` on each message of the hub (the one-second sample, and
 * each event: a reload, a load, a purge, a maintenance switch); returns the
 * function that stops it. The pages' tables follow it (api.ts useResource).
 */
export function onLiveTick(listener: (kind: 'sample' | 'event') => void): () => void {
  tickListeners.add(listener)
  client ??= open()
  return () => tickListeners.delete(listener)
}

import assert from 'node:assert/strict'
import dc from 'node:diagnostics_channel'
import http from 'node:http'
import type http2 from 'node:http2'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { startEdgebox } from '../../src/server/app.ts'
import { PROTOCOLS, request, type Protocol } from '../helpers/server.ts'
import { h2Session, pollH1, pollH2, sseH1, sseH2, wsH1, wsH2, type Exchange, type PollAnswer, type StreamEnd } from '../helpers/realtime-shutdown-clients.ts'

/**
 * Shutdown with realtime clients connected (docs/realtime.md, "Shutdown";
 * docs/server.md, "Graceful shutdown"): as soon as Edgebox starts stopping,
 * the hub closes every WebSocket with 1001 (going away), ends every SSE
 * stream cleanly (an EventSource then reconnects) and answers every held
 * long poll, so `close()` does not wait for `limits.shutdownTimeout` (10 s
 * here). The bound on close() is a generous guard, not a timing assertion:
 * what is asserted is what each client saw, and the final `stopped` line.
 */

const SOCKETS = 100
const STREAMS = 100
const POLLS = 10
/** Far below the 10 s shutdownTimeout, far above what the shutdown takes. */
const GUARD_MS = 5000

/** Server-side starts of long polls, as Node announces each request (HTTP/1.1 and HTTP/2). */
function countPolls(): { readonly count: number; stop(): void } {
  let count = 0
  const h1 = (m: unknown) => {
    if ((m as { request: http.IncomingMessage }).request.url?.includes('wait=1')) count++
  }
  const h2 = (m: unknown) => {
    if (String((m as { headers: http2.IncomingHttpHeaders }).headers[':path']).includes('wait=1')) count++
  }
  dc.subscribe('http.server.request.start', h1)
  dc.subscribe('http2.server.stream.start', h2)
  return {
    get count() {
      return count
    },
    stop() {
      dc.unsubscribe('http.server.request.start', h1)
      dc.unsubscribe('http2.server.stream.start', h2)
    },
  }
}

async function until(pred: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what} (waited 5 s)`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('shutdown with realtime clients connected', () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: ${SOCKETS} WebSockets get 1001, ${STREAMS} SSE streams end cleanly, ${POLLS} held long polls are answered, and close() does not wait for shutdownTimeout`, async () => {
      const lines: Array<Record<string, unknown>> = []
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
          done()
        },
      })
      const box = await startEdgebox(
        {
          listen: [{ host: '127.0.0.1', port: 0 }],
          limits: { shutdownTimeout: '10s' },
          log: { access: false },
          sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'c:*': {} } } }] }],
        },
        { log: pino({ level: 'info' }, sink) },
      )
      const base = box.urls[0]!
      const polls = countPolls()
      const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
      const sessions: http2.ClientHttp2Session[] = []
      let closing: Promise<void> | undefined
      try {
        // A position the channel has reached: a long poll from it is held.
        const start = await request(protocol, `${base}live/poll?ch=c:a`)
        const sub = (JSON.parse(start.text) as Array<{ e: string; o: number }>)[0]!
        const pollQuery = (i: number) => `ch=c:a@${sub.e}/${sub.o}&wait=1&client=${i}`

        const sockets: Array<Exchange<number>> = []
        const streams: Array<Exchange<StreamEnd>> = []
        const answers: Array<Promise<PollAnswer>> = []
        if (protocol === 'h2c') {
          for (let i = 0; i < 10; i++) sessions.push(await h2Session(base))
          for (let i = 0; i < SOCKETS; i++) sockets.push(wsH2(sessions[i % sessions.length]!, 'c:a'))
          for (let i = 0; i < STREAMS; i++) streams.push(sseH2(sessions[i % sessions.length]!, 'c:a'))
          for (let i = 0; i < POLLS; i++) answers.push(pollH2(sessions[i % sessions.length]!, pollQuery(i)))
        } else {
          for (let i = 0; i < SOCKETS; i++) sockets.push(wsH1(base, 'c:a'))
          for (let i = 0; i < STREAMS; i++) streams.push(sseH1(base, 'c:a', agent))
          for (let i = 0; i < POLLS; i++) answers.push(pollH1(base, pollQuery(i), agent))
        }
        // awaited below; a failure before then must not surface as an unhandled rejection
        for (const a of answers) a.catch(() => {})
        await Promise.all([...sockets, ...streams].map((x) => x.ready))
        await until(() => polls.count >= POLLS, `only ${polls.count} of ${POLLS} long polls reached the server`)

        closing = box.close()
        let guard: NodeJS.Timeout | undefined
        const closedInTime = await Promise.race([closing.then(() => true), new Promise<false>((r) => (guard = setTimeout(() => r(false), GUARD_MS)))])
        clearTimeout(guard)
        assert.equal(closedInTime, true, `close() still waiting after ${GUARD_MS} ms with only realtime clients connected (shutdownTimeout is 10 s)`)

        const codes = await Promise.all(sockets.map((s) => s.outcome))
        assert.deepEqual(new Set(codes), new Set([1001]), 'every WebSocket is closed with 1001 (going away)')
        assert.equal(codes.length, SOCKETS)
        const ends = await Promise.all(streams.map((s) => s.outcome))
        assert.deepEqual(new Set(ends), new Set(['ended']), 'every SSE stream ends cleanly')
        const polled = await Promise.all(answers)
        assert.deepEqual(polled, Array.from({ length: POLLS }, () => ({ status: 200, body: '[]' })), 'every held long poll is answered, with nothing new')

        await until(() => lines.some((l) => l.msg === 'stopped'), 'no "stopped" line')
        const stopped = lines.filter((l) => l.msg === 'stopped')
        assert.equal(stopped.length, 1)
        assert.equal(stopped[0]!.level, 30, 'info level')
        assert.equal(typeof stopped[0]!.ms, 'number')
        assert.ok((stopped[0]!.ms as number) >= 0)
      } finally {
        polls.stop()
        agent.destroy()
        for (const s of sessions) s.destroy()
        await (closing ?? box.close())
      }
    })
  }
})

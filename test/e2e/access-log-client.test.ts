import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import path from 'node:path'
import WebSocket from 'ws'
import { ManualClock, waitFor } from '../helpers/clock.ts'
import { accessLogThrough, startServer, tempDir, type AccessLogLine, type TestServer } from '../helpers/server.ts'

// Long-lived answers (SSE streams, WebSockets, long polls) are logged when
// they end, often after the client has gone: the line still names the client.

let srv: TestServer
const tmp = tempDir()
const logFile = path.join(tmp.dir, 'access.log')
const clock = new ManualClock()

before(async () => {
  srv = await startServer({
    sites: [{ routes: [{ path: '/live/', realtime: { channels: { 'chat:*': {} }, pollTimeout: '60s' } }] }],
    log: { access: true, file: logFile },
  }, undefined, { clock })
})

after(async () => {
  await srv.close()
  tmp.cleanup()
})

type Line = AccessLogLine & { client?: string }

let markers = 0

/** The access log's line for `p` (the path, without the query) over `proto`, once it is written. */
async function lineFor(p: string, proto = 'http/1.1', status?: number): Promise<Line> {
  for (let i = 0; ; i++) {
    // the log is flushed in batches: each round waits for a marker request's line
    const lines = (await accessLogThrough(srv.url.replace(/\/$/, ''), `/marker-${++markers}`, logFile)) as Line[]
    const line = lines.find((l) => l.path === p && l.proto === proto && (status === undefined || l.status === status))
    if (line) return line
    if (i > 10) assert.fail(`no access log line for ${p} over ${proto}: ${JSON.stringify(lines.filter((l) => !l.path.startsWith('/marker')))}`)
  }
}

/** Opens a streamed GET over HTTP/1.1, waits for its first bytes, then closes the connection. */
function openAndLeave(p: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(srv.url.replace(/\/$/, '') + p, { agent: false }, (res) => {
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)))
  })
}

test('an SSE stream the client closes is logged with its client address', async () => {
  const p = '/live/sse?ch=chat:a'
  await openAndLeave(p)
  const line = await lineFor('/live/sse', 'http/1.1', 499)
  assert.equal(line.client, '127.0.0.1')
})

test('an SSE stream over h2c whose connection the client closes is logged with its client address', async () => {
  const p = '/live/sse?ch=chat:h2'
  const session = http2.connect(srv.url)
  await new Promise<void>((resolve, reject) => {
    session.on('error', reject)
    const stream = session.request({ ':path': p })
    stream.once('data', () => {
      session.destroy()
      resolve()
    })
    stream.on('error', () => {})
  })
  const line = await lineFor('/live/sse', 'h2c')
  assert.equal(line.client, '127.0.0.1')
})

test('a WebSocket the client closes is logged with its client address', async () => {
  const ws = new WebSocket(srv.url.replace(/^http/, 'ws') + 'live/ws', ['edgebox.v1'])
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  ws.terminate() // the client goes without a closing handshake
  const line = await lineFor('/live/ws', 'http/1.1', 101)
  assert.equal(line.client, '127.0.0.1')
})

test('a long poll the client leaves is logged with its client address', async () => {
  const p = '/live/poll?ch=chat:p&wait=1'
  // the poll first answers with the channel's position; the held one follows from it
  const first = (await (await fetch(srv.url + 'live/poll?ch=chat:p')).json()) as { e: string }[]
  const held = `${p.replace('ch=chat:p', `ch=chat:p@${first[0]!.e}/0`)}`
  await new Promise<void>((resolve, reject) => {
    const req = http.get(srv.url.replace(/\/$/, '') + held, { agent: false })
    // held: its timeout is on the clock
    waitFor('the poll held', () => clock.dueIn().includes(60_000)).then(() => {
      req.destroy()
      resolve()
    }, reject)
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)))
  })
  const line = await lineFor('/live/poll', 'http/1.1', 499)
  assert.equal(line.client, '127.0.0.1')
})

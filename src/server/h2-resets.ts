import http2 from 'node:http2'
import type { H2Connection } from '../core/log.ts'
import type { StreamCounter } from './h2-timeouts.ts'

/** The listener's handle on one session's bookkeeping: the connection as the access log sees it, and each new stream. */
export interface SessionStreams {
  readonly conn: H2Connection
  /** A stream has opened (the listener calls it from its own 'stream' listener, after the request's handler). */
  opened(stream: http2.ServerHttp2Stream): void
}

/**
 * Counts the streams a client resets on one HTTP/2 connection, so that the
 * access log can tell a rapid-reset flood (CVE-2023-44487) from the odd
 * cancelled request and summarize it in one line (src/core/log.ts,
 * `log.resetFlood`; each request carries the connection, `H2_CONNECTION`).
 * Node's HTTP/2 layer cuts such a flood itself (GOAWAY); this is only about
 * what gets logged. The session's one per-stream watcher: it also tells
 * `streams` (the session timeouts, ./h2-timeouts.ts) when a stream opens and
 * closes. No 'stream' listener of its own: the listener's calls `opened`.
 */
export function trackResets(session: http2.ServerHttp2Session, proto: string, streams?: StreamCounter): SessionStreams {
  const conn: H2Connection = { client: session.socket?.remoteAddress ?? '', proto, resets: 0, peak: 0, closed: false, onClose: null }
  let windowStart = 0
  let inWindow = 0
  // one function for every stream of the session (no closure per stream)
  function streamClosed(this: http2.ServerHttp2Stream): void {
    streams?.closed()
    const code = this.rstCode
    if (code === undefined || code === http2.constants.NGHTTP2_NO_ERROR) return
    conn.resets++
    const now = Date.now()
    if (now - windowStart >= 1000) {
      windowStart = now
      inWindow = 0
    }
    if (++inWindow > conn.peak) conn.peak = inWindow
  }
  session.once('close', () => {
    conn.closed = true
    conn.onClose?.()
  })
  return {
    conn,
    opened(stream) {
      streams?.opened()
      // 'close' comes once: a plain listener, without once()'s wrapper and removal
      stream.on('close', streamClosed)
    },
  }
}

import type http2 from 'node:http2'

/** The HTTP/1.1 timeouts an HTTP/2 session follows too (limits in docs/server.md). */
export interface SessionTimeouts {
  /** A session with no open stream and nothing arriving is closed after this. */
  readonly keepAliveTimeout: number
  /** A new session's first request, or a header block in progress, must complete within this. */
  readonly headersTimeout: number
}

/**
 * Gives an HTTP/2 session the timeouts an HTTP/1.1 connection has, so that
 * neither protocol holds a connection longer for the same state:
 *
 * - a new session must open its first stream within `headersTimeout` (HTTP/1.1:
 *   the first request head), whatever else it sends (the preface, SETTINGS, PINGs);
 * - a session with no open stream is closed after `keepAliveTimeout` (HTTP/1.1:
 *   an idle keep-alive connection). If bytes arrived meanwhile without a stream
 *   opening (a header block started and never finished, HEADERS without
 *   END_HEADERS and no CONTINUATION, RFC 9113 §6.10; or only control frames),
 *   the client has `headersTimeout` more to open one, then is closed;
 * - while a stream is open (a request being read, a response in progress),
 *   none of this applies: the session's `idleTimeout` (no traffic at all) does,
 *   as for a streamed response over HTTP/1.1.
 *
 * Node opens a stream for JavaScript only once its header block is complete,
 * so "no open stream" is also what a stalled header block looks like; the
 * socket's byte count tells the two apart. Closing sends GOAWAY (NO_ERROR)
 * with the last stream processed, then ends the connection.
 */
/** What the session's one per-stream watcher (./h2-resets.ts) reports: a stream opened, a stream closed. */
export interface StreamCounter {
  opened(): void
  closed(): void
}

export function enforceSessionTimeouts(session: http2.ServerHttp2Session, limits: SessionTimeouts, connection?: { readonly bytesRead?: number }): StreamCounter {
  // the connection's own socket when the caller has it: `session.socket` is a Proxy, read each time the session goes idle
  const socket = connection ?? (session.socket as { bytesRead?: number } | undefined)
  const bytesRead = () => socket?.bytesRead ?? 0
  let open = 0
  /** The first request's deadline, or a stalled header block's. */
  let timer: NodeJS.Timeout | undefined
  /**
   * keepAliveTimeout once no stream is open: one timer per session, moved
   * (refresh) each time the last stream closes rather than made anew. It may
   * fire while streams are open; it then does nothing.
   */
  let idleTimer: NodeJS.Timeout | undefined
  let readWhenIdle = 0

  const close = () => {
    timer = undefined
    if (open > 0 || session.closed || session.destroyed) return
    session.close()
    // close() waits for nghttp2 to be done, which a header block in progress never is
    const last = setTimeout(() => session.destroy(), limits.headersTimeout)
    last.unref()
    session.once('close', () => clearTimeout(last))
  }
  /** A client that started and never finished: GOAWAY (sent as the session is destroyed) and the connection ends now. */
  const cut = () => {
    timer = undefined
    if (open > 0 || session.destroyed) return
    session.destroy()
  }
  const arm = (ms: number, then: () => void) => {
    clearTimeout(timer)
    timer = setTimeout(then, ms)
    timer.unref()
  }
  const idleExpired = () => {
    if (open > 0 || session.closed || session.destroyed) return
    // bytes came and no stream opened: a header block (or control frames) in progress
    if (bytesRead() !== readWhenIdle) arm(limits.headersTimeout, cut)
    else close()
  }
  const idle = () => {
    readWhenIdle = bytesRead()
    if (idleTimer === undefined) {
      idleTimer = setTimeout(idleExpired, limits.keepAliveTimeout)
      idleTimer.unref()
    } else idleTimer.refresh()
  }
  // the first request, as on a new HTTP/1.1 connection
  arm(limits.headersTimeout, close)
  session.once('close', () => {
    clearTimeout(timer)
    clearTimeout(idleTimer)
  })
  // Streams are counted by the caller's own 'stream' and 'close' listeners
  // (one of each per stream for the whole server layer, not one per concern).
  return {
    opened() {
      open++
      if (timer !== undefined) {
        clearTimeout(timer)
        timer = undefined
      }
    },
    closed() {
      if (--open === 0 && !session.closed && !session.destroyed) idle()
    },
  }
}

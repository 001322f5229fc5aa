import type { Duplex } from 'node:stream'

/**
 * Closing raw sockets (tunnels, refused upgrades and CONNECTs) so that what
 * was written reaches the peer, and so that no socket outlives its use.
 */

/** After one side closes cleanly, or after a last answer, the other end may flush for this long. */
export const CLOSE_GRACE = 2_000

/**
 * Writes a last answer (see src/http/raw-answer.ts) and closes the socket.
 * What the client still sends is read and dropped, so the close is a FIN and
 * not a reset that could discard the answer; a client that never closes is
 * cut after the grace time.
 */
export function answerAndClose(socket: Duplex, answer: string): void {
  socket.on('error', () => {}) // a client gone meanwhile: nothing left to tell it
  if (socket.destroyed || socket.writableEnded) return void socket.destroy()
  socket.end(answer)
  socket.resume()
  const t = setTimeout(() => socket.destroy(), CLOSE_GRACE)
  socket.once('close', () => clearTimeout(t))
}

/** Ends a socket and destroys it if it has not closed after the grace time (or at once after an error). */
export function closeSoon(socket: Duplex | undefined, now: boolean): void {
  if (!socket || socket.destroyed) return
  if (now) return void socket.destroy()
  if (!socket.writableEnded) socket.end()
  const t = setTimeout(() => socket.destroy(), CLOSE_GRACE)
  socket.once('close', () => clearTimeout(t))
}

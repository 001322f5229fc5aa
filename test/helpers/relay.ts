import net from 'node:net'

/**
 * A TCP relay to a port that can be cut: open connections destroyed, new
 * ones refused until restored (a network outage, a restart); `retarget`
 * sends new connections to another port (a client moved to another node).
 */
export async function relay(target: number, targetHost = '127.0.0.1') {
  const sockets = new Set<net.Socket>()
  let down = false
  const server = net.createServer((c) => {
    if (down) return c.destroy()
    const up = net.connect(target, targetHost)
    sockets.add(c).add(up)
    c.pipe(up).pipe(c)
    const drop = () => {
      c.destroy()
      up.destroy()
      sockets.delete(c)
      sockets.delete(up)
    }
    c.on('error', drop).on('close', drop)
    up.on('error', drop).on('close', drop)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      down = true
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    restore() {
      down = false
    },
    retarget(port: number, host = targetHost) {
      target = port
      targetHost = host
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

/** Realtime client options for recovery tests: reconnect and poll quickly, one transport, no upgrades. */
export const QUICK_RECOVERY = { backoff: { base: 50, max: 200 }, pollInterval: 50, pollTimeout: 1000, openTimeout: 2000, upgradeInterval: 0 } as const

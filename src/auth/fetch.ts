import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { Agent, fetch as undiciFetch } from 'undici'

/**
 * How Edgebox, as a relying party, reaches identity providers (discovery,
 * tokens, userinfo, keys, introspection): undici's fetch with one agent whose
 * name lookup follows RFC 6761 §6.3, `localhost` and every name under
 * `.localhost` are this machine's loopback. Browsers already do so (Chromium
 * sends `id.localhost` to 127.0.0.1); the system resolver often does not,
 * and a provider on `http://id.localhost:8080` must be reachable from
 * Edgebox by the same name its browser users see.
 */

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** The lookup the agent's connections use: *.localhost to loopback, anything else to the system's resolver. */
export function localhostLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const name = hostname.toLowerCase().replace(/\.$/, '')
  if (name === 'localhost' || name.endsWith('.localhost')) {
    const v6 = options.family === 6
    const address = v6 ? '::1' : '127.0.0.1'
    if (options.all) return callback(null, [{ address, family: v6 ? 6 : 4 }])
    return callback(null, address, v6 ? 6 : 4)
  }
  dnsLookup(hostname, options as LookupOptions & { all: boolean }, callback as never)
}

const agent = new Agent({ connect: { lookup: localhostLookup as never }, keepAliveTimeout: 10_000 })

/** `fetch` for requests to identity providers. */
export const providerFetch = ((input: string | URL | Request, init?: RequestInit) => undiciFetch(input as never, { ...(init as object), dispatcher: agent } as never)) as unknown as typeof fetch

/** Closes the agent's idle connections (at shutdown). */
export function closeProviderConnections(): Promise<void> {
  return agent.close()
}

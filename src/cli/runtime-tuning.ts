import v8 from 'node:v8'

/**
 * V8 settings the `edgebox` command applies to its own process before it
 * starts serving (docs/server.md, "Runtime settings").
 *
 * Allocation-site pretenuring: V8 watches, per allocation site, how many of
 * the objects it made were still alive at a minor GC; a site whose objects all
 * survived is switched to allocate straight into the old generation, and a
 * site allocating there has no way left to see that its objects now die young,
 * so the decision stays. A server's first requests run slowly (unoptimized
 * code, every connection set up at once), and in an HTTP/2 server the sites of
 * the per-stream objects can be switched then: every stream's objects then
 * land in the old generation, fill it in a second, and each major GC marks
 * and sweeps them (measured: 0.7x the requests per CPU-second on HTTP/2,
 * bench/profiles/h2-static.md). Without pretenuring, short-lived objects are
 * freed by the scavenger, as for the rest of the program.
 *
 * A flag the user gave Node (`node --allocation-site-pretenuring ...` or in
 * NODE_OPTIONS) wins: nothing is changed then.
 */
export const PRETENURING_FLAG = '--no-allocation-site-pretenuring'

/** The V8 flags to set, given the flags Node was started with; empty when the user chose. */
export function runtimeFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)]
  const chose = given.some((a) => /^--(no-)?allocation[-_]site[-_]pretenuring(=|$)/.test(a))
  return chose ? [] : [PRETENURING_FLAG]
}

/** Applies `runtimeFlags` to this process (the `edgebox` command only; an embedding program keeps its own settings). */
export function tuneRuntime(): string[] {
  const flags = runtimeFlags(process.execArgv, process.env.NODE_OPTIONS)
  for (const f of flags) v8.setFlagsFromString(f)
  return flags
}

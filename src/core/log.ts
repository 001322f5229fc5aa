import { pino } from 'pino'
import type { Context } from './context.ts'
import { EdgeboxError, type ErrorCode } from './errors.ts'

/**
 * Two streams of records:
 * - the application log (start, listen, errors with stacks): pino;
 * - the access log: one line per request, JSON in production, a readable line
 *   in a terminal. It is written through pino's asynchronous, buffered
 *   destination (sonic-boom) so a busy server makes few write calls.
 */
export type Logger = pino.Logger
export type LogFormat = 'auto' | 'json' | 'pretty'

interface LogOptions {
  level: string
  format: LogFormat
  /** File to append to instead of standard output. */
  file?: string | undefined
  /** More cancelled streams than this per second on one HTTP/2 connection are summarized in one access line. */
  resetFlood?: number
}

function isPretty(format: LogFormat, file: string | undefined): boolean {
  return format === 'pretty' || (format === 'auto' && !file && process.stdout.isTTY === true)
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }

/** Formats pino's JSON records as `HH:MM:SS level message key=value` for a terminal. */
function prettyStream(out: NodeJS.WritableStream) {
  return {
    write(line: string) {
      const rec = JSON.parse(line) as Record<string, unknown>
      const { time, level, msg, pid: _pid, hostname: _host, err, ...rest } = rec
      const t = new Date(time as number).toISOString().slice(11, 19)
      const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      const stack = err && typeof err === 'object' && 'stack' in err ? `\n${String(err.stack)}` : ''
      out.write(`${t} ${LEVEL_NAMES[level as number] ?? level} ${msg ?? ''}${extra ? ' ' + extra : ''}${stack}\n`)
    },
  }
}

/** The file destination of each logger that writes to `log.file`, for reopenLogger. */
const fileDestinations = new WeakMap<Logger, pino.DestinationStream & { reopen(): void }>()

export function createLogger(opts: LogOptions): Logger {
  const base = { level: opts.level, base: { pid: process.pid } }
  if (isPretty(opts.format, opts.file)) return pino(base, prettyStream(process.stdout))
  const dest = pino.destination({ dest: opts.file ?? 1, sync: false, mkdir: true })
  const log = pino(base, dest)
  if (opts.file !== undefined) fileDestinations.set(log, dest)
  return log
}

/**
 * Opens the logger's file again by its name: after logrotate has renamed it,
 * lines go to a new file at the same path. Lines already written stay in the
 * renamed one. A logger that writes to standard output has nothing to reopen.
 */
export function reopenLogger(log: Logger): void {
  fileDestinations.get(log)?.reopen()
}

/** Error codes that mean the client went away (reset, closed, cancelled its stream), not that the server failed. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_HTTP2_STREAM_ERROR', 'ERR_HTTP2_INVALID_STREAM', 'ABORT_ERR'])

/** 5xx answers that refuse the request rather than report a failure of the server. */
const REFUSALS = new Set<ErrorCode>(['EB_ERR_NOT_IMPLEMENTED', 'EB_ERR_VERSION', 'EB_ERR_SHUTTING_DOWN'])

/**
 * Whether a request's error is a fault of the server (or of its upstreams):
 * a 5xx other than a refusal, or an unexpected exception. What the client
 * caused (a 4xx, a method or version Edgebox does not serve, a client that
 * left: 499) is not.
 */
export function isServerFault(ctx: Context): boolean {
  const err = ctx.error
  if (err instanceof EdgeboxError) return err.status >= 500 && !REFUSALS.has(err.code)
  return !CLIENT_GONE.has(String((err as { code?: unknown } | null)?.code))
}

/**
 * The application log's line for a request that ended with an error: a
 * server fault at error level with its stack; what the client caused at
 * info, one line without a stack (the access log has the request too).
 */
export function logRequestError(log: Logger, ctx: Context): void {
  const fields = { method: ctx.method, path: ctx.rawPath, status: ctx.status, client: ctx.clientAddress }
  if (isServerFault(ctx)) return log.error({ err: ctx.error, ...fields }, 'request failed')
  const reason = String((ctx.error as Error | null)?.message ?? ctx.error)
  log.info({ ...fields, reason }, ctx.status === 499 ? 'client went away' : 'request refused')
}

export interface AccessLog {
  write(ctx: Context, durationMs: number): void
  /**
   * Hands the lines batched so far to the destination, which writes them in
   * order (asynchronously). Not a synchronous write: sonic-boom's flushSync
   * writes its queue while an earlier write may still be in flight, which puts
   * later lines before earlier ones in the file.
   */
  flush(): void
  /** Writes every line still batched or buffered and releases the destination (the server has stopped). */
  close(): Promise<void>
  /** Opens `log.file` again by its name (log rotation); writes the lines batched so far to the old file first. */
  reopen(): void
}

/** The access log's batches: a destination write per this many bytes, from slabs of SLAB_BYTES. */
const BATCH_BYTES = 32 * 1024
const SLAB_BYTES = 256 * 1024

/** The access log. `enabled: false` returns a writer that does nothing. */
export function createAccessLog(opts: LogOptions & { enabled: boolean }): AccessLog {
  if (!opts.enabled) return { write() {}, flush() {}, close: async () => {}, reopen() {} }
  const pretty = isPretty(opts.format, opts.file)
  // JSON lines go to the destination as bytes, a terminal's readable lines as text
  const dest = pino.destination({ dest: opts.file ?? 1, sync: false, mkdir: true, contentMode: pretty ? 'utf8' : 'buffer' })
  const bytes = dest as unknown as { write(chunk: Buffer): boolean }
  const format = pretty ? writePretty : writeJson
  // JSON lines are batched here, not in the destination: each is encoded once, as it comes,
  // into a slab of bytes, and the destination gets a slice of it per ~32 KiB (and at least
  // once a second). Given text, sonic-boom measures the UTF-8 length of the text, then
  // encodes it again to write it. A terminal gets every line at once.
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  /** The slab's bytes before `start` are the destination's; `start` to `used`: lines not written yet. */
  let start = 0
  let used = 0
  const flushBatch = () => {
    if (used === start) return
    bytes.write(slab.subarray(start, used))
    start = used
  }
  const timer = setInterval(flushBatch, 1000).unref()
  const append = pretty
    ? (line: string) => dest.write(line)
    : (line: string) => {
        // room for the line whatever its characters: at most 3 bytes of UTF-8 per UTF-16 unit
        if (used + line.length * 3 > slab.length) {
          flushBatch()
          slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, line.length * 3))
          start = used = 0
        }
        used += slab.write(line, used)
        if (used - start >= BATCH_BYTES) flushBatch()
      }
  const resets = resetSummaries(opts.resetFlood ?? 100, (s) => append(pretty ? prettyResets(s) : jsonResets(s)))
  return {
    write(ctx, durationMs) {
      // a stream the client cancelled, on a connection that cancels too many: counted, not written
      if (ctx.status === 499 && resets.absorb(ctx)) return
      append(format(ctx, durationMs))
    },
    flush() {
      flushBatch()
    },
    close() {
      // The destination's writes are asynchronous: flushSync skips a write still in flight, so a reader
      // of the file right after the server stopped could miss its last lines. end() waits for that write,
      // writes the rest and closes the file (never standard output).
      clearInterval(timer)
      flushBatch()
      return new Promise<void>((resolve) => {
        dest.once('close', () => resolve())
        dest.once('error', () => resolve())
        try {
          dest.end()
        } catch {
          resolve() // closed already
        }
      })
    },
    reopen() {
      if (opts.file === undefined) return
      // the lines of requests before the rotation belong to the old file
      flushBatch()
      dest.reopen()
    },
  }
}

/**
 * One HTTP/2 connection as the access log sees it: the listener ties it to
 * each of the connection's requests (`H2_CONNECTION`) and counts the streams
 * the client resets (src/server/h2-resets.ts).
 */
export interface H2Connection {
  readonly client: string
  readonly proto: string
  /** Streams reset (RST_STREAM) so far. */
  resets: number
  /** The most resets seen within one second. */
  peak: number
  closed: boolean
  /** Called once when the connection closes. */
  onClose: (() => void) | null
}

/** The property of an HTTP/2 request (src/server/h2-exchange.ts) that holds its H2Connection. */
export const H2_CONNECTION = Symbol('edgebox.h2Connection')

/** The summary of a connection whose streams were reset in a flood. */
export interface ResetSummary {
  client: string
  proto: string
  /** Every stream the client reset on the connection, including any logged before the flood began. */
  resets: number
}

/**
 * Rapid reset (CVE-2023-44487): a client opens streams and cancels them at
 * once, and each cancelled stream is a 499 line; a flood of them would be a
 * flood of the access log. Once a connection has reset more than `perSecond`
 * streams within a second, its 499 lines are no longer written, and one
 * summary line is written when the connection closes (or, for requests that
 * finish after that, at once).
 */
export function resetSummaries(perSecond: number, write: (s: ResetSummary) => void): { absorb(ctx: Context): boolean } {
  const summarize = (conn: H2Connection) => write({ client: conn.client, proto: conn.proto, resets: conn.resets })
  const summarized = new WeakSet<H2Connection>()
  return {
    absorb(ctx) {
      const conn = (ctx.req as { [H2_CONNECTION]?: H2Connection })[H2_CONNECTION]
      if (conn === undefined || conn.peak <= perSecond) return false
      if (!summarized.has(conn)) {
        summarized.add(conn)
        if (conn.closed) summarize(conn)
        else conn.onClose = () => summarize(conn)
      }
      return true
    },
  }
}

/**
 * The peer of an HTTP/2 stream that was reset before anything asked for its
 * client address: Node no longer reaches the connection from the stream then,
 * the listener's record of it still does.
 */
function peerOfResetStream(ctx: Context): string {
  return (ctx.req as { [H2_CONNECTION]?: H2Connection })[H2_CONNECTION]?.client ?? ''
}

function jsonResets(s: ResetSummary): string {
  return `{"time":${Date.now()},"msg":"stream resets","client":${jsonString(s.client)},"proto":${jsonString(s.proto)},"resets":${s.resets}}\n`
}

function prettyResets(s: ResetSummary): string {
  return `${new Date().toISOString().slice(11, 19)} stream resets: ${s.resets} from ${s.client} ${s.proto}\n`
}

/** Characters a JSON string must escape; request paths rarely have any. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/

function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`
}

/**
 * A JSON string field's text, kept for the last value seen: a connection's
 * requests repeat their method, host and path (the pipeline hands on the same
 * strings), so the escape test runs when the value changes.
 */
class LastJson {
  private text = '""'
  private last = ''
  of(s: string): string {
    if (s !== this.last) {
      this.text = jsonString(s)
      this.last = s
    }
    return this.text
  }
}
const lastMethod = new LastJson()
const lastHost = new LastJson()
const lastPath = new LastJson()

/** The line's start up to its method, kept for the current millisecond (V8 makes a new string of `Date.now()` each time). */
let prefixTime = -1
let prefixText = ''
function linePrefix(now: number): string {
  if (now !== prefixTime) {
    prefixTime = now
    prefixText = `{"time":${now},"msg":"request","method":`
  }
  return prefixText
}

/** `.001` ... `.999` (trailing zeros dropped) and '' for 0: the fraction of a duration in thousandths. */
const THOUSANDTHS = Array.from({ length: 1000 }, (_, i) => (i === 0 ? '' : '.' + String(i).padStart(3, '0').replace(/0+$/, '')))

/**
 * A duration in milliseconds rounded to three decimals, as
 * `String(Math.round(ms * 1000) / 1000)` writes it, from two whole numbers:
 * V8 writes small integers from a cache, a fraction through its shortest-decimal
 * conversion.
 */
export function formatMs(ms: number): string {
  const us = Math.round(ms * 1000)
  if (!(us >= 0 && us < 1e15)) return String(Math.round(ms * 1000) / 1000)
  const frac = us % 1000
  return (us - frac) / 1000 + THOUSANDTHS[frac]!
}

/**
 * One JSON line, built by hand rather than with JSON.stringify on an object:
 * strings are escaped only when they contain a character that needs it.
 */
export function writeJson(ctx: Context, ms: number): string {
  const line = jsonLine(ctx, ms)
  lastLineOf = ctx
  lastLine = line
  return line
}

/** The answer whose line writeJson made last, and that line: what `accessLine` hands out again. */
let lastLineOf: Context | null = null
let lastLine = ''

/**
 * The access log's JSON line of an answer: the one the access log just wrote
 * for it when it writes JSON lines (made once, however many read it: the
 * admin API's live access log reads it right after), else made now.
 */
export function accessLine(ctx: Context, ms: number): string {
  return lastLineOf === ctx ? lastLine : writeJson(ctx, ms)
}

function jsonLine(ctx: Context, ms: number): string {
  const err = ctx.error ? `,"error":${JSON.stringify(String((ctx.error as Error).message ?? ctx.error))}` : ''
  const upstream = ctx.upstream ? `,"upstream":${jsonString(ctx.upstream)}` : ''
  const cors = (ctx.corsRefused ? `,"cors":${JSON.stringify(`refused: ${ctx.corsRefused}`)}` : '') + (ctx.rateLimited ? ',"rateLimited":true' : '') + (ctx.csrfRefused ? `,"csrf":${JSON.stringify(`refused: ${ctx.csrfRefused}`)}` : '')
  const auth = (ctx.auth ? `,"auth":${jsonString(ctx.auth)}${ctx.user ? `,"user":${jsonString(ctx.user)}` : ''}` : '') + (ctx.pageView ? `,"pv":"${ctx.pageView}"` : '')
  return `${linePrefix(Date.now())}${lastMethod.of(ctx.method)},"host":${lastHost.of(ctx.host)},"path":${lastPath.of(ctx.rawPath)},"status":${ctx.status},"bytes":${ctx.bytes},"ms":${formatMs(ms)},"cache":"${ctx.cache}","proto":"${ctx.protocol}","client":"${ctx.clientAddress || peerOfResetStream(ctx)}"${upstream}${cors}${auth}${err}}\n`
}

function writePretty(ctx: Context, ms: number): string {
  const t = new Date().toISOString().slice(11, 19)
  return `${t} ${ctx.status} ${ctx.method} ${ctx.host}${ctx.rawPath} ${ctx.bytes}B ${ms.toFixed(1)}ms${ctx.cache ? ' ' + ctx.cache : ''}${ctx.upstream ? ' -> ' + ctx.upstream : ''}${ctx.auth ? ` [${ctx.auth}${ctx.user ? ' ' + ctx.user : ''}]` : ''} ${ctx.protocol}\n`
}

/**
 * One catalogue of Edgebox errors. Every error has a stable code; errors that
 * end a request also carry the HTTP status they are answered with. Handlers
 * throw `httpError(...)`; the pipeline turns any error into a response in one
 * place (see pipeline.ts), never leaking a stack trace onto the wire.
 */

export const ERRORS = {
  EB_ERR_BAD_REQUEST: { status: 400, message: 'Bad Request' },
  EB_ERR_HOST_MISSING: { status: 400, message: 'HTTP/1.1 request without a Host header' },
  EB_ERR_HOST_DUPLICATE: { status: 400, message: 'more than one Host header' },
  EB_ERR_BAD_PATH: { status: 400, message: 'request target is not a safe path' },
  EB_ERR_UNAUTHORIZED: { status: 401, message: 'credentials missing or wrong' },
  EB_ERR_FORBIDDEN: { status: 403, message: 'not allowed' },
  EB_ERR_NOT_FOUND: { status: 404, message: 'Not Found' },
  EB_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed here' },
  EB_ERR_TRACE_REFUSED: { status: 405, message: 'TRACE is refused (cross-site tracing)' },
  EB_ERR_REQUEST_TIMEOUT: { status: 408, message: 'request took too long to arrive' },
  EB_ERR_LENGTH_REQUIRED: { status: 411, message: 'Content-Length or chunked body required' },
  EB_ERR_PRECONDITION_FAILED: { status: 412, message: 'Precondition Failed' },
  EB_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body larger than the configured limit' },
  EB_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported Media Type' },
  EB_ERR_RANGE_NOT_SATISFIABLE: { status: 416, message: 'Range Not Satisfiable' },
  EB_ERR_EXPECTATION_FAILED: { status: 417, message: 'unsupported Expect value' },
  EB_ERR_TOO_MANY_REQUESTS: { status: 429, message: 'Too Many Requests' },
  EB_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'request header fields too large' },
  /** Not sent (nobody is listening): the access log's status when the client left first, as nginx logs 499. */
  EB_ERR_CLIENT_CLOSED: { status: 499, message: 'the client closed the connection before the answer' },
  EB_ERR_INTERNAL: { status: 500, message: 'Internal Server Error' },
  EB_ERR_NOT_IMPLEMENTED: { status: 501, message: 'method not implemented by this server' },
  EB_ERR_BAD_GATEWAY: { status: 502, message: 'the upstream server failed' },
  EB_ERR_NO_UPSTREAM: { status: 503, message: 'no healthy upstream is available' },
  EB_ERR_UPSTREAM_BUSY: { status: 503, message: 'no upstream connection became free in time' },
  EB_ERR_BODY_BUFFER_FULL: { status: 503, message: 'no room to buffer the request body now' },
  EB_ERR_GATEWAY_TIMEOUT: { status: 504, message: 'the upstream server timed out' },
  EB_ERR_SHUTTING_DOWN: { status: 503, message: 'server is shutting down' },
  EB_ERR_VERSION: { status: 505, message: 'only HTTP/1.x and HTTP/2 are supported' },
  EB_ERR_INSUFFICIENT_STORAGE: { status: 507, message: 'not enough space to store the request body' },
  EB_ERR_CONFIG: { status: 500, message: 'invalid configuration' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

export class EdgeboxError extends Error {
  readonly code: ErrorCode
  readonly status: number
  /** Extra response headers the error needs (Allow, WWW-Authenticate, Content-Range). */
  readonly headers: Record<string, string>
  constructor(code: ErrorCode, message?: string, headers: Record<string, string> = {}, options?: ErrorOptions) {
    super(message ?? ERRORS[code].message, options)
    this.name = 'EdgeboxError'
    this.code = code
    this.status = ERRORS[code].status
    this.headers = headers
  }
}

export function httpError(code: ErrorCode, message?: string, headers?: Record<string, string>): EdgeboxError {
  return new EdgeboxError(code, message, headers)
}

/** A configuration problem, reported as `path: problem` (e.g. `sites[0].routes[2].static.root: ...`). */
export class ConfigError extends Error {
  readonly code = 'EB_ERR_CONFIG'
  readonly issues: readonly string[]
  constructor(issues: readonly string[]) {
    super(issues.join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

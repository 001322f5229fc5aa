import http2 from 'node:http2'

/** One HTTP/2 exchange as the client sees it: the status, the raw fields in order (`:status` included) and the body as latin1 text. */
export interface H2Answer {
  status: number
  raw: string[]
  body: string
}

/** Sends one request with no body on a new connection to `origin` and reads the whole answer; the connection is closed after it. */
export function h2Answer(origin: string, connect: http2.SecureClientSessionOptions, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin, connect)
    session.on('error', reject)
    const stream = session.request({ ':method': method, ':path': target, ...headers }, { endStream: true })
    let status = 0
    let raw: string[] = []
    let body = ''
    stream.on('response', (h, _flags, rawHeaders: string[]) => {
      status = Number(h[':status'])
      raw = rawHeaders
    })
    stream.setEncoding('latin1')
    stream.on('data', (c: string) => (body += c))
    stream.on('end', () => {
      session.close()
      resolve({ status, raw, body })
    })
    stream.on('error', reject)
  })
}

// The renderer's only HTTP client: GETs to the configured origin and nowhere else, over
// keep-alive connections, with conditional headers, an idle timeout, retries with backoff on
// transient failures, and an optional request rate. It does not follow redirects: the crawler
// records each hop.

import http from 'node:http'
import https from 'node:https'
import {promisify} from 'node:util'
import zlib from 'node:zlib'

import {MirrorError, toMirrorError} from '../errors.js'

const gunzip = promisify(zlib.gunzip)
const inflate = promisify(zlib.inflate)
const inflateRaw = promisify(zlib.inflateRaw)
const brotli = promisify(zlib.brotliDecompress)

export interface FetchOptions {
  origin: string
  headers: Record<string, string>
  userAgent: string
  timeoutMs: number
  retries: number
  concurrency: number
  /** Requests per second at most. */
  rate?: number
  signal?: AbortSignal
}

export interface Conditional {
  etag?: string
  lastModified?: string
}

export interface FetchResponse {
  status: number
  headers: http.IncomingHttpHeaders
  /** The decoded body (empty for 304 and redirects). */
  body: Buffer
  /** Bytes received on the wire. */
  wireBytes: number
}

/** Statuses worth asking again: the origin is busy or a proxy in front of it hiccuped. A 500 is the application's own answer and usually the same next time. */
const RETRY_STATUS = new Set([429, 502, 503, 504])
const NETWORK_RETRY = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET'])
const MAX_RETRY_AFTER_MS = 30_000

export class Fetcher {
  /** Requests sent, retries included. */
  requests = 0
  private readonly origin: URL
  private readonly agent: http.Agent
  private readonly request: typeof http.request
  private nextSlot = 0

  constructor(private readonly options: FetchOptions) {
    this.origin = new URL(options.origin)
    const secure = this.origin.protocol === 'https:'
    // One socket per concurrent request, kept open: most of a crawl's time on a fast origin is handshakes otherwise.
    const agentOptions = {keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency, scheduling: 'fifo' as const}
    this.agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions)
    this.request = secure ? https.request : http.request
  }

  close(): void {
    this.agent.destroy()
  }

  /**
   * GETs `url` (which must be on the origin), retrying transient failures. Resolves with the
   * last response whatever its status; rejects with UNREACHABLE, CONNECTION_LOST or TIMEOUT when
   * no response came, or INTERRUPTED when the signal aborted.
   */
  async get(url: URL, conditional?: Conditional): Promise<FetchResponse> {
    if (url.origin !== this.origin.origin) {
      // A guard, not a feature: the renderer must never send traffic anywhere but the origin.
      throw new MirrorError('INTERNAL', `refusing to fetch ${url.href}: not on the origin ${this.origin.origin}`)
    }
    let attempt = 0
    for (;;) {
      this.throwIfAborted()
      await this.waitForSlot()
      let response: FetchResponse | undefined
      let failure: MirrorError | undefined
      try {
        response = await this.once(url, conditional)
      } catch (error) {
        failure = this.classify(error, url)
        if (failure.code === 'INTERRUPTED') throw failure
      }
      const retryable = failure ? failure.retryable || NETWORK_RETRY.has(errnoOf(failure)) : RETRY_STATUS.has(response!.status)
      if (!retryable || attempt >= this.options.retries) {
        if (failure) throw failure
        return response!
      }
      attempt++
      await this.sleep(backoff(attempt, response?.headers['retry-after']))
    }
  }

  private once(url: URL, conditional?: Conditional): Promise<FetchResponse> {
    this.requests++
    const headers: Record<string, string> = {
      'user-agent': this.options.userAgent,
      accept: '*/*',
      'accept-encoding': 'gzip, deflate, br',
      ...lowerKeys(this.options.headers),
    }
    if (conditional?.etag) headers['if-none-match'] = conditional.etag
    if (conditional?.lastModified) headers['if-modified-since'] = conditional.lastModified
    return new Promise((resolve, reject) => {
      const req = this.request(
        url,
        {method: 'GET', agent: this.agent, headers, signal: this.options.signal},
        (res) => {
          const chunks: Buffer[] = []
          let wireBytes = 0
          res.on('data', (chunk: Buffer) => {
            chunks.push(chunk)
            wireBytes += chunk.length
          })
          res.on('error', reject)
          res.on('aborted', () => reject(Object.assign(new Error('the origin closed the connection mid-response'), {code: 'ECONNRESET'})))
          res.on('end', () => {
            if (!res.complete) {
              reject(Object.assign(new Error('the origin closed the connection mid-response'), {code: 'ECONNRESET'}))
              return
            }
            decode(Buffer.concat(chunks), res.headers['content-encoding'])
              .then((body) => resolve({status: res.statusCode ?? 0, headers: res.headers, body, wireBytes}))
              .catch(reject)
          })
        },
      )
      req.setTimeout(this.options.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer from the origin for ${this.options.timeoutMs / 1000}s`), {code: 'ETIMEDOUT'}))
      })
      req.on('error', reject)
      req.end()
    })
  }

  private classify(error: unknown, url: URL): MirrorError {
    if (this.options.signal?.aborted) return new MirrorError('INTERRUPTED', 'render interrupted')
    const base = toMirrorError(error)
    const code = base.code === 'INTERNAL' ? 'CONNECTION_LOST' : base.code
    return new MirrorError(code, `${url.pathname}${url.search}: ${base.message}`, {cause: error, retryable: true})
  }

  private throwIfAborted(): void {
    if (this.options.signal?.aborted) throw new MirrorError('INTERRUPTED', 'render interrupted')
  }

  /** Spaces requests `1/rate` seconds apart when a rate is set. */
  private async waitForSlot(): Promise<void> {
    if (!this.options.rate) return
    const interval = 1000 / this.options.rate
    const now = Date.now()
    const slot = Math.max(now, this.nextSlot)
    this.nextSlot = slot + interval
    if (slot > now) await this.sleep(slot - now)
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.options.signal
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }, ms)
      const onAbort = () => {
        clearTimeout(timer)
        reject(new MirrorError('INTERRUPTED', 'render interrupted'))
      }
      signal?.addEventListener('abort', onAbort, {once: true})
    })
  }
}

function errnoOf(error: MirrorError): string {
  const cause = (error as {cause?: {code?: string}}).cause
  return cause?.code ?? ''
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
}

/** Exponential backoff with jitter, or the origin's Retry-After when it gives one. */
function backoff(attempt: number, retryAfter: string | undefined): number {
  if (retryAfter) {
    const seconds = Number(retryAfter)
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now()
    if (ms >= 0) return Math.min(ms, MAX_RETRY_AFTER_MS)
  }
  const base = 200 * 2 ** (attempt - 1)
  return base + Math.random() * base
}

async function decode(body: Buffer, encoding: string | undefined): Promise<Buffer> {
  switch (encoding?.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzip(body)
    case 'deflate':
      // Some servers send raw deflate under this name.
      return inflate(body).catch(() => inflateRaw(body))
    case 'br':
      return brotli(body)
    default:
      return body
  }
}

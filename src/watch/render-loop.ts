// `mirror watch --render`: re-renders the origin into the source on an interval, on SIGHUP
// (the command calls `trigger`), or when a local HTTP hook on 127.0.0.1 is POSTed to. One
// render at a time; triggers that arrive during a render are folded into one more render.

import {createServer, type Server} from 'node:http'

import {toMirrorError} from '../errors.js'
import type {WatchEvent} from './events.js'

export interface RenderLoopOptions {
  /** Milliseconds from the end of one render to the start of the next. */
  intervalMs: number
  /** Renders once; resolves with a summary for the event, rejects when the render failed. */
  render: (signal: AbortSignal) => Promise<unknown>
  /** Called before each render; the function it returns is called after it, with the outcome. */
  around: () => (ok: boolean) => void
  onEvent: (event: WatchEvent) => void
  /** Port of the HTTP hook on 127.0.0.1 (0 picks a free one); no hook when undefined. */
  hookPort?: number
  /** What the hook answers on GET /status. */
  status?: () => unknown
}

export class RenderLoop {
  private readonly abort = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private server: Server | undefined
  private running: Promise<void> | undefined
  private again: string | undefined
  private stopped = false

  constructor(private readonly options: RenderLoopOptions) {}

  /** Starts the hook (when asked for) and the first render. Resolves with the hook's URL. */
  async start(): Promise<string | undefined> {
    let url: string | undefined
    if (this.options.hookPort !== undefined) {
      this.server = createServer((request, response) => {
        const send = (status: number, body: unknown) => {
          response.writeHead(status, {'content-type': 'application/json'})
          response.end(`${JSON.stringify(body)}\n`)
        }
        const path = (request.url ?? '/').split('?')[0]
        if (path === '/render' && request.method === 'POST') {
          this.trigger('hook')
          send(202, {ok: true, render: 'queued'})
        } else if (path === '/status' && request.method === 'GET') {
          send(200, {ok: true, rendering: Boolean(this.running), ...(this.options.status?.() as object | undefined)})
        } else if (path === '/render' || path === '/status') {
          send(405, {ok: false, error: 'use POST /render or GET /status'})
        } else {
          send(404, {ok: false, error: 'not found: POST /render or GET /status'})
        }
        request.resume()
      })
      const server = this.server
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.options.hookPort, '127.0.0.1', () => resolve())
      })
      const address = server.address()
      if (typeof address === 'object' && address) url = `http://127.0.0.1:${address.port}/render`
    }
    this.trigger('start')
    return url
  }

  /** Renders now, or right after the render under way. */
  trigger(reason: string): void {
    if (this.stopped) return
    if (this.running) {
      this.again = reason
      return
    }
    clearTimeout(this.timer)
    this.running = this.renderOnce(reason).finally(() => {
      this.running = undefined
      if (this.stopped) return
      const next = this.again
      this.again = undefined
      if (next) this.trigger(next)
      else this.timer = setTimeout(() => this.trigger('interval'), this.options.intervalMs)
    })
  }

  /** Stops the timer and the hook; a render under way is aborted and awaited. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    this.abort.abort()
    const server = this.server
    if (server) {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    await this.running
  }

  private async renderOnce(reason: string): Promise<void> {
    const started = Date.now()
    const after = this.options.around()
    let ok = false
    try {
      const summary = await this.options.render(this.abort.signal)
      ok = true
      this.options.onEvent({event: 'render', ok, reason, durationMs: Date.now() - started, ...(summary === undefined ? {} : {summary})})
    } catch (error) {
      this.options.onEvent({event: 'render', ok, reason, durationMs: Date.now() - started, error: toMirrorError(error).toJSON()})
    } finally {
      after(ok)
    }
  }
}

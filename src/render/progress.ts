// The one-line render progress on a terminal (stderr), redrawn at most every 100 ms. Silent
// when stderr is not a TTY, under CI, or with --json: cron logs and pipes get no bars.

import {formatBytes} from '../ui/format.js'
import type {RenderProgress} from './report.js'

export interface RenderProgressLine {
  update(progress: RenderProgress): void
  done(): void
}

const REDRAW_MS = 100

export function createRenderProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): RenderProgressLine {
  if (!enabled || !stream.isTTY || process.env.CI) return {update() {}, done() {}}
  let last = 0
  let drawn = false
  return {
    update(p) {
      const now = Date.now()
      if (now - last < REDRAW_MS && p.phase === 'crawl') return
      last = now
      const what = p.phase === 'crawl' ? `${p.queued} queued` : p.phase === 'write' ? `writing, ${p.queued} to go` : 'swapping into place'
      const errors = p.errors > 0 ? ` · ${p.errors} errors` : ''
      const line = `render: ${p.pages} pages · ${p.assets} assets · ${p.requests} requests · ${formatBytes(p.bytes)} · ${what}${errors}`
      stream.write(`\r\u001b[2K${line.slice(0, (stream.columns ?? 100) - 1)}`)
      drawn = true
    },
    done() {
      if (drawn) stream.write('\r\u001b[2K')
      drawn = false
    },
  }
}

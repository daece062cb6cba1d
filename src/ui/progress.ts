// A one-line progress display on a terminal (stderr), fed by publish events. Silent when
// stderr is not a TTY, under CI, or with --json: cron logs and pipes get no bars.

import type {PublishEvent} from '../sync/events.js'
import {formatBytes} from './format.js'

export interface Progress {
  onEvent(event: PublishEvent): void
  done(): void
}

const REDRAW_MS = 100

export function createProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!enabled || !stream.isTTY || process.env.CI) return {onEvent() {}, done() {}}
  const totals = new Map<string, {done: number; total: number; state: string}>()
  let bytes = 0
  let last = 0
  let drawn = false
  const draw = (force = false) => {
    const now = Date.now()
    if (!force && now - last < REDRAW_MS) return
    last = now
    const parts = [...totals].map(([name, t]) => `${name} ${t.state === 'sending' ? `${t.done}/${t.total}` : t.state}`)
    const line = `${parts.join(' · ')} · ${formatBytes(bytes)}`
    stream.write(`\r\u001b[2K${line.slice(0, (stream.columns ?? 100) - 1)}`)
    drawn = true
  }
  return {
    onEvent(event) {
      switch (event.type) {
        case 'target-connecting':
          totals.set(event.target, {done: 0, total: 0, state: 'connecting'})
          break
        case 'target-planned': {
          const c = event.plan.counts
          totals.set(event.target, {done: 0, total: c.add + c.update + c.repair + c.delete, state: 'sending'})
          break
        }
        case 'file-done': {
          const t = totals.get(event.target)
          if (t) t.done++
          bytes += event.bytes
          break
        }
        case 'target-done': {
          const t = totals.get(event.target)
          if (t) t.state = event.ok ? 'done' : 'failed'
          break
        }
        default:
          return
      }
      draw()
    },
    done() {
      if (drawn) stream.write('\r\u001b[2K')
    },
  }
}

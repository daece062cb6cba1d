// Text lines for watch events: one line per published batch (what, where, how long), one per
// render, warning or state change. Batches that changed nothing are not printed, except the
// initial publish and reconciles, which say that all is up to date. `--json` does not come here.

import {formatDuration, showPath} from '../ui/format.js'
import type {BatchTarget, WatchEvent} from './events.js'

const SHOWN_PATHS = 3

function clock(date: Date): string {
  return date.toTimeString().slice(0, 8)
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function describeError(error: Record<string, unknown> | undefined): string {
  if (!error) return 'failed'
  const path = typeof error.path === 'string' ? ` (file ${JSON.stringify(error.path)})` : ''
  return `${String(error.message)}${path}`
}

function failure(target: BatchTarget): string {
  const first = target.failed?.[0]
  const why = first ? `${showPath(first.path)}: ${first.message}${target.failed!.length > 1 ? ` (+${target.failed!.length - 1} more)` : ''}` : describeError(target.error)
  const when = target.retryInMs === undefined ? '' : target.retryInMs === 0 ? ', retrying now' : `, retry in ${formatDuration(target.retryInMs)}`
  return `${target.target} FAILED: ${why} (${plural(target.pending, 'change')} kept${when})`
}

/** The line for an event, or undefined when the event is not worth a line. */
export function formatWatchEvent(event: WatchEvent, now = new Date()): string | undefined {
  const at = clock(now)
  switch (event.event) {
    case 'watching': {
      const pending = Object.entries(event.pending).filter(([, n]) => n > 0)
      const parts = [
        `${at} watching ${event.source} → ${event.targets.join(', ')}`,
        `debounce ${formatDuration(event.debounceMs)}`,
        event.reconcileS > 0 ? `reconcile every ${event.reconcileS} s` : 'no reconcile',
      ]
      if (pending.length > 0) parts.push(`left from the last run: ${pending.map(([t, n]) => `${t} ${n}`).join(', ')}`)
      if (event.renderHook) parts.push(`render hook: POST ${event.renderHook}`)
      return parts.join(' · ')
    }
    case 'ready':
      return `${at} source watched (crawled in ${formatDuration(event.durationMs)})`
    case 'batch': {
      const ok = event.targets.filter((t) => t.ok)
      const failed = event.targets.filter((t) => !t.ok)
      if (event.changed === 0 && failed.length === 0 && !['initial', 'reconcile', 'render'].includes(event.kind)) return undefined
      let what: string
      if (ok.length === 0) what = ''
      else if (event.changed === 0) what = 'up to date'
      else {
        const shown = event.paths.slice(0, SHOWN_PATHS).map(showPath).join(', ')
        const more = event.changed > SHOWN_PATHS ? `, +${event.changed - SHOWN_PATHS} more` : ''
        what = `${plural(event.changed, 'file')} (${shown}${more})`
      }
      const sent = ok.reduce((n, t) => n + t.sent, 0)
      const deleted = ok.reduce((n, t) => n + t.deleted, 0)
      const counts = event.changed > 0 ? ` [${[sent > 0 && `${sent} sent`, deleted > 0 && `${deleted} deleted`].filter(Boolean).join(', ') || 'nothing sent'}]` : ''
      const kept = ok.reduce((n, t) => n + t.kept, 0)
      const recovered = ok.filter((t) => t.recovered).map((t) => `${t.target} caught up`)
      const parts = [`${at} ${event.kind}:${what ? ` ${what}` : ''}`]
      if (ok.length > 0) parts.push(`→ ${ok.map((t) => t.target).join(', ')}${counts} in ${formatDuration(event.durationMs)}`)
      let line = parts.join(' ')
      const notes = [...recovered, kept > 0 && `${plural(kept, 'customization')} kept on the slaves`].filter(Boolean)
      if (notes.length > 0) line += ` (${notes.join('; ')})`
      if (failed.length > 0) line += `${ok.length > 0 ? ';' : ''} ${failed.map(failure).join('; ')}`
      return line
    }
    case 'render':
      return event.ok
        ? `${at} render (${event.reason}): done in ${formatDuration(event.durationMs)}`
        : `${at} render (${event.reason}) FAILED after ${formatDuration(event.durationMs)}: ${describeError(event.error)}; the source was left as it was`
    case 'warning': {
      const where = [event.target && `target ${event.target}`, event.path && `file ${JSON.stringify(event.path)}`].filter(Boolean).join(', ')
      return `${at} warning: ${where ? `${where}: ` : ''}${event.message}`
    }
    case 'error':
      return `${at} error: ${describeError(event.error)}`
    case 'stopped': {
      const pending = Object.entries(event.pending).filter(([, n]) => n > 0)
      return pending.length > 0 ? `${at} stopped; kept for the next start: ${pending.map(([t, n]) => `${t} ${plural(n, 'change')}`).join(', ')}` : `${at} stopped`
    }
  }
}

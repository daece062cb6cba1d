// What a render tells its caller: the report (plain data, JSON as is, part of the `--json`
// contract), the progress events, and the human-readable summary. No rendering logic here.

import {formatBytes, formatDuration} from '../ui/format.js'
import type {ExcludeReason} from './scope.js'

export type CutReason = 'depth' | 'pages' | 'calendar'

export interface RenderProgress {
  phase: 'crawl' | 'write' | 'swap'
  /** HTTP requests sent so far (retries included). */
  requests: number
  pages: number
  assets: number
  /** URLs waiting or in flight. */
  queued: number
  errors: number
  /** Body bytes received. */
  bytes: number
}

/** URLs on the origin are written "/path?query"; `origin` says where. */
export interface RenderReport {
  ok: true
  origin: string
  source: string
  startedAt: string
  durationMs: number
  requests: number
  /** Requests the origin answered 304 Not Modified. */
  notModified: number
  /** Body bytes received. */
  bytes: number
  /** HTML pages saved. */
  pages: number
  /** Other files saved (images, CSS, scripts, documents). */
  assets: number
  files: {
    /** Snapshot files written because they are new or their content changed. */
    written: string[]
    /** Snapshot files kept with their previous bytes and mtime. */
    unchanged: number
    /** Files of the previous snapshot that are gone. */
    removed: string[]
  }
  redirects: Array<{url: string; status: number; location: string; file: string}>
  /** Server errors and failed requests; `kept` names the previous file kept in its place. */
  errors: Array<{url: string; status?: number; code: string; message: string; linkedFrom: string[]; kept?: string}>
  /** Links that answered 4xx, with the pages that link them. */
  broken: Array<{url: string; status: number; linkedFrom: string[]}>
  /** URLs not fetched by rule: exclude patterns, built-in exclusions, robots, nofollow, noindex. */
  excluded: Array<{url: string; reason: ExcludeReason; linkedFrom: string[]}>
  /** URLs not fetched because a limit was reached. */
  cutOff: Array<{url: string; reason: CutReason; linkedFrom: string[]}>
  /** Asset file → the page files that embed it (directly or through a stylesheet). */
  embeds: Record<string, string[]>
  /** The nginx redirect map in the snapshot, when one was written. */
  redirectMap?: string
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

function from(linkedFrom: string[]): string {
  if (linkedFrom.length === 0) return ''
  const more = linkedFrom.length > 3 ? ` and ${linkedFrom.length - 3} more` : ''
  return ` (linked from ${linkedFrom.slice(0, 3).join(', ')}${more})`
}

/** The summary `mirror render` prints; lists are cut to `limit` lines each. */
export function formatRenderReport(report: RenderReport, limit = 10): string {
  const lines: string[] = []
  lines.push(
    `Rendered ${report.origin} into ${report.source} in ${formatDuration(report.durationMs)}: ${plural(report.pages, 'page')}, ${plural(report.assets, 'asset')}, ` +
      `${plural(report.requests, 'request')} (${report.notModified} not modified), ${formatBytes(report.bytes)} received.`,
  )
  lines.push(
    `Files: ${report.files.written.length} written, ${report.files.unchanged} unchanged, ${report.files.removed.length} removed.`,
  )
  const section = <T>(title: string, items: T[], line: (item: T) => string) => {
    if (items.length === 0) return
    lines.push('', `${title} (${items.length}):`)
    for (const item of items.slice(0, limit)) lines.push(`  ${line(item)}`)
    if (items.length > limit) lines.push(`  ... ${items.length - limit} more (see --json)`)
  }
  section('Errors', report.errors, (e) => `${e.url}: ${e.status ? `HTTP ${e.status}` : e.message}${from(e.linkedFrom)}${e.kept ? `; kept the previous ${e.kept}` : ''}`)
  section('Broken links', report.broken, (b) => `${b.url}: HTTP ${b.status}${from(b.linkedFrom)}`)
  section('Redirects', report.redirects, (r) => `${r.url} -> ${r.location} (${r.status})`)
  const reasons = new Map<string, number>()
  for (const e of report.excluded) reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1)
  if (reasons.size > 0) {
    lines.push('', `Not fetched by rule: ${[...reasons].map(([reason, n]) => `${n} ${reason}`).join(', ')} (listed in --json).`)
  }
  const limits: Record<CutReason, string> = {depth: 'deeper than render.maxDepth', pages: 'beyond render.maxPages', calendar: 'beyond render.calendarDepth'}
  section('Cut off by limits', report.cutOff, (c) => `${c.url}: ${limits[c.reason]}${from(c.linkedFrom)}`)
  if (report.redirectMap) lines.push('', `Redirect map for nginx: ${report.redirectMap}`)
  return lines.join('\n')
}

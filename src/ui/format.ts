// Text formatting of plans and reports for a terminal or a log: one line per path with a code
// (like rsync -i), then a summary per target. JSON output does not come through here.

import type {PublishResult, TargetOutcome} from '../sync/publish.js'
import type {ActionKind, TargetPlan} from '../sync/plan.js'

const CODES: Record<ActionKind, string> = {
  add: '+ new     ',
  update: '> changed ',
  repair: '* repaired',
  delete: '- deleted ',
  keep: '! kept    ',
  conflict: '! conflict',
  adopt: '= adopted ',
}

/** A path as printed: JSON-quoted when it holds spaces at its ends or control characters. */
export function showPath(path: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]|^\s|\s$/.test(path) ? JSON.stringify(path) : path
}

export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = -1
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

export function summarizePlan(plan: TargetPlan): string {
  const c = plan.counts
  const parts = [
    c.add && `${c.add} new`,
    c.update && `${c.update} changed`,
    c.repair && `${c.repair} repaired`,
    c.delete && `${c.delete} deleted`,
    c.keep && `${c.keep} kept`,
    c.conflict && `${c.conflict} conflict${c.conflict > 1 ? 's' : ''}`,
    c.adopt && `${c.adopt} adopted`,
  ].filter(Boolean)
  const change = parts.length > 0 ? parts.join(', ') : 'nothing to do'
  const extra = [plan.bytes > 0 && `${formatBytes(plan.bytes)} to send`, `${plan.unchanged} unchanged`, plan.protected > 0 && `${plan.protected} protected`]
  return `${change} · ${extra.filter(Boolean).join(' · ')}`
}

/** The itemized plan of one target; at most `limit` path lines. */
export function formatPlan(plan: TargetPlan, limit = Infinity): string {
  const lines = [`${plan.target}  ${plan.url}`]
  for (const action of plan.actions.slice(0, limit)) {
    const reason = action.reason ? `  (${action.reason})` : ''
    lines.push(`  ${CODES[action.kind]}  ${showPath(action.path)}${reason}`)
  }
  if (plan.actions.length > limit) lines.push(`  … and ${plan.actions.length - limit} more (mirror diff lists them all)`)
  lines.push(`  ${summarizePlan(plan)}`)
  return lines.join('\n')
}

function formatOutcome(outcome: TargetOutcome): string {
  const report = outcome.report
  if (!report) return `  ${outcome.target}: FAILED  ${outcome.error?.message ?? ''}`
  const parts = [
    `${report.sent} sent (${formatBytes(report.bytes)})`,
    report.deleted > 0 && `${report.deleted} deleted`,
    report.adopted > 0 && `${report.adopted} adopted`,
    report.kept.length > 0 && `${report.kept.length} kept`,
    formatDuration(report.durationMs),
  ].filter(Boolean)
  const status = report.ok ? 'ok' : 'FAILED'
  const lines = [`  ${outcome.target}: ${status}  ${parts.join(' · ')}`]
  if (!report.ok && outcome.error) lines.push(`    ${outcome.error.message}`)
  for (const f of report.failed.slice(0, 10)) lines.push(`    failed ${showPath(f.path)}: ${f.message}`)
  if (report.failed.length > 10) lines.push(`    … and ${report.failed.length - 10} more failures`)
  return lines.join('\n')
}

/** The report after a publish: one line per target, then failures and kept customizations. */
export function formatReport(result: PublishResult): string {
  const lines = ['Report:']
  for (const outcome of result.targets) lines.push(formatOutcome(outcome))
  const kept = result.targets.flatMap((o) => (o.report?.kept ?? []).map((k) => `    ${o.target}: ${showPath(k.path)} (${k.reason})`))
  if (kept.length > 0) {
    lines.push('  Left alone on the slaves (use --force to overwrite, keeping a backup):')
    lines.push(...kept.slice(0, 50))
    if (kept.length > 50) lines.push(`    … and ${kept.length - 50} more`)
  }
  return lines.join('\n')
}

/** Scan warnings (skipped source files), then each target's (a damaged manifest). */
export function formatWarnings(result: Pick<PublishResult, 'warnings'> & {targets?: readonly TargetOutcome[]}): string[] {
  const lines = result.warnings.map((w) => `warning: ${showPath(w.path)}: ${w.message}`)
  for (const outcome of result.targets ?? []) {
    for (const w of outcome.warnings ?? []) lines.push(`warning: target ${outcome.target}: ${w.message}${w.suggestion ? `\n  ${w.suggestion}` : ''}`)
  }
  return lines
}

/** A target's error as printed on stderr: the target, the file when there is one, what to do. */
export function formatTargetError(target: string, error: NonNullable<TargetOutcome['error']>): string {
  const file = typeof error.path === 'string' ? `, file ${JSON.stringify(error.path)}` : ''
  const suggestion = typeof error.suggestion === 'string' ? `\n  ${error.suggestion}` : ''
  return `mirror: target ${target}${file}: ${String(error.message)}${suggestion}`
}

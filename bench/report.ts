// Turns the modules' sections into the markdown report, and formats numbers for its cells.

import type {Section} from './types.js'

export function markdownTable(section: Section): string {
  const lines: string[] = [`### ${section.title}`, '']
  if (section.intro?.length) lines.push(...section.intro, '')
  const escape = (cell: string) => cell.replace(/\|/g, '\\|')
  lines.push(`| ${section.headers.map(escape).join(' | ')} |`)
  lines.push(`|${section.headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`)
  for (const row of section.rows) lines.push(`| ${row.map(escape).join(' | ')} |`)
  if (section.notes?.length) lines.push('', ...section.notes)
  return lines.join('\n')
}

export function seconds(ms: number | undefined): string {
  if (ms === undefined) return '–'
  const s = ms / 1000
  return s < 10 ? s.toFixed(2) : s.toFixed(1)
}

/** "1.23 [1.10–1.40]": median with min and max over the runs, seconds. */
export function secondsSpread(median: number | undefined, values: number[]): string {
  if (median === undefined) return '–'
  if (values.length < 2) return seconds(median)
  return `${seconds(median)} [${seconds(Math.min(...values))}–${seconds(Math.max(...values))}]`
}

/** Decimal megabytes. */
export function megabytes(bytes: number | undefined): string {
  if (bytes === undefined) return '–'
  const mb = bytes / 1e6
  return mb >= 100 ? mb.toFixed(0) : mb >= 1 ? mb.toFixed(1) : mb.toFixed(3)
}

export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0) return undefined
  return a / b
}

export function ratioText(value: number | undefined, goal?: number): string {
  if (value === undefined) return '–'
  const text = value.toFixed(2)
  if (goal === undefined) return text
  return `${text} ${value <= goal ? '(met)' : '(not met)'}`
}

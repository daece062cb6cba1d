// Cron schedules ("*/10 * * * *", "@hourly"): checked before anything is installed, and turned
// into a systemd OnCalendar= value for `mirror schedule add --systemd`. Pure.

import {MirrorError} from '../errors.js'

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
const SYSTEMD_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']

interface FieldSpec {
  name: string
  min: number
  max: number
  names?: string[]
}

const FIELDS: FieldSpec[] = [
  {name: 'minute', min: 0, max: 59},
  {name: 'hour', min: 0, max: 23},
  {name: 'day of month', min: 1, max: 31},
  {name: 'month', min: 1, max: 12, names: MONTHS},
  // 7 is Sunday too, as in every cron.
  {name: 'day of week', min: 0, max: 7, names: DAYS},
]

/** A parsed field: `all` for "*", else the sorted values it matches. */
type Field = {all: true} | {all: false; values: number[]}

function invalid(schedule: string, why: string): MirrorError {
  return new MirrorError('USAGE', `"${schedule}" is not a cron schedule: ${why}`, {
    suggestion: 'Give five fields, minute hour day-of-month month day-of-week, e.g. "*/10 * * * *" (every 10 minutes), or @hourly / @daily.',
  })
}

function parseValue(text: string, spec: FieldSpec, schedule: string): number {
  const named = spec.names?.indexOf(text.toLowerCase()) ?? -1
  const value = named >= 0 ? named + (spec.min === 1 ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isInteger(value) || value < spec.min || value > spec.max) {
    throw invalid(schedule, `${spec.name} "${text}" is not between ${spec.min} and ${spec.max}`)
  }
  return value
}

function parseField(text: string, spec: FieldSpec, schedule: string): Field {
  if (text === '*') return {all: true}
  const values = new Set<number>()
  for (const part of text.split(',')) {
    const [range, stepText, extra] = part.split('/')
    if (extra !== undefined || range === '') throw invalid(schedule, `${spec.name} "${text}" is malformed`)
    let step = 1
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw invalid(schedule, `${spec.name} step "/${stepText}" must be a positive number`)
      step = Number(stepText)
    }
    let from: number
    let to: number
    if (range === '*') {
      from = spec.min
      to = spec.name === 'day of week' ? 6 : spec.max
    } else if (range.includes('-')) {
      const [a, b, more] = range.split('-')
      if (more !== undefined) throw invalid(schedule, `${spec.name} "${text}" is malformed`)
      from = parseValue(a, spec, schedule)
      to = parseValue(b, spec, schedule)
      if (to < from) throw invalid(schedule, `${spec.name} range "${range}" runs backwards`)
    } else {
      from = parseValue(range, spec, schedule)
      // "5/15" means from 5 to the end, every 15 (as Vixie cron reads it).
      to = stepText !== undefined ? spec.max : from
    }
    for (let v = from; v <= to; v += step) values.add(spec.name === 'day of week' && v === 7 ? 0 : v)
  }
  return {all: false, values: [...values].sort((a, b) => a - b)}
}

export interface CronSchedule {
  /** The five fields as given (a nickname expanded). */
  fields: string[]
  /** What goes into the crontab: the schedule as given, whitespace normalized. */
  text: string
}

/** Checks a cron schedule; throws USAGE naming the field that is wrong. `@reboot` is accepted. */
export function parseCronSchedule(schedule: string): CronSchedule & {parsed?: Field[]} {
  const text = schedule.trim().replace(/\s+/g, ' ')
  if (text === '@reboot') return {fields: [], text}
  const expanded = NICKNAMES[text.toLowerCase()] ?? text
  if (expanded.startsWith('@')) throw invalid(schedule, `unknown nickname ${text}`)
  const fields = expanded.split(' ')
  if (fields.length !== 5) throw invalid(schedule, `it has ${fields.length} field${fields.length === 1 ? '' : 's'}, cron needs 5`)
  const parsed = fields.map((field, i) => parseField(field, FIELDS[i], schedule))
  return {fields, text, parsed}
}

const two = (n: number) => String(n).padStart(2, '0')

function calendarList(field: Field, pad: boolean): string {
  if (field.all) return '*'
  return field.values.map((v) => (pad ? two(v) : String(v))).join(',')
}

/**
 * The systemd OnCalendar= value that fires when the cron schedule does. Lists are written out
 * in full, which every systemd version reads. Cron fires when either the day of month or the day
 * of week matches if both are restricted; systemd needs both, so that combination is refused.
 */
export function toOnCalendar(schedule: string): string {
  const parsed = parseCronSchedule(schedule)
  if (!parsed.parsed) throw invalid(schedule, '@reboot has no systemd timer equivalent (use OnBootSec= in a timer of your own)')
  const [minute, hour, dom, month, dow] = parsed.parsed
  if (!dom.all && !dow.all) {
    throw new MirrorError('USAGE', `"${schedule}" restricts both the day of month and the day of week, which cron and systemd read differently`, {
      suggestion: 'Restrict only one of them for --systemd, or use the crontab entry instead.',
    })
  }
  const days = dow.all ? '' : `${dow.values.map((d) => SYSTEMD_DAYS[d]).join(',')} `
  return `${days}*-${calendarList(month, true)}-${calendarList(dom, true)} ${calendarList(hour, true)}:${calendarList(minute, true)}:00`
}

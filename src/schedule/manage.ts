// `mirror schedule add / list / remove`: the domain side. Builds mirror's entry for a config
// (absolute node, bin/run.js, config and log paths), installs it in the crontab or as systemd
// units, lists and removes it. Returns data; the command prints it.

import {join} from 'node:path'

import type {Config} from '../config/load.js'
import {parseCronSchedule} from './cron-expr.js'
import {buildEntry, findEntries, removeEntry, setEntry, type CronEntry, type Crontab} from './crontab.js'
import {BIN_RUN} from './scheduled-run.js'
import {listUnits, removeUnits, renderUnits, writeUnits} from './systemd.js'

export function defaultLog(config: Config): string {
  return join(config.stateDir, 'schedule.log')
}

export interface AddResult {
  kind: 'cron' | 'systemd'
  schedule: string
  config: string
  /** The crontab line, for cron. */
  line?: string
  /** True when an entry for this config was replaced. */
  replaced?: boolean
  log?: string
  /** Unit files written, for systemd. */
  files?: string[]
  /** What the user runs next (systemd). */
  next?: string
}

export async function addCron(config: Config, crontab: Crontab, schedule: string, log = defaultLog(config)): Promise<AddResult> {
  const {text} = parseCronSchedule(schedule)
  const line = buildEntry({schedule: text, node: process.execPath, bin: BIN_RUN, config: config.file, log})
  const table = await crontab.read()
  const next = setEntry(table, line, config.file)
  await crontab.write(next.table)
  return {kind: 'cron', schedule: text, config: config.file, line, replaced: next.replaced, log}
}

export async function addSystemd(config: Config, schedule: string, dir: string): Promise<AddResult> {
  const {text} = parseCronSchedule(schedule)
  const units = await renderUnits({schedule: text, node: process.execPath, bin: BIN_RUN, config: config.file, dir})
  await writeUnits(units)
  return {
    kind: 'systemd',
    schedule: text,
    config: config.file,
    files: [units.service.path, units.timer.path],
    next: `systemctl --user daemon-reload && systemctl --user enable --now ${units.name}.timer`,
  }
}

export interface ListResult {
  cron: Array<CronEntry & {current: boolean}>
  systemd: Array<{name: string; config: string; calendar: string; path: string; current: boolean}>
}

export async function listSchedules(configFile: string | undefined, crontab: Crontab, unitDir: string | undefined): Promise<ListResult> {
  const cron = findEntries(await crontab.read()).map((e) => ({...e, current: e.config === configFile}))
  const systemd = unitDir ? (await listUnits(unitDir)).map((u) => ({...u, current: u.config === configFile})) : []
  return {cron, systemd}
}

export async function removeCron(crontab: Crontab, configFile: string | undefined): Promise<number> {
  const table = await crontab.read()
  const next = removeEntry(table, configFile)
  if (next.removed > 0) await crontab.write(next.table)
  return next.removed
}

export {removeUnits}

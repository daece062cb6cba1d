// A systemd service + timer pair that runs the scheduled publish, for users who prefer timers to
// cron: rendered from templates/systemd/ and written to ~/.config/systemd/user/ (or a directory
// given). Writing the files is all: enabling them is the user's `systemctl --user` call.

import {createHash} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {homedir} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {toOnCalendar} from './cron-expr.js'

const TEMPLATES = join(dirname(fileURLToPath(import.meta.url)), '../../templates/systemd')

export function defaultUnitDir(): string {
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'systemd', 'user')
}

/** The unit name for a config: readable, and unique per config path. */
export function unitName(config: string): string {
  const project = basename(dirname(config)).replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '') || 'site'
  const key = createHash('sha256').update(config).digest('hex').slice(0, 8)
  return `mirror-${project.slice(0, 40)}-${key}`
}

/** Quotes a word for ExecStart=: double quotes, backslash escapes, % doubled (a specifier). */
function systemdQuote(word: string): string {
  const escaped = word.replace(/%/g, '%%')
  return /^[A-Za-z0-9_\/.,:=@+-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`
}

export interface UnitFiles {
  name: string
  service: {path: string; text: string}
  timer: {path: string; text: string}
}

export async function renderUnits(options: {schedule: string; node: string; bin: string; config: string; dir: string}): Promise<UnitFiles> {
  const name = unitName(options.config)
  const calendar = toOnCalendar(options.schedule)
  const command = [options.node, options.bin, 'schedule', 'run', '--config', options.config].map(systemdQuote).join(' ')
  const config = options.config.replace(/\n/g, ' ')
  // Description= expands specifiers: a % in the path is written %%.
  const values: Record<string, string> = {name, config, description: config.replace(/%/g, '%%'), schedule: options.schedule, calendar, command}
  const fill = (text: string) => text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => values[key] ?? '')
  const [service, timer] = await Promise.all(['mirror-publish.service', 'mirror-publish.timer'].map((file) => fs.readFile(join(TEMPLATES, file), 'utf8')))
  return {
    name,
    service: {path: join(options.dir, `${name}.service`), text: fill(service)},
    timer: {path: join(options.dir, `${name}.timer`), text: fill(timer)},
  }
}

export async function writeUnits(units: UnitFiles): Promise<void> {
  await fs.mkdir(dirname(units.service.path), {recursive: true})
  for (const file of [units.service, units.timer]) {
    const temp = `${file.path}.tmp`
    await fs.writeFile(temp, file.text)
    await fs.rename(temp, file.path)
  }
}

/** Removes the pair for `config` from `dir`; returns the files removed. */
export async function removeUnits(config: string, dir: string): Promise<string[]> {
  const name = unitName(config)
  const removed: string[] = []
  for (const file of [`${name}.timer`, `${name}.service`]) {
    const path = join(dir, file)
    try {
      await fs.rm(path)
      removed.push(path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
  }
  return removed
}

/** mirror's timers in `dir`, with the config and calendar each one was written for. */
export async function listUnits(dir: string): Promise<Array<{name: string; config: string; calendar: string; path: string}>> {
  const names = await fs.readdir(dir).catch(() => [] as string[])
  const out = []
  for (const file of names.filter((n) => n.startsWith('mirror-') && n.endsWith('.timer')).sort()) {
    const text = await fs.readFile(join(dir, file), 'utf8').catch(() => '')
    const config = /^# Written by `mirror schedule add --systemd` for (.*)\.$/m.exec(text)?.[1]
    if (!config) continue
    out.push({name: file.slice(0, -'.timer'.length), config, calendar: /^OnCalendar=(.*)$/m.exec(text)?.[1] ?? '?', path: join(dir, file)})
  }
  return out
}

// mirror's entry in the user's crontab, read and written through the `crontab` command (never
// by editing spool files). Every other line of the table is kept byte for byte; mirror's entry
// ends with a `# mirror:<config path>` marker, so adding again for the same config replaces it.
// MIRROR_CRONTAB names another command with crontab's `-l` / `-` interface (tests use a fake).

import {spawn} from 'node:child_process'

import {MirrorError} from '../errors.js'

const MARK = '# mirror:'

export interface CronEntry {
  /** The schedule fields ("*\/10 * * * *" or "@hourly"). */
  schedule: string
  /** Absolute path of the config the entry publishes. */
  config: string
  /** The log file the entry appends to, when it names one. */
  log?: string
  /** The whole line as it is in the table. */
  line: string
}

export interface EntryParts {
  schedule: string
  /** Absolute path of the node binary. */
  node: string
  /** Absolute path of mirror's bin/run.js. */
  bin: string
  config: string
  log: string
}

/** Quotes a word for sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\/.,:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** cron turns an unescaped % in the command into a newline: escape every one. */
function cronEscape(text: string): string {
  return text.replace(/%/g, '\\%')
}

function cronUnescape(text: string): string {
  return text.replace(/\\%/g, '%')
}

/**
 * The crontab line: absolute node, bin/run.js and config (cron's PATH and working directory are
 * not the user's), the run appending to its own log and printing only on failure, so that cron
 * mails the owner exactly when something went wrong.
 */
export function buildEntry(parts: EntryParts): string {
  const command = [parts.node, parts.bin, 'schedule', 'run', '--config', parts.config, '--log', parts.log].map(shellQuote).join(' ')
  return `${parts.schedule} ${cronEscape(command)} ${cronEscape(`${MARK}${parts.config}`)}`
}

/** mirror's entries in a table. */
export function findEntries(table: string): CronEntry[] {
  const entries: CronEntry[] = []
  for (const line of table.split('\n')) {
    const entry = parseEntry(line)
    if (entry) entries.push(entry)
  }
  return entries
}

function parseEntry(line: string): CronEntry | undefined {
  const trimmed = line.trim()
  if (trimmed.startsWith('#')) return undefined
  const at = line.lastIndexOf(` ${cronEscape(MARK)}`)
  if (at < 0) return undefined
  const config = cronUnescape(line.slice(at + 1 + MARK.length))
  const fields = trimmed.split(/\s+/)
  const schedule = fields[0].startsWith('@') ? fields[0] : fields.slice(0, 5).join(' ')
  const log = /--log ('(?:[^']|'\\'')*'|\S+)/.exec(cronUnescape(line.slice(0, at)))?.[1]
  return {schedule, config, line, ...(log ? {log: unquote(log)} : {})}
}

function unquote(word: string): string {
  return word.startsWith("'") ? word.slice(1, -1).replace(/'\\''/g, "'") : word
}

/** The table with mirror's entry for `config` replaced by `line` (or appended). */
export function setEntry(table: string, line: string, config: string): {table: string; replaced: boolean} {
  const {lines, removed} = without(table, config)
  lines.push(line)
  return {table: `${lines.join('\n')}\n`, replaced: removed > 0}
}

/** The table without mirror's entry for `config` (every mirror entry with `all`). */
export function removeEntry(table: string, config: string | undefined): {table: string; removed: number} {
  const {lines, removed} = without(table, config)
  return {table: lines.length > 0 ? `${lines.join('\n')}\n` : '', removed}
}

function without(table: string, config: string | undefined): {lines: string[]; removed: number} {
  const lines = table.split('\n')
  // split leaves one empty string after the final newline: not a line of the table.
  if (lines.at(-1) === '') lines.pop()
  const kept = lines.filter((line) => {
    const entry = parseEntry(line)
    return !entry || (config !== undefined && entry.config !== config)
  })
  return {lines: kept, removed: lines.length - kept.length}
}

export interface Crontab {
  /** The command used, for messages. */
  command: string
  /** The current table ('' when the user has none). */
  read(): Promise<string>
  /** Installs `table` as the user's crontab. */
  write(table: string): Promise<void>
}

/** The user's crontab, through `crontab` (or the command MIRROR_CRONTAB names). */
export function systemCrontab(env: NodeJS.ProcessEnv = process.env): Crontab {
  const command = env.MIRROR_CRONTAB || 'crontab'
  return {
    command,
    async read() {
      const r = await run(command, ['-l'])
      if (r.code === 0) return r.stdout
      // crontab says so when the user has no table yet: that is an empty one.
      if (/no crontab/i.test(r.stderr)) return ''
      throw new MirrorError('PERMISSION_DENIED', `\`${command} -l\` failed: ${r.stderr.trim() || `exit ${r.code}`}`, {
        suggestion: 'Check that this user may use cron (/etc/cron.allow, /etc/cron.deny), or use --systemd.',
      })
    },
    async write(table) {
      const r = await run(command, ['-'], table)
      if (r.code !== 0) {
        throw new MirrorError('PERMISSION_DENIED', `\`${command} -\` refused the new table: ${r.stderr.trim() || `exit ${r.code}`}`, {
          suggestion: 'Your crontab was left as it was. Check the schedule, and that this user may use cron.',
        })
      }
    },
  }
}

function run(command: string, args: string[], input?: string): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    child.on('error', (error) => {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT'
      reject(
        new MirrorError('USAGE', missing ? `\`${command}\` not found` : `could not run \`${command}\`: ${error.message}`, {
          suggestion: missing ? 'Install cron (e.g. apt-get install cron), or use --systemd for a systemd timer.' : undefined,
        }),
      )
    })
    child.on('close', (code) => resolve({code, stdout, stderr}))
    if (input !== undefined) child.stdin!.end(input)
  })
}

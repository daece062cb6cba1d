// What a cron entry (or the systemd service) runs: `mirror publish` for one config, under a
// master-side lock so that a run finding the previous one still running skips instead of piling
// up. The publish runs as a child process (`--json`, no terminal, no bars); its concise report
// goes to the log between a timestamped header and footer. Only a failure is also printed on
// stderr, so cron mails the owner exactly then, and the exit code is publish's own.

import {spawn} from 'node:child_process'
import {createWriteStream, type WriteStream} from 'node:fs'
import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {Config} from '../config/load.js'
import {ExitCode} from '../errors.js'
import type {PublishResult} from '../sync/publish.js'
import {formatReport, formatWarnings} from '../ui/format.js'
import {acquireLocalLock} from './local-lock.js'

export const BIN_RUN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/run.js')

/** A log past this size is moved to `<log>.1` before a run (one old generation is kept). */
const LOG_ROTATE_BYTES = 1 << 20
/** A previous run older than this is reported on stderr (cron mails it), not only logged. */
const STUCK_MS = 60 * 60 * 1000

export interface ScheduledRunOptions {
  /** Append to this file; without it the report goes to stdout (the systemd journal). */
  log?: string
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
}

export function scheduleLockFile(config: Config): string {
  return join(config.stateDir, 'schedule.lock')
}

/** Runs one scheduled publish; resolves with the exit code to use. */
export async function scheduledRun(config: Config, options: ScheduledRunOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout
  const stderr = options.stderr ?? process.stderr
  const out = options.log ? await openLog(options.log) : undefined
  const write = (text: string) => (out ? out.write(text) : stdout.write(text))
  const started = Date.now()
  const stamp = () => new Date().toISOString()
  try {
    const attempt = await acquireLocalLock(scheduleLockFile(config), 'mirror schedule run')
    if (!attempt.ok) {
      const held = attempt.heldBy
      const line = `skipped: the previous scheduled publish of ${config.file} (pid ${held.pid}, started ${held.since}) is still running`
      write(`${stamp()} ${line}\n`)
      if (Date.now() - Date.parse(held.since) > STUCK_MS) stderr.write(`mirror: ${line}; it has been running for over an hour, check it.\n`)
      return ExitCode.OK
    }
    try {
      write(`${stamp()} scheduled publish of ${config.file} (pid ${process.pid})\n`)
      // (A lock a killed run left on a slave is taken over by publish itself.)
      const run = await publishChild(config)
      const {result, code} = run
      if (result) {
        for (const line of formatWarnings(result)) write(`${line}\n`)
        write(`${formatReport(result)}\n`)
      } else if (run.error) {
        write(`mirror: ${describe(run.error)}\n`)
      }
      if (run.noise) write(run.noise)
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      write(`${stamp()} finished: ${code === 0 ? 'ok' : 'FAILED'} (exit ${code}) in ${seconds} s\n\n`)
      if (code !== 0) {
        const where = options.log ? `; the full report is in ${options.log}` : ''
        const why = result
          ? result.targets.filter((o) => o.error).map((o) => `  target ${o.target}: ${describe(o.error!)}\n`)
          : [run.error ? `  ${describe(run.error)}\n` : run.noise]
        stderr.write(`mirror: scheduled publish of ${config.file} failed (exit ${code})${where}\n${why.join('')}`)
      }
      return code
    } finally {
      await attempt.lock.release()
    }
  } finally {
    if (out) await new Promise<void>((resolve) => out.end(() => resolve()))
  }
}

type ErrorJson = {message?: unknown; suggestion?: unknown}

function describe(error: ErrorJson): string {
  return `${String(error.message)}${typeof error.suggestion === 'string' ? ` (${error.suggestion})` : ''}`
}

async function openLog(file: string): Promise<WriteStream> {
  await fs.mkdir(dirname(file), {recursive: true})
  const size = await fs.stat(file).then((s) => s.size).catch(() => 0)
  if (size > LOG_ROTATE_BYTES) await fs.rename(file, `${file}.1`).catch(() => {})
  return createWriteStream(file, {flags: 'a'})
}

interface ChildRun {
  code: number
  /** The publish result (`publish --json`), when it got that far. */
  result?: PublishResult
  /** The error document `publish --json` prints when it stopped before publishing. */
  error?: ErrorJson
  /** Anything else the child printed (stderr, or stdout that was not JSON): kept for the log. */
  noise: string
}

/** `mirror publish --json` for the config, as a child without a terminal. */
function publishChild(config: Config): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN_RUN, 'publish', '--config', config.file, '--json'], {
      cwd: config.dir,
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    // Our own SIGTERM (systemd stopping the unit) reaches the child too: it stops cleanly.
    const forward = () => child.kill('SIGTERM')
    process.once('SIGTERM', forward)
    const done = (code: number | null) => {
      process.off('SIGTERM', forward)
      let doc: (PublishResult & {error?: undefined}) | {targets?: undefined; error?: ErrorJson} | undefined
      try {
        doc = JSON.parse(stdout) as typeof doc
      } catch {
        stderr = stdout + stderr
      }
      // The error document repeats on stderr as "mirror: ..."; the report says it once.
      if (doc?.error) stderr = stderr.split('\n').filter((line) => !line.startsWith('mirror: ') && !line.startsWith('  ')).join('\n')
      resolve({code: code ?? ExitCode.FAILED, result: Array.isArray(doc?.targets) ? (doc as PublishResult) : undefined, error: doc?.error, noise: stderr})
    }
    child.on('error', (error) => {
      stderr += `${error.message}\n`
      done(ExitCode.FAILED)
    })
    child.on('close', done)
  })
}

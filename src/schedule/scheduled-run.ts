// What a cron entry (or the systemd service) runs: `mirror publish` for one config, under a
// master-side lock so that a run finding the previous one still running skips instead of piling
// up. The publish runs as a child process without a terminal (no bars); its report goes to the
// log with a timestamped header and footer. Only a failure is also printed on stderr, so cron
// mails the owner exactly then, and the exit code is publish's own.

import {spawn} from 'node:child_process'
import {createWriteStream, type WriteStream} from 'node:fs'
import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {Config} from '../config/load.js'
import {ExitCode} from '../errors.js'
import {createTarget} from '../targets/index.js'
import {staleLockOwner} from '../watch/stale-lock.js'
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
      const line = `${stamp()} skipped: the previous scheduled publish of ${config.file} (pid ${held.pid}, started ${held.since}) is still running\n`
      write(line)
      if (Date.now() - Date.parse(held.since) > STUCK_MS) stderr.write(`mirror: ${line.slice(line.indexOf(' ') + 1)}  It has been running for over an hour; check it.\n`)
      return ExitCode.OK
    }
    try {
      write(`${stamp()} scheduled publish of ${config.file} (pid ${process.pid})\n`)
      let run = await publishChild(config, [], write)
      if (run.code === ExitCode.LOCKED || run.code === ExitCode.PARTIAL) {
        // A run killed mid-publish (a reboot, SIGKILL) leaves its locks on the slaves; they name
        // a pid of this machine that is gone. Take those over and publish those targets again.
        const stale = await staleTargets(config)
        if (stale.length > 0) {
          write(`${stamp()} taking over stale locks of ${stale.join(', ')} (left by a mirror that is no longer running)\n`)
          const again = await publishChild(config, [...stale.flatMap((t) => ['--target', t]), '--break-lock'], write)
          if (run.code === ExitCode.LOCKED) run = again
          else run = {...run, stderr: run.stderr + again.stderr}
        }
      }
      const code = run.code ?? ExitCode.FAILED
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      write(`${stamp()} finished: ${code === 0 ? 'ok' : 'FAILED'} (exit ${code}) in ${seconds} s\n\n`)
      if (code !== 0) {
        const where = options.log ? `; the full report is in ${options.log}` : ''
        stderr.write(`mirror: scheduled publish of ${config.file} failed (exit ${code})${where}\n${run.stderr}`)
      }
      return code
    } finally {
      await attempt.lock.release()
    }
  } finally {
    if (out) await new Promise<void>((resolve) => out.end(() => resolve()))
  }
}

async function openLog(file: string): Promise<WriteStream> {
  await fs.mkdir(dirname(file), {recursive: true})
  const size = await fs.stat(file).then((s) => s.size).catch(() => 0)
  if (size > LOG_ROTATE_BYTES) await fs.rename(file, `${file}.1`).catch(() => {})
  return createWriteStream(file, {flags: 'a'})
}

/** `mirror publish` for the config, as a child without a terminal; its output goes to `write`. */
function publishChild(config: Config, extra: string[], write: (text: string) => void): Promise<{code: number | null; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN_RUN, 'publish', '--config', config.file, ...extra], {
      cwd: config.dir,
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stdout.on('data', (chunk) => write(chunk.toString()))
    child.stderr.on('data', (chunk) => {
      stderr += chunk
      write(chunk.toString())
    })
    // Our own SIGTERM (systemd stopping the unit) reaches the child too: it stops cleanly.
    const forward = () => child.kill('SIGTERM')
    process.once('SIGTERM', forward)
    child.on('error', (error) => {
      stderr += `${error.message}\n`
      resolve({code: ExitCode.FAILED, stderr})
    })
    child.on('close', (code) => {
      process.off('SIGTERM', forward)
      resolve({code, stderr})
    })
  })
}

async function staleTargets(config: Config): Promise<string[]> {
  const stale: string[] = []
  await Promise.all(
    config.targets.map(async (targetConfig) => {
      const target = await createTarget(targetConfig, config)
      try {
        await target.connect()
        if (await staleLockOwner(target)) stale.push(target.name)
      } catch {
        // Unreachable now: the publish already reported it.
      } finally {
        await target.close()
      }
    }),
  )
  return stale.sort()
}

// How the benchmark measures a tool run: wall time (monotonic clock around the process), peak
// RSS (GNU time's %M, else polling /proc), and bytes on the wire (the loopback interface's
// counters in the private network namespace the launcher puts the benchmark in; behind an
// emulated link, the relays' counts: see link.ts).

import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export interface ProcessRun {
  wallMs: number
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  stdout: string
  stderr: string
  /** Peak resident set size, KiB: GNU time's (the command and its waited-for children), else the largest polled VmHWM in its process group. */
  peakRssKb?: number
}

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  timeoutMs: number
  /** Measure peak RSS (through /usr/bin/time when present, and by polling /proc). */
  rss?: boolean
}

const GNU_TIME = '/usr/bin/time'

/** Process groups of the tool runs in progress, so an interrupted benchmark stops exactly those. */
const running = new Set<number>()

/** Kills the process group of every tool run still in progress (each led by a child this module started). */
export function killRunning(): void {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  running.clear()
}

/**
 * Runs one command to completion (or kills its process group at the timeout) and measures it.
 * The child leads its own process group, so a timeout stops exactly what this call started.
 */
export function runProcess(cmd: string, args: string[], options: RunOptions): Promise<ProcessRun> {
  const useTime = Boolean(options.rss) && existsSync(GNU_TIME)
  const timeDir = useTime ? mkdtempSync(join(tmpdir(), 'mirror-bench-time-')) : undefined
  const timeFile = timeDir ? join(timeDir, 'rss') : undefined
  const argv = useTime ? [GNU_TIME, '-f', '%M', '-o', timeFile!, cmd, ...args] : [cmd, ...args]
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(argv[0], argv.slice(1), {cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    if (child.pid) running.add(child.pid)
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    let timedOut = false
    let polledPeak = 0
    // Polled as well as GNU time's count: a run killed at the timeout takes time's report with it.
    const poll = options.rss
      ? setInterval(() => {
          polledPeak = Math.max(polledPeak, groupPeakKb(child.pid))
        }, 1000)
      : undefined
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }, options.timeoutMs)
    child.once('error', (error) => {
      if (child.pid) running.delete(child.pid)
      clearTimeout(timer)
      if (poll) clearInterval(poll)
      reject(error)
    })
    child.once('close', (code, signal) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6
      if (child.pid) running.delete(child.pid)
      clearTimeout(timer)
      if (poll) clearInterval(poll)
      let peakRssKb: number | undefined = polledPeak || undefined
      if (timeFile) {
        const polled = peakRssKb
        // GNU time writes "Command exited with non-zero status N" first when the command failed.
        const lines = existsSync(timeFile) ? readFileSync(timeFile, 'utf8').trim().split('\n') : []
        const last = Number(lines.at(-1))
        peakRssKb = Number.isFinite(last) && last > 0 ? last : polled
        rmSync(timeDir!, {recursive: true, force: true})
        // time exits with the command's status; a signal shows as 128+n.
        if (code !== null && code > 128 && lines.some((l) => l.startsWith('Command terminated by signal'))) code = null
      }
      resolve({wallMs, code, signal, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), peakRssKb})
    })
  })
}

/** The largest VmHWM (peak RSS) among the processes of the process group `pgid`, KiB. */
function groupPeakKb(pgid: number | undefined): number {
  if (!pgid) return 0
  let peak = 0
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return 0
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // pgrp is the 3rd field after the command name (which may hold spaces and parentheses).
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${name}/status`, 'utf8'))
      if (match) peak = Math.max(peak, Number(match[1]))
    } catch {
      // The process ended while we looked.
    }
  }
  return peak
}

/** Counts the bytes between the tools and the slaves: both directions of every connection. */
export interface WireCounter {
  /** How bytes are counted, for the report. */
  method: string
  /** False when the count would include other processes' traffic (no private network namespace). */
  exact: boolean
  /** Cumulative bytes so far, or undefined when not countable. */
  read(): Promise<number | undefined>
}

/**
 * In a private network namespace (the launcher runs the benchmark under `unshare --net`), the
 * loopback carries only the benchmark's own traffic, and on loopback every packet passes the
 * interface exactly once: its tx counter is the bytes on the wire, headers included.
 */
export function wireCounter(): WireCounter {
  const own = privateNetns()
  if (!own) {
    return {method: 'not measured (no private network namespace: run as root, or with unshare available); the tools\' own counts are shown instead', exact: false, read: async () => undefined}
  }
  return {
    method: 'loopback interface tx bytes in a private network namespace (every IP packet between the tool and the 4 sshd slaves, both directions, TCP/IP headers and SSH framing included)',
    exact: true,
    read: async () => {
      const line = readFileSync('/proc/net/dev', 'utf8')
        .split('\n')
        .find((l) => l.trim().startsWith('lo:'))
      if (!line) return undefined
      const fields = line.trim().slice(3).trim().split(/\s+/).map(Number)
      return fields[8]
    },
  }
}

function privateNetns(): boolean {
  if (process.env.MIRROR_BENCH_NETNS !== '1') return false
  try {
    return readlinkSync('/proc/self/ns/net') !== readlinkSync('/proc/1/ns/net')
  } catch {
    // /proc/1 unreadable (not root): trust the launcher.
    return true
  }
}

export function median(values: number[]): number | undefined {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return undefined
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * CPU time the whole machine has spent busy so far (all cores, all processes: the tool, its ssh
 * processes, the slaves' sshd and helpers), in ms; undefined without /proc/stat. Around a run it
 * says what the run cost beyond its wall time: on a small machine the tools and the slaves share
 * the cores, so the cheaper tool is the faster one.
 */
export function machineBusyMs(): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal: all but idle and iowait, in 1/100 s.
    const [user, nice, system, , , irq, softirq, steal] = fields
    return (user + nice + system + irq + softirq + (steal ?? 0)) * 10
  } catch {
    return undefined
  }
}

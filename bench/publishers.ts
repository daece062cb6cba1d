// The tools the publish benchmark compares, each pushing a source tree to the 4 slaves: mirror
// (one `mirror publish --json`), rsync over ssh one slave after the other and all in parallel,
// rclone over sftp in parallel, and a deliberately wrong copier that proves the verifier works.

import {execFileSync} from 'node:child_process'
import {openSync, closeSync, readSync, writeSync, readdirSync, rmSync, writeFileSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'

import {runProcess, type ProcessRun} from './measure.js'
import {copyTree, type SlaveSet} from './slaves.js'

export interface PublishEnv {
  set: SlaveSet
  /** mirror's project directory: mirror.config.yaml and the master state `.mirror/`. */
  projectDir: string
  workDir: string
  /** bin/run.js of the mirror under test. */
  binRun: string
  timeoutMs: number
  /** When set, mirror runs with --cpu-prof and writes its profiles here. */
  profileDir?: string
}

export interface ToolRun {
  wallMs: number
  /** True when every process exited 0. */
  ok: boolean
  /** "0", "exit 3", "timeout", "signal SIGKILL" (the worst of the processes). */
  exit: string
  /** Bytes the tool itself says it sent (mirror: report.bytes; rsync: --stats sent + received; rclone: its stats). */
  toolBytes?: number
  peakRssKb?: number
  /** What went wrong, from the tool's own output. */
  error?: string
  /** Tool-specific counts (mirror: files sent, deltas, deleted). */
  info?: Record<string, number>
}

export interface Publisher {
  id: string
  label: string
  /** Why the tool cannot run here, or undefined. */
  unavailable(): string | undefined
  run(env: PublishEnv, source: string): Promise<ToolRun>
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

function exitText(run: ProcessRun): string {
  if (run.timedOut) return 'timeout'
  if (run.signal) return `signal ${run.signal}`
  return run.code === 0 ? '0' : `exit ${run.code}`
}

function tail(text: string, lines = 3): string {
  return text.trim().split('\n').slice(-lines).join(' | ').slice(0, 400)
}

/** Runs one command per slave, all at once or one after the other; wall time covers them all. */
async function perSlave(env: PublishEnv, parallel: boolean, command: (slave: SlaveSet['slaves'][number]) => [string, string[], NodeJS.ProcessEnv?], parse: (run: ProcessRun) => number | undefined): Promise<ToolRun> {
  const started = process.hrtime.bigint()
  const one = (slave: SlaveSet['slaves'][number]) => {
    const [cmd, args, extraEnv] = command(slave)
    return runProcess(cmd, args, {timeoutMs: env.timeoutMs, rss: true, env: {...process.env, LC_ALL: 'C', ...extraEnv}})
  }
  const runs: ProcessRun[] = []
  if (parallel) runs.push(...(await Promise.all(env.set.slaves.map(one))))
  else for (const slave of env.set.slaves) runs.push(await one(slave))
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6
  const failed = runs.filter((r) => exitText(r) !== '0')
  const bytes = runs.map(parse)
  return {
    wallMs,
    ok: failed.length === 0,
    exit: failed.length === 0 ? '0' : exitText(failed[0]),
    toolBytes: bytes.every((b) => b !== undefined) ? bytes.reduce((a, b) => a! + b!, 0) : undefined,
    peakRssKb: Math.max(0, ...runs.map((r) => r.peakRssKb ?? 0)) || undefined,
    error: failed.length > 0 ? tail(failed[0].stderr || failed[0].stdout) : undefined,
  }
}

export const mirrorTool: Publisher = {
  id: 'mirror',
  label: 'mirror publish',
  unavailable: () => undefined,
  async run(env, source) {
    writeMirrorConfig(env, source)
    const nodeArgs = env.profileDir ? ['--cpu-prof', '--cpu-prof-dir', env.profileDir] : []
    const run = await runProcess(process.execPath, [...nodeArgs, env.binRun, 'publish', '--json'], {
      cwd: env.projectDir,
      timeoutMs: env.timeoutMs,
      rss: true,
      env: {...process.env, NO_COLOR: '1'},
    })
    const result: ToolRun = {wallMs: run.wallMs, ok: exitText(run) === '0', exit: exitText(run), peakRssKb: run.peakRssKb}
    try {
      const json = JSON.parse(run.stdout) as {targets: Array<{target: string; report?: {bytes: number; sent: number; deltas: number; deleted: number; kept: unknown[]; failed: unknown[]}; error?: {message: string}}>}
      const reports = json.targets.map((t) => t.report)
      result.toolBytes = reports.reduce((n, r) => n + (r?.bytes ?? 0), 0)
      const sum = (k: 'sent' | 'deltas' | 'deleted') => reports.reduce((n, r) => n + (r?.[k] ?? 0), 0)
      result.info = {sent: sum('sent'), deltas: sum('deltas'), deleted: sum('deleted'), kept: reports.reduce((n, r) => n + (r?.kept.length ?? 0), 0), failed: reports.reduce((n, r) => n + (r?.failed.length ?? 0), 0)}
      const errors = json.targets.filter((t) => t.error).map((t) => `${t.target}: ${t.error!.message.split('\n')[0]}`)
      if (errors.length > 0) result.error = errors.slice(0, 2).join('; ').slice(0, 400)
    } catch {
      result.error = tail(run.stderr || run.stdout) || 'no JSON on stdout'
    }
    if (!result.ok && !result.error) result.error = tail(run.stderr)
    return result
  },
}

function writeMirrorConfig(env: PublishEnv, source: string): void {
  mkdirSync(env.projectDir, {recursive: true})
  const targets = env.set.slaves.map((s) => `  ${s.name}: {url: "sftp://${s.name}${s.root}", state: "${s.state}"}`).join('\n')
  writeFileSync(join(env.projectDir, 'mirror.config.yaml'), `# Written by the benchmark (bench/publishers.ts).\nsource: "${source}"\nstate: ./.mirror\nssh:\n  config: "${env.set.sshConfig}"\ntargets:\n${targets}\n`)
}

const rsyncArgs = (env: PublishEnv, source: string, slave: SlaveSet['slaves'][number]): [string, string[]] => [
  'rsync',
  ['-a', '--delete', '--stats', '-e', `ssh -F ${env.set.sshConfig} -o BatchMode=yes`, `${source}/`, `${slave.name}:${slave.root}/`],
]

function rsyncBytes(run: ProcessRun): number | undefined {
  const sent = /Total bytes sent: ([\d,.]+)/.exec(run.stdout)
  const received = /Total bytes received: ([\d,.]+)/.exec(run.stdout)
  if (!sent || !received) return undefined
  return Number(sent[1].replace(/[,.]/g, '')) + Number(received[1].replace(/[,.]/g, ''))
}

export const rsyncSequential: Publisher = {
  id: 'rsync-seq',
  label: 'rsync -a --delete, 4 slaves one after the other',
  unavailable: () => (have('rsync') ? undefined : 'rsync is not installed'),
  run: (env, source) => perSlave(env, false, (slave) => rsyncArgs(env, source, slave), rsyncBytes),
}

export const rsyncParallel: Publisher = {
  id: 'rsync-par',
  label: 'rsync -a --delete, 4 slaves in parallel',
  unavailable: () => (have('rsync') ? undefined : 'rsync is not installed'),
  run: (env, source) => perSlave(env, true, (slave) => rsyncArgs(env, source, slave), rsyncBytes),
}

/**
 * rclone's defaults except one: with hashing on, rclone's sftp backend runs `md5sum` over a new
 * exec channel for every file it uploads, which made it 15 times slower than rsync here (175 s for
 * the small corpus). With it off it compares size and mtime, as rsync and mirror's noop do.
 */
function rcloneConfig(env: PublishEnv): string {
  const file = join(env.workDir, 'rclone.conf')
  const sections = env.set.slaves.map((s) =>
    [`[${s.name}]`, 'type = sftp', 'host = 127.0.0.1', `port = ${s.port}`, `user = ${s.sshd.user}`, `key_file = ${s.sshd.identityFile}`, `known_hosts_file = ${s.sshd.knownHostsFile}`, 'shell_type = unix', 'disable_hashcheck = true', ''].join('\n'),
  )
  writeFileSync(file, sections.join('\n'))
  return file
}

function rcloneBytes(run: ProcessRun): number | undefined {
  // --use-json-log with stats at NOTICE (and no periodic stats within the run): the final stats line carries {"stats": {"bytes": N, ...}}.
  let bytes: number | undefined
  for (const line of run.stderr.split('\n')) {
    if (!line.includes('"stats"')) continue
    try {
      const parsed = JSON.parse(line) as {stats?: {bytes?: number}}
      if (typeof parsed.stats?.bytes === 'number') bytes = parsed.stats.bytes
    } catch {
      // Not a JSON line.
    }
  }
  return bytes
}

export const rcloneParallel: Publisher = {
  id: 'rclone-par',
  label: 'rclone sync over sftp (disable_hashcheck), 4 slaves in parallel',
  unavailable: () => (have('rclone') ? undefined : 'rclone is not installed (apt-get install rclone)'),
  run(env, source) {
    const config = rcloneConfig(env)
    return perSlave(env, true, (slave) => ['rclone', ['sync', source, `${slave.name}:${slave.root}`, '--config', config, '--use-json-log', '--stats', '1h', '--stats-log-level', 'NOTICE', '--log-level', 'NOTICE']], rcloneBytes)
  },
}

/** Copies the source locally, then loses a file on one slave and flips a byte on another: the verifier must say WRONG. */
export const wrongTool: Publisher = {
  id: 'wrong',
  label: 'deliberately wrong copier (harness self-check)',
  unavailable: () => undefined,
  async run(env, source) {
    const started = process.hrtime.bigint()
    await Promise.all(env.set.slaves.map((s) => copyTree(source, s.root)))
    const [first, , third] = env.set.slaves
    const victim = firstFile(first.root)
    if (victim) rmSync(join(first.root, victim))
    const damaged = third ? firstFile(third.root) : undefined
    if (damaged) {
      const fd = openSync(join(third.root, damaged), 'r+')
      const byte = Buffer.alloc(1)
      readSync(fd, byte, 0, 1, 0)
      byte[0] ^= 0xff
      writeSync(fd, byte, 0, 1, 0)
      closeSync(fd)
    }
    return {wallMs: Number(process.hrtime.bigint() - started) / 1e6, ok: true, exit: '0', toolBytes: 0}
  },
}

function firstFile(root: string): string | undefined {
  const entries = readdirSync(root, {withFileTypes: true, recursive: true}).filter((e) => e.isFile())
  const e = entries.sort((a, b) => join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)))[0]
  return e ? join(e.parentPath, e.name).slice(root.length + 1) : undefined
}

export const PUBLISHERS: Publisher[] = [mirrorTool, rsyncSequential, rsyncParallel, rcloneParallel, wrongTool]

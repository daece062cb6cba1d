// Fixtures for the fault-injection suite (test/integration/faults-*.test.ts): a project whose
// targets are real OpenSSH sshds on loopback, one per slave, each slave with its web root, its
// state and a sentinel directory outside both; plus the checks every fault case makes: nothing
// half-written under a final name, no temporary file left, the manifest tells the truth, and
// nothing written outside the roots.

import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, relative} from 'node:path'

import pLimit from 'p-limit'
import type {Test} from 'tap'

import {applyJournal, JOURNAL, parseManifest} from '../../src/sync/manifest.js'
import {binRun, runCli, type CliResult} from './cli.js'
import {writeTree} from './site.js'
import {startSshd, type Sshd, type SshdOptions} from './sshd.js'

export interface Slave {
  name: string
  sshd: Sshd
  /** Holds `www` (the root), `state` (the target's state) and `outside` (sentinels). */
  base: string
  root: string
  state: string
  /** A directory beside the root that mirror must never touch. */
  outside: string
}

export interface FaultProjectOptions {
  slaves: readonly string[]
  /** Source files (path -> content); default: a small site. */
  files?: Record<string, string | Buffer>
  /** Extra target options per slave, YAML flow-map entries (e.g. `timeout: 2, transfers: 2`). */
  targetOptions?: Record<string, string>
  /** Appended to the config (segments, publish, …). */
  extraConfig?: string
  /** Slaves whose root is not created. */
  noRoot?: readonly string[]
  sshd?: SshdOptions
}

export const smallSite: Record<string, string> = {
  'index.html': '<html><img src="img/logo.png"></html>',
  'about.html': '<html>about</html>',
  'css/site.css': 'body{}',
  'img/logo.png': 'PNG-logo',
}

export class FaultProject {
  readonly slaves: Record<string, Slave> = {}
  /** Run in reverse order by the test's teardown: unmount before removing, resume before stopping. */
  private readonly cleanups: Array<() => unknown> = []

  constructor(
    readonly dir: string,
    readonly options: FaultProjectOptions,
  ) {}

  get source(): string {
    return join(this.dir, 'public')
  }

  get sshConfig(): string {
    return join(this.dir, 'ssh_config')
  }

  get configFile(): string {
    return join(this.dir, 'mirror.config.yaml')
  }

  /** Registers a cleanup; they run last-registered first when the test ends. */
  onCleanup(fn: () => unknown): void {
    this.cleanups.push(fn)
  }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn()
      } catch (error) {
        // A failing cleanup must not hide the others, but must not pass unnoticed either.
        console.error(`cleanup failed: ${(error as Error).message}`)
      }
    }
  }

  /** The CLI in this project, without the tester's ssh-agent. */
  cli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    return runCli(args, {cwd: this.dir, env: {SSH_AUTH_SOCK: ''}, timeoutMs})
  }

  /** `cli` with --json, parsed (stdout must be one JSON document). */
  async json(args: string[], timeoutMs?: number): Promise<{code: number | null; stderr: string; out: PublishJson}> {
    const r = await this.cli([...args, '--json'], timeoutMs)
    let out: PublishJson
    try {
      out = JSON.parse(r.stdout) as PublishJson
    } catch {
      throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
    }
    return {code: r.code, stderr: r.stderr, out}
  }

  /** Starts the CLI without waiting: for kill-mid-publish cases. */
  spawn(args: string[]): ChildProcess {
    const child = spawn(process.execPath, [binRun, ...args], {cwd: this.dir, env: {...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: ''}, stdio: ['ignore', 'pipe', 'pipe']})
    this.onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    return child
  }

  outcome(out: PublishJson, name: string): TargetJson {
    const found = out.targets?.find((o) => o.target === name)
    if (!found) throw new Error(`no outcome for target ${name}`)
    return found
  }

  /** One ssh_config naming every slave's sshd, as a user's ~/.ssh/config would. */
  async writeSshConfig(): Promise<void> {
    const parts = await Promise.all(Object.values(this.slaves).map((s) => fs.readFile(s.sshd.sshConfigFile, 'utf8')))
    await fs.writeFile(this.sshConfig, parts.join('\n'))
  }

  async writeConfig(extra = this.options.extraConfig ?? ''): Promise<void> {
    const targets = Object.values(this.slaves).map((s) => {
      const more = this.options.targetOptions?.[s.name] ?? ''
      const timeout = /\btimeout:/.test(more) ? '' : ', timeout: 10'
      return `  ${s.name}: {url: "sftp://${s.sshd.alias}${s.root}", state: "${s.state}"${timeout}${more ? `, ${more}` : ''}}`
    })
    await fs.writeFile(this.configFile, `source: ./public\nssh:\n  config: ./ssh_config\ntargets:\n${targets.join('\n')}\n${extra}`)
  }

  /**
   * Replaces a slave's sshd (killed, or stalled) with a fresh one on a new port, serving the
   * same root under the same alias, and rewrites the ssh_config: the slave "came back".
   */
  async restart(name: string): Promise<Sshd> {
    const slave = this.slaves[name]
    await slave.sshd.stop()
    slave.sshd = await this.startSshd(name)
    await this.writeSshConfig()
    return slave.sshd
  }

  async startSshd(name: string): Promise<Sshd> {
    const sshd = await startSshd({...this.options.sshd, alias: `slave-${name}`})
    this.onCleanup(() => sshd.stop())
    return sshd
  }

  /** Source content of a path as published. */
  async sourceBytes(path: string): Promise<Buffer> {
    return fs.readFile(join(this.source, path))
  }
}

export interface TargetJson {
  target: string
  plan?: {actions: Array<{kind: string; path: string; reason?: string}>; unchanged: number; counts: Record<string, number>}
  report?: {ok: boolean; sent: number; adopted: number; deleted: number; kept: Array<{path: string; reason: string}>; failed: Array<{path: string; code: string; message: string}>}
  error?: {code: string; message: string; target?: string; path?: string; suggestion?: string}
  warnings?: Array<{code: string; message: string}>
}

export interface PublishJson {
  ok: boolean
  warnings: Array<{path: string; message: string}>
  targets: TargetJson[]
  error?: {code: string; message: string}
}

/** A project with one sshd per slave; everything is stopped, unmounted and removed when `t` ends. */
export async function faultProject(t: Test, options: FaultProjectOptions): Promise<FaultProject> {
  const dir = mkdtempSync(join(tmpdir(), 'mirror-faults-'))
  const project = new FaultProject(dir, options)
  t.teardown(async () => {
    await project.cleanup()
    await fs.rm(dir, {recursive: true, force: true})
  })
  await writeTree(project.source, options.files ?? smallSite)
  const sshds = await Promise.all(options.slaves.map((name) => project.startSshd(name)))
  options.slaves.forEach((name, i) => {
    const base = join(dir, 'slaves', name)
    project.slaves[name] = {name, sshd: sshds[i], base, root: join(base, 'www'), state: join(base, 'state'), outside: join(base, 'outside')}
  })
  for (const slave of Object.values(project.slaves)) {
    await fs.mkdir(slave.outside, {recursive: true})
    if (!options.noRoot?.includes(slave.name)) await fs.mkdir(slave.root)
    // Sentinels a write through `..` or a symlink would hit first.
    await writeTree(slave.outside, {'logo.png': 'OUTSIDE logo', 'index.html': 'OUTSIDE index', 'sub/keep.txt': 'OUTSIDE keep'})
    await writeTree(slave.base, {'sentinel.txt': 'beside the root'})
  }
  await project.writeSshConfig()
  await project.writeConfig()
  return project
}

/** Many small files in many directories: a publish of these takes long enough to interrupt. */
export function manyFiles(count: number, perDir = 100): Record<string, string> {
  const files: Record<string, string> = {}
  for (let i = 0; i < count; i++) files[`d${String(Math.floor(i / perDir)).padStart(3, '0')}/f${i}.html`] = `<p>page ${i}</p>${'x'.repeat(i % 97)}`
  return files
}

export interface TreeEntry {
  type: 'file' | 'symlink' | 'dir' | 'other'
  size: number
  mtimeMs: number
  hash?: string
  link?: string
}

/** Every entry under `root` (not following symlinks), with a content hash for files. */
export async function snapshot(root: string, skip: (rel: string) => boolean = () => false): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>()
  const limit = pLimit(32)
  // Names are read as bytes: one that is not UTF-8 could not be named again as a string.
  const walk = async (dir: Buffer, prefix: string): Promise<void> => {
    const names = await fs.readdir(dir, {encoding: 'buffer'}).catch(() => [] as Buffer[])
    await Promise.all(
      names.map(async (name) => {
        const rel = prefix ? `${prefix}/${name.toString()}` : name.toString()
        if (skip(rel)) return
        const abs = Buffer.concat([dir, Buffer.from('/'), name])
        const st = await limit(() => fs.lstat(abs))
        if (st.isSymbolicLink()) out.set(rel, {type: 'symlink', size: st.size, mtimeMs: st.mtimeMs, link: (await fs.readlink(abs)).toString()})
        else if (st.isDirectory()) {
          out.set(rel, {type: 'dir', size: 0, mtimeMs: st.mtimeMs})
          await walk(abs, rel)
        } else if (st.isFile()) out.set(rel, {type: 'file', size: st.size, mtimeMs: st.mtimeMs, hash: sha256(await limit(() => fs.readFile(abs)))})
        else out.set(rel, {type: 'other', size: st.size, mtimeMs: st.mtimeMs})
      }),
    )
  }
  await walk(Buffer.from(root), '')
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)))
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

const isTemp = (rel: string) => rel.split('/').some((part) => part.startsWith('.mirror-tmp-'))

/** Temporary files and directories (`.mirror-tmp-*`, and what such a directory holds) anywhere under the root. */
export async function leftovers(root: string): Promise<string[]> {
  return [...(await snapshot(root)).keys()].filter(isTemp)
}

/**
 * The temporary names under `root`, from a listing alone: cheap enough to poll while a publish
 * runs (leftovers reads every file, and a fast publish can come and go between two of those).
 */
export async function tempNames(root: string): Promise<string[]> {
  const names = await fs.readdir(root, {recursive: true}).catch(() => [] as string[])
  return names.filter(isTemp)
}

/**
 * Records the file system around the slaves (everything under the project's `slaves/` except
 * the roots and states, plus the source) so that `check` can prove nothing was written there.
 */
export async function guardOutside(project: FaultProject): Promise<{check(t: Test, options?: {source?: boolean}): Promise<void>}> {
  const slavesDir = join(project.dir, 'slaves')
  const inside = new Set(Object.values(project.slaves).flatMap((s) => [relative(slavesDir, s.root), relative(slavesDir, s.state)]))
  const skip = (rel: string) => inside.has(rel)
  const before = await snapshot(slavesDir, skip)
  const sourceBefore = await snapshot(project.source)
  return {
    async check(t: Test, {source = true} = {}) {
      const after = await snapshot(slavesDir, skip)
      // Directory mtimes change when a root's own entries change: compare files, links and names.
      const strip = (m: Map<string, TreeEntry>) => new Map([...m].map(([k, v]) => [k, v.type === 'dir' ? {type: 'dir'} : v]))
      t.same(Object.fromEntries(strip(after)), Object.fromEntries(strip(before)), 'nothing written outside the roots and states')
      if (source) t.same(Object.fromEntries(await snapshot(project.source)), Object.fromEntries(sourceBefore), 'the source is untouched')
    },
  }
}

/**
 * No file under its final name is half-written: every regular file in the root is exactly one
 * of the versions `allowed` gives for its path (the source's, an older one, the slave's own).
 * Temporary files are reported separately (see `leftovers`).
 */
export async function assertWhole(t: Test, root: string, allowed: (path: string) => Array<Buffer | string> | undefined, what = 'no half-written file under a final name'): Promise<number> {
  const bad: string[] = []
  let files = 0
  for (const [path, entry] of await snapshot(root)) {
    if (entry.type !== 'file' || isTemp(path)) continue
    files++
    const versions = allowed(path)
    if (!versions) {
      bad.push(`${path}: not expected at all`)
      continue
    }
    if (!versions.some((v) => sha256(v) === entry.hash)) bad.push(`${path}: content is none of the expected versions (size ${entry.size})`)
  }
  t.same(bad, [], what)
  return files
}

/** The manifest on the slave, parsed (it must be valid): every file it lists exists with that hash. */
export async function assertManifestTruthful(t: Test, slave: Slave): Promise<{complete: boolean; files: number} | undefined> {
  const data = await fs.readFile(join(slave.state, 'manifest.json')).catch(() => undefined)
  if (!data) return undefined
  const manifest = parseManifest(data, slave.name)
  // What an interrupted publish journalled after writing the manifest is a claim too.
  const journal = await fs.readFile(join(slave.state, JOURNAL)).catch(() => undefined)
  if (journal) applyJournal(manifest, journal)
  const lies: string[] = []
  const limit = pLimit(32)
  await Promise.all(
    [...manifest.files].map(([path, record]) =>
      limit(async () => {
        const content = await fs.readFile(join(slave.root, path)).catch(() => undefined)
        if (!content) lies.push(`${path}: listed, not there`)
        else if (sha256(content) !== record.hash) lies.push(`${path}: listed with another hash`)
      }),
    ),
  )
  lies.sort()
  t.same(lies, [], `the manifest of ${slave.name} lists only files that are there with that content (${manifest.files.size} files)`)
  return {complete: manifest.complete, files: manifest.files.size}
}

/** Regular files (not temporaries) under a root; cheap enough to poll. */
export async function countFiles(root: string): Promise<number> {
  const entries = await fs.readdir(root, {recursive: true, withFileTypes: true}).catch(() => [])
  return entries.filter((e) => e.isFile() && !isTemp(relative(root, join(e.parentPath, e.name)))).length
}

/**
 * The number of files in the root once it stops changing: after a kill or a stall, an
 * sftp-server may still carry out requests it had read before its connection went.
 */
export async function settledCount(root: string): Promise<number> {
  let last = ''
  await until(
    `${root} to settle`,
    async () => {
      // Every name, temporary ones too: a tar still unpacking, or renames out of its directory.
      const entries = await fs.readdir(root, {recursive: true}).catch(() => [])
      const now = entries.sort().join('\0')
      const same = now === last
      last = now
      return same
    },
    10_000,
    300,
  )
  return countFiles(root)
}

/** Polls until `check` is true; throws after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** Waits for a child to end; returns its exit code (or signal). */
export function exited(child: ChildProcess): Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d) => (stdout += d))
  child.stderr?.on('data', (d) => (stderr += d))
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({code: child.exitCode, signal: child.signalCode, stdout, stderr})
    else child.once('close', (code, signal) => resolve({code, signal, stdout, stderr}))
  })
}

/** Runs a command as root would at a shell; throws with its output when it fails. */
export function sh(command: string, args: string[]): string {
  const r = spawnSync(command, args, {encoding: 'utf8'})
  if (r.error || r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`)
  return r.stdout
}

/** Mounts a tmpfs of `size` on `dir` for the project's lifetime (needs root: fails loudly otherwise). */
export function mountTmpfs(project: FaultProject, dir: string, size: string): void {
  sh('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir])
  project.onCleanup(() => sh('umount', ['-l', dir]))
}

/** Makes `dir` read-only with a read-only bind mount of itself. */
export function mountReadOnly(project: FaultProject, dir: string): void {
  sh('mount', ['--bind', dir, dir])
  project.onCleanup(() => sh('umount', ['-l', dir]))
  sh('mount', ['-o', 'remount,ro,bind', dir])
}

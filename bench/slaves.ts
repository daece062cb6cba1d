// The benchmark's slaves: 4 real OpenSSH sshd on 127.0.0.1 (started by the tests' harness), each
// with its own web root and mirror state directory under the work directory, optionally behind
// an emulated link (link.ts), and the untimed resets between runs: empty, or a copy of a tree
// (with `cp -a`), then flushed to disk.

import {spawn} from 'node:child_process'
import {appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {startSshd, type Sshd} from '../test/helpers/sshd.js'
import {startLink, type Link, type LinkSpec} from './link.js'

export interface Slave {
  /** Host alias in `sshConfig` (also the rclone remote name). */
  name: string
  sshd: Sshd
  /** The 127.0.0.1 port the tools connect to: the link relay's, or sshd's own without a link. */
  port: number
  /** The published web root. */
  root: string
  /** mirror's state directory for this target (manifest, lock, backups), outside the root. */
  state: string
}

export interface SlaveSet {
  slaves: Slave[]
  /** One ssh_config naming every slave by alias (HostName, Port, User, IdentityFile, known_hosts). */
  sshConfig: string
  /** The relay process in front of the slaves, when the benchmark runs behind an emulated link. */
  link?: Link
  /** Stops the relay process and every sshd this set started, by pid. */
  stop(): Promise<void>
}

/**
 * Starts `count` sshd slaves; with `link`, also the relay process in front of them, and the
 * ssh_config sends each alias to its relay's port. Host keys are still checked: each known_hosts
 * gains a line for `[127.0.0.1]:<relay port>` with that slave's own host key.
 */
export async function startSlaves(workDir: string, count: number, link?: LinkSpec): Promise<SlaveSet> {
  const slaves: Slave[] = []
  let relay: Link | undefined
  const stopAll = async () => {
    await relay?.stop()
    await Promise.all(slaves.map((s) => s.sshd.stop()))
  }
  try {
    for (let i = 1; i <= count; i++) {
      const name = `slave${i}`
      const sshd = await startSshd({alias: name})
      const dir = join(workDir, 'slaves', name)
      slaves.push({name, sshd, port: sshd.port, root: join(dir, 'root'), state: join(dir, 'state')})
      mkdirSync(join(dir, 'root'), {recursive: true})
    }
    if (link) {
      relay = await startLink(link, slaves.map((s) => s.sshd.port))
      slaves.forEach((s, i) => {
        s.port = relay!.ports[i]
        appendFileSync(s.sshd.knownHostsFile, `[127.0.0.1]:${s.port} ${s.sshd.hostPublicKey}\n`)
      })
    }
  } catch (error) {
    await stopAll()
    throw error
  }
  const sshConfig = join(workDir, 'ssh_config')
  writeFileSync(sshConfig, slaves.map((s) => withPort(readFileSync(s.sshd.sshConfigFile, 'utf8'), s.port)).join('\n'))
  return {slaves, sshConfig, link: relay, stop: stopAll}
}

/** The harness's `Host` block with its `Port` line set to `port`. */
function withPort(block: string, port: number): string {
  const lines = block.split('\n')
  const at = lines.findIndex((l) => /^\s*Port\s+\d+\s*$/.test(l))
  if (at === -1) throw new Error(`no Port line in the harness's ssh_config:\n${block}`)
  lines[at] = `  Port ${port}`
  return lines.join('\n')
}

/** Runs a command to completion; throws with its stderr when it fails. For untimed setup only. */
export function sh(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {cwd, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${stderr.trim()}`))))
  })
}

export async function removeTree(path: string): Promise<void> {
  if (existsSync(path)) await sh('rm', ['-rf', '--one-file-system', path])
}

/** Replaces `dest` with a full copy of `src` (new inodes; modes and mtimes kept), or an empty directory. */
export async function copyTree(src: string | undefined, dest: string): Promise<void> {
  await removeTree(dest)
  mkdirSync(dirname(dest), {recursive: true})
  if (src && existsSync(src)) await sh('cp', ['-a', '--no-target-directory', src, dest])
  else mkdirSync(dest, {recursive: true})
}

/**
 * Makes `dest` hold exactly `src` again, cheaply: removes the paths named in `bad` (files whose
 * content the last verification found wrong, whatever their size and mtime say), then a local
 * `rsync -a --delete`, which re-copies every file whose size or mtime differs and deletes extras.
 * Files are copied to new inodes; `src` is only read.
 */
export async function resetTree(src: string, dest: string, bad: readonly string[] = []): Promise<void> {
  if (!existsSync(dest)) mkdirSync(dest, {recursive: true})
  for (const path of bad) rmSync(join(dest, path), {recursive: true, force: true})
  await sh('rsync', ['-a', '--delete', `${src}/`, `${dest}/`])
}

/** Writes dirty pages of the work directory's filesystem to disk, so a reset's writes do not land during the next timed run. */
export async function flush(path: string): Promise<void> {
  await sh('sync', ['-f', path]).catch(() => sh('sync', []))
}

/** Removes the whole slave directory tree of `set` (roots and states), leaving empty roots. */
export async function emptySlaves(set: SlaveSet): Promise<void> {
  await Promise.all(
    set.slaves.map(async (s) => {
      await copyTree(undefined, s.root)
      await removeTree(s.state)
    }),
  )
}

export function rmrf(path: string): void {
  rmSync(path, {recursive: true, force: true})
}

// A slave that is a local directory (`file:///path`): tests, the demo, NFS mounts. Same
// contract as the SFTP target, including atomic writes and never writing through symlinks.

import {createHash, randomBytes} from 'node:crypto'
import {createReadStream} from 'node:fs'
import * as fs from 'node:fs/promises'
import {hostname} from 'node:os'
import {dirname, join, posix} from 'node:path'

import pLimit from 'p-limit'

import type {TargetConfig} from '../config/schema.js'
import {MirrorError, toMirrorError} from '../errors.js'
import {checkRelativePath, parentDirs, tempNameFor} from './paths.js'
import {writeLocalFile} from './state-bytes.js'
import {landing, type LockOwner, type PutOptions, type RemoteStat, type StateBytes, type Target, type TargetCapabilities} from './target.js'

const STAT_CONCURRENCY = 64

export function toRemoteStat(stat: import('node:fs').Stats): RemoteStat {
  return {
    type: stat.isSymbolicLink() ? 'symlink' : stat.isFile() ? 'file' : stat.isDirectory() ? 'dir' : 'other',
    size: stat.size,
    mtimeMs: Math.floor(stat.mtimeMs / 1000) * 1000,
    mode: stat.mode & 0o7777,
  }
}

/** Default state place for a local root: a sibling `.mirror-state/<name>` outside the root. */
export function defaultLocalStateDir(root: string): string {
  return join(dirname(root), '.mirror-state', posix.basename(root))
}

export class LocalTarget implements Target {
  readonly name: string
  readonly url: string
  readonly capabilities: TargetCapabilities
  readonly root: string
  readonly stateDir: string
  /** Directories verified to be real directories (not symlinks) during this run. */
  private readonly knownDirs = new Set<string>()
  private lockToken: string | undefined

  constructor(config: TargetConfig) {
    if (config.location.kind !== 'file') throw new MirrorError('INTERNAL', 'LocalTarget needs a file:// URL', {target: config.name})
    this.name = config.name
    this.url = config.url
    this.root = config.location.root
    this.stateDir = config.state ?? defaultLocalStateDir(this.root)
    this.capabilities = {copyData: false, maxTransfers: config.transfers}
  }

  async connect(): Promise<void> {
    const stat = await fs.stat(this.root).catch(() => null)
    if (!stat?.isDirectory()) {
      throw new MirrorError('ROOT_MISSING', `root ${this.root} does not exist or is not a directory`, {
        target: this.name,
        suggestion: `Create it (mkdir -p ${this.root}) or fix the target URL.`,
      })
    }
  }

  async close(): Promise<void> {}

  async stat(paths: readonly string[]): Promise<Map<string, RemoteStat | null>> {
    const limit = pLimit(STAT_CONCURRENCY)
    const result = new Map<string, RemoteStat | null>()
    await Promise.all(
      paths.map((path) =>
        limit(async () => {
          checkRelativePath(path)
          // Below a symlink or a file there is nothing we would ever write: report it as absent.
          const reachable = await this.parentsAreDirs(path).catch(() => false)
          result.set(path, reachable ? await this.lstat(join(this.root, path)) : null)
        }),
      ),
    )
    return result
  }

  async list(skip?: (dir: string) => boolean): Promise<Map<string, RemoteStat>> {
    const out = new Map<string, RemoteStat>()
    const walk = async (dir: string): Promise<void> => {
      const entries = await fs.readdir(dir ? join(this.root, dir) : this.root, {withFileTypes: true})
      await Promise.all(
        entries.map(async (entry) => {
          const rel = dir ? `${dir}/${entry.name}` : entry.name
          if (entry.isDirectory()) {
            if (!skip?.(rel)) await walk(rel)
            return
          }
          const stat = await this.lstat(join(this.root, rel))
          if (stat) out.set(rel, stat)
        }),
      )
    }
    await walk('').catch((error) => {
      throw this.fail(error)
    })
    return out
  }

  async hash(path: string): Promise<string> {
    checkRelativePath(path)
    if (!(await this.parentsAreDirs(path))) throw new MirrorError('UNSAFE_PATH', 'a parent directory is a symlink', {target: this.name, path})
    return hashFile(join(this.root, path)).catch((error) => {
      throw this.fail(error, path)
    })
  }

  async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    checkRelativePath(path)
    await this.ensureParents(path)
    const temp = join(this.root, tempNameFor(path))
    try {
      await fs.copyFile(localPath, temp)
      await fs.chmod(temp, options.mode)
      const seconds = options.mtimeMs / 1000
      await fs.utimes(temp, seconds, seconds)
      await landing(options)
      // The final name must not be a directory or symlink we would replace blindly.
      const existing = await this.lstat(join(this.root, path))
      if (existing && existing.type === 'dir') {
        throw new MirrorError('UNSAFE_PATH', 'a directory stands where a file is published', {target: this.name, path})
      }
      await fs.rename(temp, join(this.root, path))
    } catch (error) {
      await fs.rm(temp, {force: true}).catch(() => {})
      throw this.fail(error, path)
    }
  }

  async remove(path: string): Promise<void> {
    checkRelativePath(path)
    if (!(await this.parentsAreDirs(path))) throw new MirrorError('UNSAFE_PATH', 'a parent directory is a symlink', {target: this.name, path})
    await fs.rm(join(this.root, path), {force: true}).catch((error) => {
      throw this.fail(error, path)
    })
  }

  async removeEmptyDir(path: string): Promise<boolean> {
    checkRelativePath(path)
    if (!(await this.parentsAreDirs(`${path}/x`))) return false
    try {
      await fs.rmdir(join(this.root, path))
      this.knownDirs.delete(path)
      return true
    } catch {
      return false
    }
  }

  async backup(path: string, backupId: string): Promise<void> {
    checkRelativePath(path)
    const dest = join(this.stateDir, 'backups', backupId, path)
    await fs.mkdir(dirname(dest), {recursive: true})
    await fs.copyFile(join(this.root, path), dest).catch((error) => {
      throw this.fail(error, path)
    })
  }

  async readState(name: string): Promise<Buffer | null> {
    return fs.readFile(join(this.stateDir, name)).catch((error) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw this.fail(error)
    })
  }

  async writeState(name: string, data: Buffer | StateBytes): Promise<RemoteStat> {
    const file = join(this.stateDir, name)
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`
    try {
      await fs.mkdir(dirname(file), {recursive: true})
      await writeLocalFile(temp, data)
      await fs.rename(temp, file)
      return toRemoteStat(await fs.lstat(file))
    } catch (error) {
      await fs.rm(temp, {force: true}).catch(() => {})
      throw this.fail(error, `(state) ${name}`)
    }
  }

  async appendState(name: string, data: Buffer): Promise<void> {
    const file = join(this.stateDir, name)
    try {
      await fs.mkdir(dirname(file), {recursive: true})
      await fs.appendFile(file, data)
    } catch (error) {
      throw this.fail(error, `(state) ${name}`)
    }
  }

  async removeState(name: string): Promise<void> {
    await fs.rm(join(this.stateDir, name), {force: true}).catch((error) => {
      throw this.fail(error, `(state) ${name}`)
    })
  }

  async statState(name: string): Promise<RemoteStat | null> {
    return this.lstat(join(this.stateDir, name))
  }

  async lock(owner: LockOwner, breakLock = false): Promise<void> {
    const file = join(this.stateDir, 'lock')
    await fs.mkdir(this.stateDir, {recursive: true}).catch((error) => {
      throw this.fail(error, '(state)')
    })
    const token = `${hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`
    const body = JSON.stringify({...owner, token})
    try {
      await fs.writeFile(file, body, {flag: breakLock ? 'w' : 'wx'})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw this.fail(error, '(state) lock')
      throw lockedError(this.name, await fs.readFile(file, 'utf8').catch(() => ''))
    }
    this.lockToken = token
  }

  async unlock(): Promise<void> {
    if (!this.lockToken) return
    const file = join(this.stateDir, 'lock')
    const held = await fs.readFile(file, 'utf8').catch(() => '')
    if (held.includes(this.lockToken)) await fs.rm(file, {force: true}).catch(() => {})
    this.lockToken = undefined
  }

  private async lstat(abs: string): Promise<RemoteStat | null> {
    try {
      return toRemoteStat(await fs.lstat(abs))
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return null
      throw this.fail(error)
    }
  }

  /** True when every existing parent of `path` is a real directory; false if one is missing. */
  private async parentsAreDirs(path: string): Promise<boolean> {
    for (const dir of parentDirs(path)) {
      if (this.knownDirs.has(dir)) continue
      const stat = await this.lstat(join(this.root, dir))
      if (!stat) return false
      if (stat.type !== 'dir') {
        throw new MirrorError('UNSAFE_PATH', `"${dir}" on the slave is a ${stat.type}, not a directory: refusing to go through it`, {target: this.name, path})
      }
      this.knownDirs.add(dir)
    }
    return true
  }

  /** Creates missing parents one level at a time so that no symlink is ever followed. */
  private async ensureParents(path: string): Promise<void> {
    for (const dir of parentDirs(path)) {
      if (this.knownDirs.has(dir)) continue
      const abs = join(this.root, dir)
      let stat = await this.lstat(abs)
      if (!stat) {
        await fs.mkdir(abs).catch((error) => {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw this.fail(error, path)
        })
        stat = await this.lstat(abs)
      }
      if (stat?.type !== 'dir') {
        throw new MirrorError('UNSAFE_PATH', `"${dir}" on the slave is a ${stat?.type ?? 'missing entry'}, not a directory: refusing to write through it`, {target: this.name, path})
      }
      this.knownDirs.add(dir)
    }
  }

  private fail(error: unknown, path?: string): MirrorError {
    const base = toMirrorError(error)
    if (base.target) return base
    return new MirrorError(base.code, base.message, {target: this.name, path: base.path ?? path, suggestion: base.suggestion, cause: error})
  }
}

export function hashFile(abs: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(abs)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')))
  })
}

/** The LOCKED error, naming who holds the lock, from the lock file's content. */
export function lockedError(target: string, content: string): MirrorError {
  let holder = 'another publisher'
  try {
    const owner = JSON.parse(content) as Partial<LockOwner>
    holder = `${owner.user ?? '?'}@${owner.host ?? '?'} (pid ${owner.pid ?? '?'}, ${owner.command ?? 'mirror'}) since ${owner.since ?? '?'}`
  } catch {
    // An unreadable lock is still a lock.
  }
  return new MirrorError('LOCKED', `locked by ${holder}`, {
    target: target,
    suggestion: 'Wait for that publish to finish; if that publisher is gone, run again with --break-lock.',
  })
}

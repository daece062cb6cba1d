// A slave reached over SSH (`sftp://user@host/path`): the Target contract on top of one SSH
// connection, with every request pipelined, atomic writes, no writing through symlinks, and the
// target's state (manifest, lock, backups) kept outside the web root. The wire is connection.ts.

import {createHash, randomBytes} from 'node:crypto'
import {closeSync, fstatSync, openSync, readSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {posix} from 'node:path'

import pLimit from 'p-limit'

import type {TargetConfig} from '../../config/schema.js'
import {MirrorError, withContext} from '../../errors.js'
import {lockedError} from '../local-target.js'
import {checkRelativePath, parentDirs, tempDirName, tempNameFor} from '../paths.js'
import type {DeltaOp} from '../../sync/delta.js'
import {checkedChunks, isStateBytes} from '../state-bytes.js'
import {landing, type BulkFile, type LockOwner, type PutOptions, type RemoteStat, type StateBytes, type Target, type TargetCapabilities} from '../target.js'
import {SFTP_STATUS, SftpChannel, SshConnection, sftpStatus, type Attributes} from './connection.js'
import {tarEnd, tarMemberBytes, writeTarMember} from './tar.js'

/** Files read ahead of the tar stream of a bulk upload. */
const BULK_READ_AHEAD = 8
/** Bytes of a bulk stream gathered before a write: several full SSH packets. */
const BULK_WRITE_BYTES = 256 << 10
/**
 * Small requests (stat, readdir, rename) in flight per SFTP channel: enough to hide the round
 * trip of a distant slave. At 64, a first publish of 2,000 files behind a 20 ms link spent over
 * a second renaming the streamed files into place.
 */
const REQUESTS_PER_CHANNEL = 256
/** Bytes per read or write request; OpenSSH's sftp-server takes up to 255 KiB. */
const CHUNK = 64 * 1024
/** Write or read requests in flight for one file: 16 × 64 KiB keeps a 1 MiB pipe full. */
const FILE_WINDOW = 16
/** How long the manifest's stat asked at connect time stands in for a fresh one. */
const MANIFEST_AHEAD_MS = 10_000
/**
 * How long a look at the lock, answered beside a manifest write, stands in for unlock's own: a
 * publish unlocks right after its last manifest write, a round trip or two later. Someone
 * breaking the lock in that time could as well do it between unlock's own look and its removal.
 */
const LOCK_CHECKED_MS = 3000
/** A lock (a line of JSON naming its holder) is read whole in one request of this size. */
const LOCK_READ_BYTES = 16 * 1024
/** Files at least this big are hashed by the slave when exec works; smaller ones are cheaper to read. */
const REMOTE_HASH_MIN_BYTES = 1024 * 1024
/** One SFTP channel per this many transfers, up to MAX_CHANNELS (sshd's MaxSessions is 10 by default). */
const TRANSFERS_PER_CHANNEL = 16
const MAX_CHANNELS = 4

/**
 * File chunks a connection has read and not yet seen answered, at least: enough to keep its
 * channels' send windows full (see inChunkSlot).
 */
const CHUNKS_IN_FLIGHT_MIN = 64
/** ... and at most, also when the window is not capped (a server other than OpenSSH). */
const CHUNKS_IN_FLIGHT_MAX = 512

/**
 * The read buffers of whole-file uploads, used again once the write that sent one is answered.
 * V8 counts buffers as external memory and collects for every few dozen megabytes of new ones:
 * a first publish reads hundreds of megabytes through here, a new buffer per chunk.
 */
const readBuffers = {
  free: [] as Buffer[],
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(CHUNK)
  },
  give(buffer: Buffer): void {
    // Enough for the chunks in flight of four targets; more are left to the collector.
    if (this.free.length < 4 * CHUNKS_IN_FLIGHT_MIN) this.free.push(buffer)
  },
}

/** `request`, once `sent` is told it went out: for finishBehind, which waits for the last one. */
function told<T>(request: Promise<T>, sent: () => void): Promise<T> {
  sent()
  return request
}

/** A count of `count` calls: `done` resolves at the last (at once for none). */
function countdown(count: number): {tick: () => void; done: Promise<void>} {
  let left = count
  let resolve!: () => void
  const done = new Promise<void>((r) => (resolve = r))
  if (left <= 0) resolve()
  return {tick: () => --left === 0 && resolve(), done}
}

/**
 * Sends a file's attributes and close (`finish`) once its last data request is sent (`allSent`),
 * and resolves when everything is answered; rejects with the first failure, `finish` not called
 * if the data failed before it was all sent. sftp-server answers a channel's requests in order,
 * so they wait for no answer: a round trip sooner for every file of more than one request (and
 * the pages behind the last one). A failed write after them changes nothing: the file never
 * gets its final name. Only when the server takes every write whole: a write ssh2 has to split
 * sends its second half once the first is answered, after the close.
 */
async function finishBehind(channel: SftpChannel, allSent: Promise<void>, answered: Promise<unknown>, finish: () => Promise<unknown>): Promise<void> {
  if (CHUNK > channel.maxWriteLength) {
    await answered
    await finish()
    return
  }
  await Promise.race([allSent, answered])
  await Promise.all([answered, finish()])
}

/**
 * A local file read on this thread: opened, stat'ed, read and closed with blocking calls. The
 * file was hashed moments ago and its pages are in memory: a 64 KiB read then costs this
 * thread 16 to 25 us, where through libuv's threadpool each call cost 93 to 300 us of CPU in
 * all (a hop to another thread and back; measured on the benchmark's machine), and a first
 * publish of the benchmark's large site makes some 25,000 of them.
 */
class LocalFile {
  private constructor(private fd: number | undefined) {}

  static open(path: string): LocalFile {
    return new LocalFile(openSync(path, 'r'))
  }

  get size(): number {
    return fstatSync(this.fd!).size
  }

  /** Reads `length` bytes at `position` into the start of `buffer`; the bytes read. */
  read(buffer: Buffer, length: number, position: number): number {
    return readSync(this.fd!, buffer, 0, length, position)
  }

  /** Never throws: nothing written through it can be lost. */
  close(): void {
    if (this.fd === undefined) return
    try {
      closeSync(this.fd)
    } catch {
      // EBADF, EIO: the descriptor is gone either way.
    }
    this.fd = undefined
  }
}

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

type DirState = 'dir' | 'missing' | 'symlink' | 'file' | 'other'

function toRemoteStat(attrs: Attributes): RemoteStat {
  const kind = attrs.mode & S_IFMT
  return {
    type: kind === S_IFREG ? 'file' : kind === S_IFDIR ? 'dir' : kind === S_IFLNK ? 'symlink' : 'other',
    size: attrs.size,
    mtimeMs: attrs.mtime * 1000,
    mode: attrs.mode & 0o7777,
  }
}

/** Default state place on a slave: under the SSH user's home, named after the target and its root. */
export function defaultSftpStateDir(targetName: string, rootAbs: string): string {
  return `.mirror-state/${targetName}-${createHash('sha256').update(rootAbs).digest('hex').slice(0, 8)}`
}

export class SftpTarget implements Target {
  readonly name: string
  readonly url: string
  private readonly config: TargetConfig
  private readonly ssh: {config?: string; knownHosts?: string}
  private readonly location: {host: string; user?: string; port?: number; root: string}
  private conn: SshConnection | undefined
  private connecting: Promise<void> | undefined
  private rootAbs = ''
  private stateAbs = ''
  /** Directories under the root checked (or being checked) with lstat; only real directories stay. */
  private readonly dirs = new Map<string, Promise<DirState>>()
  /**
   * Directories under the root found real directories at every level from the root down: a
   * file in one needs no look at its parents. From the cached answers alone that was a promise
   * and an await per level per file: some 190 MB of garbage on this thread in a first publish
   * of 20,000 files to four slaves.
   */
  private readonly chains = new Set<string>()
  private readonly mkdirs = new Map<string, Promise<unknown>>()
  /** State directories made during this run (absolute). */
  private readonly stateDirs = new Map<string, Promise<void>>()
  private remoteHash = true
  /** False once `tar` on the slave failed us: files go one by one over SFTP from then on. */
  private bulk = true
  /**
   * Chunks of file data read and not yet answered, over all of this target's uploads. Each
   * upload keeps FILE_WINDOW in flight, but 32 uploads at once had 16 MB per slave waiting behind
   * the capped send windows, read and copied into requests already: memory (a first publish's
   * peak RSS 405 MB in the lab, 330 MB with this) and new buffers at every chunk.
   */
  private readonly chunkSlots = pLimit(CHUNKS_IN_FLIGHT_MIN)
  private lockToken: string | undefined
  /**
   * The manifest's stat, asked at connect time with the root's: the quick noop's one question
   * then costs no round trip of its own. Taken by the first `statState` of the manifest; gone
   * once a lock is taken or a state file written, after which only a fresh answer will do, and
   * after MANIFEST_AHEAD_MS (a connection kept open by watch). Undefined inside: ask again.
   */
  private manifestAhead: Promise<RemoteStat | null | undefined> | undefined
  private manifestAheadAt = 0
  /** Whether the lock was still ours when the manifest was last written, and when that was answered, for unlock (see LOCK_CHECKED_MS). */
  private lockChecked: Promise<{ours: boolean; at: number}> | undefined
  /** A state file's replacement begun ahead (prepareState), for replaceState to take. */
  private stateOpening: StateOpening | undefined

  constructor(config: TargetConfig, ssh: {config?: string; knownHosts?: string} = {}) {
    if (config.location.kind !== 'sftp') throw new MirrorError('INTERNAL', 'SftpTarget needs an sftp:// URL', {target: config.name})
    this.name = config.name
    this.url = config.url
    this.config = config
    this.ssh = ssh
    this.location = config.location
  }

  get capabilities(): TargetCapabilities {
    return {copyData: this.conn?.extensions.copyData ?? false, maxTransfers: this.config.transfers}
  }

  /** True when commands run on the slave (probed once, on first need): faster paths use them. */
  canExec(): Promise<boolean> {
    return this.connection.canExec()
  }

  /** Absolute path of the root on the slave (known after connect). */
  get root(): string {
    return this.rootAbs
  }

  /** Absolute path of the state directory on the slave (known after connect). */
  get stateDir(): string {
    return this.stateAbs
  }

  async connect(): Promise<void> {
    this.connecting ??= this.open().catch((error) => {
      this.connecting = undefined
      throw error
    })
    return this.connecting
  }

  private async open(): Promise<void> {
    const conn = await SshConnection.open({
      target: this.name,
      host: this.location.host,
      user: this.location.user,
      port: this.location.port,
      ssh: this.ssh,
      hostKeys: this.config.hostKeys,
      timeoutMs: this.config.timeoutMs,
      compress: this.config.compress,
      channels: Math.min(MAX_CHANNELS, Math.ceil(this.config.transfers / TRANSFERS_PER_CHANNEL)),
    })
    try {
      // The home directory (one round trip) only when a path is relative to it.
      const fromHome = async (p: string) => (p.startsWith('/') ? posix.normalize(p) : posix.join(await conn.home(), p))
      this.rootAbs = (await fromHome(this.location.root)).replace(/\/+$/, '')
      // sftp-server resolves a relative path against the home directory, as fromHome does.
      const statePath = this.config.state ?? defaultSftpStateDir(this.name, this.rootAbs)
      this.manifestAheadAt = Date.now()
      this.manifestAhead = lstatManifest(conn.channel(), statePath)
      // The root's check and the state's home lookup go out together, and with them the state
      // directory's check that a lock makes first, when its path is known already.
      const stateKnown = statePath.startsWith('/') ? posix.normalize(statePath).replace(/\/+$/, '') : undefined
      const [stat, stateAbs, stateIsDir] = await Promise.all([
        // The root itself may be a symlink (/var/www -> /srv/www): that is the admin's choice.
        conn
          .channel()
          .stat(this.rootAbs)
          .catch((error) => {
            if (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE) return null
            throw error
          }),
        fromHome(statePath),
        stateKnown === undefined ? false : isDirectory(conn.channel(), stateKnown),
      ])
      this.stateAbs = stateAbs.replace(/\/+$/, '')
      // Only a directory that is there is remembered: a missing one is made when first needed.
      if (stateIsDir && stateKnown === this.stateAbs) this.stateDirs.set(this.stateAbs, Promise.resolve())
      if (!stat || (stat.mode & S_IFMT) !== S_IFDIR) {
        throw new MirrorError('ROOT_MISSING', `root ${this.rootAbs} on ${conn.where} ${stat ? 'is not a directory' : 'does not exist'}`, {
          target: this.name,
          suggestion: `Create it on the slave (ssh ${conn.params.user}@${conn.params.hostName} mkdir -p ${shellQuote(this.rootAbs)}) or fix the target URL.`,
          retryable: false,
        })
      }
      this.conn = conn
    } catch (error) {
      await conn.close()
      throw this.fail(error)
    }
  }

  async close(): Promise<void> {
    const conn = this.conn
    this.conn = undefined
    this.connecting = undefined
    this.dirs.clear()
    this.chains.clear()
    this.mkdirs.clear()
    this.stateDirs.clear()
    this.manifestAhead = undefined
    this.lockChecked = undefined
    const opening = this.stateOpening
    this.stateOpening = undefined
    if (opening && !conn?.lost) await discardOpening(opening)
    await conn?.close().catch(() => {})
  }

  private get connection(): SshConnection {
    if (!this.conn) throw new MirrorError('INTERNAL', 'the target is not connected: call connect() first', {target: this.name})
    return this.conn
  }

  private abs(path: string): string {
    return `${this.rootAbs}/${path}`
  }

  /**
   * The connection, for work beyond the quick noop's look at the manifest: the other SFTP
   * channels start opening and exec is probed, in the background.
   */
  private get working(): SshConnection {
    const conn = this.connection
    conn.widen()
    void conn.canExec()
    return conn
  }

  private requestLimit(): ReturnType<typeof pLimit> {
    return pLimit(REQUESTS_PER_CHANNEL * this.connection.wantedChannels)
  }

  async stat(paths: readonly string[]): Promise<Map<string, RemoteStat | null>> {
    const conn = paths.length > REQUESTS_PER_CHANNEL ? this.working : this.connection
    const limit = this.requestLimit()
    const result = new Map<string, RemoteStat | null>()
    await Promise.all(
      paths.map((path) =>
        limit(async () => {
          this.check(path)
          try {
            // The file goes out with its parents' checks; its answer counts only when they pass.
            const file = conn.channel().lstat(this.abs(path))
            file.catch(() => {})
            if ((await this.parentsState(path)) !== 'ok') result.set(path, null)
            else result.set(path, toRemoteStat(await file))
          } catch (error) {
            if (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE) result.set(path, null)
            else throw this.fail(error, path)
          }
        }),
      ),
    )
    return result
  }

  async list(skip?: (dir: string) => boolean): Promise<Map<string, RemoteStat>> {
    const conn = this.working
    const limit = this.requestLimit()
    const out = new Map<string, RemoteStat>()
    const walk = async (dir: string): Promise<void> => {
      const entries = await limit(() => conn.channel().readdir(dir ? this.abs(dir) : this.rootAbs)).catch((error) => {
        throw this.fail(error, dir || undefined)
      })
      const below: Array<Promise<void>> = []
      for (const entry of entries) {
        const rel = dir ? `${dir}/${entry.filename}` : entry.filename
        const stat = toRemoteStat(entry.attrs)
        if (stat.type === 'dir') {
          // readdir's attributes come from lstat: this is a real directory, remember it.
          this.dirs.set(rel, Promise.resolve('dir'))
          if (!skip?.(rel)) below.push(walk(rel))
        } else {
          out.set(rel, stat)
        }
      }
      await Promise.all(below)
    }
    await walk('')
    return out
  }

  async hash(path: string): Promise<string> {
    this.check(path)
    const conn = this.connection
    const stat = await this.requireParents(path)
      .then(() => conn.channel().lstat(this.abs(path)))
      .catch((error) => {
        throw this.fail(error, path)
      })
    if ((stat.mode & S_IFMT) !== S_IFREG) {
      throw new MirrorError('TRANSFER_FAILED', 'cannot hash: not a regular file', {target: this.name, path})
    }
    if (this.remoteHash && stat.size >= REMOTE_HASH_MIN_BYTES && (await conn.canExec())) {
      const remote = await this.remoteSha256(path, stat.size)
      if (remote) return remote
    }
    const hash = createHash('sha256')
    await this.readFile(conn.channel(), this.abs(path), (chunk) => hash.update(chunk)).catch((error) => {
      throw this.fail(error, path)
    })
    return hash.digest('hex')
  }

  /**
   * sha256sum on the slave. The path goes through stdin (NUL-terminated, via xargs -0), never
   * through the shell's command line, so no name can be misquoted whatever the login shell is.
   * Returns undefined (and the caller reads the file instead) when that does not work there.
   */
  private async remoteSha256(path: string, size: number): Promise<string | undefined> {
    try {
      // Generous: a slow disk reads 20 MB/s; past that, reading over SFTP is no worse.
      const limitMs = this.config.timeoutMs + Math.ceil(size / 20_000)
      const result = await this.connection.run('xargs -0 sha256sum --', Buffer.from(`${this.abs(path)}\0`), limitMs)
      // sha256sum prefixes the line with "\" when it escapes the name: only the hash is read.
      const match = /^\\?([0-9a-f]{64}) /.exec(result.stdout.toString('latin1'))
      if (result.code === 0 && match) return match[1]
      if (result.code === 127 || result.code === 126) this.remoteHash = false
      return undefined
    } catch (error) {
      if (this.conn?.lost) throw withContext(this.conn.lost, this.name, path)
      return undefined
    }
  }

  async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    this.check(path)
    await this.ensureParents(path).catch((error) => {
      throw this.fail(error, path)
    })
    const channel = this.working.channel()
    const temp = this.abs(tempNameFor(path))
    let handle: Buffer | undefined
    let size = 0
    let written = 0
    // The caller's copy of the bytes when it has one; else the file is read here, chunk by chunk.
    let data: Buffer | undefined
    let local: LocalFile | undefined
    try {
      if (options.read) data = await options.read()
      else local = LocalFile.open(localPath)
    } catch (error) {
      throw withContext(error, this.name, path)
    }
    const limit = pLimit(FILE_WINDOW)
    let stopped = false
    try {
      size = data ? data.length : local!.size
      // Exclusive create: never opens through something (even a symlink) already at that name.
      handle = await channel.open(temp, 'wx', {mode: 0o600})
      const openHandle = handle
      const writeChunk = (offset: number, sent: () => void) =>
        this.inChunkSlot(async () => {
          // A chunk still waiting for its slot when the upload failed: its handle is closed, and
          // the server may give the number to the next file it opens.
          if (stopped) return
          const length = Math.min(CHUNK, size - offset)
          // The caller's bytes go as they are: the request is a copy of them.
          if (data) {
            await told(channel.write(openHandle, data, offset, length, offset), sent)
            written += length
            return
          }
          const buffer = readBuffers.take()
          const bytesRead = local!.read(buffer, length, offset)
          if (bytesRead !== length) throw changedWhileSent(this.name, path)
          await told(channel.write(openHandle, buffer, 0, bytesRead, offset), sent)
          // Only once answered: a write longer than the server takes goes in parts, from this buffer.
          readBuffers.give(buffer)
          written += bytesRead
        })
      const seconds = Math.floor(options.mtimeMs / 1000)
      const finish = () => {
        // sftp-server answers in order: attributes and close can go out together, behind the
        // writes. The rename waits for all of them: only a complete file gets the final name.
        handle = undefined
        return Promise.all([channel.fsetstat(openHandle, {mode: options.mode & 0o7777, atime: seconds, mtime: seconds}), channel.close(openHandle)])
      }
      if (size <= CHUNK) {
        const buffer = data ?? Buffer.allocUnsafe(size)
        const bytesRead = data ? data.length : size > 0 ? local!.read(buffer, size, 0) : 0
        if (bytesRead !== size) throw changedWhileSent(this.name, path)
        const write = bytesRead > 0 ? channel.write(openHandle, buffer, 0, bytesRead, 0) : Promise.resolve()
        await Promise.all([write, finish()])
        written = bytesRead
      } else {
        const chunks = Math.ceil(size / CHUNK)
        const sent = countdown(chunks)
        const writes = Promise.all(Array.from({length: chunks}, (_, i) => limit(() => writeChunk(i * CHUNK, sent.tick))))
        await finishBehind(channel, sent.done, writes, finish)
      }
      // Every write is answered: nothing reads the caller's bytes or the file any more (a page
      // may wait long for its assets, and thousands of them at once).
      if (data) options.release?.(data)
      local?.close()
      await landing(options)
      await this.replaceFile(channel, temp, path)
    } catch (error) {
      stopped = true
      limit.clearQueue()
      throw await this.abandon(channel, error, path, temp, handle, size - written)
    } finally {
      local?.close()
    }
  }

  /**
   * Many files through one `tar -x` on the slave, into a fresh directory of our own under the
   * root (so tar never meets a symlink or a published name: members are called m0, m1, ...),
   * then each renamed into place over SFTP with the same checks as `put`. Per file that is one
   * request instead of six; the bytes are the same.
   */
  async putMany(files: readonly BulkFile[], onFile: (path: string, error?: unknown) => void, signal?: AbortSignal, landAfter?: Promise<unknown>): Promise<void> {
    const conn = this.working
    if (!this.bulk || this.config.bulk === false || files.length === 0 || !(await conn.canExec())) return
    const channel = conn.channel()
    const stage = tempDirName()
    const stageAbs = this.abs(stage)
    await channel.mkdir(stageAbs, 0o700).catch((error) => {
      throw this.fail(error, stage)
    })
    const staged: Array<{file: BulkFile; name: string}> = []
    // Files that wait for the caller's word (pages) leave no trace before it, not even a directory.
    if (!landAfter) this.makeParentsMeanwhile(files)
    try {
      // Reads run a few files ahead of the stream.
      const reads = files.map((file) => ({file, data: undefined as Promise<Buffer> | undefined}))
      const read = (i: number) => {
        const next = reads[i]
        if (next && !next.data) {
          next.data = next.file.read ? next.file.read() : readFile(next.file.localPath)
          next.data.catch(() => {})
        }
      }
      // A member never spans two writes: a buffer holds a full write plus the largest member.
      const capacity = BULK_WRITE_BYTES + files.reduce((most, file) => Math.max(most, tarMemberBytes(file.size)), 0)
      const result = await conn.pipe(`tar -x -o -p -f - -C ${shellQuote(stageAbs)}`, async (write) => {
        // Small files are gathered into large writes: each write costs an SSH packet (padding,
        // encryption, a socket write), and a 4 KiB page alone would fill an eighth of one. The
        // buffers are used again once ssh2 has taken their bytes (see readBuffers).
        const free: Buffer[] = []
        let gathering: Buffer = Buffer.allocUnsafe(capacity)
        let gatheredBytes = 0
        const send = async () => {
          if (gatheredBytes === 0) return
          const full = gathering
          const chunk = full.subarray(0, gatheredBytes)
          gathering = free.pop() ?? Buffer.allocUnsafe(capacity)
          gatheredBytes = 0
          await write(chunk, () => free.push(full))
        }
        for (let i = 0; i < reads.length && !signal?.aborted; i++) {
          for (let k = i; k < i + BULK_READ_AHEAD; k++) read(k)
          const {file} = reads[i]
          let data: Buffer
          try {
            this.check(file.path)
            data = await reads[i].data!
          } catch (error) {
            onFile(file.path, withContext(error, this.name, file.path))
            continue
          }
          reads[i].data = undefined
          if (data.length !== file.size) {
            onFile(file.path, changedWhileSent(this.name, file.path))
            continue
          }
          const name = `m${i}`
          gatheredBytes += writeTarMember(gathering, gatheredBytes, name, data, file.options.mode, file.options.mtimeMs / 1000)
          file.release?.(data)
          staged.push({file, name})
          if (gatheredBytes >= BULK_WRITE_BYTES) await send()
        }
        await send()
        await write(tarEnd())
      })
      if (result.code !== 0) {
        const why = result.stderr.toString().trim().split('\n')[0] ?? ''
        if (/no space left/i.test(why)) {
          const full = new MirrorError('DISK_FULL', `the slave's disk is full (tar: ${why})`, {target: this.name, retryable: true})
          for (const {file} of staged) onFile(file.path, withContext(full, this.name, file.path))
          return
        }
        // No tar, another tar, a refused command: the files go one by one (not reported here).
        this.bulk = false
        return
      }
      // Staged under names of our own; the final names wait for the caller's word.
      await landAfter
      // Renames are small requests: as many in flight as the connection's channels take.
      const limit = this.requestLimit()
      await Promise.all(
        staged.map(({file, name}) =>
          limit(async () => {
            try {
              await this.ensureParents(file.path)
              await this.replaceFile(conn.channel(), `${stageAbs}/${name}`, file.path)
              onFile(file.path)
            } catch (error) {
              onFile(file.path, this.fail(error, file.path))
            }
          }),
        ),
      )
    } catch (error) {
      throw this.fail(error)
    } finally {
      // What was not renamed (a failure, an interrupted stream) goes with the directory.
      if (!conn.lost) {
        const left = await conn.channel().readdir(stageAbs).catch(() => [])
        await Promise.all(left.map((entry) => conn.channel().unlink(`${stageAbs}/${entry.filename}`).catch(() => {})))
        await conn.channel().rmdir(stageAbs).catch(() => {})
      }
    }
  }

  /**
   * Starts making the directories `files` go to, one look per directory, while their stream
   * runs: made as each file was renamed into place, after the stream, their levels were a tail
   * of round trips (0.2 s of a first publish behind a 20 ms link, in the lab). The renames wait
   * for the same checks (ensureParents answers them from its cache), and report their failures.
   */
  private makeParentsMeanwhile(files: readonly BulkFile[]): void {
    const seen = new Set<string>()
    for (const file of files) {
      const dir = posix.dirname(file.path)
      if (dir === '.' || seen.has(dir)) continue
      seen.add(dir)
      this.ensureParents(file.path).catch(() => {})
    }
  }

  /**
   * Rebuilds `path` from byte ranges of its current version (copied on the slave with
   * `copy-data`) and byte ranges of `localPath`, into a temporary file renamed over `path`.
   * Only offered when the server has `copy-data` (see `capabilities.copyData`).
   */
  async patch(localPath: string, path: string, ops: readonly DeltaOp[], options: PutOptions): Promise<void> {
    this.check(path)
    const channel = this.connection.channel()
    const final = this.abs(path)
    const temp = this.abs(tempNameFor(path))
    let source: Buffer | undefined
    let handle: Buffer | undefined
    let size = 0
    const limit = pLimit(FILE_WINDOW)
    let stopped = false
    let local: LocalFile
    try {
      local = LocalFile.open(localPath)
    } catch (error) {
      throw withContext(error, this.name, path)
    }
    try {
      if (!this.connection.extensions.copyData) throw new MirrorError('INTERNAL', 'patch needs the copy-data extension, which this server lacks', {target: this.name, path})
      if (!(await this.requireParents(path))) throw new MirrorError('TRANSFER_FAILED', 'the file to patch is gone from the slave', {target: this.name, path})
      const current = toRemoteStat(await channel.lstat(final))
      // The old version is read, so it must be the file itself, never what a symlink points at.
      if (current.type !== 'file') throw unsafe(this.name, path, path, current.type)
      // Both opens in one round trip; a failure of either closes what the other opened.
      const opening = [channel.open(final, 'r'), channel.open(temp, 'wx', {mode: 0o600})] as const
      const [opened, created] = await Promise.allSettled(opening)
      if (opened.status === 'fulfilled') source = opened.value
      if (created.status === 'fulfilled') handle = created.value
      if (opened.status === 'rejected') throw opened.reason
      if (created.status === 'rejected') throw created.reason
      const from = opened.value
      const to = created.value
      const jobs: Array<(sent: () => void) => Promise<void>> = []
      for (const op of ops) {
        const at = size
        size += op.length
        // copy-data reads "to end of file" when the length is 0: an empty op must not be sent.
        if (op.length === 0) continue
        if (op.kind === 'copy') {
          jobs.push((sent) => told(channel.copyData(from, op.from, op.length, to, at), sent))
          continue
        }
        for (let done = 0; done < op.length; done += CHUNK) {
          const length = Math.min(CHUNK, op.length - done)
          jobs.push((sent) =>
            this.inChunkSlot(async () => {
              if (stopped) return
              const buffer = readBuffers.take()
              const bytesRead = local.read(buffer, length, op.offset + done)
              if (bytesRead !== length) throw changedWhileSent(this.name, path)
              await told(channel.write(to, buffer, 0, length, at + done), sent)
              readBuffers.give(buffer)
            }),
          )
        }
      }
      const sent = countdown(jobs.length)
      const rebuilt = Promise.all(jobs.map((job) => limit(() => job(sent.tick))))
      const seconds = Math.floor(options.mtimeMs / 1000)
      await finishBehind(channel, sent.done, rebuilt, () => {
        handle = undefined
        // The old version is no longer read: its close goes out with the new one's.
        const closing = channel.close(from).catch(() => {})
        source = undefined
        return Promise.all([channel.fsetstat(to, {mode: options.mode & 0o7777, atime: seconds, mtime: seconds}), channel.close(to), closing])
      })
      local.close()
      await landing(options)
      await this.replace(channel, temp, final)
    } catch (error) {
      stopped = true
      limit.clearQueue()
      throw await this.abandon(channel, error, path, temp, handle, size)
    } finally {
      if (source) await channel.close(source).catch(() => {})
      local.close()
    }
  }

  /**
   * After a failed write: the error to throw (DISK_FULL when the disk is why), with the open
   * handle closed and the temporary file removed, so the final name keeps its old content.
   */
  private async abandon(channel: SftpChannel, error: unknown, path: string, temp: string, handle: Buffer | undefined, needed: number): Promise<MirrorError> {
    const failure = await this.failWrite(channel, error, posix.dirname(temp), path, needed)
    if (handle) await channel.close(handle).catch(() => {})
    await channel.unlink(temp).catch(() => {})
    return failure
  }

  /**
   * `fail` for a write into `dir`: DISK_FULL or a read-only PERMISSION_DENIED when the file
   * system is why (sftp-server reports ENOSPC and EROFS as a plain "Failure").
   */
  private async failWrite(channel: SftpChannel, error: unknown, dir: string, path: string, needed: number): Promise<MirrorError> {
    const why = sftpStatus(error) === SFTP_STATUS.FAILURE ? await this.fileSystemTrouble(channel, dir, needed) : undefined
    if (why === 'full') {
      return new MirrorError('DISK_FULL', "the slave's disk is full", {
        target: this.name,
        path,
        suggestion: `Free space on the file system of ${dir} on the slave; the old file was left in place.`,
        cause: error,
      })
    }
    if (why === 'read-only') {
      return new MirrorError('PERMISSION_DENIED', `the file system of ${dir} on the slave is read-only`, {
        target: this.name,
        path,
        suggestion: 'Remount it read-write on the slave, or point the target at a writable directory.',
        cause: error,
      })
    }
    return this.fail(error, path)
  }

  /**
   * Runs `job` (read a chunk, write it, wait for the answer) once this target has fewer chunks in
   * flight than twice what its channels' send windows hold (CHUNKS_IN_FLIGHT_MIN to _MAX): the
   * rest would only wait in ssh2's queue, read and copied already.
   */
  private inChunkSlot<T>(job: () => Promise<T>): Promise<T> {
    const conn = this.connection
    const cap = conn.sendWindowCap
    const wanted = Number.isFinite(cap) ? Math.ceil((2 * conn.wantedChannels * cap) / CHUNK) : CHUNKS_IN_FLIGHT_MAX
    this.chunkSlots.concurrency = Math.min(CHUNKS_IN_FLIGHT_MAX, Math.max(CHUNKS_IN_FLIGHT_MIN, wanted))
    return this.chunkSlots(job)
  }

  /**
   * Renames a complete temporary file over the published `path`. A directory in the way makes
   * the rename fail (it is never replaced); only then is the path looked at, to say so.
   */
  private async replaceFile(channel: SftpChannel, temp: string, path: string): Promise<void> {
    try {
      await this.replace(channel, temp, this.abs(path))
    } catch (error) {
      const there = await channel.lstat(this.abs(path)).then(toRemoteStat, () => null)
      if (there?.type === 'dir') throw new MirrorError('UNSAFE_PATH', 'a directory stands where a file is published', {target: this.name, path})
      throw error
    }
  }

  /** Renames `from` over `to` atomically (posix-rename), or as close as the server allows. */
  private async replace(channel: SftpChannel, from: string, to: string): Promise<void> {
    if (this.connection.extensions.posixRename) {
      await channel.posixRename(from, to)
      return
    }
    // Plain SFTP rename refuses an existing target: the old file goes first (not atomic).
    try {
      await channel.rename(from, to)
    } catch (error) {
      if (sftpStatus(error) !== SFTP_STATUS.FAILURE) throw error
      await channel.unlink(to).catch(() => {})
      await channel.rename(from, to)
    }
  }

  /** After a generic SFTP failure: is the file system full or read-only? */
  private async fileSystemTrouble(channel: SftpChannel, dir: string, needed: number): Promise<'full' | 'read-only' | undefined> {
    if (!this.connection.extensions.statvfs) return undefined
    try {
      const vfs = await channel.statvfs(dir)
      if (vfs.readOnly) return 'read-only'
      return vfs.favail === 0 || vfs.bavail * vfs.frsize <= Math.max(needed, 0) || vfs.bfree === 0 ? 'full' : undefined
    } catch {
      return undefined
    }
  }

  async remove(path: string): Promise<void> {
    this.check(path)
    try {
      if (await this.requireParents(path)) await this.connection.channel().unlink(this.abs(path))
    } catch (error) {
      if (sftpStatus(error) !== SFTP_STATUS.NO_SUCH_FILE) throw this.fail(error, path)
    }
  }

  async removeEmptyDir(path: string): Promise<boolean> {
    this.check(path)
    // The directory itself must be a real directory too: treat it as a parent of a child.
    const state = await this.parentsState(`${path}/x`).catch((error) => {
      throw this.fail(error, path)
    })
    if (state !== 'ok') return false
    try {
      await this.connection.channel().rmdir(this.abs(path))
    } catch {
      return false
    }
    for (const dir of [...this.dirs.keys()]) if (dir === path || dir.startsWith(`${path}/`)) this.dirs.delete(dir)
    for (const dir of [...this.chains]) if (dir === path || dir.startsWith(`${path}/`)) this.chains.delete(dir)
    return true
  }

  async backup(path: string, backupId: string): Promise<void> {
    this.check(path)
    this.check(backupId)
    const channel = this.connection.channel()
    const src = this.abs(path)
    const dest = `${this.stateAbs}/backups/${backupId}/${path}`
    try {
      await this.requireParents(path)
      const stat = await channel.lstat(src)
      await this.ensureStateDir(posix.dirname(dest))
      if ((stat.mode & S_IFMT) === S_IFLNK) {
        await channel.unlink(dest).catch(() => {})
        await channel.symlink(await channel.readlink(src), dest)
        return
      }
      if ((stat.mode & S_IFMT) !== S_IFREG) throw new MirrorError('TRANSFER_FAILED', 'cannot back up: not a regular file', {target: this.name, path})
      const from = await channel.open(src, 'r')
      try {
        const to = await channel.open(dest, 'w', {mode: 0o600})
        try {
          if (this.connection.extensions.copyData) {
            await channel.copyData(from, 0, 0, to, 0)
          } else {
            const writes: Array<Promise<void>> = []
            await this.readHandle(channel, from, (chunk, offset) => writes.push(channel.write(to, chunk, 0, chunk.length, offset)))
            await Promise.all(writes)
          }
          await channel.fsetstat(to, {mode: stat.mode & 0o7777, atime: stat.atime, mtime: stat.mtime})
        } finally {
          await channel.close(to).catch(() => {})
        }
      } finally {
        await channel.close(from).catch(() => {})
      }
    } catch (error) {
      throw this.fail(error, path)
    }
  }

  async readState(name: string): Promise<Buffer | null> {
    this.check(name)
    const chunks: Buffer[] = []
    try {
      await this.readFile(this.connection.channel(), `${this.stateAbs}/${name}`, (chunk) => chunks.push(chunk))
    } catch (error) {
      if (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE) return null
      throw this.fail(error, `(state) ${name}`)
    }
    return Buffer.concat(chunks)
  }

  async writeState(name: string, data: Buffer | StateBytes): Promise<RemoteStat> {
    this.check(name)
    // A window of writes, not all at once: each request is a copy of its chunk until the slave
    // takes it, and a 100,000-file manifest is 13 MB. On a failure the writes not sent yet never
    // are: `data` is the caller's again.
    const chunks = isStateBytes(data) ? checkedChunks(data) : [data]
    return this.replaceState(name, isStateBytes(data) ? data.size : data.length, undefined, (channel, to, _from, lastSent) => writeWindowed(channel, to, chunks, lastSent))
  }

  async patchState(name: string, baseSize: number, ops: readonly DeltaOp[], data: Buffer): Promise<RemoteStat> {
    this.check(name)
    if (!this.connection.extensions.copyData) return this.writeState(name, data)
    return this.replaceState(name, data.length, baseSize, async (channel, to, from, lastSent) => {
      const requests: Array<Promise<void>> = []
      // The window holds back bytes, not requests: a manifest's changes are many short rows,
      // and up to a window's worth of them all go in one round trip, sent here and now.
      const literal = from ? ops.reduce((sum, op) => sum + (op.kind === 'copy' ? 0 : op.length), 0) : data.length
      const limit = literal <= FILE_WINDOW * CHUNK ? undefined : pLimit(FILE_WINDOW)
      const write = (offset: number, length: number, at: number) => {
        for (let done = 0; done < length; done += CHUNK) {
          const send = () => channel.write(to, data, offset + done, Math.min(CHUNK, length - done), at + done)
          requests.push(limit ? limit(send) : send())
        }
      }
      // The old file is not what the ops were made against: the new one is written whole.
      if (!from) write(0, data.length, 0)
      let at = 0
      for (const op of from ? ops : []) {
        // copy-data reads "to end of file" when the length is 0: an empty op must not be sent.
        if (op.kind === 'copy' && op.length > 0) requests.push(channel.copyData(from!, op.from, op.length, to, at))
        else if (op.kind !== 'copy') write(op.offset, op.length, at)
        at += op.length
      }
      if (!limit) lastSent()
      await Promise.all(requests).catch((error) => {
        limit?.clearQueue()
        throw error
      })
    })
  }

  /**
   * Replaces a state file atomically: `fill` writes the new content into a temporary file's
   * open handle, which is renamed over `name`; resolves to the new file's stat.
   * With `baseSize`, `fill` also gets the old file open for reading, when it is a file of that
   * size. Requests that may go together do (the old file's check and opening with the create,
   * the stat behind the writes, the closes with the rename): three round trips where one after
   * the other took nine to twelve. On failure the old file stays. `fill` calls `lastSent` once
   * its last request has gone out, if it knows when that is.
   */
  private async replaceState(
    name: string,
    size: number,
    baseSize: number | undefined,
    fill: (channel: SftpChannel, to: Buffer, from: Buffer | undefined, lastSent: () => void) => Promise<void>,
  ): Promise<RemoteStat> {
    this.manifestAhead = undefined
    let ahead = this.stateOpening
    this.stateOpening = undefined
    if (ahead && (ahead.name !== name || ahead.baseSize !== baseSize)) {
      void discardOpening(ahead)
      ahead = undefined
    }
    const opening = ahead ?? this.openState(name, baseSize)
    const {channel, file, temp} = opening
    const token = this.lockToken
    if (name === 'manifest.json' && token) {
      this.lockChecked = this.lockIsOurs(channel, token).then((ours) => ({ours, at: Date.now()}))
      this.lockChecked.catch(() => {})
    }
    let handle: Buffer | undefined
    let from: Buffer | undefined
    try {
      const [created, current, opened] = await opening.requests
      if (opened.status === 'fulfilled' && opened.value) {
        if (current.status === 'fulfilled' && current.value?.type === 'file' && current.value.size === baseSize) from = opened.value
        else void channel.close(opened.value).catch(() => {})
      }
      if (created.status === 'rejected') throw created.reason
      handle = created.value
      const openHandle = handle
      // No fsync: it waits until the slave's disk holds everything the publish wrote (over a
      // second after a first publish), and it could not make the published files durable anyway.
      // A manifest a crash damages fails its checksum, and the next publish lists the slave
      // instead of trusting it. The stat goes out behind the last write (fill says when it has
      // sent it), and is answered after it: close and rename change neither size nor time.
      let stat: Promise<Attributes> | undefined
      await fill(channel, openHandle, from, () => {
        stat = channel.fstat(openHandle)
        stat.catch(() => {})
      })
      const written = await (stat ?? channel.fstat(openHandle))
      handle = undefined
      const closing = [channel.close(openHandle), from ? channel.close(from).catch(() => {}) : undefined]
      from = undefined
      await Promise.all([...closing, this.replace(channel, temp, file)])
      return toRemoteStat(written)
    } catch (error) {
      const failure = await this.failWrite(channel, error, posix.dirname(file), `(state) ${name}`, size)
      if (handle) await channel.close(handle).catch(() => {})
      if (from) await channel.close(from).catch(() => {})
      await channel.unlink(temp).catch(() => {})
      throw failure
    }
  }

  /**
   * Sends the first requests of the next writeState or patchState of `name` now (with
   * `baseSize`, as that call will have it): the temporary file's create and, for a patch, the
   * old file's check and opening. The call that follows with the same name and base size
   * starts from their answers: a round trip sooner (the executor asks for the manifest's while
   * the deletes are under way). Anything else, or unlock and close, undoes them.
   */
  prepareState(name: string, baseSize?: number): void {
    this.check(name)
    if (this.stateOpening || !this.conn || this.conn.lost) return
    this.stateOpening = this.openState(name, baseSize)
  }

  /** The first requests of a state file's replacement (see replaceState), all in one round trip. */
  private openState(name: string, baseSize: number | undefined): StateOpening {
    const channel = this.connection.channel()
    const file = `${this.stateAbs}/${name}`
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`
    const requests = this.ensureStateDir(posix.dirname(file)).then(() =>
      // The old file is opened beside its check (it is ours, in the state directory, and the
      // check is what decides whether it is read at all).
      Promise.allSettled([
        channel.open(temp, 'wx', {mode: 0o600}),
        baseSize === undefined ? undefined : channel.lstat(file).then(toRemoteStat),
        baseSize === undefined ? undefined : channel.open(file, 'r'),
      ] as const),
    )
    requests.catch(() => {})
    return {name, baseSize, channel, file, temp, requests}
  }

  async appendState(name: string, data: Buffer): Promise<void> {
    this.check(name)
    const channel = this.connection.channel()
    const file = `${this.stateAbs}/${name}`
    let handle: Buffer | undefined
    try {
      await this.ensureStateDir(posix.dirname(file))
      // O_APPEND on the slave: every write lands at the end, whatever offset it names.
      handle = await channel.open(file, 'a', {mode: 0o600})
      const openHandle = handle
      const writes: Array<Promise<void>> = []
      for (let offset = 0; offset < data.length; offset += CHUNK) {
        writes.push(channel.write(openHandle, data, offset, Math.min(CHUNK, data.length - offset), offset))
      }
      handle = undefined
      await Promise.all([...writes, channel.close(openHandle)])
    } catch (error) {
      const failure = await this.failWrite(channel, error, posix.dirname(file), `(state) ${name}`, data.length)
      if (handle) await channel.close(handle).catch(() => {})
      throw failure
    }
  }

  async removeState(name: string): Promise<void> {
    this.check(name)
    await this.connection
      .channel()
      .unlink(`${this.stateAbs}/${name}`)
      .catch((error) => {
        if (sftpStatus(error) !== SFTP_STATUS.NO_SUCH_FILE) throw this.fail(error, `(state) ${name}`)
      })
  }

  async statState(name: string): Promise<RemoteStat | null> {
    this.check(name)
    const ahead = name === 'manifest.json' && Date.now() - this.manifestAheadAt < MANIFEST_AHEAD_MS ? this.manifestAhead : undefined
    this.manifestAhead = undefined
    const answered = await ahead
    if (answered !== undefined) return answered
    try {
      return toRemoteStat(await this.connection.channel().lstat(`${this.stateAbs}/${name}`))
    } catch (error) {
      if (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE) return null
      throw this.fail(error, `(state) ${name}`)
    }
  }

  async lock(owner: LockOwner, breakLock = false): Promise<void> {
    this.manifestAhead = undefined
    this.lockChecked = undefined
    const token = `${owner.host}:${owner.pid}:${randomBytes(6).toString('hex')}`
    const body = Buffer.from(JSON.stringify({...owner, token}))
    if (breakLock) {
      await this.writeState('lock', body)
      this.lockToken = token
      return
    }
    const channel = this.connection.channel()
    const file = `${this.stateAbs}/lock`
    let handle: Buffer
    try {
      await this.ensureStateDir(this.stateAbs)
      handle = await channel.open(file, 'wx', {mode: 0o644})
    } catch (error) {
      // sftp-server reports EEXIST as a plain failure: the lock's content tells.
      const held = sftpStatus(error) === SFTP_STATUS.FAILURE ? await this.readState('lock').catch(() => null) : null
      if (held) throw lockedError(this.name, held.toString('utf8'))
      throw this.fail(error, '(state) lock')
    }
    // sftp-server answers in order: the close goes out with the write. Never closed twice: the
    // server may already have given the handle's number to another file.
    const written = channel.write(handle, body, 0, body.length, 0)
    const closed = channel.close(handle)
    // The manifest's check that a publish makes next goes with them: answered after the lock is
    // written, it is a look from under the lock, a round trip sooner.
    const manifestAfter = lstatManifest(channel, this.stateAbs)
    try {
      await Promise.all([written, closed])
    } catch (error) {
      const failure = await this.failWrite(channel, error, this.stateAbs, '(state) lock', body.length)
      await closed.catch(() => {})
      await channel.unlink(file).catch(() => {})
      throw failure
    }
    this.lockToken = token
    this.manifestAhead = manifestAfter
    this.manifestAheadAt = Date.now()
  }

  async unlock(): Promise<void> {
    const token = this.lockToken
    const checked = this.lockChecked
    this.lockChecked = undefined
    const opening = this.stateOpening
    this.stateOpening = undefined
    if (opening) await discardOpening(opening)
    if (!token || !this.conn) return
    this.lockToken = undefined
    const channel = this.conn.channel()
    try {
      // Looked at while the manifest was written (the last thing a publish does under the lock): two round trips fewer.
      const recent = await checked?.catch(() => undefined)
      const ours = recent && Date.now() - recent.at < LOCK_CHECKED_MS ? recent.ours : await this.lockIsOurs(channel, token)
      if (ours) await channel.unlink(`${this.stateAbs}/lock`)
    } catch {
      // Never throws: a lock left behind names its holder and can be broken.
    }
  }

  /** Whether the lock on the slave is still the one this target took (with `token`). */
  private async lockIsOurs(channel: SftpChannel, token: string): Promise<boolean> {
    // A lock is a line of JSON: one read, sent with the close, tells.
    const handle = await channel.open(`${this.stateAbs}/lock`, 'r')
    const buffer = Buffer.allocUnsafe(LOCK_READ_BYTES)
    const [bytes] = await Promise.all([channel.read(handle, buffer, 0, buffer.length, 0).catch(() => 0), channel.close(handle).catch(() => {})])
    return buffer.subarray(0, bytes).toString('utf8').includes(token)
  }

  /** lstat of a directory under the root, shared by concurrent callers; only 'dir' is remembered. */
  private dirState(dir: string): Promise<DirState> {
    let pending = this.dirs.get(dir)
    if (!pending) {
      pending = this.lstatDir(dir)
      this.dirs.set(dir, pending)
      pending.then(
        (state) => state !== 'dir' && this.dirs.get(dir) === pending && this.dirs.delete(dir),
        () => this.dirs.get(dir) === pending && this.dirs.delete(dir),
      )
    }
    return pending
  }

  /** A fresh lstat of a directory under the root, never from the cache. */
  private lstatDir(dir: string): Promise<DirState> {
    return this.connection
      .channel()
      .lstat(this.abs(dir))
      .then(
        (s) => toRemoteStat(s).type as DirState,
        (error) => {
          if (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE) return 'missing' as const
          throw error
        },
      )
  }

  /**
   * 'ok' when every parent of `path` is a real directory; else what is in the way. Every level
   * is asked at once (one round trip, not one per level) and judged from the root down: a level
   * below a symlink was looked at through it, so its answer is dropped, never used.
   */
  private async parentsState(path: string): Promise<'ok' | 'missing' | {dir: string; type: DirState}> {
    if (this.chainKnown(path)) return 'ok'
    const dirs = parentDirs(path)
    const states = this.lookAtAll(dirs)
    for (let level = 0; level < dirs.length; level++) {
      const state = await states[level]
      if (state === 'dir') continue
      this.forgetBelow(dirs, states, level)
      return state === 'missing' ? 'missing' : {dir: dirs[level], type: state}
    }
    for (const dir of dirs) this.chains.add(dir)
    return 'ok'
  }

  /** The parents of `path` are known real directories (see chains); a file at the root has none. */
  private chainKnown(path: string): boolean {
    const slash = path.lastIndexOf('/')
    return slash === -1 || this.chains.has(path.slice(0, slash))
  }

  /** dirState of every level at once; each answer is met where it is awaited, not as an unhandled rejection. */
  private lookAtAll(dirs: readonly string[]): Array<Promise<DirState>> {
    const looked = dirs.map((dir) => this.dirState(dir))
    for (const state of looked) state.catch(() => {})
    return looked
  }

  /** Drops the cached answers for the levels below `level` that `looked` asked for: they were looked at through what is there. */
  private forgetBelow(dirs: readonly string[], looked: ReadonlyArray<Promise<DirState>>, level: number): void {
    for (let below = level + 1; below < dirs.length; below++) {
      if (this.dirs.get(dirs[below]) === looked[below]) this.dirs.delete(dirs[below])
      this.chains.delete(dirs[below])
    }
  }

  /** True when the parents exist as real directories, false when one is missing; UNSAFE_PATH otherwise. */
  private async requireParents(path: string): Promise<boolean> {
    const state = await this.parentsState(path)
    if (state === 'ok') return true
    if (state === 'missing') return false
    throw unsafe(this.name, path, state.dir, state.type)
  }

  /**
   * Creates missing parents one level at a time, checking each with lstat, so no symlink is
   * followed. The levels are looked at all at once; below a level that had to be made, nothing
   * can be there, so the deeper ones are made without waiting for their (stale) answers.
   */
  private async ensureParents(path: string): Promise<void> {
    if (this.chainKnown(path)) return
    const dirs = parentDirs(path)
    const looked = this.lookAtAll(dirs)
    let made = false
    for (const [level, dir] of dirs.entries()) {
      let state: DirState = made ? 'missing' : await looked[level]
      if (state === 'missing') {
        const refused = await this.makeDir(dir, path)
        // A cached answer may be an lstat sent (on another channel) before the mkdir landed: look
        // again afresh, unless our mkdir just made it.
        state = refused ? await this.lstatDir(dir) : 'dir'
        made = !refused
        if (state === 'dir') this.dirs.set(dir, Promise.resolve('dir'))
        // Not made, and nobody else made it either: the mkdir's own failure says why.
        if (state === 'missing' && refused) throw await this.failWrite(this.connection.channel(), refused, posix.dirname(this.abs(dir)), path, 0)
      }
      if (state !== 'dir') {
        this.forgetBelow(dirs, looked, level)
        throw unsafe(this.name, path, dir, state)
      }
    }
    for (const dir of dirs) this.chains.add(dir)
  }

  /** mkdir of one directory under the root; resolves to the generic failure, if any, for the caller to weigh. */
  private makeDir(dir: string, path: string): Promise<unknown> {
    let pending = this.mkdirs.get(dir)
    if (!pending) {
      pending = this.connection
        .channel()
        .mkdir(this.abs(dir), 0o755)
        .then(
          () => undefined,
          (error: unknown) => {
            // Someone else made it meanwhile, or not: the lstat that follows decides.
            if (sftpStatus(error) !== SFTP_STATUS.FAILURE) throw this.fail(error, path)
            return error
          },
        )
        .finally(() => this.mkdirs.delete(dir))
      this.mkdirs.set(dir, pending)
    }
    return pending
  }

  /** mkdir -p inside the state directory (ours, outside the web root). */
  private ensureStateDir(dir: string): Promise<void> {
    let pending = this.stateDirs.get(dir)
    if (!pending) {
      pending = (async () => {
        const parent = posix.dirname(dir)
        const channel = this.connection.channel()
        if (await isDirectory(channel, dir)) return
        if (parent !== dir && parent !== '/') await this.ensureStateDir(parent)
        await channel.mkdir(dir, 0o700).catch(async (error) => {
          if (!(await isDirectory(channel, dir))) throw error
        })
      })()
      pending.catch(() => this.stateDirs.delete(dir))
      this.stateDirs.set(dir, pending)
    }
    return pending
  }

  /** Reads a whole remote file, `FILE_WINDOW` reads in flight, chunks delivered in order. */
  private async readFile(channel: SftpChannel, abs: string, onChunk: (chunk: Buffer, offset: number) => void): Promise<void> {
    const handle = await channel.open(abs, 'r')
    try {
      await this.readHandle(channel, handle, onChunk)
    } finally {
      await channel.close(handle).catch(() => {})
    }
  }

  private async readHandle(channel: SftpChannel, handle: Buffer, onChunk: (chunk: Buffer, offset: number) => void): Promise<void> {
    let next = 0
    const queue: Array<{offset: number; buffer: Buffer; done: Promise<number>}> = []
    const issue = () => {
      const buffer = Buffer.allocUnsafe(CHUNK)
      queue.push({offset: next, buffer, done: channel.read(handle, buffer, 0, CHUNK, next)})
      next += CHUNK
    }
    for (let i = 0; i < FILE_WINDOW; i++) issue()
    try {
      while (queue.length > 0) {
        const {offset, buffer, done} = queue.shift() as (typeof queue)[number]
        const bytes = await done
        if (bytes === 0) return
        onChunk(buffer.subarray(0, bytes), offset)
        if (bytes < CHUNK) {
          // A short read: the requests after it asked for the wrong offsets; start again from here.
          for (const stale of queue.splice(0)) stale.done.catch(() => {})
          next = offset + bytes
        }
        while (queue.length < FILE_WINDOW) issue()
      }
    } finally {
      for (const stale of queue) stale.done.catch(() => {})
    }
  }

  /** checkRelativePath, with the target named in its error. */
  private check(path: string): void {
    try {
      checkRelativePath(path)
    } catch (error) {
      throw withContext(error, this.name, path)
    }
  }

  /** Classifies an error of this target and names the target and file. */
  private fail(error: unknown, path?: string): MirrorError {
    if (error instanceof MirrorError) return withContext(error, this.name, path)
    const status = sftpStatus(error)
    const message = (error as Error)?.message ?? String(error)
    const where = this.conn?.where ?? this.location.host
    switch (status) {
      case SFTP_STATUS.PERMISSION_DENIED:
        return new MirrorError('PERMISSION_DENIED', `permission denied on the slave (${where})`, {
          target: this.name,
          path,
          suggestion: `Give the SSH user write access to ${this.rootAbs || 'the root'} on the slave.`,
          cause: error,
        })
      case SFTP_STATUS.NO_SUCH_FILE:
        return new MirrorError('TRANSFER_FAILED', 'no such file or directory on the slave', {target: this.name, path, cause: error})
      case SFTP_STATUS.NO_CONNECTION:
      case SFTP_STATUS.CONNECTION_LOST:
        return new MirrorError('CONNECTION_LOST', `the connection to ${where} was lost`, {target: this.name, path, cause: error})
      case undefined:
        return withContext(error, this.name, path)
      default:
        return new MirrorError('TRANSFER_FAILED', `the slave (${where}) refused: ${message}`, {target: this.name, path, cause: error})
    }
  }
}

/** The stat of the manifest in `stateDir`, for statState to take (see manifestAhead): null when there is none, undefined when it could not tell. */
function lstatManifest(channel: SftpChannel, stateDir: string): Promise<RemoteStat | null | undefined> {
  return channel.lstat(posix.join(stateDir, 'manifest.json')).then(toRemoteStat, (error) => (sftpStatus(error) === SFTP_STATUS.NO_SUCH_FILE ? null : undefined))
}

/** Whether `path` is a directory (or a symlink to one); false when it is not there or cannot be looked at. */
function isDirectory(channel: SftpChannel, path: string): Promise<boolean> {
  return channel.stat(path).then(
    (s) => (s.mode & S_IFMT) === S_IFDIR,
    () => false,
  )
}

/**
 * Writes `chunks` one after the other from offset 0, `FILE_WINDOW` requests in flight: a chunk
 * is taken only when the window has room, so bytes made on demand are never all in memory.
 * Calls `lastSent` once the last write has gone out, unless one failed.
 */
async function writeWindowed(channel: SftpChannel, handle: Buffer, chunks: Iterable<Buffer>, lastSent?: () => void): Promise<void> {
  const inFlight = new Set<Promise<void>>()
  let failure: {error: unknown} | undefined
  let at = 0
  try {
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length && !failure; done += CHUNK) {
        while (inFlight.size >= FILE_WINDOW && !failure) await Promise.race(inFlight)
        if (failure) break
        const request: Promise<void> = channel
          .write(handle, chunk, done, Math.min(CHUNK, chunk.length - done), at + done)
          .catch((error: unknown) => {
            failure ??= {error}
          })
          .finally(() => inFlight.delete(request))
        inFlight.add(request)
      }
      if (failure) break
      at += chunk.length
    }
    if (!failure) lastSent?.()
  } finally {
    // Nothing is left writing to the handle when this returns, whichever way it does.
    await Promise.all(inFlight)
  }
  if (failure) throw failure.error
}

/** A source file whose size changed while it was sent: it is never landed cut short. */
function changedWhileSent(target: string, path: string): MirrorError {
  return new MirrorError('TRANSFER_FAILED', 'the file changed on the master while it was being published: the next publish sends it', {target, path, retryable: true})
}

function unsafe(target: string, path: string, dir: string, type: string): MirrorError {
  return new MirrorError('UNSAFE_PATH', `"${dir}" on the slave is a ${type}, not a directory: refusing to go through it`, {
    target,
    path,
    suggestion: `Look at "${dir}" on the slave: if it should be a directory, replace it with one; mirror never writes or deletes through a symlink.`,
    retryable: false,
  })
}

/** POSIX single-quoting, for command lines shown to the user. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}

/** A state file's replacement begun: its first requests' answers (see SftpTarget.openState). */
interface StateOpening {
  name: string
  baseSize: number | undefined
  channel: SftpChannel
  file: string
  temp: string
  requests: Promise<readonly [PromiseSettledResult<Buffer>, PromiseSettledResult<RemoteStat | undefined>, PromiseSettledResult<Buffer | undefined>]>
}

/** Closes what a replacement begun and never taken opened, and removes its temporary file. */
async function discardOpening(opening: StateOpening): Promise<void> {
  const answers = await opening.requests.catch(() => undefined)
  if (!answers) return
  const [created, , opened] = answers
  const {channel} = opening
  await Promise.all([
    created.status === 'fulfilled' ? channel.close(created.value).catch(() => {}) : undefined,
    opened.status === 'fulfilled' && opened.value ? channel.close(opened.value).catch(() => {}) : undefined,
    created.status === 'fulfilled' ? channel.unlink(opening.temp).catch(() => {}) : undefined,
  ])
}

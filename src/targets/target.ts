// The one interface every kind of slave implements (local directory, SSH/SFTP, later object
// storage). The sync core only ever talks to this; differences live in `capabilities`.
// Paths given to a target are POSIX paths relative to its root, already checked by
// `checkRelativePath`; the target still refuses any write that would leave the root.

import type {DeltaOp} from '../sync/delta.js'

/**
 * Bytes made on demand, in order, chunk by chunk: what a big manifest is written from, so that
 * it is never whole in memory. `chunks` may be called more than once and gives the same bytes.
 */
export interface StateBytes {
  readonly size: number
  chunks(): Iterable<Buffer>
}

/** What a target found at a path. Symlinks are reported as such, never followed. */
export interface RemoteStat {
  type: 'file' | 'dir' | 'symlink' | 'other'
  size: number
  /** Modification time in milliseconds, truncated to whole seconds (SFTP's precision). */
  mtimeMs: number
  /** Permission bits only (mode & 0o7777). */
  mode: number
}

export interface TargetCapabilities {
  /** Server-side copy of byte ranges between files (OpenSSH `copy-data`): enables delta transfer. */
  copyData: boolean
  /** How many transfers the target handles well at once. */
  maxTransfers: number
}

export interface BulkFile {
  localPath: string
  path: string
  /** The size the plan saw: a file that has another size when read has changed meanwhile and is not sent. */
  size: number
  options: PutOptions
  /** Reads the file's bytes (shared with other targets); reading `localPath` when absent. */
  read?: () => Promise<Buffer>
  /** Gives back what `read` returned once its bytes are copied elsewhere (at most once): its memory serves another read. */
  release?: (data: Buffer) => void
}

export interface PutOptions {
  /** Permission bits to set on the file. */
  mode: number
  /** Modification time to set on the file, in milliseconds. */
  mtimeMs: number
  /**
   * The file's bytes, when the caller has them (read once for several targets): a target may
   * send these instead of reading `localPath` itself.
   */
  read?: () => Promise<Buffer>
  /** Gives back what `read` returned once nothing will look at it again (at most once): its memory serves another read. */
  release?: (data: Buffer) => void
  /**
   * The file may be written under its temporary name at once, but takes its final name only
   * once this resolves; when it rejects, the temporary file is removed and the error thrown.
   * Lets pages travel while their assets are still on the way, and land after them.
   */
  landAfter?: Promise<unknown>
  /**
   * Called once the file is complete under its temporary name, before it takes its final name
   * (and before the wait for `landAfter`); at most once, and not when it fails before. The
   * caller may start another transfer meanwhile.
   */
  onStaged?: () => void
}

/** Tells the caller the file is staged, then waits for the word to land (`landAfter`), if there is one. */
export async function landing(options: Pick<PutOptions, 'landAfter' | 'onStaged'>): Promise<void> {
  options.onStaged?.()
  if (options.landAfter) await options.landAfter
}

/** Who holds a target's lock. Written into the lock so that others can see it. */
export interface LockOwner {
  host: string
  user: string
  pid: number
  /** ISO time the lock was taken. */
  since: string
  command: string
}

export interface Target {
  /** The target's name from the config. */
  readonly name: string
  /** The target's URL for display: never contains a password. */
  readonly url: string
  /** Known after `connect()`. */
  readonly capabilities: TargetCapabilities

  /**
   * Opens the connection (one per target for the whole run) and checks that the root exists
   * and is a directory. Throws MirrorError UNREACHABLE, TIMEOUT, AUTH_FAILED, HOST_KEY_UNKNOWN,
   * HOST_KEY_CHANGED or ROOT_MISSING, each naming the target.
   */
  connect(): Promise<void>

  /** Closes the connection. Never throws; safe to call twice or before connect. */
  close(): Promise<void>

  /**
   * lstat of each path under the root, many requests in flight at once. A path that does not
   * exist maps to null. A path below a symlink or a non-directory also maps to null.
   */
  stat(paths: readonly string[]): Promise<Map<string, RemoteStat | null>>

  /**
   * Every entry under the root, recursively, without following symlinks (a symlink is listed
   * as `symlink` and not entered). Directories are not listed, only what is in them.
   * `skip(dir)` returning true prunes a directory (relative path) from the walk.
   */
  list(skip?: (dir: string) => boolean): Promise<Map<string, RemoteStat>>

  /** SHA-256 (hex) of a file's content under the root. Throws if it is not a regular file. */
  hash(path: string): Promise<string>

  /**
   * Writes the local file to `path` atomically: the bytes go to a temporary name in the same
   * directory, mode and mtime are set, then it is renamed over `path`. Missing parent
   * directories are created. Never writes through a symlink: if any existing component of the
   * path is a symlink or not a directory, throws UNSAFE_PATH and writes nothing. On failure the
   * temporary file is removed where possible and `path` keeps its old content. Throws DISK_FULL,
   * PERMISSION_DENIED or CONNECTION_LOST with the target and path.
   */
  put(localPath: string, path: string, options: PutOptions): Promise<void>

  /**
   * Optional: writes many local files at once, each exactly as `put` would (temporary name,
   * mode and mtime, rename; never through a symlink), faster than one `put` each. Calls
   * `onFile` once per file as it lands or fails. A file it did not report was not written (the
   * slave could not take the faster way, or `signal` stopped it): the caller `put`s it. Throws
   * CONNECTION_LOST and the like when the target itself fails. With `landAfter` the files may
   * travel at once but take their final names only once it resolves; when it rejects, none
   * does, nothing is reported, and it throws that rejection's error.
   */
  putMany?(files: readonly BulkFile[], onFile: (path: string, error?: unknown) => void, signal?: AbortSignal, landAfter?: Promise<unknown>): Promise<void>

  /**
   * Present when `capabilities.copyData`: rebuilds the file at `path` from its current content
   * plus new bytes, as `put` would write it (temporary name, mode and mtime, rename; never
   * through a symlink). `copy` ops copy byte ranges of the file now at `path` on the slave
   * itself; `data` ops write byte ranges of `localPath`. The caller guarantees the slave's file
   * is the one the delta was computed against.
   */
  patch?(localPath: string, path: string, ops: readonly DeltaOp[], options: PutOptions): Promise<void>

  /**
   * Deletes the file at `path` (a symlink itself, never its target). A missing file is not an
   * error. Never deletes through a symlinked parent directory (throws UNSAFE_PATH).
   */
  remove(path: string): Promise<void>

  /** Removes the directory if it is empty; returns false (and does nothing) otherwise. */
  removeEmptyDir(path: string): Promise<boolean>

  /**
   * Copies the file at `path` into the target's state, under `backups/<backupId>/<path>`,
   * so a customization overwritten with --force can be recovered.
   */
  backup(path: string, backupId: string): Promise<void>

  /** Reads a file of the target's state (outside the web root); null when it does not exist. */
  readState(name: string): Promise<Buffer | null>

  /**
   * Writes a file of the target's state atomically (temporary name, then rename). `data` is not
   * read once the promise settles: the caller may reuse it. Made on demand (StateBytes), its
   * chunks are taken as they are written, never all first; fewer or more bytes than its `size`
   * throw INTERNAL and leave the old file in place. Resolves to the new file's stat, the same
   * size and mtime that `statState` gives right after.
   */
  writeState(name: string, data: Buffer | StateBytes): Promise<RemoteStat>

  /**
   * Appends `data` to a file of the target's state, creating it. Not atomic: a reader may find
   * the last append cut short, so what is appended must be recognisable line by line.
   */
  appendState(name: string, data: Buffer): Promise<void>

  /** Removes a file of the target's state; nothing happens when it does not exist. */
  removeState(name: string): Promise<void>

  /**
   * Present when `capabilities.copyData`: replaces a file of the target's state, as
   * `writeState` does, with `data` rebuilt from `ops`: `copy` ranges of the file now there (which
   * must be `baseSize` bytes long, else this writes `data` whole), `data` ranges of `data`.
   * Like `writeState`, it does not read `data` once the promise settles, and resolves to the
   * new file's stat.
   */
  patchState?(name: string, baseSize: number, ops: readonly DeltaOp[], data: Buffer): Promise<RemoteStat>

  /**
   * Optional: begins the next `writeState` or `patchState` of `name` now (`baseSize` as that
   * call will give it), so that it finishes sooner. Nothing is replaced until that call; a call
   * with another name or base size, `unlock` and `close` undo what this began.
   */
  prepareState?(name: string, baseSize?: number): void

  /** Stats a file of the target's state; null when it does not exist. */
  statState(name: string): Promise<RemoteStat | null>

  /**
   * Takes the target's publish lock (one publisher at a time). If another owner holds it,
   * throws LOCKED naming the holder and since when, unless `breakLock` is true, in which case
   * the old lock is replaced.
   */
  lock(owner: LockOwner, breakLock?: boolean): Promise<void>

  /** Releases the lock if this target holds it. Never throws. */
  unlock(): Promise<void>
}

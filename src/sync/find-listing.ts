// Lists a source tree with GNU find: one process that lstats every entry and prints the numbers
// the walk needs. Node has no batch stat: its lstat makes a Stats object (four Dates) per file,
// and a cold 20,000-file walk spent ~0.4 s of a core on that, against ~0.1 s for find.
// Not a second walk with its own rules: it only lists; scan.ts applies the same excludes and
// checks to what either lister finds. Anything find cannot answer cleanly (not GNU, an entry
// that vanished, a directory it cannot read) gives no listing, and the caller walks with Node,
// which reports the problem the way it always has.

import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {closeSync, fstatSync, openSync, readSync, unlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

/** One entry as find saw it, in find's order (a directory before its content). */
export interface ListedEntry {
  /** POSIX path relative to the root. */
  path: string
  /** find's type letter: f file, d directory, l symlink, anything else is neither. */
  type: string
  ino: number
  size: number
  /** The full st_mode of a regular file (type bits included), as Node's Stats.mode has it. */
  mode: number
  /** sec * 1000 + nsec / 1e6: the very double Node's Stats.mtimeMs holds. */
  mtimeMs: number
}

/**
 * Type, inode, size, permission bits and mtime, then the path, to a NUL: a path may hold spaces
 * and newlines but never a NUL, so it goes last and the NUL ends the record.
 */
const FORMAT = '%y %i %s %m %T@ %P\\0'

const S_IFREG = 0o100000

/** find's answer as it printed it, before any record is read into objects. */
export interface FindListing {
  /** The records, in find's order: a directory before its content. */
  output: Buffer
  /** How many entries (files, directories and the rest). */
  count: number
  /** The paths of the symlinks among them. */
  links: string[]
}

/**
 * Every entry under `root` (not the root itself, nor anything under the directories `prune`
 * names, relative to the root), or undefined when GNU find is missing or fails on any entry.
 */
export async function listWithFind(root: string, prune: readonly string[] = []): Promise<FindListing | undefined> {
  const output = await runFind(root, prune)
  if (output === undefined) return undefined
  // Only the symlinks are read now (to resolve them); every record is read when the files are.
  let count = 0
  const links: string[] = []
  for (let at = 0; at < output.length; count++) {
    const end = output.indexOf(0, at)
    if (end === -1) return undefined
    if (output[at] === LINK) {
      const entry = parseRecord(output, at, end)
      if (!entry) return undefined
      links.push(entry.path)
    }
    at = end + 1
  }
  return {output, count, links}
}

const LINK = 'l'.charCodeAt(0)

function runFind(root: string, prune: readonly string[]): Promise<Buffer | undefined> {
  // find writes to a file, not a pipe: through a pipe it stalls each time the pipe is full and
  // this thread is busy (loading modules, making handshakes), and a 20,000-file listing took
  // four times as long. The file is unlinked at once, so nothing is left behind, whatever happens.
  let fd: number
  try {
    const path = join(tmpdir(), `mirror-listing-${process.pid}-${randomBytes(6).toString('hex')}`)
    fd = openSync(path, 'wx+', 0o600)
    unlinkSync(path)
  } catch {
    return Promise.resolve(undefined)
  }
  return new Promise<Buffer | undefined>((resolve) => {
    // -H: a root that is a symlink to a directory is walked, as Node's readdir of it would.
    // A root starting with "-" would read as an option.
    const start = root.startsWith('-') ? `./${root}` : root
    // ( -path A -o -path B ) -prune -o -printf: a pruned directory is neither printed nor entered.
    const pruned = prune.flatMap((dir, i) => [...(i > 0 ? ['-o'] : []), '-path', escapeGlob(`${start.replace(/\/+$/, '')}/${dir}`)])
    const select = pruned.length > 0 ? ['(', ...pruned, ')', '-prune', '-o'] : []
    let child
    try {
      // C locale: the decimal point of %T@ and no translated messages.
      child = spawn('find', ['-H', start, '-mindepth', '1', ...select, '-printf', FORMAT], {stdio: ['ignore', fd, 'ignore'], env: {...process.env, LC_ALL: 'C'}})
    } catch {
      resolve(undefined)
      return
    }
    child.on('error', () => resolve(undefined))
    child.on('close', (code) => resolve(code === 0 ? readWhole(fd) : undefined))
  }).finally(() => closeSync(fd))
}

/** A path as a -path pattern that matches only itself. */
const escapeGlob = (path: string) => path.replace(/[*?[\]\\]/g, '\\$&')

function readWhole(fd: number): Buffer | undefined {
  try {
    const {size} = fstatSync(fd)
    const output = Buffer.allocUnsafe(size)
    let read = 0
    while (read < size) {
      const n = readSync(fd, output, read, size - read, read)
      if (n === 0) return undefined
      read += n
    }
    return output
  } catch {
    return undefined
  }
}

/** Reads find's records; undefined at the first one that is not what FORMAT prints. */
export function parseListing(output: Buffer): ListedEntry[] | undefined {
  const entries: ListedEntry[] = []
  return readListing(output, (entry) => entries.push(entry)) ? entries : undefined
}

/**
 * Hands each of find's records to `visit`, in order; false at the first one that is not what
 * FORMAT prints (what was visited before it stands). Each path is decoded on its own: as one
 * string, a 100,000-file listing (7 MB) would stay in memory as long as any path cut from it.
 */
export function readListing(output: Buffer, visit: (entry: ListedEntry) => void): boolean {
  for (let at = 0; at < output.length; ) {
    const end = output.indexOf(0, at)
    const entry = end === -1 ? undefined : parseRecord(output, at, end)
    if (!entry) return false
    visit(entry)
    at = end + 1
  }
  return true
}

const SPACE = 32

function parseRecord(bytes: Buffer, start: number, end: number): ListedEntry | undefined {
  const type = String.fromCharCode(bytes[start])
  if (bytes[start + 1] !== SPACE) return undefined
  const inoAt = start + 2
  const sizeAt = bytes.indexOf(SPACE, inoAt) + 1
  const modeAt = bytes.indexOf(SPACE, sizeAt) + 1
  const timeAt = bytes.indexOf(SPACE, modeAt) + 1
  const pathAt = bytes.indexOf(SPACE, timeAt) + 1
  if (sizeAt === 0 || modeAt === 0 || timeAt === 0 || pathAt === 0 || pathAt >= end) return undefined
  const ino = integer(bytes, inoAt, sizeAt - 1)
  const size = integer(bytes, sizeAt, modeAt - 1)
  const perms = integer(bytes, modeAt, timeAt - 1, 8)
  const mtimeMs = timestamp(bytes, timeAt, pathAt - 1)
  if (ino < 0 || size < 0 || perms < 0 || Number.isNaN(mtimeMs)) return undefined
  // UTF-8 with replacement characters, as Node's readdir decodes names.
  return {path: bytes.toString('utf8', pathAt, end), type, ino, size, mode: type === 'f' ? S_IFREG | perms : perms, mtimeMs}
}

/** The digits of bytes[from, to) in `base` as a number (-1 if any is not such a digit). */
function integer(bytes: Buffer, from: number, to: number, base: 8 | 10 = 10): number {
  if (from >= to) return -1
  // Past 2^53 a running sum rounds at each step; Number() rounds once, as Node's inode does.
  if (base === 10 && to - from > 15) {
    const digits = bytes.toString('latin1', from, to)
    return /^\d+$/.test(digits) ? Number(digits) : -1
  }
  let value = 0
  for (let i = from; i < to; i++) {
    const digit = bytes[i] - 48
    if (digit < 0 || digit >= base) return -1
    value = value * base + digit
  }
  return value
}

const DOT = 46

/**
 * "seconds.fraction" as milliseconds, computed as Node computes Stats.mtimeMs from the
 * timespec (sec * 1000 + nsec / 1e6), so that the hash cache and the tree's print see the same
 * number whichever lister ran. NaN for anything else (a time before 1970 among them).
 */
function timestamp(bytes: Buffer, from: number, to: number): number {
  const dot = bytes.indexOf(DOT, from)
  if (dot === -1 || dot >= to) return Number.NaN
  const sec = integer(bytes, from, dot)
  // Nanoseconds: the first nine fraction digits (GNU find prints ten, the last always 0).
  const digits = Math.min(to - dot - 1, 9)
  let nsec = digits > 0 ? integer(bytes, dot + 1, dot + 1 + digits) : 0
  if (sec < 0 || nsec < 0) return Number.NaN
  for (let i = digits; i < 9; i++) nsec *= 10
  return sec * 1000 + nsec / 1e6
}

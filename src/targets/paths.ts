// Path rules shared by every target: what a relative path under a root may look like, and the
// temporary names used for atomic writes.

import {randomBytes} from 'node:crypto'
import {posix} from 'node:path'

import {MirrorError} from '../errors.js'

/** Longest single name most file systems accept, in bytes. */
const MAX_NAME_BYTES = 255

/**
 * Throws UNSAFE_PATH unless `path` is a plain relative POSIX path that stays under the root:
 * no empty, `.` or `..` component, not absolute, no NUL, no backslash-free trickery needed since
 * only `/` separates components on the slaves.
 */
export function checkRelativePath(path: string): string {
  // Asked of every path of a manifest and of every request: one pass without allocating, for
  // the paths that are plainly fine; anything else goes through the checks that say why.
  if (plainlySafe(path)) return path
  const fail = (why: string): never => {
    throw new MirrorError('UNSAFE_PATH', `refused path: ${why}`, {path})
  }
  if (path.length === 0) fail('empty')
  if (path.includes('\0')) fail('contains a NUL byte')
  if (path.startsWith('/')) fail('absolute')
  for (const part of path.split('/')) {
    if (part === '' || part === '.') fail('empty or "." component')
    if (part === '..') fail('".." component')
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) fail(`a component is longer than ${MAX_NAME_BYTES} bytes`)
  }
  return path
}

/**
 * True when `path` is non-empty, relative, free of NUL, and every component is neither empty
 * nor "." nor ".." and short enough that its UTF-8 form cannot pass MAX_NAME_BYTES (a UTF-16
 * unit is at most 3 bytes). False says only "look closer".
 */
function plainlySafe(path: string): boolean {
  let start = 0
  for (let i = 0; i <= path.length; i++) {
    const code = i < path.length ? path.charCodeAt(i) : 47
    if (code === 0) return false
    if (code !== 47) continue
    const length = i - start
    if (length === 0 || length > MAX_NAME_BYTES / 3) return false
    if (path.charCodeAt(start) === 46 && (length === 1 || (length === 2 && path.charCodeAt(start + 1) === 46))) return false
    start = i + 1
  }
  return true
}

/** Parent directories of a relative path, outermost first: `a/b/c` gives `a`, `a/b`. */
export function parentDirs(path: string): string[] {
  const parts = path.split('/')
  const dirs: string[] = []
  for (let i = 1; i < parts.length; i++) dirs.push(parts.slice(0, i).join('/'))
  return dirs
}

const TEMP_PREFIX = '.mirror-tmp-'

/** Random per process: another publisher's temporary names never meet this one's. */
const PROCESS_TAG = randomBytes(5).toString('hex')
let tempCount = 0

/**
 * The temporary name a file is written under before the rename, in the same directory: short
 * whatever the final name's length, unique (this process's tag and a counter: a hash and fresh
 * random bytes per file cost 20 µs each), and recognisable so that leftovers from a killed run
 * can be found and cleaned.
 */
export function tempNameFor(path: string): string {
  const dir = posix.dirname(path)
  const name = `${TEMP_PREFIX}${PROCESS_TAG}-${(tempCount++).toString(36)}`
  return dir === '.' ? name : `${dir}/${name}`
}

/** A fresh directory name under the root for files on their way in (a bulk upload). */
export function tempDirName(): string {
  return `${TEMP_PREFIX}bulk-${randomBytes(6).toString('hex')}`
}

/** True for a temporary file left by an interrupted write, also inside a temporary directory. */
export function isTempName(path: string): boolean {
  return path.split('/').some((part) => part.startsWith(TEMP_PREFIX))
}

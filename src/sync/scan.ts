// Scans the source tree into entries with content hashes. Hashes are cached on the master
// (keyed by path, size, mtime and inode) so an unchanged tree is stat'ed, never read again.
// Decides nothing about targets: that is the planner's job. The walk is our own readdir, not
// fast-glob: fast-glob's `**` silently drops names that contain a newline.

import {createHash} from 'node:crypto'
import {lstatSync, readdirSync, type Stats} from 'node:fs'
import * as fs from 'node:fs/promises'
import {isAbsolute, join, relative, sep} from 'node:path'

import {MirrorError} from '../errors.js'
import {updateLines} from '../util/digest.js'
import {listWithFind, readListing, type FindListing, type ListedEntry} from './find-listing.js'
import {compileGlobs, type Matcher} from './globs.js'
import {hashLocalFile, hashLocalFileSync} from './file-hash.js'
import {hashFilesTogether} from './hash-helper.js'
import {readHashCache, saveHashCache, type CacheRow, type HashCache} from './hash-cache.js'

export interface SourceEntry {
  /** POSIX path relative to the source root. */
  path: string
  /** Absolute path of the bytes to send (the link target for an in-tree symlink). */
  readonly abs: string
  size: number
  mtimeMs: number
  /** Permission bits. */
  mode: number
  /** SHA-256 of the content, hex. */
  hash: string
}

/** The root with a trailing slash: entry paths are appended to it by plain concatenation. */
const withSlash = (root: string) => (root.endsWith('/') ? root : `${root}/`)

/** The link target when the bytes are not at the entry's own place under the root (an in-tree symlink). */
const linkOf = (rootSlash: string, path: string, abs: string): string | undefined =>
  abs.length === rootSlash.length + path.length && abs.startsWith(rootSlash) && abs.endsWith(path) ? undefined : abs

/**
 * A scanned entry. Its absolute path is not stored but made when asked for, from the source
 * root all entries share (the link target is stored for an in-tree symlink only): on a
 * 100,000-file tree those paths were a tenth of a publish's live memory. Prints as JSON with
 * `abs` like any entry.
 */
class ScannedEntry implements SourceEntry {
  constructor(
    readonly path: string,
    /** The source root with a trailing slash, shared by every entry. */
    private readonly rootSlash: string,
    /** For an in-tree symlink: the file it points to. */
    private readonly link: string | undefined,
    readonly size: number,
    readonly mtimeMs: number,
    readonly mode: number,
    readonly hash: string,
  ) {}

  get abs(): string {
    return this.link ?? `${this.rootSlash}${this.path}`
  }

  toJSON(): {path: string; abs: string; size: number; mtimeMs: number; mode: number; hash: string} {
    return {path: this.path, abs: this.abs, size: this.size, mtimeMs: this.mtimeMs, mode: this.mode, hash: this.hash}
  }
}

/**
 * Entries packed to cross between threads: the paths in one string, the hashes in another, the
 * numbers in one array (moved, not copied). A structured clone of 20,000 entry objects (each
 * with its own copy of the root) cost a tenth of a second on each side.
 */
export interface PackedEntries {
  /** The source root with a trailing slash. */
  rootSlash: string
  /** Paths joined by NUL, which no file name holds. */
  paths: string
  hashes: string
  /** size, mtimeMs and mode of each entry in turn. */
  numbers: Float64Array
  /** Entries whose bytes are elsewhere (in-tree symlinks): index and the file it points to. */
  links: Array<[index: number, abs: string]>
}

export function packEntries(entries: readonly SourceEntry[], root: string): PackedEntries {
  const rootSlash = withSlash(root)
  const numbers = new Float64Array(entries.length * 3)
  const links: Array<[number, string]> = []
  entries.forEach((entry, i) => {
    numbers[i * 3] = entry.size
    numbers[i * 3 + 1] = entry.mtimeMs
    numbers[i * 3 + 2] = entry.mode
    const link = linkOf(rootSlash, entry.path, entry.abs)
    if (link !== undefined) links.push([i, link])
  })
  return {rootSlash, paths: entries.map((e) => e.path).join('\0'), hashes: entries.map((e) => e.hash).join('\0'), numbers, links}
}

export function unpackEntries(packed: PackedEntries): SourceEntry[] {
  if (packed.numbers.length === 0) return []
  const paths = packed.paths.split('\0')
  const hashes = packed.hashes.split('\0')
  const links = new Map(packed.links)
  const {numbers, rootSlash} = packed
  return paths.map((path, i) => new ScannedEntry(path, rootSlash, links.get(i), numbers[i * 3], numbers[i * 3 + 1], numbers[i * 3 + 2], hashes[i]))
}

export interface ScanWarning {
  path: string
  message: string
}

export interface ScanResult {
  entries: SourceEntry[]
  warnings: ScanWarning[]
  /** Files whose content was read this time (not served from the hash cache). */
  hashed: number
  /** Paths read again that had another version in the hash cache: that version's hash. */
  previous?: Map<string, string>
}

export interface ScanOptions {
  /**
   * Read files with blocking calls: for a thread of its own (the walk's worker), where they
   * cost less and leave libuv's threadpool, which every thread of the process shares, to the
   * others (the publish's own reads and writes would queue behind the hashing).
   */
  blocking?: boolean
  /** Globs (relative to the source) never published. */
  exclude: readonly string[]
  /** Where the hash cache lives; omitted means no cache. */
  cacheFile?: string
  /** Only these paths (relative): a watch batch. Missing ones are simply absent from the result. */
  only?: readonly string[]
  /**
   * Who lists the tree: GNU find (find-listing.ts), falling back to Node's readdir and lstat
   * when find cannot answer; or Node alone. Both find the same files. Default: find on Linux.
   */
  lister?: Lister
}

export type Lister = 'find' | 'node'

/** find where it is GNU find's (it is tried, and Node walks when it cannot answer). */
const DEFAULT_LISTER: Lister = process.platform === 'linux' ? 'find' : 'node'

const HASH_CONCURRENCY = 16
/**
 * From this many bytes to hash, blocking reads (the walk's own thread) share the files with a
 * helper thread: a first publish has nothing else to do until the hashes are known, and the
 * other core was idle (662 MB: 1.1 s on one thread). Below, a thread's start is not worth it.
 */
const HELPED_FROM_BYTES = 128 << 20

/** The paths told before any is read (HashOptions.onCandidates): up to this many, or a tenth of the files. */
const CANDIDATES_MIN = 1000

/** A source file as the walk found it: what the hash cache and the tree's print are keyed by. */
export interface SourceFile {
  path: string
  /** Absolute path of the bytes to send (the link target for an in-tree symlink). */
  abs: string
  size: number
  mtimeMs: number
  ino: number
  mode: number
}

/**
 * The source's files as found on disk, before any content is read. `print` digests every file's
 * path, size, mtime, inode and mode: two walks with the same print have the same entries, by
 * the same rule the hash cache trusts.
 */
export interface SourceTree {
  files: SourceFile[]
  warnings: ScanWarning[]
  print: string
}

export async function scanSource(root: string, options: ScanOptions): Promise<ScanResult> {
  return hashSource(await walkSource(root, options), {...options, root})
}

/** Lists the source's files (symlinks resolved, excludes applied); reads no content. */
export async function walkSource(root: string, options: Pick<ScanOptions, 'exclude' | 'only' | 'lister'>): Promise<SourceTree> {
  await checkRoot(root)
  const lister = options.only ? 'node' : (options.lister ?? DEFAULT_LISTER)
  return collectSource(root, options, lister === 'find' ? await listWithFind(root) : undefined)
}

/**
 * A tree listed by GNU find, before its records are read: the print now, the files when asked
 * (collectSource). Reading 20,000 records into files took a core 0.1 s, which a noop never needs.
 */
export interface ListedSource {
  /**
   * The digest of find's answer as it stands, and of where each symlink leads. It changes with
   * anything the files would show, and also with what an exclude pattern drops (excluded
   * directories given as `dir/**` are not listed at all): that costs a slower publish, never a
   * wrong one.
   */
  print: string
  listing: FindListing
}

/** The source listed by GNU find; undefined when find cannot answer. */
export async function listSource(root: string, options: Pick<ScanOptions, 'exclude'>): Promise<ListedSource | undefined> {
  await checkRoot(root)
  const listing = await listWithFind(root, prunedDirs(options.exclude))
  if (!listing) return undefined
  const realRoot = await fs.realpath(root)
  const print = createHash('sha256').update('find\n').update(listing.output)
  for (const path of listing.links) {
    const resolved = await resolveInTree(realRoot, join(root, path))
    print.update(typeof resolved === 'string' ? `${path}\0${resolved}\n` : `${path}\0${resolved.abs}\0${resolved.stats.size}\0${resolved.stats.mtimeMs}\0${resolved.stats.ino}\0${resolved.stats.mode}\n`)
  }
  return {print: print.digest('hex'), listing}
}

/** Exclude patterns that name a whole directory (`cache/**`): find need not list what is in them. */
function prunedDirs(exclude: readonly string[]): string[] {
  return exclude.filter((g) => /^[^*?[\]{}()!+@\\]+\/\*\*$/.test(g) && !g.startsWith('/') && !g.split('/').includes('..')).map((g) => g.slice(0, -3))
}

async function checkRoot(root: string): Promise<void> {
  const rootStat = await fs.stat(root).catch(() => null)
  if (!rootStat?.isDirectory()) {
    throw new MirrorError('USAGE', `source ${root} does not exist or is not a directory`, {
      suggestion: 'Check "source" in the config (relative paths are relative to the config file), or run `mirror render` first.',
    })
  }
}

/**
 * The source's files by the walk's rules, from find's listing when there is one that reads
 * cleanly, else by Node's own walk (or from the `only` paths alone).
 */
export async function collectSource(root: string, options: Pick<ScanOptions, 'exclude' | 'only'>, listing?: FindListing): Promise<SourceTree> {
  const realRoot = await fs.realpath(root)
  const warnings: ScanWarning[] = []
  const excluded = compileGlobs(options.exclude)
  const rootSlash = withSlash(root)
  const files: SourceFile[] = []
  const links: string[] = []
  // Only the numbers are kept: a Stats object (with its four Dates) per file is most of what a
  // walk of a big tree allocates.
  const found = (path: string, entry: Listed) => {
    if (entry.type === 'f') files.push(sourceFile(path, `${rootSlash}${path}`, entry))
    else if (entry.type === 'l') links.push(path)
    else if (entry.type !== 'd') warnings.push({path, message: 'skipped: not a regular file'})
  }
  const rules = {excluded, found, warnings}
  if (options.only) {
    await Promise.all(
      options.only.map(async (path) => {
        const stats = await fs.lstat(join(root, path)).catch(() => null)
        if (stats && !excluded(path)) found(path, listed(stats))
      }),
    )
  } else if (!listing || !readListing(listing.output, ruledBy(rules))) {
    // A record find's listing cannot be read by: what it gave so far goes, Node walks instead.
    files.length = links.length = warnings.length = 0
    await walk(root, rules)
  }
  for (const path of links) {
    const resolved = await resolveInTree(realRoot, join(root, path))
    if (typeof resolved === 'string') warnings.push({path, message: `skipped symlink: ${resolved}`})
    else files.push(sourceFile(path, resolved.abs, resolved.stats))
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  // Made when asked: a tree read from find's listing is hashed, and its print (a pass over every
  // file, 20 ms of the hashing thread's way to the hashes) is find's own.
  let print: string | undefined
  return {
    files,
    warnings,
    get print() {
      return (print ??= treePrint(files, rootSlash))
    },
  }
}

/**
 * The digest of every file's path, size, mtime, inode, mode and, for an in-tree symlink, the
 * file it points to. Fed as the paths in one string and the numbers in one array: a line of
 * text per file was a tenth of a 20,000-file walk.
 */
function treePrint(files: readonly SourceFile[], rootSlash: string): string {
  const numbers = new Float64Array(files.length * 4)
  const links: string[] = []
  files.forEach((f, i) => {
    numbers[i * 4] = f.size
    numbers[i * 4 + 1] = f.mtimeMs
    numbers[i * 4 + 2] = f.ino
    numbers[i * 4 + 3] = f.mode
    const link = linkOf(rootSlash, f.path, f.abs)
    if (link !== undefined) links.push(`${i}\0${link}\0`)
  })
  // The paths some 64 KB at a time: one string of 100,000 paths would sit in the walk's heap.
  const paths = (function* () {
    for (const f of files) yield `${f.path}\0`
  })()
  return updateLines(createHash('sha256').update(`${files.length}\0`), paths).update(new Uint8Array(numbers.buffer)).update(links.join('')).digest('hex')
}

/** An entry's type (find's letter: f, d, l, other) and the numbers a SourceFile keeps. */
type Listed = Omit<ListedEntry, 'path'>

const listed = (stats: Stats): Listed => ({
  type: stats.isFile() ? 'f' : stats.isDirectory() ? 'd' : stats.isSymbolicLink() ? 'l' : '?',
  ino: stats.ino,
  size: stats.size,
  mode: stats.mode,
  mtimeMs: stats.mtimeMs,
})

const sourceFile = (path: string, abs: string, stats: Pick<Listed, 'size' | 'mtimeMs' | 'ino' | 'mode'>): SourceFile => ({path, abs, size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino, mode: stats.mode})

/** Where the files of a walk are, and how to hash them (see ScanOptions). */
export type HashOptions = Pick<ScanOptions, 'cacheFile' | 'only' | 'blocking'> & {
  root: string
  /**
   * Told, before any file is read, which paths the hash cache could not answer for and which
   * paths it knew that the walk no longer found: the publish looks at those on the slaves while
   * the files are read (see probeEarly in publish.ts). Not told when they are more than
   * CANDIDATES_MIN and a tenth of the files.
   */
  onCandidates?: (paths: string[]) => void
}

/**
 * Gives every file of a walk of `root` its content hash: from the cache when size, mtime and
 * inode match, else read.
 */
export async function hashSource(tree: SourceTree, options: HashOptions): Promise<ScanResult> {
  const {result, cacheSaved} = await hashSourceFirst(tree, options)
  await cacheSaved
  return result
}

/**
 * hashSource, answering before the hash cache is written: the caller has the hashes while the
 * cache (a row per file) is still being saved, and waits for `cacheSaved` before it lets go.
 */
export async function hashSourceFirst(tree: SourceTree, options: HashOptions): Promise<{result: ScanResult; cacheSaved: Promise<void>}> {
  const cache: HashCache = options.cacheFile ? await readHashCache(options.cacheFile) : {rows: new Map(), baseBytes: 0, journalBytes: 0}
  const rows = cache.rows
  const rowsRead = rows.size
  // What this scan changed in the cache: saved as these rows alone while they are few.
  const changes = new Map<string, CacheRow | null>()
  const {files, warnings} = tree
  let hashed = 0
  const rootSlash = withSlash(options.root)
  const entry = (file: SourceFile, hash: string): SourceEntry =>
    new ScannedEntry(file.path, rootSlash, linkOf(rootSlash, file.path, file.abs), file.size, Math.floor(file.mtimeMs), file.mode & 0o7777, hash)
  const entries: SourceEntry[] = []
  const toRead: SourceFile[] = []
  const previous = new Map<string, string>()
  let known = 0
  for (const file of files) {
    const row = rows.get(file.path)
    if (row) known++
    if (row && row[0] === file.size && row[1] === file.mtimeMs && row[2] === file.ino) {
      entries.push(entry(file, row[3]))
      continue
    }
    if (row) previous.set(file.path, row[3])
    toRead.push(file)
  }
  // The files' paths as a set, made at most once: for the paths gone, and the cache's pruning.
  let paths: Set<string> | undefined
  const pathSet = () => (paths ??= new Set(files.map((f) => f.path)))
  // Only a change is told, not a whole tree read anew (a first publish, a lost cache): those
  // paths, 100,000 of them, would cross to the publish and stay in its memory for nothing.
  if (options.onCandidates && toRead.length <= Math.max(CANDIDATES_MIN, files.length / 10)) {
    const candidates = toRead.map((f) => f.path)
    if (known < rowsRead && !options.only) for (const path of rows.keys()) if (!pathSet().has(path)) candidates.push(path)
    options.onCandidates(candidates)
  }
  // Largest first: a big file read last would be the whole wait.
  toRead.sort((a, b) => b.size - a.size)
  const hashedAs = (file: SourceFile, hash: string) => {
    hashed++
    const row: CacheRow = [file.size, file.mtimeMs, file.ino, hash]
    rows.set(file.path, row)
    changes.set(file.path, row)
    entries.push(entry(file, hash))
    if (previous.get(file.path) === hash) previous.delete(file.path)
  }
  if (options.blocking && toRead.reduce((bytes, file) => bytes + file.size, 0) >= HELPED_FROM_BYTES) {
    const hashes = await hashFilesTogether(toRead.map((file) => file.abs))
    toRead.forEach((file, i) => hashedAs(file, hashes[i]))
  } else {
    // A fixed set of readers taking the next file, not a queued task per file: on a first
    // publish of 100,000 files, those tasks (a closure, promises and a context each) were 80 MB
    // at once. The first failure stops them all.
    let next = 0
    let failed = false
    const reader = async () => {
      while (next < toRead.length && !failed) {
        const file = toRead[next++]
        try {
          hashedAs(file, options.blocking ? hashLocalFileSync(file.abs) : await hashLocalFile(file.abs, file.size))
        } catch (error) {
          failed = true
          throw error
        }
      }
    }
    await Promise.all(Array.from({length: Math.min(options.blocking ? 1 : HASH_CONCURRENCY, toRead.length)}, reader))
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))

  // Rows of files that are gone are forgotten, so the cache does not grow for ever. When every
  // row read was found for a walked file, none is for a file gone: no set of the paths needed.
  const forgetting = !options.only && known < rowsRead
  const save = async (cacheFile: string) => {
    // After the answer has gone out.
    await new Promise((resolve) => setImmediate(resolve))
    if (forgetting) {
      const live = pathSet()
      for (const key of rows.keys()) {
        if (live.has(key)) continue
        rows.delete(key)
        changes.set(key, null)
      }
    }
    await saveHashCache(cacheFile, cache, changes)
  }
  const cacheSaved = options.cacheFile && (hashed > 0 || forgetting) ? save(options.cacheFile) : Promise.resolve()
  // Met by the caller's await; not an unhandled rejection meanwhile.
  cacheSaved.catch(() => {})
  return {result: {entries, warnings, hashed, previous}, cacheSaved}
}

/** What the walk keeps of what it lists, by the same rules whoever listed it. */
interface WalkRules {
  excluded: Matcher
  found: (path: string, entry: Listed) => void
  warnings: ScanWarning[]
}

/** Whether an entry named `name` at `path` is looked at: not excluded, and a name we can say. */
function admitted(path: string, name: string, {excluded, warnings}: WalkRules): boolean {
  if (excluded(path)) return false
  // Node decodes names as UTF-8; one that is not cannot be named again to read it.
  if (name.includes('\uFFFD')) {
    warnings.push({path, message: 'skipped: the name is not valid UTF-8'})
    return false
  }
  return true
}

/** A pattern like "cache/**" excludes the directory's content: it is not walked into. */
const entered = (path: string, {excluded}: WalkRules) => !excluded(`${path}/\u0000`)

/** walk()'s rules, entry by entry, over a listing made elsewhere (a directory before its content). */
function ruledBy(rules: WalkRules): (entry: ListedEntry) => void {
  const walkedInto = new Set([''])
  return (entry) => {
    const slash = entry.path.lastIndexOf('/')
    if (!walkedInto.has(slash === -1 ? '' : entry.path.slice(0, slash))) return
    if (!admitted(entry.path, entry.path.slice(slash + 1), rules)) return
    if (entry.type !== 'd') rules.found(entry.path, entry)
    else if (entered(entry.path, rules)) walkedInto.add(entry.path)
  }
}

const YIELD_MS = 5

/**
 * Every entry under `root` that is not excluded; an excluded directory is not entered.
 * Synchronous on purpose: a stat of a cached inode costs microseconds, a promise around it
 * ten times that, and a 20,000-file noop is mostly this walk.
 */
async function walk(root: string, rules: WalkRules): Promise<void> {
  // Plain concatenation: path.join normalizes, and costs more than the stat on a big tree.
  const rootSlash = withSlash(root)
  const pending = ['']
  let lastYield = Date.now()
  while (pending.length > 0) {
    // Let other work (the targets' SSH handshakes) go on between directories.
    if (Date.now() - lastYield > YIELD_MS) {
      await new Promise((resolve) => setImmediate(resolve))
      lastYield = Date.now()
    }
    const rel = pending.pop()!
    // An unreadable directory fails the scan: skipping it would plan its files as deleted.
    const names = readdirSync(rel ? `${rootSlash}${rel}` : root)
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name
      if (!admitted(path, name, rules)) continue
      const stats = lstatSync(`${rootSlash}${path}`, {throwIfNoEntry: false})
      if (!stats) {
        rules.warnings.push({path, message: 'skipped: vanished while scanning'})
      } else if (stats.isDirectory()) {
        if (entered(path, rules)) pending.push(path)
      } else {
        rules.found(path, listed(stats))
      }
    }
  }
}

/** A symlink is published as the file it points to only when that file is inside the tree. */
async function resolveInTree(realRoot: string, abs: string): Promise<{abs: string; stats: Stats} | string> {
  let real: string
  try {
    real = await fs.realpath(abs)
  } catch {
    return 'it points to nothing'
  }
  const rel = relative(realRoot, real)
  // `..foo` is a name inside the tree; only `..` as a whole component leads out of it.
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return 'it points outside the source tree'
  const stats = await fs.stat(real)
  if (!stats.isFile()) return 'it points to a directory (not followed)'
  return {abs: real, stats}
}

// Scans the source tree into entries with content hashes. Hashes are cached on the master
// (keyed by path, size, mtime and inode) so an unchanged tree is stat'ed, never read again.
// Decides nothing about targets: that is the planner's job. The walk is our own readdir, not
// fast-glob: fast-glob's `**` silently drops names that contain a newline.

import {createHash} from 'node:crypto'
import {createReadStream, type Stats} from 'node:fs'
import * as fs from 'node:fs/promises'
import {isAbsolute, join, relative, sep} from 'node:path'

import pLimit from 'p-limit'

import {MirrorError} from '../errors.js'
import {compileGlobs, type Matcher} from './globs.js'

export interface SourceEntry {
  /** POSIX path relative to the source root. */
  path: string
  /** Absolute path of the bytes to send (the link target for an in-tree symlink). */
  abs: string
  size: number
  mtimeMs: number
  /** Permission bits. */
  mode: number
  /** SHA-256 of the content, hex. */
  hash: string
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
}

export interface ScanOptions {
  /** Globs (relative to the source) never published. */
  exclude: readonly string[]
  /** Where the hash cache lives; omitted means no cache. */
  cacheFile?: string
  /** Only these paths (relative): a watch batch. Missing ones are simply absent from the result. */
  only?: readonly string[]
}

type CacheRow = [size: number, mtimeMs: number, ino: number, hash: string]

const HASH_CONCURRENCY = 16
/** Files up to this size are read in one call; larger ones are streamed. */
const SMALL_FILE = 1 << 20

export async function scanSource(root: string, options: ScanOptions): Promise<ScanResult> {
  const rootStat = await fs.stat(root).catch(() => null)
  if (!rootStat?.isDirectory()) {
    throw new MirrorError('USAGE', `source ${root} does not exist or is not a directory`, {
      suggestion: 'Check "source" in the config (relative paths are relative to the config file), or run `mirror render` first.',
    })
  }
  const realRoot = await fs.realpath(root)
  const cache = options.cacheFile ? await readCache(options.cacheFile) : new Map<string, CacheRow>()
  const warnings: ScanWarning[] = []

  const excluded = compileGlobs(options.exclude)
  const found: Array<{path: string; stats: Stats}> = []
  if (options.only) {
    await Promise.all(
      options.only.map(async (path) => {
        const stats = await fs.lstat(join(root, path)).catch(() => null)
        if (stats && !excluded(path)) found.push({path, stats})
      }),
    )
  } else {
    await walk(root, '', excluded, found, warnings)
  }

  const files: Array<{path: string; abs: string; stats: Stats}> = []
  for (const {path, stats} of found) {
    if (stats.isDirectory()) continue
    if (stats.isSymbolicLink()) {
      const resolved = await resolveInTree(realRoot, join(root, path))
      if (typeof resolved === 'string') warnings.push({path, message: `skipped symlink: ${resolved}`})
      else files.push({path, abs: resolved.abs, stats: resolved.stats})
      continue
    }
    if (!stats.isFile()) {
      warnings.push({path, message: 'skipped: not a regular file'})
      continue
    }
    files.push({path, abs: join(root, path), stats})
  }

  const limit = pLimit(HASH_CONCURRENCY)
  let hashed = 0
  const entries = await Promise.all(
    files.map(({path, abs, stats}) =>
      limit(async (): Promise<SourceEntry> => {
        const row = cache.get(path)
        let hash: string
        if (row && row[0] === stats.size && row[1] === stats.mtimeMs && row[2] === stats.ino) {
          hash = row[3]
        } else {
          hash = await hashLocalFile(abs, stats.size)
          hashed++
          cache.set(path, [stats.size, stats.mtimeMs, stats.ino, hash])
        }
        return {path, abs, size: stats.size, mtimeMs: Math.floor(stats.mtimeMs), mode: stats.mode & 0o7777, hash}
      }),
    ),
  )
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))

  if (options.cacheFile && hashed > 0) {
    if (!options.only) {
      // Forget rows of files that are gone, so the cache does not grow for ever.
      const live = new Set(entries.map((e) => e.path))
      for (const key of cache.keys()) if (!live.has(key)) cache.delete(key)
    }
    await writeCache(options.cacheFile, cache)
  }
  return {entries, warnings, hashed}
}

const WALK_CONCURRENCY = 64

/** Every entry under `dir` that is not excluded; an excluded directory is not entered. */
async function walk(root: string, dir: string, excluded: Matcher, out: Array<{path: string; stats: Stats}>, warnings: ScanWarning[]): Promise<void> {
  const limit = pLimit(WALK_CONCURRENCY)
  const visit = async (rel: string): Promise<void> => {
    const names = await fs.readdir(rel ? join(root, rel) : root)
    const subdirs: string[] = []
    await Promise.all(
      names.map((name) =>
        limit(async () => {
          const path = rel ? `${rel}/${name}` : name
          if (excluded(path)) return
          // Node decodes names as UTF-8; one that is not cannot be named again to read it.
          if (name.includes('\uFFFD')) return void warnings.push({path, message: 'skipped: the name is not valid UTF-8'})
          const stats = await fs.lstat(join(root, path)).catch(() => null)
          if (!stats) return void warnings.push({path, message: 'skipped: vanished while scanning'})
          if (stats.isDirectory()) {
            // A pattern like "cache/**" excludes the directory's content: skip the walk too.
            if (!excluded(`${path}/\u0000`)) subdirs.push(path)
          } else {
            out.push({path, stats})
          }
        }),
      ),
    )
    await Promise.all(subdirs.map(visit))
  }
  await visit(dir)
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

export async function hashLocalFile(abs: string, size: number): Promise<string> {
  if (size <= SMALL_FILE) return createHash('sha256').update(await fs.readFile(abs)).digest('hex')
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(abs, {highWaterMark: 1 << 20})
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')))
  })
}

async function readCache(file: string): Promise<Map<string, CacheRow>> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as {format: number; files: Record<string, CacheRow>}
    if (parsed.format !== 1) return new Map()
    return new Map(Object.entries(parsed.files))
  } catch {
    // A missing or damaged cache only costs a re-hash.
    return new Map()
  }
}

async function writeCache(file: string, cache: Map<string, CacheRow>): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`
  await fs.mkdir(join(file, '..'), {recursive: true})
  await fs.writeFile(temp, JSON.stringify({format: 1, files: Object.fromEntries(cache)}))
  await fs.rename(temp, file)
}

// Checks that a slave's root holds exactly the expected tree: the same file list, and every
// file's SHA-1 equal to the source's. It reads every byte, so a fast wrong answer shows as wrong.

import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'

import type {Tree} from './corpus.js'

export interface Verdict {
  ok: boolean
  /** Files checked (present on both sides). */
  files: number
  missing: number
  extra: number
  /** Same path, other content. */
  differ: number
  /** Symlinks, sockets, … where a file was expected; also a directory where a file was expected. */
  other: number
  /** Directories on the slave that hold no expected file (e.g. left empty after deletes); reported, not a failure. */
  extraDirs: number
  /** Files whose mtime (whole seconds) differs from the source's; reported, not a failure. */
  mtimeDiffers: number
  /** Up to five problems, for the report. */
  examples: string[]
}

const HASH_CONCURRENCY = 8
const READ_WHOLE = 8 << 20

/**
 * SHA-1s already computed, by absolute path, with the inode, size, mtime and ctime they were
 * computed for. Any write to a file, in place or by replacing it, changes its ctime or inode (the
 * kernel sets ctime; no tool can put it back), so a file whose four are unchanged has unchanged
 * bytes and need not be read again.
 */
export type HashCache = Map<string, {key: string; sha1: string}>

export interface VerifyOptions {
  /** path → mtime in whole seconds, for the mtime note. */
  mtimes?: Map<string, number>
  cache?: HashCache
  /** Receives every path that is wrong (missing, extra, other content, not a file). */
  bad?: string[]
}

/** Compares `root` with `expected`: the file list, then the content of every file. */
export async function verifyRoot(root: string, expected: Tree, options: VerifyOptions = {}): Promise<Verdict> {
  const {mtimes, cache, bad} = options
  const verdict: Verdict = {ok: false, files: 0, missing: 0, extra: 0, differ: 0, other: 0, extraDirs: 0, mtimeDiffers: 0, examples: []}
  const note = (line: string) => {
    if (verdict.examples.length < 5) verdict.examples.push(line)
    bad?.push(line.slice(line.indexOf(': ') + 2))
  }
  const found = new Map<string, number>()
  const dirs: string[] = []
  await walk(root, '', found, dirs, (path, what) => {
    verdict.other++
    note(`${what}: ${path}`)
  })
  const expectedDirs = new Set<string>([''])
  for (const path of expected.keys()) {
    for (let d = dirname(path); d !== '.' && !expectedDirs.has(d); d = dirname(d)) expectedDirs.add(d)
  }
  for (const d of dirs) if (!expectedDirs.has(d)) verdict.extraDirs++
  for (const path of found.keys()) {
    if (!expected.has(path)) {
      verdict.extra++
      note(`extra: ${path}`)
    }
  }
  const toHash: Array<[string, string]> = []
  for (const [path, [size, sha1]] of expected) {
    const actual = found.get(path)
    if (actual === undefined) {
      verdict.missing++
      note(`missing: ${path}`)
    } else if (actual !== size) {
      verdict.differ++
      note(`differs (size ${actual}, want ${size}): ${path}`)
    } else {
      toHash.push([path, sha1])
    }
  }
  let next = 0
  const worker = async () => {
    while (next < toHash.length) {
      const [path, sha1] = toHash[next++]
      const abs = join(root, path)
      const st = await fs.stat(abs, {bigint: true})
      const key = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      const known = cache?.get(abs)
      let actual: string
      if (known && known.key === key) {
        actual = known.sha1
      } else {
        actual = await hashFile(abs)
        cache?.set(abs, {key, sha1: actual})
      }
      if (actual !== sha1) {
        verdict.differ++
        note(`differs (content): ${path}`)
      } else {
        verdict.files++
      }
      const want = mtimes?.get(path)
      if (want !== undefined && Number(st.mtimeMs / 1000n) !== want) verdict.mtimeDiffers++
    }
  }
  await Promise.all(Array.from({length: HASH_CONCURRENCY}, worker))
  verdict.ok = verdict.missing === 0 && verdict.extra === 0 && verdict.differ === 0 && verdict.other === 0
  return verdict
}

async function walk(root: string, rel: string, found: Map<string, number>, dirs: string[], odd: (path: string, what: string) => void): Promise<void> {
  let entries
  try {
    entries = await fs.readdir(join(root, rel), {withFileTypes: true})
  } catch (error) {
    if (rel === '' && (error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  for (const entry of entries) {
    const path = rel ? `${rel}/${entry.name}` : entry.name
    if (entry.isDirectory()) {
      dirs.push(path)
      await walk(root, path, found, dirs, odd)
    } else if (entry.isFile()) {
      found.set(path, (await fs.stat(join(root, path))).size)
    } else {
      odd(path, entry.isSymbolicLink() ? 'symlink' : 'not a regular file')
    }
  }
}

async function hashFile(abs: string): Promise<string> {
  const stat = await fs.stat(abs)
  if (stat.size <= READ_WHOLE) return createHash('sha1').update(await fs.readFile(abs)).digest('hex')
  return new Promise((resolve, reject) => {
    const hash = createHash('sha1')
    createReadStream(abs, {highWaterMark: 1 << 20})
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')))
  })
}

/** One line for a table cell: "ok" or what is wrong. */
export function verdictText(verdicts: Verdict[]): string {
  const bad = verdicts.filter((v) => !v.ok)
  const dirs = verdicts.reduce((n, v) => n + v.extraDirs, 0)
  const mtimes = verdicts.reduce((n, v) => n + v.mtimeDiffers, 0)
  const dirNote = (dirs > 0 ? ` (+${dirs} empty dirs)` : '') + (mtimes > 0 ? ` (mtime differs on ${mtimes})` : '')
  if (bad.length === 0) return `ok${dirNote}`
  const sum = (k: 'missing' | 'extra' | 'differ' | 'other') => verdicts.reduce((n, v) => n + v[k], 0)
  const parts = [['missing', sum('missing')], ['extra', sum('extra')], ['differ', sum('differ')], ['odd', sum('other')]].filter(([, n]) => Number(n) > 0)
  return `WRONG on ${bad.length}/${verdicts.length} slaves: ${parts.map(([k, n]) => `${n} ${k}`).join(', ')}${dirNote}`
}

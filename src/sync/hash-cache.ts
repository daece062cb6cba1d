// The master's cache of content hashes, keyed by path and trusted while a file's size, mtime and
// inode are the same. Stored as packed binary, not JSON: for 20,000 files the JSON took 100 ms
// to read back (parse, then a map from a 20,000-key object) on the way to every changed publish.
//
// Layout: a magic line, then the row count and the byte length of the paths (u32 LE each), then
// per row size, mtimeMs and inode (f64 LE each), then per row the 32 bytes of the SHA-256, then
// the paths in row order, each followed by a NUL (which no file name holds).
//
// Beside it, a journal of the rows changed since (see saveHashCache): a publish that hashed 400
// files of 20,000 appends those rows instead of writing all of them again (140 ms of the hashing
// thread, on a machine whose two cores the publish keeps busy).

import {createHash} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'

export type CacheRow = [size: number, mtimeMs: number, ino: number, hash: string]

/** A cache as read: its rows, and what a journal of later changes is tied to. */
export interface HashCache {
  rows: Map<string, CacheRow>
  /** SHA-256 of the cache file's bytes, which its journal names; undefined when there is no file. */
  base?: Buffer
  baseBytes: number
  /** Bytes of the journal that were read and applied (its head included); 0 when there is none to add to. */
  journalBytes: number
}

const MAGIC = Buffer.from('mirror hash cache 2\n')
const HASH_BYTES = 32
/** The journal: this line, the base's SHA-256, then batches of changes (see encodeBatch). */
const JOURNAL_MAGIC = Buffer.from('mirror hash cache journal 1\n')
const JOURNAL_HEAD = JOURNAL_MAGIC.length + HASH_BYTES
/** Bytes of a batch's checksum: the first of its body's SHA-256. */
const BATCH_CHECK = 8
/** The journal is folded into the cache once it would pass a quarter of the cache (or this). */
const JOURNAL_MIN_LIMIT = 64 << 10

const journalFile = (file: string) => `${file}.journal`

/** Where the master keeps the cache, in its state directory. */
export const hashCacheFile = (stateDir: string) => join(stateDir, 'hash-cache')

/** The cache in `file`, with its journal applied; a missing, damaged or older one is empty (it only costs a re-hash). */
export async function readHashCache(file: string): Promise<HashCache> {
  const empty: HashCache = {rows: new Map(), baseBytes: 0, journalBytes: 0}
  let data: Buffer
  try {
    data = await fs.readFile(file)
  } catch {
    return empty
  }
  const rows = decodeRows(data)
  if (!rows) return empty
  const cache: HashCache = {rows, base: createHash('sha256').update(data).digest(), baseBytes: data.length, journalBytes: 0}
  const journal = await fs.readFile(journalFile(file)).catch(() => undefined)
  if (journal && journal.length >= JOURNAL_HEAD && journal.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC) && journal.subarray(JOURNAL_MAGIC.length, JOURNAL_HEAD).equals(cache.base!)) {
    const applied = applyBatches(journal, JOURNAL_HEAD, rows)
    // A batch cut short (a crash while it was appended) ends what can be read: nothing is added after it.
    cache.journalBytes = applied === journal.length ? applied : 0
    if (applied !== journal.length) cache.base = undefined
  }
  return cache
}

function decodeRows(data: Buffer): Map<string, CacheRow> | undefined {
  if (data.length < MAGIC.length + 8 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined
  const count = data.readUInt32LE(MAGIC.length)
  const pathBytes = data.readUInt32LE(MAGIC.length + 4)
  const numbersAt = MAGIC.length + 8
  const hashesAt = numbersAt + count * 24
  const pathsAt = hashesAt + count * HASH_BYTES
  if (data.length !== pathsAt + pathBytes) return undefined
  const paths = data.toString('utf8', pathsAt, pathsAt + pathBytes).split('\0')
  // Each path ends with a NUL: the last piece is empty.
  if (paths.length !== count + 1) return undefined
  const rows = new Map<string, CacheRow>()
  for (let i = 0; i < count; i++) {
    const at = numbersAt + i * 24
    const hash = data.toString('hex', hashesAt + i * HASH_BYTES, hashesAt + (i + 1) * HASH_BYTES)
    rows.set(paths[i], [data.readDoubleLE(at), data.readDoubleLE(at + 8), data.readDoubleLE(at + 16), hash])
  }
  return rows
}

/**
 * Saves `changes` (a row, or null for a path forgotten) made to `cache.rows` since it was read:
 * appended to the journal while that stays small, else the whole cache written anew.
 */
export async function saveHashCache(file: string, cache: HashCache, changes: ReadonlyMap<string, CacheRow | null>): Promise<void> {
  if (changes.size === 0) return
  const batch = encodeBatch(changes)
  const journalBytes = (cache.journalBytes || JOURNAL_HEAD) + batch.length
  if (!cache.base || journalBytes > Math.max(JOURNAL_MIN_LIMIT, cache.baseBytes / 4)) {
    await writeHashCache(file, cache.rows)
    return
  }
  if (cache.journalBytes > 0) {
    // One write: appended whole, or cut short by a crash (which the reader sees by its checksum).
    await fs.appendFile(journalFile(file), batch)
  } else {
    // A journal of another base (or none) is replaced, never added to.
    const temp = `${journalFile(file)}.${process.pid}.tmp`
    await fs.writeFile(temp, Buffer.concat([JOURNAL_MAGIC, cache.base, batch]))
    await fs.rename(temp, journalFile(file))
  }
}

/**
 * A batch: its body's length (u32 LE), the body, then the first bytes of the body's SHA-256.
 * The body holds per change the path's length (u32 LE) and bytes, then 1 and the row's numbers
 * (f64 LE each) and hash, or 0 for a path forgotten.
 */
function encodeBatch(changes: ReadonlyMap<string, CacheRow | null>): Buffer {
  let bodyBytes = 0
  for (const [path, row] of changes) bodyBytes += 4 + Buffer.byteLength(path) + 1 + (row ? 24 + HASH_BYTES : 0)
  const batch = Buffer.allocUnsafe(4 + bodyBytes + BATCH_CHECK)
  batch.writeUInt32LE(bodyBytes, 0)
  let at = 4
  for (const [path, row] of changes) {
    const length = batch.write(path, at + 4)
    batch.writeUInt32LE(length, at)
    at += 4 + length
    batch[at++] = row ? 1 : 0
    if (!row) continue
    at = batch.writeDoubleLE(row[0], at)
    at = batch.writeDoubleLE(row[1], at)
    at = batch.writeDoubleLE(row[2], at)
    at += batch.write(row[3], at, HASH_BYTES, 'hex')
  }
  createHash('sha256').update(batch.subarray(4, at)).digest().copy(batch, at, 0, BATCH_CHECK)
  return batch
}

/** Applies the journal's batches from `at` to `rows`; returns where the last whole batch ends. */
function applyBatches(journal: Buffer, at: number, rows: Map<string, CacheRow>): number {
  while (at + 4 <= journal.length) {
    const bodyAt = at + 4
    const end = bodyAt + journal.readUInt32LE(at)
    if (end + BATCH_CHECK > journal.length) break
    const check = createHash('sha256').update(journal.subarray(bodyAt, end)).digest().subarray(0, BATCH_CHECK)
    if (!check.equals(journal.subarray(end, end + BATCH_CHECK))) break
    for (let p = bodyAt; p < end; ) {
      const length = journal.readUInt32LE(p)
      const path = journal.toString('utf8', p + 4, p + 4 + length)
      p += 4 + length
      if (journal[p++] === 0) {
        rows.delete(path)
        continue
      }
      rows.set(path, [journal.readDoubleLE(p), journal.readDoubleLE(p + 8), journal.readDoubleLE(p + 16), journal.toString('hex', p + 24, p + 24 + HASH_BYTES)])
      p += 24 + HASH_BYTES
    }
    at = end + BATCH_CHECK
  }
  return at
}

/** Replaces `file` with `cache` (its journal folded in), through a temporary file: a reader never sees half of it. */
export async function writeHashCache(file: string, cache: ReadonlyMap<string, CacheRow>): Promise<void> {
  const count = cache.size
  // Measured first, then written in place: no joined copy of 100,000 paths beside the buffer.
  let pathBytes = 0
  for (const path of cache.keys()) pathBytes += Buffer.byteLength(path) + 1
  const data = Buffer.allocUnsafe(MAGIC.length + 8 + count * (24 + HASH_BYTES) + pathBytes)
  MAGIC.copy(data, 0)
  data.writeUInt32LE(count, MAGIC.length)
  data.writeUInt32LE(pathBytes, MAGIC.length + 4)
  const numbersAt = MAGIC.length + 8
  const hashesAt = numbersAt + count * 24
  let at = hashesAt + count * HASH_BYTES
  let i = 0
  for (const [path, [size, mtimeMs, ino, hash]] of cache) {
    data.writeDoubleLE(size, numbersAt + i * 24)
    data.writeDoubleLE(mtimeMs, numbersAt + i * 24 + 8)
    data.writeDoubleLE(ino, numbersAt + i * 24 + 16)
    data.write(hash, hashesAt + i * HASH_BYTES, HASH_BYTES, 'hex')
    at += data.write(path, at)
    data[at++] = 0
    i++
  }
  const temp = `${file}.${process.pid}.tmp`
  await fs.mkdir(dirname(file), {recursive: true})
  await fs.writeFile(temp, data)
  await fs.rename(temp, file)
  // Written for the old file: its head no longer matches, but it need not be read to find that out.
  await fs.rm(journalFile(file), {force: true})
  // The JSON form that earlier versions kept under the same name plus ".json": never read again.
  await fs.rm(`${file}.json`, {force: true})
}

// The master's cache of content hashes, keyed by path and trusted while a file's size, mtime and
// inode are the same. Stored as packed binary, not JSON: for 20,000 files the JSON took 100 ms
// to read back (parse, then a map from a 20,000-key object) on the way to every changed publish.
//
// Layout: a magic line, then the row count and the byte length of the paths (u32 LE each), then
// per row size, mtimeMs and inode (f64 LE each), then per row the 32 bytes of the SHA-256, then
// the paths in row order, each followed by a NUL (which no file name holds).

import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'

export type CacheRow = [size: number, mtimeMs: number, ino: number, hash: string]

const MAGIC = Buffer.from('mirror hash cache 2\n')
const HASH_BYTES = 32

/** Where the master keeps the cache, in its state directory. */
export const hashCacheFile = (stateDir: string) => join(stateDir, 'hash-cache')

/** The cache in `file`; a missing, damaged or older one is empty (it only costs a re-hash). */
export async function readHashCache(file: string): Promise<Map<string, CacheRow>> {
  const cache = new Map<string, CacheRow>()
  let data: Buffer
  try {
    data = await fs.readFile(file)
  } catch {
    return cache
  }
  if (data.length < MAGIC.length + 8 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return cache
  const count = data.readUInt32LE(MAGIC.length)
  const pathBytes = data.readUInt32LE(MAGIC.length + 4)
  const numbersAt = MAGIC.length + 8
  const hashesAt = numbersAt + count * 24
  const pathsAt = hashesAt + count * HASH_BYTES
  if (data.length !== pathsAt + pathBytes) return cache
  const paths = data.toString('utf8', pathsAt, pathsAt + pathBytes).split('\0')
  // Each path ends with a NUL: the last piece is empty.
  if (paths.length !== count + 1) return new Map()
  for (let i = 0; i < count; i++) {
    const at = numbersAt + i * 24
    const hash = data.toString('hex', hashesAt + i * HASH_BYTES, hashesAt + (i + 1) * HASH_BYTES)
    cache.set(paths[i], [data.readDoubleLE(at), data.readDoubleLE(at + 8), data.readDoubleLE(at + 16), hash])
  }
  return cache
}

/** Replaces `file` with `cache`, through a temporary file: a reader never sees half of it. */
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
  // The JSON form that earlier versions kept under the same name plus ".json": never read again.
  await fs.rm(`${file}.json`, {force: true})
}

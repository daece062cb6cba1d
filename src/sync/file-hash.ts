// A source file's content hash (SHA-256, hex), read through the threadpool or with blocking
// reads on the calling thread. Its own module: the hashing helper thread loads nothing else.

import {createHash} from 'node:crypto'
import {closeSync, createReadStream, openSync, readSync} from 'node:fs'
import * as fs from 'node:fs/promises'

/** Files up to this size are read in one call; larger ones are streamed. */
const SMALL_FILE = 1 << 20

/** The read buffer of hashLocalFileSync: one per thread (a megabyte per file was gigabytes of garbage). */
let syncReadBuffer: Buffer | undefined

/** hashLocalFile with blocking reads, a megabyte at a time. */
export function hashLocalFileSync(abs: string): string {
  const hash = createHash('sha256')
  const fd = openSync(abs, 'r')
  try {
    const buffer = (syncReadBuffer ??= Buffer.allocUnsafe(SMALL_FILE))
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) hash.update(buffer.subarray(0, n))
  } finally {
    closeSync(fd)
  }
  return hash.digest('hex')
}

/** The SHA-256 (hex) of a file, read through the threadpool. */
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

// Writing state files that are either a Buffer or bytes made on demand (StateBytes), for the
// targets and for the master's own copies. What is written is checked against the size promised.

import * as fs from 'node:fs/promises'

import {MirrorError} from '../errors.js'
import type {StateBytes} from './target.js'

export function isStateBytes(data: Buffer | StateBytes): data is StateBytes {
  return !Buffer.isBuffer(data)
}

/** The chunks of `data` in order, throwing INTERNAL when they do not add up to its size. */
export function* checkedChunks(data: StateBytes): Generator<Buffer> {
  let total = 0
  for (const chunk of data.chunks()) {
    total += chunk.length
    if (total > data.size) break
    yield chunk
  }
  if (total !== data.size) throw new MirrorError('INTERNAL', `state bytes came to ${total > data.size ? `more than ${data.size}` : total} bytes where ${data.size} were announced`)
}

/** Writes `data` to a new local file at `path` (created or truncated); chunk by chunk for StateBytes. */
export async function writeLocalFile(path: string, data: Buffer | StateBytes): Promise<void> {
  if (!isStateBytes(data)) return fs.writeFile(path, data)
  const handle = await fs.open(path, 'w')
  try {
    for (const chunk of checkedChunks(data)) await handle.write(chunk, 0, chunk.length)
  } finally {
    await handle.close()
  }
}

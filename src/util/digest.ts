// One SHA-256 over many short lines, fed to the hash some 64 KB at a time: an update per line
// (20,000 of them for a big site's manifest, print or changes) was most of the cost.

import {createHash, type Hash} from 'node:crypto'

const CHUNK_CHARS = 1 << 16

/** The SHA-256 (hex) of the lines joined as they are (each carries its own separator). */
export function digestLines(lines: Iterable<string>): string {
  return updateLines(createHash('sha256'), lines).digest('hex')
}

/** Feeds `lines`, joined as they are, to `hash`; returns it for more. */
export function updateLines(hash: Hash, lines: Iterable<string>): Hash {
  let chunk = ''
  for (const line of lines) {
    chunk += line
    if (chunk.length >= CHUNK_CHARS) {
      hash.update(chunk)
      chunk = ''
    }
  }
  return hash.update(chunk)
}

// Read once, push to N: when several targets send the same small source files at about the same
// time (a first publish to four slaves), the bytes read for one are kept for the others. Bounded:
// past `maxBytes` the oldest are dropped and a late target simply reads the file again.

import {readFile} from 'node:fs/promises'

interface Kept {
  data: Promise<Buffer>
  /** Readers still expected. */
  left: number
  size: number
}

export class SharedReads {
  private readonly kept = new Map<string, Kept>()
  private bytes = 0

  /** `readers(abs)`: how many targets may read this file (an upper bound is fine). */
  constructor(
    private readonly readers: (abs: string) => number,
    private readonly maxBytes = 16 << 20,
  ) {}

  read(abs: string, size: number): Promise<Buffer> {
    const hit = this.kept.get(abs)
    if (hit) {
      if (--hit.left <= 0) this.drop(abs)
      return hit.data
    }
    const data = readFile(abs)
    const left = this.readers(abs) - 1
    if (left > 0 && size <= this.maxBytes / 2) {
      this.kept.set(abs, {data, left, size})
      this.bytes += size
      data.catch(() => this.drop(abs))
      // Map order is insertion order: the first kept is the oldest.
      for (const oldest of this.kept.keys()) {
        if (this.bytes <= this.maxBytes) break
        this.drop(oldest)
      }
    }
    return data
  }

  private drop(abs: string): void {
    const kept = this.kept.get(abs)
    if (!kept) return
    this.kept.delete(abs)
    this.bytes -= kept.size
  }
}

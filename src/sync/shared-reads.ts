// Read once, push to N: when several targets send the same small source files at about the same
// time (a first publish to four slaves), the bytes read for one are kept for the others. Bounded:
// past `maxBytes` the oldest are dropped and a late target simply reads the file again. The
// memory of a read is used again once every target that took it has given it back (release).

import {closeSync, fstatSync, openSync, readSync} from 'node:fs'

/** A source file to read: the same object for every target that sends it (a source entry). */
export interface SharedFile {
  readonly abs: string
  readonly size: number
}

/** The memory behind one read, and who may still look at it. */
interface Lent {
  memory: Buffer
  /** Readers that took it and have not given it back. */
  holders: number
  /** Readers to come will still be handed it (it is kept for them). */
  awaited: boolean
  /** Back in the free memory: never given back twice. */
  reused: boolean
}

interface Kept {
  data: Promise<Buffer>
  /** Readers still expected. */
  left: number
  /** Memory it holds: the file's size, or the capacity it was read into. */
  bytes: number
  lent?: Lent
}

/**
 * Reused memory comes in sizes of 4 KiB times a power of two. Smaller files take a slice of
 * Node's own shared slab, as before: no page of their own to fault in, and nothing to give back.
 */
const MIN_CLASS = 4 << 10

export class SharedReads<F extends SharedFile = SharedFile> {
  /** By the file object, not its path: entries do not store their absolute paths (see scan.ts). */
  private readonly kept = new Map<F, Kept>()
  private bytes = 0
  /** What each buffer handed out was read into (only reused memory). */
  private readonly lent = new WeakMap<Buffer, Lent>()
  /** Memory given back, by capacity. */
  private readonly free = new Map<number, Buffer[]>()
  private freeBytes = 0

  /** `readers(file)`: how many targets may read this file (an upper bound is fine). */
  constructor(
    private readonly readers: (file: F) => number,
    private readonly maxBytes = 16 << 20,
  ) {}

  /**
   * The file's bytes as they are now (its length is the file's size when read). The buffer
   * stays as it is until `release`d; a reader that never releases it simply keeps it.
   */
  read(file: F): Promise<Buffer> {
    const hit = this.kept.get(file)
    if (hit) {
      if (hit.lent) hit.lent.holders++
      if (--hit.left <= 0) this.drop(file)
      return hit.data
    }
    const left = this.readers(file) - 1
    const {size} = file
    const keep = left > 0 && size <= this.maxBytes / 2
    let lent: Lent | undefined
    let data: Promise<Buffer>
    try {
      const read = this.readNow(file.abs)
      lent = read.lent
      data = Promise.resolve(read.data)
    } catch (error) {
      return Promise.reject(error)
    }
    if (keep) {
      const bytes = lent ? lent.memory.length : size
      this.kept.set(file, {data, left, bytes, lent})
      this.bytes += bytes
      // Map order is insertion order: the first kept is the oldest.
      for (const oldest of this.kept.keys()) {
        if (this.bytes <= this.maxBytes) break
        this.drop(oldest)
      }
    } else if (lent) {
      lent.awaited = false
    }
    return data
  }

  /**
   * Gives back a buffer `read` returned, once the reader is done with it (its bytes copied
   * elsewhere). Once every reader that took it has, its memory serves another read. Call it at
   * most once per read; never calling it is safe. Bound to this store: it is handed to every
   * target's every file as it is, with no function made per file.
   */
  readonly release = (data: Buffer): void => {
    const lent = this.lent.get(data)
    if (!lent) return
    lent.holders--
    this.reuse(lent)
  }

  private drop(file: F): void {
    const kept = this.kept.get(file)
    if (!kept) return
    this.kept.delete(file)
    this.bytes -= kept.bytes
    if (kept.lent) {
      kept.lent.awaited = false
      this.reuse(kept.lent)
    }
  }

  private reuse(lent: Lent): void {
    if (lent.holders > 0 || lent.awaited || lent.reused) return
    lent.reused = true
    const capacity = lent.memory.length
    // Bounded like what is kept: more is left to the collector.
    if (this.freeBytes + capacity > this.maxBytes) return
    let list = this.free.get(capacity)
    if (!list) this.free.set(capacity, (list = []))
    list.push(lent.memory)
    this.freeBytes += capacity
  }

  /**
   * Reads a small file at once, on this thread. Through the threadpool a read is four requests
   * (open, fstat, read, close), each a hop between threads and a promise: measured on 20,000
   * files of a site, 2.5-3.3 s of CPU against 0.8 s for this, and a first publish to four
   * slaves reads them up to four times. A small file read from the page cache blocks for tens
   * of microseconds. The bytes go into reused memory where there is some: fresh memory costs a
   * page fault per 4 KiB on first touch, which was most of a first publish's reading time on
   * the benchmark's machine.
   */
  private readNow(path: string): {data: Buffer; lent?: Lent} {
    const fd = openSync(path, 'r')
    try {
      const size = fstatSync(fd).size
      if (size < MIN_CLASS || size > this.maxBytes / 2) return {data: readAll(fd, Buffer.allocUnsafe(size), size)}
      const capacity = classOf(size)
      const reused = this.free.get(capacity)?.pop()
      if (reused) this.freeBytes -= capacity
      const memory = reused ?? Buffer.allocUnsafeSlow(capacity)
      const data = readAll(fd, memory, size)
      const lent: Lent = {memory, holders: 1, awaited: true, reused: false}
      this.lent.set(data, lent)
      return {data, lent}
    } finally {
      closeSync(fd)
    }
  }
}

/** Up to `size` bytes of `fd` into `memory`, from its start: a view of what was read (less at an early end of file). */
function readAll(fd: number, memory: Buffer, size: number): Buffer {
  let read = 0
  for (let n = -1; read < size && n !== 0; read += n) n = readSync(fd, memory, read, size - read, read)
  return memory.subarray(0, read)
}

/** The capacity a file of `size` bytes is read into: 4 KiB times a power of two. */
function classOf(size: number): number {
  let capacity = MIN_CLASS
  while (capacity < size) capacity *= 2
  return capacity
}

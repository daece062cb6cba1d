// Seeded pseudo-random numbers for the benchmark corpora: xoshiro128** seeded from a string, so
// a corpus is the same bytes on every machine and every run. Not for anything secret.

import {createHash} from 'node:crypto'

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: string) {
    const h = createHash('sha256').update(seed).digest()
    this.a = h.readUInt32LE(0) | 1
    this.b = h.readUInt32LE(4)
    this.c = h.readUInt32LE(8)
    this.d = h.readUInt32LE(12)
  }

  /** The next 32 random bits as an unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 4294967296
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1))
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]
  }

  /** Fills `buf` with random bytes, fast (about 1 GB/s): for incompressible media files. */
  fill(buf: Buffer): Buffer {
    const words = buf.byteOffset % 4 === 0 ? buf.byteLength >>> 2 : 0
    const u = new Uint32Array(buf.buffer, buf.byteOffset, words)
    for (let i = 0; i < words; i++) u[i] = this.next()
    for (let i = words << 2; i < buf.byteLength; i++) buf[i] = this.next() & 0xff
    return buf
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

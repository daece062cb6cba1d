// rsync-style delta without rsync on the slave. The master keeps block signatures of what it
// published (keyed by content hash, so all targets share them); for a changed large file it
// computes, against the old version's signature, which byte ranges can be copied from the
// slave's old file (SFTP `copy-data`) and which new bytes must be sent. Pure computation.

import {hash, type Hash} from 'node:crypto'

/**
 * Files smaller than this are sent whole. Below it a delta saves little, and keeping
 * signatures of every small file would cost the first publish a second pass over the tree.
 */
export const DELTA_MIN_SIZE = 256 << 10

/** Files that get block signatures, and may go as a delta (read through a window: no upper bound). */
export const deltaSized = (size: number) => size >= DELTA_MIN_SIZE

export interface Signature {
  blockSize: number
  /** Size of the file the signature describes. */
  size: number
  /** Per block: the rolling (weak) checksum. */
  weak: Uint32Array
  /** Per block: the first 16 bytes of its SHA-256, hex. */
  strong: string[]
  /**
   * Where each block starts, when not at index * blockSize: a signature carried over by a delta
   * (see deltaAndSignature) keeps the old file's blocks where the new file has them. Increasing,
   * without overlaps; every block is blockSize long but one that ends the file. Bytes between
   * blocks are simply never copied.
   */
  offsets?: Float64Array
}

const offsetOf = (signature: Signature, block: number) => signature.offsets?.[block] ?? block * signature.blockSize

/** One step of rebuilding the new file: copy a range of the old file, or write new bytes. */
export type DeltaOp = {kind: 'copy'; from: number; length: number} | {kind: 'data'; offset: number; length: number}

export interface Delta {
  ops: DeltaOp[]
  /** New bytes to send (the sum of data ops). */
  literalBytes: number
}

/** With no matching block in this many leading bytes, the file is taken as rewritten and sent whole. */
const GIVE_UP_AFTER = 8 << 20

/** About sqrt(size), rounded to 1 KiB, within [2 KiB, 128 KiB], as rsync sizes its blocks. */
export function blockSizeFor(size: number): number {
  const root = Math.sqrt(size)
  return Math.min(128 * 1024, Math.max(2048, Math.round(root / 1024) * 1024))
}

const MOD = 65521

/**
 * The weak checksum of a window: rsync's Adler-style pair, packed into 32 bits. Summed without
 * a modulo per byte (a 128 KiB window keeps b below 2^42, exact in a double), reduced once.
 * b, the sum of each byte times its distance from the end, is the sum of the running sums of a:
 * two additions a byte (a multiplication a byte was 60 % slower).
 */
function weakOf(buf: Uint8Array, start: number, end: number): {a: number; b: number} {
  let a = 0
  let b = 0
  for (let i = start; i < end; i++) {
    a += buf[i]
    b += a
  }
  return {a: a % MOD, b: b % MOD}
}

const pack = (a: number, b: number) => ((b << 16) | a) >>> 0

/**
 * Blocks by weak checksum, behind a table of the 16-bit tags that occur (rsync's tag table).
 * Rolling through a rewritten file, almost no window matches a block: the table turns each away
 * with one array read instead of a map lookup.
 */
class WeakIndex<T> {
  private readonly tags = new Uint8Array(1 << 16)
  private readonly blocks = new Map<number, T>()

  get size(): number {
    return this.blocks.size
  }

  set(a: number, b: number, value: T): void {
    this.tags[(a + b) & 0xffff] = 1
    this.blocks.set(pack(a, b), value)
  }

  get(a: number, b: number): T | undefined {
    return this.tags[(a + b) & 0xffff] === 0 ? undefined : this.blocks.get(pack(a, b))
  }

  /** The value for (a, b), made by `make` when there is none yet. */
  upsert(a: number, b: number, make: () => T): T {
    let value = this.get(a, b)
    if (value === undefined) this.set(a, b, (value = make()))
    return value
  }
}

function strongOf(buf: Uint8Array, start: number, end: number): string {
  // One-shot: no Hash object per block (a 50 MB file has some 7,000 blocks).
  return hash('sha256', buf.subarray(start, end), 'hex').slice(0, 32)
}

/**
 * A file's bytes, read in order through a window: `view(start, end)` gives a buffer that holds
 * at least bytes [start, min(end, size)) of the file, and the file offset of its first byte.
 * The buffer may be reused by the next call. A big file is then never in memory whole: reading
 * 50 MB into fresh memory cost 200 ms of page faults, through a reused window 8 ms.
 */
export interface ByteSource {
  readonly size: number
  view(start: number, end: number): Window
}

export interface Window {
  bytes: Uint8Array
  /** Where bytes[0] is in the file. */
  offset: number
}

/** Bytes already in memory, as a source. */
function inMemory(data: Uint8Array): ByteSource {
  const whole = {bytes: data, offset: 0}
  return {size: data.length, view: () => whole}
}

const sourceOf = (data: Uint8Array | ByteSource): ByteSource => (data instanceof Uint8Array ? inMemory(data) : data)

/** The block signature of `data`; `whole`, when given, is fed every byte in order (a file hash). */
export function computeSignature(data: Uint8Array | ByteSource, blockSize?: number, whole?: Hash): Signature {
  const steps = signatureSteps(data, blockSize, whole)
  for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value
}

/** Bytes of blocks between two pauses of `signatureSteps`. */
const STEP_BYTES = 1 << 20

/**
 * `computeSignature` in steps: it pauses (yields) after every megabyte or so of blocks, so that
 * a caller with more urgent work (a delta a transfer waits for) can do it in between. What runs
 * in a pause must not read through the source's window (delta-files.ts gives signatures one of
 * their own).
 */
export function* signatureSteps(data: Uint8Array | ByteSource, blockSize?: number, whole?: Hash): Generator<void, Signature> {
  const source = sourceOf(data)
  const {size} = source
  blockSize ??= blockSizeFor(size)
  const count = Math.ceil(size / blockSize)
  const weak = new Uint32Array(count)
  const strong: string[] = new Array(count)
  const blocksPerStep = Math.max(1, Math.floor(STEP_BYTES / blockSize))
  for (let i = 0; i < count; i++) {
    if (i > 0 && i % blocksPerStep === 0) yield
    const start = i * blockSize
    const end = Math.min(size, start + blockSize)
    const {bytes, offset} = source.view(start, end)
    const {a, b} = weakOf(bytes, start - offset, end - offset)
    weak[i] = pack(a, b)
    strong[i] = strongOf(bytes, start - offset, end - offset)
    whole?.update(bytes.subarray(start - offset, end - offset))
  }
  return {blockSize, size, weak, strong}
}

/**
 * Which parts of the new file `data` can be copied from the old file that `signature`
 * describes. Only full blocks are matched (the old file's short last block is matched only at
 * the end of `data`). The new file is read once, in order.
 */
export function computeDelta(signature: Signature, data: Uint8Array | ByteSource): Delta {
  return deltaPass(signature, sourceOf(data)).delta
}

/**
 * `computeDelta`, with the new file's own signature made in the same pass, and every byte of it
 * fed to `whole` (a file hash, to tell which version was read). A block the delta copies is
 * the old file's block where the new file now has it: its checksums are the old signature's,
 * checked against these bytes by the match. Only the new bytes get checksums computed. The
 * signature is undefined when a fresh one would do better (the file was rewritten, or its size
 * now calls for another block size): it is then made by reading the file again.
 */
export function deltaAndSignature(signature: Signature, data: Uint8Array | ByteSource, whole: Hash): {delta: Delta; next?: Signature} {
  return deltaPass(signature, sourceOf(data), whole)
}

function deltaPass(signature: Signature, source: ByteSource, whole?: Hash): {delta: Delta; next?: Signature} {
  const {blockSize, weak, strong} = signature
  const lastBlock = weak.length - 1
  const lastBlockSize = Math.min(blockSize, signature.size - offsetOf(signature, lastBlock))
  const index = new WeakIndex<number[]>()
  for (let i = 0; i < weak.length; i++) {
    if (i === lastBlock && lastBlockSize !== blockSize) continue
    index.upsert(weak[i] & 0xffff, weak[i] >>> 16, () => []).push(i)
  }

  const ops: DeltaOp[] = []
  let literalStart = 0
  let literalBytes = 0
  const pushLiteral = (end: number) => {
    if (end > literalStart) {
      ops.push({kind: 'data', offset: literalStart, length: end - literalStart})
      literalBytes += end - literalStart
    }
  }
  const n = source.size
  // The new file's signature, when asked for: its blocks in order, and how far `whole` has read.
  const carry = whole && blockSizeFor(n) === blockSize ? {offsets: [] as number[], weak: [] as number[], strong: [] as string[], hashed: 0, lost: false} : undefined
  const carryBlock = (at: number, weakSum: number, strongSum: string) => {
    carry!.offsets.push(at)
    carry!.weak.push(weakSum)
    carry!.strong.push(strongSum)
  }
  /** Drops the carried blocks that reach past `end` (new bytes checksummed before a match cut them short). */
  const carryUpTo = (end: number) => {
    while (carry!.offsets.length > 0 && carry!.offsets[carry!.offsets.length - 1] + blockSize > end) {
      carry!.offsets.pop()
      carry!.weak.pop()
      carry!.strong.pop()
    }
  }
  const pushCopy = (block: number, length: number, at: number) => {
    if (carry) {
      carryUpTo(at)
      carryBlock(at, weak[block], strong[block])
      feed(at + length)
    }
    const from = offsetOf(signature, block)
    const prev = ops[ops.length - 1]
    if (prev?.kind === 'copy' && prev.from + prev.length === from) prev.length += length
    else ops.push({kind: 'copy', from, length})
  }

  // The window onto the new file, as locals: the rolling loop reads two bytes per position.
  let bytes: Uint8Array = new Uint8Array(0)
  let offset = 0
  let windowEnd = 0
  /** Feeds `whole` the bytes up to `end`, which must still be in the window. */
  const feed = (end: number) => {
    if (end <= carry!.hashed) return
    if (carry!.hashed < offset || end > windowEnd) carry!.lost = true
    else whole!.update(bytes.subarray(carry!.hashed - offset, end - offset))
    carry!.hashed = end
  }
  const cover = (start: number, end: number) => {
    if (start >= offset && Math.min(end, n) <= windowEnd) return
    // The bytes about to leave the window are hashed first: the file is read once.
    if (carry && carry.hashed < start) feed(Math.min(start, windowEnd))
    ;({bytes, offset} = source.view(start, end))
    windowEnd = offset + bytes.length
  }
  const strongAt = (start: number) => {
    cover(start, start + blockSize)
    return strongOf(bytes, start - offset, start - offset + blockSize)
  }
  const weakAt = (start: number) => {
    cover(start, start + blockSize)
    return weakOf(bytes, start - offset, start - offset + blockSize)
  }

  let pos = 0
  // Where the next block of new bytes would start, for the carried signature.
  let newBlockAt = 0
  if (n >= blockSize && index.size > 0) {
    let {a, b} = weakAt(0)
    while (pos + blockSize <= n) {
      const candidates = index.get(a, b)
      let matched = -1
      let s: string | undefined
      if (candidates) {
        s = strongAt(pos)
        matched = candidates.find((c) => strong[c] === s) ?? -1
      }
      if (matched >= 0) {
        pushLiteral(pos)
        pushCopy(matched, blockSize, pos)
        pos += blockSize
        // An unchanged stretch: while the next window is the old file's next block, its strong
        // hash says so, and the weak checksum (a pass over the bytes in JavaScript) is skipped.
        while (matched + 1 < weak.length && (matched + 1 !== lastBlock || lastBlockSize === blockSize) && pos + blockSize <= n && strongAt(pos) === strong[matched + 1]) {
          matched++
          pushCopy(matched, blockSize, pos)
          pos += blockSize
        }
        literalStart = pos
        newBlockAt = pos
        if (pos + blockSize <= n) ({a, b} = weakAt(pos))
        continue
      }
      if (literalStart === 0 && pos > GIVE_UP_AFTER) return {delta: {ops: [{kind: 'data', offset: 0, length: n}], literalBytes: n}}
      // New bytes: a block of them starts here, unless a match cuts it short (carryUpTo).
      if (carry && pos === newBlockAt) {
        carryBlock(pos, pack(a, b), s ?? strongAt(pos))
        newBlockAt += blockSize
      }
      // Roll the window one byte forward.
      if (pos + blockSize < n) {
        if (pos + blockSize >= windowEnd) cover(pos, pos + blockSize + 1)
        const out = bytes[pos - offset]
        const incoming = bytes[pos + blockSize - offset]
        a = (a - out + incoming + MOD) % MOD
        b = (b - ((blockSize * out) % MOD) + a + MOD) % MOD
      }
      pos++
    }
  }
  // The old file's short last block can still match the very end of the new file.
  if (lastBlockSize !== blockSize && lastBlockSize > 0 && n - literalStart >= lastBlockSize) {
    const start = n - lastBlockSize
    cover(start, n)
    if (strongOf(bytes, start - offset, n - offset) === strong[lastBlock]) {
      pushLiteral(start)
      pushCopy(lastBlock, lastBlockSize, start)
      literalStart = n
    }
  }
  pushLiteral(n)
  const delta = {ops, literalBytes}
  // Nothing matched: a fresh signature (the same work) is made instead.
  if (!carry || literalBytes === n) return {delta}
  if (literalStart < n && newBlockAt < n) {
    // New bytes at the end, shorter than a block: the file's short last block.
    cover(newBlockAt, n)
    const {a, b} = weakOf(bytes, newBlockAt - offset, n - offset)
    carryBlock(newBlockAt, pack(a, b), strongOf(bytes, newBlockAt - offset, n - offset))
  }
  cover(n - 1, n)
  feed(n)
  if (carry.lost) return {delta}
  return {delta, next: {blockSize, size: n, weak: Uint32Array.from(carry.weak), strong: carry.strong, offsets: Float64Array.from(carry.offsets)}}
}

/**
 * The delta of `data` against `old` when both are in memory (a manifest, whose previous bytes
 * the master keeps): a weak-checksum hit is confirmed by comparing the bytes, not by a strong
 * hash, and a match grows block by block while the bytes agree. Same ops as `computeDelta`.
 */
export function diffBuffers(old: Buffer, data: Buffer, blockSize: number): Delta {
  const index = new WeakIndex<number>()
  for (let i = Math.floor(old.length / blockSize) - 1; i >= 0; i--) {
    const {a, b} = weakOf(old, i * blockSize, (i + 1) * blockSize)
    index.set(a, b, i)
  }
  const ops: DeltaOp[] = []
  let literalStart = 0
  let literalBytes = 0
  const n = data.length
  let pos = 0
  if (n >= blockSize && index.size > 0) {
    let {a, b} = weakOf(data, 0, blockSize)
    while (pos + blockSize <= n) {
      const block = index.get(a, b)
      const from = block === undefined ? -1 : block * blockSize
      if (from >= 0 && data.compare(old, from, from + blockSize, pos, pos + blockSize) === 0) {
        let length = blockSize
        while (pos + length + blockSize <= n && from + length + blockSize <= old.length && data.compare(old, from + length, from + length + blockSize, pos + length, pos + length + blockSize) === 0) length += blockSize
        if (pos > literalStart) {
          ops.push({kind: 'data', offset: literalStart, length: pos - literalStart})
          literalBytes += pos - literalStart
        }
        const prev = ops[ops.length - 1]
        if (prev?.kind === 'copy' && prev.from + prev.length === from) prev.length += length
        else ops.push({kind: 'copy', from, length})
        pos += length
        literalStart = pos
        if (pos + blockSize <= n) ({a, b} = weakOf(data, pos, pos + blockSize))
        continue
      }
      const out = data[pos]
      if (pos + blockSize < n) {
        const incoming = data[pos + blockSize]
        a = (a - out + incoming + MOD) % MOD
        b = (b - ((blockSize * out) % MOD) + a + MOD) % MOD
      }
      pos++
    }
  }
  if (n > literalStart) {
    ops.push({kind: 'data', offset: literalStart, length: n - literalStart})
    literalBytes += n - literalStart
  }
  return {ops, literalBytes}
}

/** Rebuilds the new file from the old one and a delta: what the slave does, for tests. */
export function applyDelta(old: Uint8Array, data: Uint8Array, delta: Delta): Buffer {
  return Buffer.concat(
    delta.ops.map((op) => (op.kind === 'copy' ? old.subarray(op.from, op.from + op.length) : data.subarray(op.offset, op.offset + op.length))),
  )
}

export function serializeSignature(signature: Signature): Buffer {
  const offsets = signature.offsets ? {offsets: [...signature.offsets]} : {}
  const head = Buffer.from(JSON.stringify({blockSize: signature.blockSize, size: signature.size, strong: signature.strong, ...offsets}))
  const weak = Buffer.from(signature.weak.buffer, signature.weak.byteOffset, signature.weak.byteLength)
  const len = Buffer.alloc(4)
  len.writeUInt32LE(head.length)
  return Buffer.concat([len, head, weak])
}

export function parseSignature(data: Buffer): Signature {
  const headLength = data.readUInt32LE(0)
  const head = JSON.parse(data.subarray(4, 4 + headLength).toString()) as {blockSize: number; size: number; strong: string[]; offsets?: number[]}
  const weakBytes = data.subarray(4 + headLength)
  const weak = new Uint32Array(weakBytes.length / 4)
  for (let i = 0; i < weak.length; i++) weak[i] = weakBytes.readUInt32LE(i * 4)
  if (weak.length !== head.strong.length) throw new Error('damaged signature')
  const signature: Signature = {blockSize: head.blockSize, size: head.size, weak, strong: head.strong}
  if (head.offsets) {
    signature.offsets = Float64Array.from(head.offsets)
    if (!blocksInOrder(signature)) throw new Error('damaged signature')
  }
  return signature
}

/** Carried blocks in increasing order, apart, inside the file, full but for one ending it. */
function blocksInOrder({offsets, blockSize, size, weak}: Signature): boolean {
  if (!offsets || offsets.length !== weak.length) return false
  let end = 0
  for (let i = 0; i < offsets.length; i++) {
    const start = offsets[i]
    const length = Math.min(blockSize, size - start)
    if (!Number.isInteger(start) || start < end || length <= 0 || (length < blockSize && i !== offsets.length - 1)) return false
    end = start + length
  }
  return true
}

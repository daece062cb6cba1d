// Reuses the memory of what ssh2 sends. ssh2 allocates every outgoing packet afresh, encrypts
// it in place and hands it to the socket, and lays out every SFTP write request in a buffer of
// its own before that: a first publish of 20,000 files to four slaves is gigabytes of buffers
// that live for a moment. Memory outside V8's heap that grows that fast makes V8 collect its
// young generation again and again (178 of the main thread's 256 collections, 2.3 s of pauses;
// 23 of 136 with this pool). Here that memory comes from a free list: a packet's goes back once
// the socket has written it, a write request's once the request is answered. Nothing about what
// is sent changes: ssh2 still lays out, pads and encrypts it; only where its bytes live.

import type {Socket} from 'node:net'

/** Packets this small come from Node's own shared slab already. */
const MIN_POOLED = 4 << 10
/** Larger ones are left to Node (packets are at most 35 KiB here, write requests 64 KiB and a header). */
const MAX_POOLED = 128 << 10
/** Memory kept for reuse, all connections together: a few windows' worth of packets and requests. */
const MAX_KEPT_BYTES = 16 << 20

/** Node's own, for what the pool does not serve: Buffer.allocUnsafe is the pool's while ssh2 lays out a packet. */
const allocUnsafe = Buffer.allocUnsafe

/** Free memory by capacity / MIN_POOLED. */
const free: ArrayBuffer[][] = Array.from({length: MAX_POOLED / MIN_POOLED + 1}, () => [])
let keptBytes = 0
/** Packets handed out and not yet back, by their view: a socket gives back only these. */
const out = new WeakSet<Buffer>()

/** Memory for a packet of `size` bytes: a reused buffer when one fits. */
function take(size: number): Buffer<ArrayBuffer> {
  if (size < MIN_POOLED || size > MAX_POOLED) return allocUnsafe(size)
  // Capacities in steps of 4 KiB: a 32 KiB payload's packet (32,813 bytes) reuses a 36 KiB buffer.
  const steps = Math.ceil(size / MIN_POOLED)
  let memory = free[steps].pop()
  if (memory) keptBytes -= memory.byteLength
  else memory = fresh(steps * MIN_POOLED)
  const packet = Buffer.from(memory, 0, size)
  out.add(packet)
  return packet
}

/** New memory, not zero-filled (as Node's allocUnsafe: ssh2 writes every byte of what it lays out). */
function fresh(capacity: number): ArrayBuffer {
  const buffer = allocUnsafe(capacity)
  // Node gives a buffer of this size memory of its own; a slice of a shared slab would not do.
  return buffer.byteOffset === 0 && buffer.buffer.byteLength === capacity ? (buffer.buffer as ArrayBuffer) : new ArrayBuffer(capacity)
}

/** Takes `packet` back once written, if it is one of ours; beyond MAX_KEPT_BYTES it is left to the collector. */
function giveBack(packet: Buffer): void {
  if (!out.delete(packet)) return
  const memory = packet.buffer as ArrayBuffer
  if (keptBytes + memory.byteLength > MAX_KEPT_BYTES) return
  free[memory.byteLength / MIN_POOLED].push(memory)
  keptBytes += memory.byteLength
}

const POOLED = Symbol('mirror.pooledPackets')

type Cipher = {allocPacket?: (payloadLength: number) => Buffer; [POOLED]?: true}

/**
 * Makes the outgoing cipher of a connected ssh2 client take its packets' memory from the pool,
 * and `sock` (the connection's own socket) give it back once written. Every cipher of ssh2
 * lays out a packet in `allocPacket` with one Buffer.allocUnsafe call: that one call is
 * served by the pool. A cipher that encrypts into new buffers instead never hands a pooled
 * packet to the socket; its packets are simply not reused. Does nothing when ssh2's insides are
 * not as expected.
 */
export function poolPackets(client: object, sock: Socket): void {
  const cipher = (client as {_protocol?: {_cipher?: Cipher}})._protocol?._cipher
  const prototype = cipher && (Object.getPrototypeOf(cipher) as Cipher)
  const allocPacket = prototype?.allocPacket
  if (!prototype || typeof allocPacket !== 'function') return
  if (!prototype[POOLED]) {
    prototype[POOLED] = true
    prototype.allocPacket = function (this: Cipher, payloadLength: number): Buffer {
      return whileAllocating(take, () => allocPacket.call(this, payloadLength))
    }
  }
  const write = sock.write
  sock.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    // ssh2 writes a packet with no encoding or callback: its memory is free once the write is done.
    const plain = write as (...args: unknown[]) => boolean
    if (rest.length === 0 && Buffer.isBuffer(chunk) && out.has(chunk)) return plain.call(this, chunk, () => giveBack(chunk))
    return plain.call(this, chunk, ...rest)
  } as Socket['write']
}

/**
 * Runs `send`, one synchronous ssh2 call that lays out a request of `bytes` bytes of data and
 * more (an SFTP write), with that request's memory taken from the pool. Returns what gives it
 * back, to be called once the request is answered: it was written out long before.
 */
export function pooledRequest(bytes: number, send: () => void): () => void {
  let request: Buffer | undefined
  const layOut = (size: number) => {
    if (request || size < bytes) return allocUnsafe(size)
    request = take(size)
    return request
  }
  whileAllocating(layOut, send)
  return () => {
    if (request) giveBack(request)
    request = undefined
  }
}

/**
 * Runs `use` with Buffer.allocUnsafe served by `allocate`. Synchronous, and nothing else runs
 * meanwhile: only ssh2's own allocations meet the pool. Nested uses restore what they found.
 */
function whileAllocating<T>(allocate: (size: number) => Buffer, use: () => T): T {
  const previous = Buffer.allocUnsafe
  Buffer.allocUnsafe = allocate as typeof Buffer.allocUnsafe
  try {
    return use()
  } finally {
    Buffer.allocUnsafe = previous
  }
}

// Loads ssh2 with a pooled source of random bytes for what it asks of Node's CSPRNG in small
// pieces: the random padding of every packet it sends (4 to 19 bytes) and the KEXINIT cookie.
// Node answers each randomFillSync with a job of its own, microseconds apiece: on a first
// publish of 20,000 files to four slaves that was about a twentieth of the CPU. The pool is
// filled from the same CSPRNG, and no byte of it is handed out twice. Only ssh2's modules get
// the pooled function (they take it when they load); everything else keeps Node's own.

import {createRequire} from 'node:module'

import type * as Ssh2 from 'ssh2'

const require = createRequire(import.meta.url)

/** Bytes drawn from the CSPRNG at once. */
const POOL_BYTES = 16 << 10
/** Requests up to this size are served from the pool; larger ones go to the CSPRNG directly. */
const SMALL_REQUEST = 64

type Fill = <T extends NodeJS.ArrayBufferView>(buffer: T, offset?: number, size?: number) => T

/** A randomFillSync that serves small requests for Buffers from a pool refilled by `fill`. */
export function pooledRandomFill(fill: Fill): Fill {
  const pool = Buffer.allocUnsafe(POOL_BYTES)
  let used = POOL_BYTES
  return <T extends NodeJS.ArrayBufferView>(buffer: T, offset = 0, size?: number): T => {
    const length = size ?? buffer.byteLength - offset
    if (!Buffer.isBuffer(buffer) || length > SMALL_REQUEST || !(offset >= 0 && length >= 0 && offset + length <= buffer.length)) return fill(buffer, offset, size)
    if (used + length > POOL_BYTES) {
      fill(pool)
      used = 0
    }
    pool.copy(buffer, offset, used, used + length)
    used += length
    return buffer
  }
}

function load(): typeof Ssh2 {
  const crypto = require('node:crypto') as {randomFillSync: Fill}
  const own = crypto.randomFillSync
  crypto.randomFillSync = pooledRandomFill(own)
  try {
    return require('ssh2') as typeof Ssh2
  } finally {
    crypto.randomFillSync = own
  }
}

const ssh2 = load()
export default ssh2

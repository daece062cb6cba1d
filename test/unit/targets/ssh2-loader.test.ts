import t from 'tap'

import {pooledRandomFill} from '../../../src/targets/ssh/ssh2-loader.js'

/** A stand-in CSPRNG whose output is a counter: every byte it ever gives is distinct in sequence. */
function countingFill() {
  let next = 0
  const calls: number[] = []
  const fill = <T extends NodeJS.ArrayBufferView>(buffer: T, offset = 0, size?: number): T => {
    const bytes = buffer as unknown as Buffer
    const end = size === undefined ? bytes.length : offset + size
    calls.push(end - offset)
    for (let i = offset; i < end; i++) bytes[i] = next++ & 0xff
    return buffer
  }
  return {fill, calls}
}

t.test('packet padding comes from the pool in order: no byte handed out twice', async (t) => {
  const {fill, calls} = countingFill()
  const pooled = pooledRandomFill(fill)
  const seen: number[] = []
  let outside = 0
  for (let i = 0; i < 3000; i++) {
    const packet = Buffer.alloc(40, 0xee)
    const length = 4 + (i % 16)
    pooled(packet, 5, length)
    outside += packet.subarray(0, 5).filter((b) => b !== 0xee).length + packet.subarray(5 + length).filter((b) => b !== 0xee).length
    seen.push(...packet.subarray(5, 5 + length))
  }
  t.equal(outside, 0, 'only the asked range is written')
  // The counter's stream in order: a step other than +1 only where a pool's unused tail is
  // left behind at a refill (a byte handed out twice would be a step back inside a pool).
  const jumps = seen.filter((byte, i) => i > 0 && byte !== ((seen[i - 1] + 1) & 0xff)).length
  t.ok(calls.length > 1 && calls.every((n) => n === 16 << 10), 'refilled in whole pools')
  t.ok(jumps <= calls.length - 1, `the CSPRNG stream, consumed once (${jumps} skips for ${calls.length} pools)`)
})

t.test('large requests and non-Buffers go to the CSPRNG directly', async (t) => {
  const {fill, calls} = countingFill()
  const pooled = pooledRandomFill(fill)
  pooled(Buffer.alloc(4096))
  pooled(new Uint8Array(8))
  t.same(calls, [4096, 8])
})

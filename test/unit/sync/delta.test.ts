import {createHash, randomBytes} from 'node:crypto'

import t from 'tap'

import {applyDelta, computeDelta, computeSignature, deltaAndSignature, diffBuffers, parseSignature, serializeSignature, type ByteSource, type Window} from '../../../src/sync/delta.js'
import {describes} from '../../helpers/signature.js'

// A deterministic pseudo-random buffer, so failures reproduce.
function bytes(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size)
  let x = seed
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

t.test('4 KiB inserted in the middle of a 3 MB file: only about that much is sent', async (t) => {
  const old = bytes(3_000_000)
  const insert = randomBytes(4096)
  const next = Buffer.concat([old.subarray(0, 1_500_000), insert, old.subarray(1_500_000)])
  const sig = parseSignature(serializeSignature(computeSignature(old)))
  const delta = computeDelta(sig, next)
  t.ok(delta.literalBytes < 4096 + 2 * sig.blockSize, `literal bytes ${delta.literalBytes} (block ${sig.blockSize})`)
  t.ok(applyDelta(old, next, delta).equals(next), 'the rebuilt file is exactly the new one')
})

t.test('appending, truncating, and an unchanged file rebuild exactly', async (t) => {
  const old = bytes(1_234_567, 7)
  for (const next of [Buffer.concat([old, bytes(10_000, 3)]), old.subarray(0, 800_001), old, Buffer.concat([bytes(5, 9), old])]) {
    const delta = computeDelta(computeSignature(old), next)
    t.ok(applyDelta(old, next, delta).equals(next))
  }
  const same = computeDelta(computeSignature(old), old)
  t.equal(same.literalBytes, 0, 'an unchanged file sends nothing')
  t.equal(same.ops.length, 1, 'one copy of the whole file')
})

/**
 * `data` as a file read through a small reused window, as the delta thread reads files: each
 * view overwrites the last one's bytes, so a stale view gives wrong results. Counts bytes read.
 */
function windowed(data: Buffer, size: number): ByteSource & {read: number} {
  const buffer = Buffer.alloc(size)
  let window: Window = {bytes: buffer.subarray(0, 0), offset: 0}
  const source = {
    size: data.length,
    read: 0,
    view(start: number, end: number): Window {
      if (start >= window.offset && Math.min(end, data.length) <= window.offset + window.bytes.length) return window
      buffer.fill(0)
      const length = data.copy(buffer, 0, start, start + size)
      source.read += length
      window = {bytes: buffer.subarray(0, length), offset: start}
      return window
    },
  }
  return source
}

t.test('read through a small window, a file gives the same delta and signature as in memory, read once', async (t) => {
  const old = bytes(1_000_000, 5)
  const signature = computeSignature(old)
  const changes = [
    Buffer.concat([old.subarray(0, 300_000), bytes(4096, 2), old.subarray(300_000)]),
    Buffer.concat([bytes(3, 4), old.subarray(0, 700_000), old.subarray(702_000)]),
    Buffer.concat([old, bytes(50_000, 6)]),
    bytes(1_000_000, 8),
    old,
  ]
  for (const next of changes) {
    const source = windowed(next, 3 * signature.blockSize + 100)
    const delta = computeDelta(signature, source)
    t.same(delta, computeDelta(signature, next), 'the same ops')
    t.ok(applyDelta(old, next, delta).equals(next), 'rebuilt exactly')
    t.ok(source.read < next.length * 1.5, `read about once (${source.read} bytes for ${next.length})`)
  }
  const source = windowed(old, 3 * signature.blockSize + 100)
  t.same(computeSignature(source), signature, 'the signature too')
})

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

t.test('a delta carries the new file\'s signature, made in the same single read: the next change is a small delta from it', async (t) => {
  const old = bytes(2_000_000, 11)
  const signature = computeSignature(old)
  const changes = {
    'inserted in the middle': Buffer.concat([old.subarray(0, 1_000_000), bytes(4096, 2), old.subarray(1_000_000)]),
    appended: Buffer.concat([old, bytes(30_000, 3)]),
    'shifted by 5 bytes': Buffer.concat([bytes(5, 4), old]),
    truncated: old.subarray(0, 1_500_001),
    'a range rewritten': Buffer.concat([old.subarray(0, 500_000), bytes(100_000, 5), old.subarray(600_000)]),
    unchanged: old,
  }
  for (const [name, next] of Object.entries(changes)) {
    const whole = createHash('sha256')
    const source = windowed(next, 3 * signature.blockSize + 100)
    const {delta, next: carried} = deltaAndSignature(signature, source, whole)
    t.same(delta, computeDelta(signature, next), `${name}: the same delta`)
    t.ok(source.read < next.length * 1.5, `${name}: read about once (${source.read} bytes for ${next.length})`)
    t.equal(whole.digest('hex'), sha256(next), `${name}: every byte hashed, in order`)
    t.ok(carried && describes(carried, next), `${name}: each carried block is the new file's bytes where it sits`)
    const kept = parseSignature(serializeSignature(carried!))
    const later = Buffer.concat([next.subarray(0, 700_000), bytes(1000, 6), next.subarray(700_000)])
    const again = computeDelta(kept, later)
    t.ok(applyDelta(next, later, again).equals(later), `${name}: a later change rebuilds exactly from it`)
    t.ok(again.literalBytes < 1000 + 3 * signature.blockSize, `${name}: and sends little (${again.literalBytes} bytes)`)
  }
  const rewritten = deltaAndSignature(signature, bytes(2_000_000, 12), createHash('sha256'))
  t.equal(rewritten.next, undefined, 'a rewritten file gets a fresh signature instead (the same work)')
  const grown = deltaAndSignature(signature, Buffer.concat([old, old, old, old]), createHash('sha256'))
  t.equal(grown.next, undefined, 'so does one whose size calls for bigger blocks')
})

t.test('a signature whose blocks overlap or leave the file reads as damaged', async (t) => {
  const base = computeSignature(bytes(10_000, 1), 2048)
  for (const offsets of [[0, 2048, 4000, 6144, 8192], [0, 2048, 4096, 6144, 10_000], [2048, 0, 4096, 6144, 8192], [0, 2048, 4096, 6144]]) {
    t.throws(() => parseSignature(serializeSignature({...base, offsets: Float64Array.from(offsets)})), /damaged/, JSON.stringify(offsets))
  }
  const apart = {...base, offsets: Float64Array.from([0, 2048, 4200, 6300, 8400])}
  t.same(parseSignature(serializeSignature(apart)).offsets, apart.offsets, 'blocks apart, the last one ending the file: read back')
})

t.test('a completely different file is sent whole', async (t) => {
  const old = bytes(500_000, 1)
  const next = bytes(500_000, 2)
  const delta = computeDelta(computeSignature(old), next)
  t.equal(delta.literalBytes, next.length)
  t.ok(applyDelta(old, next, delta).equals(next))
})

t.test('diffBuffers: a manifest with rows changed here and there is rebuilt exactly from the old one', async (t) => {
  const rows = (n: number, changed: Set<number>, extra = 0) =>
    Buffer.from(`{"files":{${Array.from({length: n + extra}, (_, i) => `"dir/page-${i}.html":["${(changed.has(i) ? 'f' : 'a').repeat(64)}",${1000 + i},1700000000000,420]`).join(',')}}}\n`)
  const old = rows(5000, new Set())
  const next = rows(5000, new Set([3, 700, 701, 2500, 4999]), 20)
  const delta = diffBuffers(old, next, 512)
  t.ok(applyDelta(old, next, delta).equals(next), 'the rebuilt manifest is exactly the new one')
  t.ok(delta.literalBytes < 20 * 80 + 5 * 2 * 512 + 512, `only the changed rows and their blocks are sent (${delta.literalBytes} of ${next.length} bytes)`)
  const same = diffBuffers(old, old, 512)
  t.equal(same.literalBytes, old.length % 512, 'an unchanged manifest sends at most its short last block')
  for (const other of [Buffer.alloc(0), Buffer.from('short'), bytes(100_000, 4)]) t.ok(applyDelta(old, other, diffBuffers(old, other, 512)).equals(other))
})

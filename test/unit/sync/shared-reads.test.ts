import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {SharedReads} from '../../../src/sync/shared-reads.js'

t.test('a file read for one target is kept for the others, then let go', async (t) => {
  const dir = t.testdir({'page.html': 'first'})
  const file = {abs: join(dir, 'page.html'), size: 5}
  const reads = new SharedReads(() => 3)
  t.equal((await reads.read(file)).toString(), 'first')
  await fs.writeFile(file.abs, 'later')
  t.equal((await reads.read(file)).toString(), 'first', 'the second target gets the bytes already read')
  t.equal((await reads.read(file)).toString(), 'first', 'and the third')
  t.equal((await reads.read(file)).toString(), 'later', 'every expected reader had it: read again')
})

t.test('past its memory bound the oldest are dropped and read again when asked for', async (t) => {
  const dir = t.testdir({'a.bin': 'a'.repeat(1000), 'b.bin': 'b'.repeat(1000), 'c.bin': 'c'.repeat(1000)})
  const reads = new SharedReads(() => 2, 2600)
  const [a, b, c] = ['a.bin', 'b.bin', 'c.bin'].map((name) => ({abs: join(dir, name), size: 1000}))
  for (const file of [a, b, c]) await reads.read(file)
  await fs.writeFile(b.abs, 'changed')
  t.equal((await reads.read(b)).toString(), 'b'.repeat(1000), 'b was kept')
  await fs.writeFile(a.abs, 'changed')
  t.equal((await reads.read(a)).toString(), 'changed', 'a, the oldest, was dropped to stay within the bound')
})

t.test('a file only one target sends is not kept', async (t) => {
  const dir = t.testdir({'solo.html': 'one'})
  const file = {abs: join(dir, 'solo.html'), size: 3}
  const reads = new SharedReads(() => 1)
  await reads.read(file)
  await fs.writeFile(file.abs, 'two')
  t.equal((await reads.read(file)).toString(), 'two')
})

t.test('memory given back by every reader serves the next read; a reader still holding it keeps its bytes', async (t) => {
  // Files of 5,000 bytes: read into 8 KiB of memory each (smaller ones take Node's shared slab).
  const dir = t.testdir({'a.html': 'a'.repeat(5000), 'b.html': 'b'.repeat(5000), 'c.html': 'c'.repeat(5000)})
  const [a, b, c] = ['a.html', 'b.html', 'c.html'].map((name) => ({abs: join(dir, name), size: 5000}))
  const reads = new SharedReads(() => 2)
  const first = await reads.read(a)
  reads.release(first)
  // The other target has not read it yet: the bytes stay for it.
  const other = await reads.read(b)
  t.equal(first.toString(), 'a'.repeat(5000), 'not reused while a reader is still expected')
  t.equal((await reads.read(a)).toString(), 'a'.repeat(5000), 'the second reader gets the same bytes')
  // a's second reader never gives it back: its memory is never reused.
  const b2 = await reads.read(b)
  t.equal(b2, other, 'both targets share one buffer')
  reads.release(other)
  t.equal(b2.toString(), 'b'.repeat(5000), 'one reader gave it back, the other still holds it')
  reads.release(b2)
  // Every reader gave b back: its memory takes c.
  const third = await reads.read(c)
  t.equal(third.toString(), 'c'.repeat(5000))
  t.equal(third.buffer, b2.buffer, "c was read into b's memory")
  t.equal(first.toString(), 'a'.repeat(5000), 'memory a reader kept is never reused')
})

t.test('a file read into reused memory has the length it has now', async (t) => {
  const dir = t.testdir({'big.html': 'x'.repeat(8000), 'small.html': 'y'.repeat(5000)})
  const reads = new SharedReads(() => 1)
  const big = await reads.read({abs: join(dir, 'big.html'), size: 8000})
  reads.release(big)
  const small = await reads.read({abs: join(dir, 'small.html'), size: 5000})
  t.equal(small.buffer, big.buffer, 'read into the memory given back')
  t.equal(small.toString(), 'y'.repeat(5000), 'not the rest of what the memory held before')
  await fs.writeFile(join(dir, 'small.html'), 'z'.repeat(6000))
  reads.release(small)
  t.equal((await reads.read({abs: join(dir, 'small.html'), size: 5000})).length, 6000, 'a file that grew is read whole: the caller sees its size changed')
})

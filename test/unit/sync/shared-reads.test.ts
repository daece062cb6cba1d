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
  const dir = t.testdir({'a.bin': 'a'.repeat(60), 'b.bin': 'b'.repeat(60), 'c.bin': 'c'.repeat(60)})
  const reads = new SharedReads(() => 2, 150)
  const [a, b, c] = ['a.bin', 'b.bin', 'c.bin'].map((name) => ({abs: join(dir, name), size: 60}))
  for (const file of [a, b, c]) await reads.read(file)
  await fs.writeFile(b.abs, 'changed')
  t.equal((await reads.read(b)).toString(), 'b'.repeat(60), 'b was kept')
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

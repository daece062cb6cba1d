import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {SharedReads} from '../../../src/sync/shared-reads.js'

t.test('a file read for one target is kept for the others, then let go', async (t) => {
  const dir = t.testdir({'page.html': 'first'})
  const file = join(dir, 'page.html')
  const reads = new SharedReads(() => 3)
  t.equal((await reads.read(file, 5)).toString(), 'first')
  await fs.writeFile(file, 'later')
  t.equal((await reads.read(file, 5)).toString(), 'first', 'the second target gets the bytes already read')
  t.equal((await reads.read(file, 5)).toString(), 'first', 'and the third')
  t.equal((await reads.read(file, 5)).toString(), 'later', 'every expected reader had it: read again')
})

t.test('past its memory bound the oldest are dropped and read again when asked for', async (t) => {
  const dir = t.testdir({'a.bin': 'a'.repeat(60), 'b.bin': 'b'.repeat(60), 'c.bin': 'c'.repeat(60)})
  const reads = new SharedReads(() => 2, 150)
  for (const name of ['a.bin', 'b.bin', 'c.bin']) await reads.read(join(dir, name), 60)
  await fs.writeFile(join(dir, 'b.bin'), 'changed')
  t.equal((await reads.read(join(dir, 'b.bin'), 60)).toString(), 'b'.repeat(60), 'b was kept')
  await fs.writeFile(join(dir, 'a.bin'), 'changed')
  t.equal((await reads.read(join(dir, 'a.bin'), 60)).toString(), 'changed', 'a, the oldest, was dropped to stay within the bound')
})

t.test('a file only one target sends is not kept', async (t) => {
  const dir = t.testdir({'solo.html': 'one'})
  const reads = new SharedReads(() => 1)
  await reads.read(join(dir, 'solo.html'), 3)
  await fs.writeFile(join(dir, 'solo.html'), 'two')
  t.equal((await reads.read(join(dir, 'solo.html'), 3)).toString(), 'two')
})

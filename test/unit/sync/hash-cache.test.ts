import {writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {readHashCache, saveHashCache, writeHashCache, type CacheRow} from '../../../src/sync/hash-cache.js'

const hash = (n: number) => n.toString(16).padStart(64, '0')

t.test('rows read back as written, whatever the names hold', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'state', 'hash-cache')
  const rows = new Map<string, CacheRow>([
    ['index.html', [1234, 1_700_000_000_123.5, 42, hash(1)]],
    ['img/ünïcödé photo.jpg', [52_428_800, 1_600_000_000_000, 2 ** 40, hash(2)]],
    ['a name\nwith a newline', [0, 0, 7, hash(3)]],
  ])
  await writeHashCache(file, rows)
  t.same((await readHashCache(file)).rows, rows)
  t.same(await fs.readdir(join(dir, 'state')), ['hash-cache'], 'no temporary file left')
  await writeHashCache(file, new Map())
  t.same((await readHashCache(file)).rows, new Map(), 'an empty cache too')
})

t.test('a missing, damaged or older cache reads as empty: every file is hashed again', async (t) => {
  const dir = t.testdir({'old.json': JSON.stringify({format: 1, files: {'index.html': [1, 2, 3, hash(1)]}})})
  t.same((await readHashCache(join(dir, 'missing'))).rows, new Map(), 'missing')
  t.same((await readHashCache(join(dir, 'old.json'))).rows, new Map(), 'the JSON form of earlier versions')
  await writeHashCache(join(dir, 'old'), new Map())
  t.same((await fs.readdir(dir)).sort(), ['old'], 'which the first write of the new form removes')
  const file = join(dir, 'hash-cache')
  await writeHashCache(file, new Map([['index.html', [1, 2, 3, hash(1)] as CacheRow]]))
  const whole = await fs.readFile(file)
  writeFileSync(file, whole.subarray(0, whole.length - 3))
  t.same((await readHashCache(file)).rows, new Map(), 'cut short')
})

/** A cache of `count` rows, written whole. */
async function cacheOf(file: string, count: number): Promise<Map<string, CacheRow>> {
  const rows = new Map<string, CacheRow>()
  for (let i = 0; i < count; i++) rows.set(`dir/page-${i}.html`, [i, 1_700_000_000_000 + i, 1000 + i, hash(i)])
  await writeHashCache(file, rows)
  return rows
}

t.test('a few changes are added to a journal beside the cache, which is not written again', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'hash-cache')
  const expected = await cacheOf(file, 5000)
  const before = await fs.readFile(file)
  for (let round = 0; round < 3; round++) {
    const cache = await readHashCache(file)
    t.same(cache.rows, expected, `round ${round}: what was saved is read back`)
    const changes = new Map<string, CacheRow | null>([
      [`dir/page-${round}.html`, [1, 2, 3, hash(90_000 + round)]],
      [`new/ünï ${round}\nx.html`, [4, 5, 6, hash(80_000 + round)]],
      [`dir/page-${100 + round}.html`, null],
    ])
    for (const [path, row] of changes) {
      if (row) cache.rows.set(path, row), expected.set(path, row)
      else cache.rows.delete(path), expected.delete(path)
    }
    await saveHashCache(file, cache, changes)
  }
  t.same((await readHashCache(file)).rows, expected, 'three rounds of changes, additions and removals read back')
  t.ok((await fs.readFile(file)).equals(before), 'the cache file itself is as it was')
  t.same((await fs.readdir(dir)).sort(), ['hash-cache', 'hash-cache.journal'])
})

t.test('many changes write the cache anew and drop the journal', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'hash-cache')
  const expected = await cacheOf(file, 2000)
  let cache = await readHashCache(file)
  const few = new Map<string, CacheRow | null>([['dir/page-1.html', [9, 9, 9, hash(9)]]])
  cache.rows.set('dir/page-1.html', [9, 9, 9, hash(9)])
  expected.set('dir/page-1.html', [9, 9, 9, hash(9)])
  await saveHashCache(file, cache, few)
  cache = await readHashCache(file)
  const many = new Map<string, CacheRow | null>()
  for (let i = 0; i < 1500; i++) many.set(`dir/page-${i}.html`, [i, i, i, hash(50_000 + i)])
  for (const [path, row] of many) cache.rows.set(path, row!), expected.set(path, row!)
  await saveHashCache(file, cache, many)
  t.same(await fs.readdir(dir), ['hash-cache'], 'no journal left')
  t.same((await readHashCache(file)).rows, expected)
})

t.test('a journal cut short keeps its whole batches; the next save does not add after the broken one', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'hash-cache')
  const expected = await cacheOf(file, 3000)
  const save = async (path: string, n: number) => {
    const cache = await readHashCache(file)
    const row: CacheRow = [n, n, n, hash(n)]
    cache.rows.set(path, row)
    await saveHashCache(file, cache, new Map([[path, row]]))
    return row
  }
  expected.set('dir/page-1.html', await save('dir/page-1.html', 11))
  const whole = await fs.readFile(`${file}.journal`)
  await save('dir/page-2.html', 22)
  // A crash while the second batch was appended: only part of it is on disk.
  const cut = (await fs.readFile(`${file}.journal`)).subarray(0, whole.length + 20)
  writeFileSync(`${file}.journal`, cut)
  t.same((await readHashCache(file)).rows, expected, 'the first batch, not the cut one')
  expected.set('dir/page-3.html', await save('dir/page-3.html', 33))
  t.same((await readHashCache(file)).rows, expected, 'what is saved after the cut is read back')
})

t.test('a journal written for another version of the cache is not applied', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'hash-cache')
  await cacheOf(file, 3000)
  const cache = await readHashCache(file)
  cache.rows.set('dir/page-1.html', [7, 7, 7, hash(7)])
  await saveHashCache(file, cache, new Map([['dir/page-1.html', [7, 7, 7, hash(7)] as CacheRow]]))
  const journal = await fs.readFile(`${file}.journal`)
  // Another writer put a new cache in place; the old journal is still there (a crash before its removal).
  const expected = await cacheOf(file, 10)
  writeFileSync(`${file}.journal`, journal)
  t.same((await readHashCache(file)).rows, expected)
})

import {writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {readHashCache, writeHashCache, type CacheRow} from '../../../src/sync/hash-cache.js'

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
  t.same(await readHashCache(file), rows)
  t.same(await fs.readdir(join(dir, 'state')), ['hash-cache'], 'no temporary file left')
  await writeHashCache(file, new Map())
  t.same(await readHashCache(file), new Map(), 'an empty cache too')
})

t.test('a missing, damaged or older cache reads as empty: every file is hashed again', async (t) => {
  const dir = t.testdir({'old.json': JSON.stringify({format: 1, files: {'index.html': [1, 2, 3, hash(1)]}})})
  t.same(await readHashCache(join(dir, 'missing')), new Map(), 'missing')
  t.same(await readHashCache(join(dir, 'old.json')), new Map(), 'the JSON form of earlier versions')
  await writeHashCache(join(dir, 'old'), new Map())
  t.same((await fs.readdir(dir)).sort(), ['old'], 'which the first write of the new form removes')
  const file = join(dir, 'hash-cache')
  await writeHashCache(file, new Map([['index.html', [1, 2, 3, hash(1)] as CacheRow]]))
  const whole = await fs.readFile(file)
  writeFileSync(file, whole.subarray(0, whole.length - 3))
  t.same(await readHashCache(file), new Map(), 'cut short')
})

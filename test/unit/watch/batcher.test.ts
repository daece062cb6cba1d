// The batcher with real timers and real files: a burst becomes one batch, a file still being
// written waits until it settles, a render's writes are held back into one batch.

import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {ChangeBatcher, type BatcherOptions} from '../../../src/watch/batcher.js'
import {tempDir} from '../../helpers/site.js'
import {sleep, until} from './fakes.js'

function setup(options: Partial<BatcherOptions> = {}) {
  const root = tempDir('mirror-batcher-')
  const batches: Array<{at: number; paths: string[]}> = []
  const batcher = new ChangeBatcher({
    debounceMs: 40,
    maxWaitMs: 400,
    settleMs: 40,
    changedAt: async (path) => {
      const s = await fs.lstat(join(root, path)).catch(() => null)
      return s ? s.ctimeMs : null
    },
    onBatch: (paths) => batches.push({at: Date.now(), paths}),
    ...options,
  })
  return {root, batcher, batches}
}

t.test('a burst of changes becomes one batch after the quiet period', async (t) => {
  const {root, batcher, batches} = setup({debounceMs: 150, maxWaitMs: 5000})
  for (let i = 0; i < 200; i++) {
    await fs.writeFile(join(root, `page${i}.html`), `${i}`)
    batcher.add(`page${i}.html`)
    batcher.add(`page${i}.html`)
  }
  await until(() => batches.length > 0)
  await sleep(300)
  t.equal(batches.length, 1, 'one batch')
  t.equal(batches[0].paths.length, 200, 'each path once')
})

t.test('a tree that is never quiet is still published, at most maxWait apart', async (t) => {
  const {root, batcher, batches} = setup({debounceMs: 50, maxWaitMs: 200, settleMs: 0})
  const start = Date.now()
  // Churns until two batches went out (a busy machine delays timers), or for far longer than maxWait.
  while (batches.length < 2 && Date.now() - start < 5000) {
    await fs.writeFile(join(root, 'busy.log'), String(Date.now()))
    batcher.add('busy.log')
    await sleep(10)
  }
  batcher.stop()
  t.ok(batches.length >= 2, `published during the churn (${batches.length} batches)`)
})

t.test('a file still being written is held back until it has settled', async (t) => {
  const {root, batcher, batches} = setup({debounceMs: 20, maxWaitMs: 60, settleMs: 150})
  const file = join(root, 'big.bin')
  const handle = await fs.open(file, 'w')
  batcher.add('big.bin')
  // Keep writing for 300 ms, with gaps shorter than the settle time.
  for (let i = 0; i < 10; i++) {
    await handle.write(Buffer.alloc(1024, i))
    await sleep(30)
  }
  const finished = Date.now()
  await handle.close()
  t.equal(batches.length, 0, 'not published while written')
  await until(() => batches.length > 0, 2000)
  t.same(batches[0].paths, ['big.bin'])
  t.ok(batches[0].at - finished >= 100, 'published only once it stopped changing')
  const stat = await fs.stat(file)
  t.equal(stat.size, 10 * 1024)
})

t.test('a removed path is not waited for', async (t) => {
  const {batcher, batches} = setup({settleMs: 10_000})
  batcher.add('gone.html')
  await until(() => batches.length > 0, 1000)
  t.same(batches[0].paths, ['gone.html'])
})

t.test('an edit and a delete in one burst stay one batch while the edited file settles', async (t) => {
  const {root, batcher, batches} = setup({debounceMs: 20, maxWaitMs: 1000, settleMs: 150})
  await fs.writeFile(join(root, 'about.html'), 'new about')
  batcher.add('about.html')
  batcher.add('news/gone.html')
  await until(() => batches.length > 0, 2000)
  await sleep(300)
  t.same(batches.map((b) => b.paths), [['about.html', 'news/gone.html']])
})

t.test('a file that keeps changing holds the others back only once', async (t) => {
  const {root, batcher, batches} = setup({debounceMs: 20, maxWaitMs: 150, settleMs: 100})
  batcher.add('gone.html')
  const start = Date.now()
  while (batches.length === 0 && Date.now() - start < 2000) {
    await fs.writeFile(join(root, 'busy.log'), String(Date.now()))
    batcher.add('busy.log')
    await sleep(15)
  }
  batcher.stop()
  t.same(batches[0]?.paths, ['gone.html'], 'the removed path went without waiting for the busy file')
  t.ok(batches[0].at - start < 1000, 'within about two looks')
})

t.test('hold keeps everything back until released, then it is one batch', async (t) => {
  const {root, batcher, batches} = setup()
  const release = batcher.hold()
  for (let i = 0; i < 5; i++) {
    await fs.writeFile(join(root, `r${i}.html`), 'x')
    batcher.add(`r${i}.html`)
    await sleep(60)
  }
  t.equal(batches.length, 0, 'nothing while held, however long the gaps')
  release()
  await until(() => batches.length > 0)
  await sleep(100)
  t.equal(batches.length, 1)
  t.equal(batches[0].paths.length, 5)
})

t.test('stop returns what was waiting', async (t) => {
  const {batcher, batches} = setup({debounceMs: 1000})
  batcher.add('a.html')
  batcher.add('b.html')
  t.same(batcher.stop().sort(), ['a.html', 'b.html'])
  await sleep(50)
  t.equal(batches.length, 0)
})

// Pending work on disk: what a restarted watch publishes first.

import {existsSync, readdirSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {retryDelay} from '../../../src/watch/backoff.js'
import {loadPending, PendingWriter} from '../../../src/watch/pending.js'
import {tempDir} from '../../helpers/site.js'

t.test('saved pending work loads back', async (t) => {
  const file = join(tempDir(), 'watch', 'pending.json')
  const writer = new PendingWriter(file)
  writer.save(() => ({www2: {paths: ['a.html', 'img/x.png']}, www1: {paths: [], full: 'verify'}}))
  await writer.flush()
  t.same((await loadPending(file)).pending, {www2: {paths: ['a.html', 'img/x.png']}, www1: {paths: [], full: 'verify'}})
})

t.test('many saves in a row end with the newest on disk and no temporary file', async (t) => {
  const dir = tempDir()
  const file = join(dir, 'pending.json')
  const writer = new PendingWriter(file)
  for (let i = 0; i < 50; i++) writer.save(() => ({www: {paths: [`p${i}.html`]}}))
  await writer.flush()
  t.same((await loadPending(file)).pending, {www: {paths: ['p49.html']}})
  t.same(readdirSync(dir), ['pending.json'])
})

t.test('no file is no pending work; a damaged one is reported, not fatal', async (t) => {
  const dir = tempDir()
  t.same(await loadPending(join(dir, 'none.json')), {pending: {}})
  await fs.writeFile(join(dir, 'bad.json'), '{"format":1,"targets":')
  const loaded = await loadPending(join(dir, 'bad.json'))
  t.same(loaded.pending, {})
  t.ok(loaded.damaged)
  t.ok(existsSync(join(dir, 'bad.json')), 'left for a human to look at')
})

t.test('retry delays', async (t) => {
  const policy = {minMs: 1000, maxMs: 60_000}
  t.same([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelay(n, true, policy)), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000])
  t.equal(retryDelay(1, false, policy), 60_000, 'not retryable: wait the longest')
  t.equal(retryDelay(500, true, policy), 60_000, 'no overflow')
})

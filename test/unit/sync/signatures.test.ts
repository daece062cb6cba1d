import {rmSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {applyDelta} from '../../../src/sync/delta.js'
import {SignatureStore} from '../../../src/sync/signatures.js'

const data = Buffer.alloc(600_000, 'a')
const hash = 'f'.repeat(64)

t.test('targets recording the same version at once leave one signature and no temporary file', async (t) => {
  const root = t.testdir({'photo.jpg': data})
  const dir = join(root, 'signatures')
  const store = new SignatureStore(dir)
  const other = new SignatureStore(dir) // another process on the same state directory
  const file = join(root, 'photo.jpg')
  await Promise.all([store.remember(hash, file), store.remember(hash, file), other.remember(hash, file), other.remember(hash, file)])
  t.same(await fs.readdir(dir), [`${hash}.sig`])
  t.ok(await store.get(hash), 'the signature reads back')
})

t.test('a signature that cannot be written is not an error: the next change is sent whole', async (t) => {
  const root = t.testdir({'state': 'a file, not a directory', 'photo.jpg': data})
  const store = new SignatureStore(join(root, 'state', 'signatures'))
  await t.resolves(store.remember(hash, join(root, 'photo.jpg')))
  t.equal(await store.get(hash), undefined)
})

t.test('a delta against a recorded version rebuilds the new one, records the new signature, and is computed once', async (t) => {
  const changed = Buffer.concat([data.subarray(0, 300_000), Buffer.from('inserted in the middle'), data.subarray(300_000)])
  const root = t.testdir({'old.bin': data, 'new.bin': changed})
  const store = new SignatureStore(join(root, 'signatures'))
  await store.remember('a'.repeat(64), join(root, 'old.bin'))
  const [delta, again] = await Promise.all([store.deltaFor('a'.repeat(64), 'b'.repeat(64), join(root, 'new.bin')), store.deltaFor('a'.repeat(64), 'b'.repeat(64), join(root, 'new.bin'))])
  t.equal(delta, again, 'targets share one computation')
  t.ok(delta!.literalBytes < 40_000, `only the changed blocks are new bytes (${delta!.literalBytes})`)
  t.same(applyDelta(data, changed, delta!), changed)
  // The new version's signature comes from the delta's own read, written after the delta is
  // answered; remembering it (as the executor does once the file landed) waits for that write.
  rmSync(join(root, 'new.bin'))
  await store.remember('b'.repeat(64), join(root, 'new.bin'))
  t.ok(await store.has('b'.repeat(64)), 'the new version is recorded for the next change, without reading it again')
})

t.test('without the old version\'s signature there is no delta: the file goes whole', async (t) => {
  const root = t.testdir({'new.bin': data, signatures: {[`${'c'.repeat(64)}.sig`]: 'damaged'}})
  const store = new SignatureStore(join(root, 'signatures'))
  t.equal(await store.deltaFor('d'.repeat(64), hash, join(root, 'new.bin')), undefined, 'missing')
  t.equal(await store.deltaFor('c'.repeat(64), hash, join(root, 'new.bin')), undefined, 'damaged')
})

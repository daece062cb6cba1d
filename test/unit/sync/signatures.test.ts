import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {applyDelta, computeDelta, computeSignature} from '../../../src/sync/delta.js'
import {SignatureStore} from '../../../src/sync/signatures.js'
import {describes} from '../../helpers/signature.js'

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
const data = Buffer.alloc(600_000, 'a')
const hash = sha(data)

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
  const newHash = sha(changed)
  await store.remember(hash, join(root, 'old.bin'))
  const [delta, again] = await Promise.all([store.deltaFor(hash, newHash, join(root, 'new.bin')), store.deltaFor(hash, newHash, join(root, 'new.bin'))])
  t.equal(delta, again, 'targets share one computation')
  t.ok(delta!.literalBytes < 40_000, `only the changed blocks are new bytes (${delta!.literalBytes})`)
  t.same(applyDelta(data, changed, delta!), changed)
  // The new version's signature is recorded after the delta is answered; remembering it (as the
  // executor does once the file landed) waits for that write.
  await store.remember(newHash, join(root, 'new.bin'))
  const recorded = await store.get(newHash)
  t.equal(recorded?.size, changed.length, 'the new version is recorded for the next change')
  t.same(applyDelta(changed, data, computeDelta(recorded!, data)), data, 'and a delta back to the old version works from it')
})

t.test('a file that changed since it was hashed gets no signature under that version', async (t) => {
  const root = t.testdir({'photo.jpg': data})
  const store = new SignatureStore(join(root, 'signatures'))
  await store.remember(createHash('sha256').update('what the file held when it was hashed').digest('hex'), join(root, 'photo.jpg'))
  t.same(await fs.readdir(join(root, 'signatures')).catch(() => []), [], 'no signature: a later delta would copy blocks the slave does not have')
  // The delta's own follow-up recording is checked the same way.
  const changed = Buffer.concat([data, Buffer.from('appended')])
  const other = t.testdir({'old.bin': data, 'new.bin': changed})
  const store2 = new SignatureStore(join(other, 'signatures'))
  await store2.remember(sha(data), join(other, 'old.bin'))
  await store2.deltaFor(sha(data), sha(Buffer.from('another version')), join(other, 'new.bin'))
  await store2.remember(sha(Buffer.from('another version')), join(other, 'new.bin'))
  t.same(await fs.readdir(join(other, 'signatures')), [`${sha(data)}.sig`], 'only the version that was read is recorded')
})

t.test('without the old version\'s signature there is no delta: the file goes whole', async (t) => {
  const root = t.testdir({'new.bin': data, signatures: {[`${'c'.repeat(64)}.sig`]: 'damaged'}})
  const store = new SignatureStore(join(root, 'signatures'))
  t.equal(await store.deltaFor('d'.repeat(64), hash, join(root, 'new.bin')), undefined, 'missing')
  t.equal(await store.deltaFor('c'.repeat(64), hash, join(root, 'new.bin')), undefined, 'damaged')
  // The new version's signature is recorded after the answer, on the delta thread.
  const deadline = Date.now() + 10_000
  while (!(await store.has(hash)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.ok(await store.has(hash), 'the new version is still recorded, for the next change')
})

t.test('a file larger than the read window: changes on either side of its edges come through', async (t) => {
  let x = 3
  const big = Buffer.alloc(10 << 20, 0).map(() => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24)
  const edge = 4 << 20
  const changed = Buffer.concat([big.subarray(0, edge - 100), Buffer.from('across the edge'), big.subarray(edge + 100, 2 * edge + 7), Buffer.from('after'), big.subarray(2 * edge + 7)])
  const root = t.testdir({'old.bin': big, 'new.bin': changed})
  const store = new SignatureStore(join(root, 'signatures'))
  await store.remember(sha(big), join(root, 'old.bin'))
  const delta = await store.deltaFor(sha(big), sha(changed), join(root, 'new.bin'))
  t.ok(applyDelta(big, changed, delta!).equals(changed), 'rebuilt exactly')
  t.ok(delta!.literalBytes < 100_000, `only the changed blocks are new bytes (${delta!.literalBytes})`)
  await store.remember(sha(changed), join(root, 'new.bin'))
  const recorded = await store.get(sha(changed))
  t.ok(recorded?.offsets && describes(recorded, changed), 'the new version\'s signature, carried from the delta\'s own read, describes its bytes')
  const later = Buffer.concat([changed.subarray(0, 3 * edge), Buffer.from('later'), changed.subarray(3 * edge)])
  const next = computeDelta(recorded!, later)
  t.ok(applyDelta(changed, later, next).equals(later) && next.literalBytes < 100_000, `the next change goes as a small delta from it (${next.literalBytes} new bytes)`)
})

t.test('pruning keeps the live versions, what was recorded since it began, and recordings under way', async (t) => {
  const root = t.testdir({'photo.jpg': data, 'signatures': {'dead.sig': 'old', 'live.sig': 'kept', 'dead.sig.123.ab.tmp': 'being written'}})
  const dir = join(root, 'signatures')
  const old = new Date(Date.now() - 60_000)
  for (const name of ['dead.sig', 'live.sig']) await fs.utimes(join(dir, name), old, old)
  const before = Date.now() - 1000
  // Recorded after the publish began (by this publish, or one running beside it).
  await new SignatureStore(dir).remember(hash, join(root, 'photo.jpg'))
  t.equal(await new SignatureStore(dir).prune(new Set(['live']), before), 1)
  t.same((await fs.readdir(dir)).sort(), [`${hash}.sig`, 'dead.sig.123.ab.tmp', 'live.sig'].sort())
})

t.test('a delta asked for while a big signature is being recorded does not wait for all of it', async (t) => {
  // 48 MB of varied bytes: its signature is made in some fifty steps.
  const big = Buffer.alloc(48 << 20)
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i)
  const small = Buffer.concat([data.subarray(0, 300_000), Buffer.from('changed'), data.subarray(300_000)])
  const root = t.testdir({'video.mp4': big, 'photo.jpg': data})
  const store = new SignatureStore(join(root, 'signatures'))
  await store.remember(hash, join(root, 'photo.jpg'))
  await fs.writeFile(join(root, 'photo.jpg'), small)
  const recording = store.remember(sha(big), join(root, 'video.mp4'))
  // Asked once the recording is under way, as a target's transfer would.
  await new Promise((resolve) => setImmediate(resolve))
  const delta = await store.deltaFor(hash, sha(small), join(root, 'photo.jpg'))
  t.notOk(existsSync(join(root, 'signatures', `${sha(big)}.sig`)), 'the delta came before the signature was done')
  t.same(applyDelta(data, small, delta!), small, 'and rebuilds the file')
  await recording
  t.same(await store.get(sha(big)), computeSignature(big), 'the signature is whole all the same')
  // The photo's new signature, recorded behind the delta, is written before the test's files go.
  await store.remember(sha(small), join(root, 'photo.jpg'))
})

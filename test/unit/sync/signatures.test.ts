import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {SignatureStore} from '../../../src/sync/signatures.js'

const data = Buffer.alloc(600_000, 'a')
const hash = 'f'.repeat(64)

t.test('targets recording the same version at once leave one signature and no temporary file', async (t) => {
  const dir = join(t.testdir(), 'signatures')
  const store = new SignatureStore(dir)
  const other = new SignatureStore(dir) // another process on the same state directory
  await Promise.all([store.remember(hash, data), store.remember(hash, data), other.remember(hash, data), other.remember(hash, data)])
  t.same(await fs.readdir(dir), [`${hash}.sig`])
  t.ok(await store.get(hash), 'the signature reads back')
})

t.test('a signature that cannot be written is not an error: the next change is sent whole', async (t) => {
  const blocked = join(t.testdir({'state': 'a file, not a directory'}), 'state')
  const store = new SignatureStore(join(blocked, 'signatures'))
  await t.resolves(store.remember(hash, data))
  t.equal(await store.get(hash), undefined)
})

import t from 'tap'

import {emptyManifest, parseManifest, serializeManifest} from '../../../src/sync/manifest.js'

const sample = () => {
  const m = emptyManifest('www')
  m.generation = 7
  m.publisher = 'ann@master'
  m.files.set('index.html', {hash: 'a'.repeat(64), size: 10, mtimeMs: 1_700_000_000_000, mode: 0o644})
  m.files.set('odd "name"\n.txt', {hash: 'b'.repeat(64), size: 3, mtimeMs: 1_700_000_000_000, mode: 0o600})
  return m
}

t.test('a manifest survives a round trip, odd names included', async (t) => {
  const back = parseManifest(serializeManifest(sample()), 'www')
  t.equal(back.generation, 7)
  t.equal(back.complete, true)
  t.same([...back.files.keys()].sort(), ['index.html', 'odd "name"\n.txt'])
  t.same(back.files.get('odd "name"\n.txt'), {hash: 'b'.repeat(64), size: 3, mtimeMs: 1_700_000_000_000, mode: 0o600})
})

t.test('a hand-edited manifest is detected by its checksum', async (t) => {
  const text = serializeManifest(sample()).toString().replace('"index.html"', '"evil.html"')
  t.throws(() => parseManifest(Buffer.from(text), 'www'), {code: 'MANIFEST_CORRUPT', target: 'www'})
})

t.test('a truncated or foreign manifest is refused, not trusted', async (t) => {
  const data = serializeManifest(sample())
  t.throws(() => parseManifest(data.subarray(0, data.length / 2), 'www'), {code: 'MANIFEST_CORRUPT'})
  t.throws(() => parseManifest(Buffer.from('{"format":9}'), 'www'), {code: 'MANIFEST_CORRUPT'})
})

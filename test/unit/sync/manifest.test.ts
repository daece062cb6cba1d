import t from 'tap'

import {applyDelta} from '../../../src/sync/delta.js'

import {applyJournal, emptyManifest, fingerprint, journalHeader, journalLine, ManifestBodies, manifestStream, parseManifest, rowsFingerprint, serializeManifest} from '../../../src/sync/manifest.js'

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

t.test('a big manifest (several megabytes, names in many scripts) is the same after a round trip as after JSON', async (t) => {
  const m = emptyManifest('www')
  for (let i = 0; i < 30_000; i++) m.files.set(`${i % 3 === 0 ? 'ページ' : i % 3 === 1 ? 'straße' : 'a'}/${String(i).padStart(6, '0')}-${'x'.repeat(i % 90)}.html`, {hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000 + i * 1000, mode: 0o644})
  const data = serializeManifest(m)
  t.ok(data.length > 3 << 20, 'spans several chunks')
  const back = parseManifest(data, 'www')
  t.equal(back.files.size, m.files.size)
  t.same([...back.files].sort(([a], [b]) => (a < b ? -1 : 1)), [...m.files].sort(([a], [b]) => (a < b ? -1 : 1)))
  const parsed = JSON.parse(data.toString())
  t.same(Object.keys(parsed.files), [...m.files.keys()].sort(), 'rows in path order')
  // A row longer than the chunks rows are gathered in (no real path is) still comes out whole.
  const long = `long/${'é'.repeat(400_000)}`
  m.files.set(long, {hash: 'e'.repeat(64), size: 1, mtimeMs: 0, mode: 0o600})
  t.same(JSON.parse(serializeManifest(m).toString()).files[long], ['e'.repeat(64), 1, 0, 0o600])
})

t.test('a manifest streamed from its rows is byte for byte the serialized one, and so is its fingerprint', async (t) => {
  const m = sample()
  // Enough rows for many chunks, names in several scripts.
  for (let i = 0; i < 3000; i++) m.files.set(`${i % 2 ? 'ページ' : 'a'}/${String(i).padStart(5, '0')}.html`, {hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000, mode: 0o644})
  const {files, ...head} = m
  const sorted = [...files].sort(([a], [b]) => (a < b ? -1 : 1))
  const stream = manifestStream(head, () => sorted)
  const chunks = [...stream.chunks()]
  const whole = serializeManifest(m)
  t.ok(chunks.length > 4, 'made in many chunks')
  t.equal(stream.size, whole.length, 'the size is announced before the bytes are made')
  t.ok(Buffer.concat(chunks).equals(whole), 'the same bytes as serializeManifest')
  t.ok(Buffer.concat([...stream.chunks()]).equals(whole), 'and the same again on a second pass')
  t.equal(parseManifest(whole, 'www').files.size, files.size)
  t.equal(rowsFingerprint(sorted), fingerprint(files.keys(), (path) => files.get(path)!))

  const none = manifestStream({...head, complete: false}, () => [])
  t.equal(Buffer.concat([...none.chunks()]).toString(), serializeManifest({...emptyManifest('www'), ...head, complete: false}).toString(), 'an empty one too')
})

t.test('a manifest of more rows than are kept as text is made row by row again, to the same bytes as streamed', async (t) => {
  const m = sample()
  for (let i = 0; i < 60_000; i++) m.files.set(`p/${String(i).padStart(6, '0')}.html`, {hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000, mode: 0o644})
  const {files, ...head} = m
  const sorted = [...files].sort(([a], [b]) => (a < b ? -1 : 1))
  const whole = serializeManifest(m)
  t.ok(Buffer.concat([...manifestStream(head, () => sorted).chunks()]).equals(whole), 'the same bytes as streamed')
  t.equal(parseManifest(whole, 'www').files.size, files.size)
})

t.test('a hand-edited manifest is detected by its checksum'
, async (t) => {
  const text = serializeManifest(sample()).toString().replace('"index.html"', '"evil.html"')
  t.throws(() => parseManifest(Buffer.from(text), 'www'), {code: 'MANIFEST_CORRUPT', target: 'www'})
})

t.test('targets whose manifests hold the same files share one parsed map; their own heads stay theirs', async (t) => {
  const parsedFiles = new Map()
  const first = parseManifest(serializeManifest(sample()), 'www', parsedFiles)
  const other = sample()
  other.target = 'cache2'
  other.generation = 12
  other.complete = false
  other.publisher = 'zoë@mäster'
  const second = parseManifest(serializeManifest(other), 'cache2', parsedFiles)
  t.equal(second.files, first.files, 'one map for both')
  t.match(second, {target: 'cache2', generation: 12, complete: false, publisher: 'zoë@mäster'})
  const changed = sample()
  changed.files.delete('index.html')
  t.not(parseManifest(serializeManifest(changed), 'www', parsedFiles).files, first.files, 'other files, another map')
  // A head that vouches for other files than those it carries is still refused.
  const forged = serializeManifest(sample()).toString().replace(/"checksum":"[0-9a-f]+"/, `"checksum":"${'0'.repeat(64)}"`)
  t.throws(() => parseManifest(Buffer.from(forged), 'www', parsedFiles), {code: 'MANIFEST_CORRUPT'})
})

t.test('a truncated or foreign manifest is refused, not trusted', async (t) => {
  const data = serializeManifest(sample())
  t.throws(() => parseManifest(data.subarray(0, data.length / 2), 'www'), {code: 'MANIFEST_CORRUPT'})
  t.throws(() => parseManifest(Buffer.from('{"format":9}'), 'www'), {code: 'MANIFEST_CORRUPT'})
})

t.test('a journal continues the incomplete manifest of its generation; a cut-short last line is ignored', async (t) => {
  const m = sample()
  m.complete = false
  const journal = Buffer.concat([
    journalHeader(7),
    Buffer.from(journalLine('new.html', {hash: 'c'.repeat(64), size: 5, mtimeMs: 1_700_000_001_000, mode: 0o644})),
    Buffer.from(journalLine('index.html', null)),
    Buffer.from(journalLine('late.html', {hash: 'd'.repeat(64), size: 5, mtimeMs: 1, mode: 0o644}).slice(0, 20)),
  ])
  t.equal(applyJournal(m, journal), 2)
  t.same([...m.files.keys()].sort(), ['new.html', 'odd "name"\n.txt'])
})

t.test('a journal of another generation, of a complete manifest, or naming unsafe paths changes nothing', async (t) => {
  const line = journalLine('new.html', {hash: 'c'.repeat(64), size: 5, mtimeMs: 1, mode: 0o644})
  const incomplete = () => Object.assign(sample(), {complete: false})
  t.equal(applyJournal(incomplete(), Buffer.concat([journalHeader(6), Buffer.from(line)])), 0, 'left by an older publish')
  t.equal(applyJournal(sample(), Buffer.concat([journalHeader(7), Buffer.from(line)])), 0, 'the manifest is complete')
  const forged = incomplete()
  t.equal(applyJournal(forged, Buffer.concat([journalHeader(7), Buffer.from(journalLine('../../etc/passwd', null)), Buffer.from(line)])), 0)
  t.notOk(forged.files.has('new.html'), 'nothing after a forged line is trusted')
  t.equal(applyJournal(incomplete(), Buffer.from('garbage\n')), 0)
})

t.test('targets that end with the same files share one body; each manifest still reads back as its own', async (t) => {
  const bodies = new ManifestBodies()
  const base = sample().files
  const changes = [journalLine('new.css', {hash: 'c'.repeat(64), size: 4, mtimeMs: 1_700_000_001_000, mode: 0o644}), journalLine('index.html', null)]
  let builds = 0
  const build = () => {
    builds++
    const files = new Map(base)
    files.delete('index.html')
    files.set('new.css', {hash: 'c'.repeat(64), size: 4, mtimeMs: 1_700_000_001_000, mode: 0o644})
    return files
  }
  const first = bodies.get(base, changes, build)
  const second = bodies.get(base, [...changes], build)
  t.equal(builds, 1, 'built once for both targets')
  t.equal(second, first)
  for (const [target, generation] of [['cache1', 3], ['cache-two', 41]] as const) {
    const m = {...emptyManifest(target), generation, files: first.files}
    const shared = serializeManifest(m, undefined, first)
    t.same(shared, serializeManifest(m), `${target}: the same bytes as serialized alone`)
    const back = parseManifest(shared, target)
    t.equal(back.target, target)
    t.equal(back.generation, generation)
    t.same([...back.files.keys()].sort(), ['new.css', 'odd "name"\n.txt'])
  }
  bodies.get(base, changes.slice(0, 1), build)
  t.equal(builds, 2, 'other changes make another body')
  bodies.get(new Map(base), changes, build)
  t.equal(builds, 3, 'and so does another base')
})

t.test('targets whose manifests differ only in their heads share the delta of their files, and each rebuilds its own bytes', async (t) => {
  const bodies = new ManifestBodies()
  const files = new Map<string, {hash: string; size: number; mtimeMs: number; mode: number}>()
  for (let i = 0; i < 2000; i++) files.set(`p/${String(i).padStart(4, '0')}.html`, {hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000, mode: 0o644})
  const changed = new Map(files)
  changed.set('p/0500.html', {hash: 'e'.repeat(64), size: 7, mtimeMs: 1_700_000_009_000, mode: 0o644})
  changed.delete('p/1500.html')
  const manifest = (target: string, publisher: string, f: typeof files) => serializeManifest({...emptyManifest(target), generation: 3, publisher, publishedAt: new Date(0).toISOString(), files: f})
  for (const [target, publisher] of [['www1', 'ann@master'], ['a-much-longer-target-name', 'bob@other-master']]) {
    const previous = manifest(target, 'ann@master', files)
    const next = manifest(target, publisher, changed)
    const delta = bodies.diff(previous, next, 256)
    t.ok(applyDelta(previous, next, delta).equals(next), `${target}: rebuilt exactly`)
    t.ok(delta.literalBytes < 2048, `${target}: only the head, the end and the changed rows are sent (${delta.literalBytes} bytes)`)
  }
  t.equal((bodies as unknown as {diffs: unknown[]}).diffs.length, 1, "the files' delta was made once, for both targets")
})

t.test('a fingerprint digests "path NUL hash NUL mode LF" in path order: the records kept by earlier versions stay valid', async (t) => {
  const {createHash} = await import('node:crypto')
  const content = new Map<string, {hash: string; mode: number}>([
    ['z.html', {hash: 'c'.repeat(64), mode: 0o644}],
    ['café/ünï.html', {hash: 'b'.repeat(64), mode: 0o600}],
    [`deep/${'long-name-'.repeat(8000)}.html`, {hash: 'a'.repeat(64), mode: 0o7777}],
    ['a.html', {hash: 'd'.repeat(64), mode: 0}],
  ])
  for (let i = 0; i < 3000; i++) content.set(`pages/p-${i}.html`, {hash: i.toString(16).padStart(64, '0'), mode: 0o644})
  const sorted = [...content.keys()].sort()
  const expected = createHash('sha256').update(sorted.map((p) => `${p}\0${content.get(p)!.hash}\0${content.get(p)!.mode}\n`).join('')).digest('hex')
  t.equal(fingerprint(content.keys(), (p) => content.get(p)!), expected, 'over a path longer than a chunk, and odd characters')
  t.equal(rowsFingerprint(sorted.map((p) => [p, content.get(p)!] as const)), expected, 'the same from rows')
})

t.test('a manifest\'s rows spliced from the previous ones are the rows made anew, and its delta rebuilds them', async (t) => {
  const {manifestBody, spliceRows} = await import('../../../src/sync/manifest.js')
  let seed = 7
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
  const odd = ['a"quote.html', 'comma,here.html', 'bracket].html', 'café/ünï.html', 'back\\slash.html', 'new\nline.html', '"x":[.html', 'z']
  const record = (i: number) => ({hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000 + i * 1000, mode: 0o644})
  for (let round = 0; round < 40; round++) {
    const base = new Map<string, ReturnType<typeof record>>()
    const count = round === 0 ? 0 : 1 + Math.floor(random() * 300)
    for (let i = 0; i < count; i++) base.set(`d${Math.floor(random() * 20)}/p${Math.floor(random() * 1000)}.html`, record(i))
    for (const path of odd) if (random() < 0.5) base.set(path, record(99))
    const next = new Map(base)
    const changes = new Map<string, ReturnType<typeof record> | null>()
    for (const path of base.keys()) {
      const r = random()
      if (r < 0.1) changes.set(path, null)
      else if (r < 0.2) changes.set(path, record(5000 + Math.floor(random() * 100)))
    }
    for (let i = 0; i < 20; i++) if (random() < 0.5) changes.set(`d${Math.floor(random() * 22)}/added-${i}.html`, record(7000 + i))
    for (const path of odd) if (!base.has(path) && random() < 0.3) changes.set(path, record(8000))
    if (random() < 0.2) changes.set('not/there.html', null)
    for (const [path, r] of changes) r ? next.set(path, r) : next.delete(path)
    const previous = manifestBody(base).rows
    const sorted = [...changes].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    const spliced = spliceRows(previous, [...base.keys()].sort(), sorted)
    const made = manifestBody(next)
    t.ok(spliced, `round ${round}: spliced`)
    t.equal(spliced!.rows.toString(), made.rows.toString(), `round ${round}: the same rows as made anew`)
    t.same(applyDelta(previous, spliced!.rows, spliced!.delta), spliced!.rows, `round ${round}: the delta rebuilds them`)
  }
  t.equal(spliceRows(Buffer.from('"a":["x",1,2,3]'), ['a', 'b'], [['b', null]]), undefined, 'a row that is not there: undefined')
})

t.test('final bodies spliced from the manifest on the slave: the same bytes and checksum as made anew, and a delta that rebuilds them', async (t) => {
  const {manifestBody} = await import('../../../src/sync/manifest.js')
  const record = (i: number) => ({hash: i.toString(16).padStart(64, '0'), size: i, mtimeMs: 1_700_000_000_000, mode: 0o644})
  const base = new Map<string, ReturnType<typeof record>>()
  for (let i = 0; i < 3000; i++) base.set(`news/${String(i).padStart(5, '0')}.html`, record(i))
  const previous = serializeManifest({...emptyManifest('www'), generation: 4, files: base})
  const rows: Array<readonly [string, ReturnType<typeof record> | null]> = [['news/00010.html', null], ['news/00500.html', record(9999)], ['news/00500a.html', record(7)], ['zz/new.html', record(8)]]
  const next = new Map(base)
  for (const [path, r] of rows) r ? next.set(path, r) : next.delete(path)
  const bodies = new ManifestBodies()
  const lines = rows.map(([path, r]) => journalLine(path, r))
  const body = bodies.get(base, lines, () => next, () => ({manifest: previous, rows}))
  const made = manifestBody(next)
  t.equal(body.rows.toString(), made.rows.toString(), 'the same rows')
  t.equal(body.checksum, made.checksum, 'the same checksum')
  const data = serializeManifest({...emptyManifest('www'), generation: 5, files: next}, undefined, body)
  t.same(parseManifest(data, 'www').files, next, 'it reads back as the new files')
  const delta = bodies.diff(previous, data, 256)
  t.same(applyDelta(previous, data, delta), data, 'the delta rebuilds it from the previous bytes')
  t.ok(delta.literalBytes < 1000, `only the changed rows are sent (${delta.literalBytes} bytes)`)
})

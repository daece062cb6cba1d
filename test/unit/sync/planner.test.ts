import t from 'tap'

import type {Manifest, ManifestRecord} from '../../../src/sync/manifest.js'
import type {RoutedEntry} from '../../../src/sync/plan.js'
import {needsHash, pathsToProbe, planTarget, recordAfter, SharedPlanning, type SlaveFile} from '../../../src/sync/planner.js'

const T0 = 1_700_000_000_000

function entry(path: string, hash: string, size = 10, mode = 0o644): RoutedEntry {
  return {path, segment: 'pages', source: {path, abs: `/src/${path}`, size, mtimeMs: T0 + 500, mode, hash}}
}
const rec = (hash: string, size = 10, mode = 0o644): ManifestRecord => ({hash, size, mtimeMs: T0, mode})
const file = (size: number, mtimeMs = T0, hash?: string): SlaveFile => ({type: 'file', size, mtimeMs, mode: 0o644, ...(hash && {hash})})
const manifest = (files: Record<string, ManifestRecord>): Manifest => ({target: 'x', generation: 3, publishedAt: '', publisher: '', complete: true, files: new Map(Object.entries(files))})
const entries = (...list: RoutedEntry[]) => new Map(list.map((e) => [e.path, e]))

function plan(opts: {entries: Map<string, RoutedEntry>; base: Manifest | null; slave?: Record<string, SlaveFile | null>; listed?: boolean; force?: boolean; protect?: string[]}) {
  return planTarget({
    target: 'x',
    url: 'file:///x',
    entries: opts.entries,
    base: opts.base,
    slave: new Map(Object.entries(opts.slave ?? {})),
    listed: opts.listed ?? false,
    protect: (p) => (opts.protect ?? []).includes(p),
    force: opts.force ?? false,
  })
}
const kinds = (p: ReturnType<typeof plan>) => Object.fromEntries(p.actions.map((a) => [a.path, a.kind]))

t.test('a clean noop probes nothing and plans nothing', async (t) => {
  const e = entries(entry('a.html', 'h1'), entry('b.png', 'h2'))
  const base = manifest({'a.html': rec('h1'), 'b.png': rec('h2')})
  t.same(pathsToProbe(e, base, () => false), [], 'no slave path needs looking at')
  const p = plan({entries: e, base})
  t.same(p.actions, [])
  t.equal(p.unchanged, 2)
})

t.test('source changed, slave as published: update', async (t) => {
  const e = entries(entry('a.html', 'new'))
  const base = manifest({'a.html': rec('old')})
  t.same(pathsToProbe(e, base, () => false), ['a.html'])
  const p = plan({entries: e, base, slave: {'a.html': file(10)}})
  t.same(kinds(p), {'a.html': 'update'})
  t.equal(p.bytes, 10)
})

t.test('slave changed since publish: kept and reported, not overwritten', async (t) => {
  const e = entries(entry('a.html', 'new'))
  const base = manifest({'a.html': rec('old')})
  const p = plan({entries: e, base, slave: {'a.html': file(12, T0 + 60_000)}})
  t.same(kinds(p), {'a.html': 'keep'})
  t.match(p.actions[0].reason, /customized/)
  t.equal(recordAfter(p.actions[0]), undefined, 'the manifest keeps the published record, so it stays a customization')
})

t.test('slave changed, --force: overwritten with a backup', async (t) => {
  const p = plan({entries: entries(entry('a.html', 'new')), base: manifest({'a.html': rec('old')}), slave: {'a.html': file(12, T0 + 60_000)}, force: true})
  t.same(kinds(p), {'a.html': 'update'})
  t.equal(p.actions[0].backup, true)
})

t.test('slave touched but same content (hash equals the manifest): as published', async (t) => {
  const p = plan({entries: entries(entry('a.html', 'new')), base: manifest({'a.html': rec('old')}), slave: {'a.html': file(10, T0 + 5000, 'old')}})
  t.same(kinds(p), {'a.html': 'update'})
})

t.test('a path only on the slave is never touched, even in a full listing', async (t) => {
  const p = plan({entries: entries(entry('a.html', 'h')), base: manifest({'a.html': rec('h')}), slave: {'a.html': file(10), 'local.txt': file(3)}, listed: true})
  t.same(p.actions, [])
})

t.test('published, now gone from the source: deleted', async (t) => {
  const base = manifest({'old.html': rec('h')})
  t.same(pathsToProbe(new Map(), base, () => false), ['old.html'])
  const p = plan({entries: new Map(), base, slave: {'old.html': file(10)}})
  t.same(kinds(p), {'old.html': 'delete'})
  t.equal(recordAfter(p.actions[0]), null)
})

t.test('gone from the source but changed on the slave: kept, no longer managed', async (t) => {
  const p = plan({entries: new Map(), base: manifest({'old.html': rec('h')}), slave: {'old.html': file(99, T0 + 1000)}})
  t.same(kinds(p), {'old.html': 'keep'})
  t.equal(recordAfter(p.actions[0]), null, 'dropped from the manifest: a slave-only file from now on')
})

t.test('gone from the source and already gone on the slave: only the manifest changes', async (t) => {
  const p = plan({entries: new Map(), base: manifest({'old.html': rec('h')}), slave: {'old.html': null}})
  t.same(kinds(p), {'old.html': 'delete'})
  t.equal(p.actions[0].reason, 'already gone on the slave')
})

t.test('first publish to a non-empty slave: identical adopted, different is a conflict', async (t) => {
  const e = entries(entry('same.html', 'h1'), entry('diff.html', 'h2'), entry('new.html', 'h3'))
  const slave = {'same.html': file(10, T0 - 9000, 'h1'), 'diff.html': file(10, T0, 'zz'), 'mine.txt': file(4)}
  const p = plan({entries: e, base: null, slave, listed: true})
  t.same(kinds(p), {'diff.html': 'conflict', 'new.html': 'add', 'same.html': 'adopt'})
  t.same(recordAfter(p.actions.find((a) => a.kind === 'adopt')!), {hash: 'h1', size: 10, mtimeMs: T0 - 9000, mode: 0o644}, 'adopt records what the slave really has')
  const forced = plan({entries: e, base: null, slave, listed: true, force: true})
  t.same(kinds(forced)['diff.html'], 'update')
})

t.test('protect globs: never touched', async (t) => {
  const e = entries(entry('config.local.php', 'new'))
  const base = manifest({'config.local.php': rec('old'), 'uploads/a.jpg': rec('x')})
  const protect = ['config.local.php', 'uploads/a.jpg']
  t.same(pathsToProbe(e, base, (p) => protect.includes(p)), [])
  const p = plan({entries: e, base, protect})
  t.same(p.actions, [])
  t.equal(p.protected, 2)
})

t.test('--verify: a published file missing on the slave is repaired', async (t) => {
  const p = plan({entries: entries(entry('a.html', 'h')), base: manifest({'a.html': rec('h')}), slave: {}, listed: true})
  t.same(kinds(p), {'a.html': 'repair'})
})

t.test('an interrupted run: the slave already has the new content, adopted without sending', async (t) => {
  const p = plan({entries: entries(entry('a.html', 'new', 11)), base: manifest({'a.html': rec('old')}), slave: {'a.html': file(11, T0 + 500, 'new')}})
  t.same(kinds(p), {'a.html': 'adopt'})
  t.equal(p.bytes, 0)
})

t.test('a symlink or directory on the slave where a file is published is left alone', async (t) => {
  const link: SlaveFile = {type: 'symlink', size: 4, mtimeMs: T0, mode: 0o777}
  const p = plan({entries: entries(entry('img', 'h'), entry('x.html', 'h2')), base: manifest({'x.html': rec('h1')}), slave: {img: link, 'x.html': {...link, type: 'dir'}}, force: true})
  t.same(kinds(p), {img: 'conflict', 'x.html': 'keep'})
})

t.test('a mode change alone is an update', async (t) => {
  const p = plan({entries: entries(entry('run.sh', 'h', 10, 0o755)), base: manifest({'run.sh': rec('h', 10, 0o644)}), slave: {'run.sh': file(10)}})
  t.same(kinds(p), {'run.sh': 'update'})
})

t.test('needsHash: only when size and mtime cannot decide', async (t) => {
  const e = entry('a', 'h', 10)
  t.equal(needsHash(file(10, T0), rec('h'), e), false, 'size and mtime as published')
  t.equal(needsHash(file(10, T0 + 1000), rec('h'), e), true, 'same size, other mtime')
  t.equal(needsHash(file(7, T0 + 1000), rec('h'), e), false, 'a size matching neither cannot be equal')
  t.equal(needsHash(file(10, T0), undefined, e), true, 'no record, same size as the source')
  t.equal(needsHash(null, rec('h'), e), false)
})

t.test('targets with the same entries, manifest and slave answers share one plan; a slave that answers otherwise gets its own', async (t) => {
  const e = entries(entry('a.html', 'new'), entry('b.html', 'h2'), entry('c.html', 'h3'))
  const base = manifest({'a.html': rec('old'), 'b.html': rec('h2'), 'c.html': rec('h3')})
  const protect = () => false
  const planning = new SharedPlanning()
  const probed = planning.pathsToProbe(e, base, protect)
  t.same(probed, ['a.html'])
  t.equal(planning.pathsToProbe(e, base, protect), probed, 'the probe list is made once')
  const input = (target: string, slave: SlaveFile) => ({target, url: `sftp://${target}/www`, entries: e, base, slave: new Map([['a.html', slave]]), listed: false, protect, force: false})
  const one = planning.plan(input('one', file(10)))
  const two = planning.plan(input('two', file(10)))
  t.equal(two.actions, one.actions, 'the second target reuses the first one\'s actions')
  t.same([one.target, two.target, two.url], ['one', 'two', 'sftp://two/www'], 'each plan names its own target')
  t.same(kinds(two), {'a.html': 'update'})
  const edited = planning.plan(input('three', file(12, T0 + 60_000)))
  t.same(kinds(edited), {'a.html': 'keep'}, 'a customized slave is planned on its own answers')
  t.same(kinds(planning.plan(input('four', file(10)))), {'a.html': 'update'})
})

t.test('first publishes to empty slaves share one plan; a slave already holding files, or probed instead of listed, gets its own', async (t) => {
  const e = entries(entry('a.html', 'h1'), entry('b.html', 'h2'))
  const protect = () => false
  const planning = new SharedPlanning()
  const input = (target: string, slave: Map<string, SlaveFile | null>, listed = true) => ({target, url: `sftp://${target}/www`, entries: e, base: null, slave, listed, protect, force: false})
  const one = planning.plan(input('one', new Map()))
  const two = planning.plan(input('two', new Map()))
  t.equal(two.actions, one.actions, 'the second empty slave reuses the first one\'s actions')
  t.same([two.target, two.url], ['two', 'sftp://two/www'])
  t.same(kinds(two), {'a.html': 'add', 'b.html': 'add'})
  const holding = planning.plan(input('three', new Map([['a.html', file(10)]])))
  t.not(holding.actions, one.actions, 'a slave with files is planned on its own listing')
  t.equal(holding.actions.find((a) => a.path === 'a.html')?.kind, 'conflict', 'what it holds decides its plan')
  const probed = planning.plan(input('four', new Map(), false))
  t.not(probed.actions, one.actions, 'probing nothing is not the same answer as listing nothing')
})

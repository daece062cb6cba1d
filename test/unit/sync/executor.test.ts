// The executor's order on a real local target: pages travel while their assets do, but take
// their final names only after them; a publish stopped meanwhile lands no page and leaves no
// temporary file. The target is mirror's own LocalTarget with a slow asset, nothing faked below.

import {existsSync, mkdirSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import t from 'tap'

import {loadConfig} from '../../../src/config/load.js'
import type {TargetConfig} from '../../../src/config/schema.js'
import {executePlan, finalRows} from '../../../src/sync/executor.js'
import type {DeltaOp} from '../../../src/sync/delta.js'
import {emptyManifest, parseManifest, serializeManifest} from '../../../src/sync/manifest.js'
import {countActions, type Action, type TargetPlan} from '../../../src/sync/plan.js'
import {publish} from '../../../src/sync/publish.js'
import type {SourceEntry} from '../../../src/sync/scan.js'
import {LocalTarget} from '../../../src/targets/local-target.js'
import type {PutOptions, RemoteStat, StateBytes} from '../../../src/targets/target.js'
import {readTree, tempDir, writeTree} from '../../helpers/site.js'

const ASSET = 'img/photo.jpg'
const PAGE = 'index.html'

/** A local target whose asset waits (up to 5 s) for the page's temporary file before it goes. */
class SlowAssetTarget extends LocalTarget {
  pageTravelled = false
  pageLandedBeforeAsset = false
  onAssetLanding = () => {}

  override async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    if (path !== ASSET) return super.put(localPath, path, options)
    const root = (this as unknown as {root: string}).root
    for (let waited = 0; waited < 5000 && !this.pageTravelled; waited += 10) {
      this.pageTravelled = readdirSync(root).some((name) => name.startsWith('.mirror-tmp-'))
      if (!this.pageTravelled) await sleep(10)
    }
    this.onAssetLanding()
    await super.put(localPath, path, options)
    this.pageLandedBeforeAsset = existsSync(join(root, PAGE))
  }
}

async function setUp() {
  const dir = tempDir('mirror-executor-')
  const source = join(dir, 'public')
  const slave = join(dir, 'slave')
  await writeTree(source, {[PAGE]: `<img src="/${ASSET}">`, [ASSET]: 'jpeg bytes'})
  mkdirSync(slave)
  writeFileSync(join(dir, 'mirror.config.yaml'), `source: ./public\nstate: ./state\ntargets:\n  www: {url: "file://${slave}", state: "${join(dir, 'slave-state')}"}\n`)
  const config = await loadConfig({cwd: dir})
  const target = new SlowAssetTarget(config.targets[0])
  await target.connect()
  return {config, target, slave}
}

t.test('a page is written while its asset is on the way, and gets its final name only after the asset landed', async (t) => {
  const {config, target, slave} = await setUp()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.ok(target.pageTravelled, 'the page was on the slave under its temporary name before the asset landed')
  t.notOk(target.pageLandedBeforeAsset, 'the page was not under its final name when the asset landed')
  t.same(Object.keys(await readTree(slave)).sort(), [ASSET, PAGE])
})

t.test('a publish stopped while the assets are on the way lands no page and leaves no temporary file', async (t) => {
  const {config, target, slave} = await setUp()
  const stop = new AbortController()
  target.onAssetLanding = () => stop.abort()
  const result = await publish(config, {openTargets: new Map([['www', target]]), signal: stop.signal})
  const report = result.targets[0].report!
  t.equal(result.targets[0].error?.code, 'INTERRUPTED')
  t.same(report.failed, [], 'the page held back is not reported as failed: it was never sent')
  t.same(Object.keys(await readTree(slave)), [ASSET], 'the asset landed, the page did not')
  t.same(readdirSync(slave).filter((name) => name.startsWith('.mirror-tmp-')), [], 'no temporary file is left')
})

/** A local target whose asset waits until every page is staged under its temporary name, or none more was for a second. */
class PagesFirstTarget extends LocalTarget {
  stagedBeforeAsset = 0
  landedBeforeAsset = 0

  constructor(
    config: TargetConfig,
    private readonly pages: number,
  ) {
    super(config)
  }

  override async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    if (path !== ASSET) return super.put(localPath, path, options)
    const root = (this as unknown as {root: string}).root
    const staged = () => readdirSync(root).filter((name) => name.startsWith('.mirror-tmp-')).length
    // Until every page is staged, or none more was for a second.
    for (let seen = staged(), still = 0; seen < this.pages && still < 1000; still += 10) {
      await sleep(10)
      const now = staged()
      if (now !== seen) [seen, still] = [now, 0]
    }
    this.stagedBeforeAsset = staged()
    this.landedBeforeAsset = readdirSync(root).filter((name) => name.endsWith('.html')).length
    await super.put(localPath, path, options)
  }
}

/** A project with `files` in its source and one local target (an empty directory) taking `transfers` at once. */
async function localProject(files: Record<string, string>, transfers: number) {
  const dir = tempDir('mirror-executor-')
  const source = join(dir, 'public')
  const slave = join(dir, 'slave')
  await writeTree(source, files)
  mkdirSync(slave)
  writeFileSync(join(dir, 'mirror.config.yaml'), `source: ./public\nstate: ./state\ntargets:\n  www: {url: "file://${slave}", state: "${join(dir, 'slave-state')}", transfers: ${transfers}}\n`)
  return {source, slave, config: await loadConfig({cwd: dir})}
}

/** `count` pages that show the asset. */
const pagesOf = (count: number) => Object.fromEntries(Array.from({length: count}, (_, i) => [`page-${i}.html`, `<img src="/${ASSET}"> ${i}`]))

t.test('pages waiting for their assets hold no transfer: with two at a time, every page travels while a slow asset does', async (t) => {
  const pages = pagesOf(6)
  const {config, slave} = await localProject({...pages, [ASSET]: 'jpeg bytes'}, 2)
  const target = new PagesFirstTarget(config.targets[0], 6)
  await target.connect()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.equal(target.stagedBeforeAsset, 6, 'all 6 pages were on the slave under temporary names while the asset travelled')
  t.equal(target.landedBeforeAsset, 0, 'none had its final name before the asset')
  t.same(Object.keys(await readTree(slave)).sort(), [ASSET, ...Object.keys(pages)].sort())
})

t.test('no more than 1,024 pages wait for their assets at once, each with its temporary file on the slave', async (t) => {
  const {config, slave} = await localProject({...pagesOf(1100), [ASSET]: 'jpeg bytes'}, 8)
  const target = new PagesFirstTarget(config.targets[0], 1100)
  await target.connect()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.equal(target.stagedBeforeAsset, 1024, '1,024 pages staged while the asset travelled, the rest after it landed')
  t.equal(Object.keys(await readTree(slave)).length, 1101, 'all pages and the asset landed')
})

/** A local target whose files, once staged, wait until `count` are staged, or none more was for half a second, before they take their names. */
class HeldRenamesTarget extends LocalTarget {
  staged = 0
  mostStaged = 0
  private lastStaged = Date.now()

  constructor(
    config: TargetConfig,
    private readonly count: number,
  ) {
    super(config)
  }

  override async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    let staged!: () => void
    const wasStaged = new Promise<void>((resolve) => (staged = resolve))
    const onStaged = () => {
      options.onStaged?.()
      this.mostStaged = Math.max(this.mostStaged, ++this.staged)
      this.lastStaged = Date.now()
      staged()
    }
    await super.put(localPath, path, {...options, landAfter: wasStaged.then(() => this.held()), onStaged}).finally(() => this.staged--)
  }

  private async held(): Promise<void> {
    while (this.staged < this.count && Date.now() - this.lastStaged < 500) await sleep(10)
  }
}

t.test('no more than 1,024 assets are under way at once either, however slowly they take their names', async (t) => {
  const assets = Object.fromEntries(Array.from({length: 1100}, (_, i) => [`img/thumb-${i}.png`, `thumb ${i}`]))
  const {config, slave} = await localProject(assets, 8)
  const target = new HeldRenamesTarget(config.targets[0], 1100)
  await target.connect()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.ok(target.mostStaged > 8 && target.mostStaged <= 1024, `more than the 8 transfers and at most 1,024 staged at once (${target.mostStaged})`)
  t.equal(Object.keys(await readTree(slave)).length, 1100, 'all landed')
})

/** A local target whose first file, once staged, waits (up to 5 s) for another file to be under way before it takes its name. */
class SlowRenameTarget extends LocalTarget {
  started: string[] = []
  overlapped = false

  override async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    this.started.push(path)
    if (this.started.length > 1) return super.put(localPath, path, options)
    const onStaged = options.onStaged
    let staged!: () => void
    const wasStaged = new Promise<void>((resolve) => (staged = resolve))
    const put = super.put(localPath, path, {
      ...options,
      onStaged: () => {
        onStaged?.()
        staged()
      },
    })
    await wasStaged
    for (let waited = 0; waited < 5000 && this.started.length < 2; waited += 10) await sleep(10)
    this.overlapped = this.started.length > 1
    await put
  }
}

t.test('a file waiting to take its name holds no transfer: with one at a time, the next file is under way meanwhile', async (t) => {
  const {config, slave} = await localProject({'img/a.jpg': 'a'.repeat(2000), 'img/b.jpg': 'b'}, 1)
  const target = new SlowRenameTarget(config.targets[0])
  await target.connect()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.ok(target.overlapped, `the second file started while the first was staged (${target.started.join(', ')})`)
  t.same(await readTree(slave), {'img/a.jpg': 'a'.repeat(2000), 'img/b.jpg': 'b'})
})

/** A local target that counts the deletes under way at once. */
class CountingDeletesTarget extends LocalTarget {
  deleting = 0
  mostAtOnce = 0

  override async remove(path: string): Promise<void> {
    this.mostAtOnce = Math.max(this.mostAtOnce, ++this.deleting)
    try {
      await sleep(5)
      await super.remove(path)
    } finally {
      this.deleting--
    }
  }
}

t.test('deletes are not held to the number of transfers: 40 of them go out together, not two at a time', async (t) => {
  const gone = Array.from({length: 40}, (_, i) => `old/page-${i}.html`)
  const {config, source, slave} = await localProject({'index.html': 'home', ...Object.fromEntries(gone.map((path) => [path, path]))}, 2)
  t.equal((await publish(config)).targets[0].error, undefined)
  for (const path of gone) rmSync(join(source, path))
  const target = new CountingDeletesTarget(config.targets[0])
  await target.connect()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.equal(result.targets[0].report?.deleted, 40)
  t.ok(target.mostAtOnce > 2, `deletes under way at once: ${target.mostAtOnce}`)
  t.same(Object.keys(await readTree(slave)), ['index.html'], 'every deleted page is gone from the slave')
})

t.test('a big final manifest is written row by row, and holds the same files as one written whole', async (t) => {
  const dir = tempDir('mirror-executor-stream-')
  const source = join(dir, 'public')
  const files: Record<string, string> = {'b.css': 'new css', 'kept.txt': 'kept'}
  for (let i = 0; i < 300; i++) files[`p/${String(i).padStart(3, '0')}.html`] = `page ${i}`
  await writeTree(source, files)
  const entry = (path: string): SourceEntry => ({path, abs: join(source, path), size: Buffer.byteLength(files[path]), mtimeMs: 1_700_000_000_000, mode: 0o644, hash: `h-${path}`})
  const record = (hash: string) => ({hash, size: 1, mtimeMs: 1_600_000_000_000, mode: 0o644})
  const actions: Action[] = [
    {kind: 'update', path: 'b.css', source: entry('b.css'), baseHash: 'h-old-css'},
    {kind: 'delete', path: 'gone.html'},
    ...Object.keys(files)
      .filter((path) => path.startsWith('p/'))
      .map((path): Action => ({kind: 'add', path, source: entry(path)})),
  ]
  const plan: TargetPlan = {target: 'www', url: '', actions, unchanged: 1, protected: 0, bytes: 0, counts: countActions(actions), verified: false}

  const run = async (streamManifestFrom: number) => {
    const slave = join(dir, `slave-${streamManifestFrom}`)
    mkdirSync(slave)
    const config: TargetConfig = {name: 'www', url: `file://${slave}`, location: {kind: 'file', root: slave}, state: join(dir, `state-${streamManifestFrom}`), transfers: 4, hostKeys: 'strict', timeoutMs: 10_000, compress: false, bulk: true}
    const target = new StateWritesTarget(config)
    await target.connect()
    const base = emptyManifest('www')
    base.generation = 4
    base.files.set('b.css', record('h-old-css'))
    base.files.set('gone.html', record('h-gone'))
    base.files.set('kept.txt', record('h-kept'))
    let copy: Buffer | undefined
    const report = await executePlan(target, plan, {
      base,
      backupId: 'b',
      publisher: 'test',
      streamManifestFrom,
      onManifestWritten: async (data) => {
        copy = Buffer.isBuffer(data) ? data : Buffer.concat([...data.chunks()])
      },
    })
    t.equal(report.ok, true)
    const written = parseManifest((await target.readState('manifest.json'))!, 'www')
    t.ok(copy?.equals((await target.readState('manifest.json'))!), 'the master keeps a copy of exactly the bytes on the slave')
    return {written, streamed: target.streamed}
  }
  const whole = await run(Number.POSITIVE_INFINITY)
  const streamed = await run(1)
  t.equal(whole.streamed, false)
  t.equal(streamed.streamed, true, 'the final manifest was made on demand')
  t.equal(streamed.written.generation, 5)
  t.equal(streamed.written.complete, true)
  t.same([...streamed.written.files], [...whole.written.files], 'the same files, in the same order')
  t.same(streamed.written.files.get('kept.txt'), record('h-kept'), 'a file nothing happened to keeps its record')
  t.notOk(streamed.written.files.has('gone.html'), 'a deleted file leaves the manifest')
  t.equal(streamed.written.files.get('b.css')?.hash, 'h-b.css', 'an updated file has its new record')
  t.equal(streamed.written.files.size, 302)
})

/** Notes whether the final manifest came as bytes made on demand. */
class StateWritesTarget extends LocalTarget {
  streamed = false
  override async writeState(name: string, data: Buffer | StateBytes): Promise<RemoteStat> {
    if (name === 'manifest.json') this.streamed = !Buffer.isBuffer(data)
    return super.writeState(name, data)
  }
}

t.test('the final rows are the base with what landed recorded over it, in path order', async (t) => {
  const record = (hash: string) => ({hash, size: 1, mtimeMs: 1_600_000_000_000, mode: 0o644})
  const entry = (path: string): SourceEntry => ({path, abs: `/src/${path}`, size: 2, mtimeMs: 1_700_000_000_500, mode: 0o600, hash: `new-${path}`})
  // The base as a journal may leave it: not in path order.
  const base = new Map([['z.txt', record('z')], ['c.txt', record('c')], ['a.txt', record('a')], ['k.txt', record('k')]])
  const actions: Action[] = [
    {kind: 'add', path: 'b.txt', source: entry('b.txt')},
    {kind: 'delete', path: 'c.txt'},
    {kind: 'add', path: 'd.txt', source: entry('d.txt')},
    {kind: 'keep', path: 'k.txt', source: entry('k.txt')},
    {kind: 'update', path: 'z.txt', source: entry('z.txt')},
  ]
  // d.txt did not land (a failure): it stays out.
  const recorded = Uint8Array.from([1, 1, 0, 1, 1])
  const rows = finalRows(base, actions, recorded)
  const expected = [
    ['a.txt', record('a')],
    ['b.txt', {hash: 'new-b.txt', size: 2, mtimeMs: 1_700_000_000_000, mode: 0o600}],
    ['k.txt', record('k')],
    ['z.txt', {hash: 'new-z.txt', size: 2, mtimeMs: 1_700_000_000_000, mode: 0o600}],
  ]
  t.same([...rows()], expected)
  t.same([...rows()], expected, 'the same rows on every pass')
})

t.test('a big final manifest whose previous version is on the slave is patched there, not sent whole', async (t) => {
  const dir = tempDir('mirror-executor-patch-')
  const source = join(dir, 'public')
  await writeTree(source, {'p/0007.html': 'new page 7'})
  const slave = join(dir, 'slave')
  mkdirSync(slave)
  const config: TargetConfig = {name: 'www', url: `file://${slave}`, location: {kind: 'file', root: slave}, state: join(dir, 'state'), transfers: 4, hostKeys: 'strict', timeoutMs: 10_000, compress: false, bulk: true}
  const target = new PatchingTarget(config)
  await target.connect()
  const base = emptyManifest('www')
  base.generation = 9
  for (let i = 0; i < 800; i++) base.files.set(`p/${String(i).padStart(4, '0')}.html`, {hash: i.toString(16).padStart(64, '0'), size: 10, mtimeMs: 1_600_000_000_000, mode: 0o644})
  const baseBytes = serializeManifest(base)
  await target.writeState('manifest.json', baseBytes)
  const entry: SourceEntry = {path: 'p/0007.html', abs: join(source, 'p/0007.html'), size: 10, mtimeMs: 1_700_000_000_000, mode: 0o644, hash: 'f'.repeat(64)}
  const actions: Action[] = [{kind: 'update', path: 'p/0007.html', source: entry, baseHash: base.files.get('p/0007.html')!.hash}]
  const plan: TargetPlan = {target: 'www', url: '', actions, unchanged: 799, protected: 0, bytes: 10, counts: countActions(actions), verified: false}
  const report = await executePlan(target, plan, {base, baseBytes, backupId: 'b', publisher: 'test', streamManifestFrom: 1})
  t.equal(report.ok, true)
  t.ok(target.patchedWith !== undefined, 'the manifest was patched on the slave')
  t.ok(target.patchedWith! < 2048, `only the changed row and the head were sent (${target.patchedWith} bytes)`)
  const written = parseManifest((await target.readState('manifest.json'))!, 'www')
  t.equal(written.generation, 10)
  t.equal(written.files.size, 800)
  t.equal(written.files.get('p/0007.html')?.hash, 'f'.repeat(64))
  t.same(written.files.get('p/0008.html'), base.files.get('p/0008.html'))
})

/** A local target that can patch its state as an SFTP slave with copy-data does (a fake of mirror's own interface). */
class PatchingTarget extends StateWritesTarget {
  /** The new bytes a patch sent, once one was made. */
  patchedWith: number | undefined
  constructor(config: TargetConfig) {
    super(config)
    Object.assign(this.capabilities, {copyData: true})
  }
  async patchState(name: string, baseSize: number, ops: readonly DeltaOp[], data: Buffer): Promise<RemoteStat> {
    const old = (await this.readState(name))!
    if (old.length !== baseSize) return this.writeState(name, data)
    this.patchedWith = ops.reduce((sum, op) => sum + (op.kind === 'data' ? op.length : 0), 0)
    return this.writeState(name, Buffer.concat(ops.map((op) => (op.kind === 'copy' ? old.subarray(op.from, op.from + op.length) : data.subarray(op.offset, op.offset + op.length)))))
  }
}

t.test('after deletes, exactly the directories left empty go, deepest first; the slave\'s own files keep theirs', async (t) => {
  const dir = tempDir('mirror-executor-')
  const source = join(dir, 'public')
  const slave = join(dir, 'slave')
  const files: Record<string, string> = {'index.html': 'home', 'a/keep.html': 'k', 'a/b/c/gone.html': 'g', 'a/b/c/gone2.html': 'g', 'a/b/d/kept.html': 'k', 'x/y/gone.html': 'g', 'x/y/z/gone.html': 'g', 'm/n/gone.html': 'g', 'm/own/.keep': 'k'}
  for (let i = 0; i < 50; i++) files[`a/b/d/page-${i}.html`] = `p${i}`
  await writeTree(source, files)
  mkdirSync(slave)
  writeFileSync(join(dir, 'mirror.config.yaml'), `source: ./public\nstate: ./state\ntargets:\n  www: {url: "file://${slave}", state: "${join(dir, 'slave-state')}"}\n`)
  const config = await loadConfig({cwd: dir})
  t.equal((await publish(config)).targets[0].error, undefined)
  // Deleted on the master: whole directories, and files beside others that stay.
  for (const path of ['a/b/c/gone.html', 'a/b/c/gone2.html', 'x/y/gone.html', 'x/y/z/gone.html', 'm/n/gone.html', 'm/own/.keep']) rmSync(join(source, path))
  writeFileSync(join(slave, 'm/own/.keep'), 'the slave\'s own now')
  const result = await publish(config)
  t.equal(result.targets[0].error, undefined)
  t.notOk(existsSync(join(slave, 'a/b/c')), 'a/b/c emptied: gone')
  t.ok(existsSync(join(slave, 'a/b/d/kept.html')) && existsSync(join(slave, 'a/keep.html')), 'its parents hold other files: kept')
  t.notOk(existsSync(join(slave, 'x')), 'x/y/z, x/y and x emptied: all gone')
  t.notOk(existsSync(join(slave, 'm/n')), 'm/n emptied: gone')
  t.ok(existsSync(join(slave, 'm/own')), 'a directory holding a file the slave changed stays')
})

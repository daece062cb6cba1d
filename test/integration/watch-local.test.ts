// mirror watch against file:// slaves, with the real chokidar and real files: edits, renames,
// deletes and bursts reach the slaves; a slave whose root disappears is caught up when it comes
// back; a stopped watch resumes; stopping never leaves a temporary or half-written file.

import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {loadConfig} from '../../src/config/load.js'
import type {WatchEvent} from '../../src/watch/events.js'
import {startWatch, type WatchOptions, type WatchSession} from '../../src/watch/run-watch.js'
import {readTree, sampleSite, tempDir, writeTree} from '../helpers/site.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check: () => Promise<boolean> | boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    // The slaves change under our feet while we look: a failed look is a "not yet".
    if (await Promise.resolve().then(check).catch(() => false)) return true
    await sleep(20)
  }
  return Promise.resolve().then(check).catch(() => false)
}

async function project() {
  const dir = tempDir('mirror-watch-')
  await writeTree(join(dir, 'public'), sampleSite)
  for (const s of ['img', 'www1', 'www2']) await fs.mkdir(join(dir, 'slaves', s), {recursive: true})
  await fs.writeFile(
    join(dir, 'mirror.config.yaml'),
    `source: ./public
targets:
  img: file://${dir}/slaves/img
  www1: file://${dir}/slaves/www1
  www2: file://${dir}/slaves/www2
segments:
  - name: images
    match: ["**/*.{png,jpg}"]
    targets: [img]
  - name: pages
    match: ["**"]
    targets: [www1, www2]
exclude: [".git/**", "**/*.swp"]
watch:
  debounce: 60
`,
  )
  const src = (p: string) => join(dir, 'public', p)
  const slave = (name: string) => join(dir, 'slaves', name)
  return {dir, src, slave, config: () => loadConfig({config: join(dir, 'mirror.config.yaml')})}
}

type Project = Awaited<ReturnType<typeof project>>

async function watch(t: Test, p: Project, options: Partial<WatchOptions> = {}) {
  const events: WatchEvent[] = []
  const session: WatchSession = await startWatch(await p.config(), {retry: {minMs: 100, maxMs: 300}, reconcileMs: 0, onEvent: (e) => events.push(e), ...options})
  t.teardown(() => session.stop())
  await session.ready
  await session.whenIdle()
  const batches = () => events.filter((e): e is Extract<WatchEvent, {event: 'batch'}> => e.event === 'batch')
  return {session, events, batches}
}

/** The pages slave holds exactly the source's pages (images go to img). */
async function pagesMatch(p: Project, name = 'www1'): Promise<boolean> {
  const source = await readTree(join(p.dir, 'public'))
  const pages = Object.fromEntries(Object.entries(source).filter(([k]) => !/\.(png|jpg)$/.test(k)))
  return JSON.stringify(await readTree(p.slave(name))) === JSON.stringify(pages)
}

t.test('edits, new files, renames and deletes reach the slaves, each to its own targets', async (t) => {
  const p = await project()
  const w = await watch(t, p)
  t.ok(await pagesMatch(p), 'the initial publish sent everything')
  t.same(Object.keys(await readTree(p.slave('img'))).sort(), ['img/logo.png', 'img/photo.jpg'])

  await fs.writeFile(p.src('index.html'), '<html>edited</html>')
  t.ok(await until(async () => (await fs.readFile(join(p.slave('www1'), 'index.html'), 'utf8')) === '<html>edited</html>'), 'an edit is published')

  await fs.mkdir(p.src('blog'))
  await fs.writeFile(p.src('blog/post.html'), 'post')
  t.ok(await until(() => existsSync(join(p.slave('www2'), 'blog/post.html'))), 'a new file in a new directory')

  await fs.rename(p.src('blog'), p.src('journal'))
  t.ok(await until(async () => (await pagesMatch(p, 'www1')) && (await pagesMatch(p, 'www2'))), 'a renamed directory moves on the slaves')
  t.ok(await until(() => !existsSync(join(p.slave('www1'), 'blog'))), 'the old directory is gone')

  await fs.rm(p.src('news'), {recursive: true})
  await fs.rm(p.src('img/photo.jpg'))
  t.ok(await until(async () => (await pagesMatch(p)) && !existsSync(join(p.slave('img'), 'img/photo.jpg'))), 'deletes propagate to the right slaves')

  await fs.mkdir(p.src('.git'))
  await fs.writeFile(p.src('.git/HEAD'), 'ref')
  await fs.writeFile(p.src('about.html.swp'), 'vim')
  await sleep(300)
  t.notOk(existsSync(join(p.slave('www1'), '.git')), 'excluded paths are not published')
  t.notOk(existsSync(join(p.slave('www1'), 'about.html.swp')))
  t.notOk(w.events.some((e) => e.event === 'warning'), 'no warnings')
})

t.test('a burst (a checkout rewriting 300 files) is one publish', async (t) => {
  const p = await project()
  // Twice the default quiet time: on a loaded machine the files of a burst come further apart.
  const w = await watch(t, p, {debounceMs: 300})
  const before = w.batches().length
  await Promise.all(Array.from({length: 300}, (_, i) => fs.mkdir(p.src(`docs/${i % 10}`), {recursive: true}).then(() => fs.writeFile(p.src(`docs/${i % 10}/page${i}.html`), `page ${i}`))))
  const arrived = await until(async () => Object.keys(await readTree(join(p.slave('www2'), 'docs'))).length === 300, 15_000)
  t.ok(arrived, 'all 300 pages arrived')
  if (!arrived) t.comment(JSON.stringify(w.events.slice(-5)))
  await w.session.whenIdle()
  const published = w.batches().slice(before).filter((b) => b.changed > 0)
  t.equal(published.length, 1, 'one batch')
  t.equal(published[0].changed, 300)
  t.same(published[0].targets.map((x) => x.target), ['www1', 'www2'], 'the image host was not involved')
})

t.test("an editor's save-by-rename publishes the new content, never its temporary file", async (t) => {
  const p = await project()
  await watch(t, p)
  await fs.writeFile(p.src('.about.html.tmp-123'), '<html>saved</html>')
  await fs.rename(p.src('.about.html.tmp-123'), p.src('about.html'))
  t.ok(await until(async () => (await fs.readFile(join(p.slave('www1'), 'about.html'), 'utf8')) === '<html>saved</html>'))
  await sleep(200)
  t.notOk(existsSync(join(p.slave('www1'), '.about.html.tmp-123')))
})

t.test('a file being written slowly is never published half-written', async (t) => {
  const p = await project()
  // A settle time (= debounce) well above the writer's pauses, even on a loaded machine.
  await watch(t, p, {debounceMs: 300})
  const pieces = 150
  const size = pieces * 4096
  const target = join(p.slave('www1'), 'big.html')
  // Another process writes for ~3 s in small pieces: longer than the longest wait for a quiet
  // moment (so a batch is cut while it is written), with pauses much shorter than the settle time.
  const writer = spawn(process.execPath, ['-e', `
    const fs = require('node:fs')
    const fd = fs.openSync(process.argv[1], 'w')
    let i = 0
    const timer = setInterval(() => {
      fs.writeSync(fd, Buffer.alloc(4096, 120))
      if (++i === ${pieces}) { clearInterval(timer); fs.closeSync(fd) }
    }, 20)`, p.src('big.html')])
  const done = new Promise((resolve) => writer.on('close', resolve))
  const started = Date.now()
  const seen = new Set<number>()
  let writing = true
  void done.then(() => (writing = false))
  while (writing) {
    const s = await fs.stat(target).catch(() => null)
    if (s) seen.add(s.size)
    await sleep(10)
  }
  t.ok(Date.now() - started > 2400, 'written for longer than a batch may wait')
  t.ok(await until(async () => (await fs.stat(target).catch(() => null))?.size === size, 10_000), 'published once complete')
  t.same([...seen].filter((s) => s !== size), [], 'no partial version ever appeared on the slave')
})

t.test('a slave whose root disappears is caught up when it comes back; the others go on', async (t) => {
  const p = await project()
  const w = await watch(t, p)
  await fs.rm(p.slave('www2'), {recursive: true})
  await fs.writeFile(p.src('index.html'), 'while www2 was away')
  t.ok(await until(async () => (await fs.readFile(join(p.slave('www1'), 'index.html'), 'utf8')) === 'while www2 was away'), 'www1 is not held back')
  t.ok(await until(() => w.batches().some((b) => b.targets.some((x) => x.target === 'www2' && x.error?.code === 'ROOT_MISSING'))), 'www2 reported as missing its root')
  const failed = w.batches().flatMap((b) => b.targets).find((x) => x.target === 'www2' && !x.ok)!
  t.ok(failed.pending >= 1, 'its change is kept')
  t.type(failed.retryInMs, 'number')

  await fs.mkdir(p.slave('www2'))
  t.ok(await until(() => pagesMatch(p, 'www2'), 5000), 'caught up in full: the changed page and everything the empty root lost')
  t.ok(await until(() => w.batches().some((b) => b.targets.some((x) => x.target === 'www2' && x.recovered))), 'reported as caught up')
})

t.test('a watch stopped while a slave is down resumes its pending changes at the next start', async (t) => {
  const p = await project()
  const first = await watch(t, p)
  await fs.rm(p.slave('www2'), {recursive: true})
  await fs.writeFile(p.src('about.html'), 'changed while down')
  await until(() => first.batches().some((b) => b.targets.some((x) => x.target === 'www2' && !x.ok)))
  await first.session.stop()
  t.match(first.events.at(-1), {event: 'stopped', pending: {www2: 1}})
  const saved = JSON.parse(await fs.readFile(join(p.dir, '.mirror/watch/pending.json'), 'utf8'))
  t.same(saved.targets.www2.paths, ['about.html'], 'kept on the master')

  await fs.mkdir(p.slave('www2'))
  const second = await watch(t, p)
  t.match(second.events.find((e) => e.event === 'watching'), {pending: {www2: 1}}, 'the new watch knows what is pending')
  t.ok(await until(() => pagesMatch(p, 'www2')), 'and publishes it')
  await second.session.stop()
  t.same(JSON.parse(await fs.readFile(join(p.dir, '.mirror/watch/pending.json'), 'utf8')).targets, {}, 'nothing pending anymore')
})

t.test('stopping in the middle of a big batch leaves no temporary or half-written file, and no lock', async (t) => {
  const p = await project()
  const w = await watch(t, p)
  const big = Buffer.alloc(512 * 1024, 'm')
  for (let i = 0; i < 3; i++) await fs.mkdir(p.src(`media${i}`))
  for (let i = 0; i < 60; i++) await fs.writeFile(p.src(`media${i % 3}/file${i}.html`), big)
  await until(() => w.events.some((e) => e.event === 'batch' && e.kind === 'changes') || existsSync(join(p.slave('www1'), 'media0')), 3000)
  await w.session.stop()
  for (const name of ['www1', 'www2']) {
    const tree = await readTree(p.slave(name))
    const temps = Object.keys(tree).filter((k) => k.split('/').pop()!.startsWith('.mirror-tmp-'))
    t.same(temps, [], `${name}: no temporary file`)
    const partial = Object.entries(tree).filter(([k, v]) => k.startsWith('media') && v.length !== big.length)
    t.same(partial.map(([k]) => k), [], `${name}: every file is complete`)
    t.notOk(existsSync(join(p.dir, 'slaves/.mirror-state', name, 'lock')), `${name}: lock released`)
  }
  t.notOk(existsSync(join(p.dir, '.mirror/watch.lock')), 'the watch lock is released')
})

t.test('the periodic reconcile repairs a file deleted on a slave, and keeps a slave\'s own edit', async (t) => {
  const p = await project()
  const w = await watch(t, p, {reconcileMs: 400})
  await fs.rm(join(p.slave('www1'), 'about.html'))
  await fs.writeFile(join(p.slave('www2'), 'index.html'), 'edited on www2')
  t.ok(await until(() => existsSync(join(p.slave('www1'), 'about.html'))), 'the deleted file is back')
  t.equal(await fs.readFile(join(p.slave('www1'), 'about.html'), 'utf8'), sampleSite['about.html'])
  t.ok(await until(() => w.batches().some((b) => b.kind === 'reconcile' && b.targets.some((x) => x.target === 'www2' && x.kept === 1))), 'the edit on www2 is reported as kept')
  t.equal(await fs.readFile(join(p.slave('www2'), 'index.html'), 'utf8'), 'edited on www2', 'and left alone')
})

t.test('poke (SIGHUP without --render) reconciles at once', async (t) => {
  const p = await project()
  const w = await watch(t, p)
  await fs.rm(join(p.slave('www2'), 'css/site.css'))
  w.session.poke('SIGHUP')
  t.ok(await until(() => existsSync(join(p.slave('www2'), 'css/site.css'))), 'repaired')
  t.ok(await until(() => w.batches().some((b) => b.kind === 'reconcile')), 'reported as a reconcile')
})

t.test('one watch per config', async (t) => {
  const p = await project()
  await watch(t, p)
  await t.rejects(startWatch(await p.config(), {onEvent: () => {}}), {code: 'LOCKED', message: /another mirror watch \(pid \d+/})
})

t.test('a source directory replaced by a rename (as a render swaps it in) is watched anew and published', async (t) => {
  const p = await project()
  const w = await watch(t, p, {rootCheckMs: 100})
  const staged = join(p.dir, '.public.render-1')
  await writeTree(staged, {...sampleSite, 'index.html': '<html>rendered</html>', 'new/page.html': 'new'})
  await fs.rename(join(p.dir, 'public'), join(p.dir, '.public.previous-1'))
  await fs.rename(staged, join(p.dir, 'public'))
  t.ok(await until(() => pagesMatch(p)), 'the new tree is published')
  await w.session.whenIdle()
  await fs.writeFile(p.src('new/page.html'), 'edited after the swap')
  t.ok(await until(async () => (await fs.readFile(join(p.slave('www1'), 'new/page.html'), 'utf8')) === 'edited after the swap'), 'and edits in it are seen')
})

// The watch loop with a fake publish: what each target is sent and when, a failing target
// never holding the others back, its changes kept (also across a restart) and caught up.

import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import t from 'tap'

import {MirrorError} from '../../../src/errors.js'
import type {BatchKind, WatchEvent} from '../../../src/watch/events.js'
import {WatchLoop, type WatchLoopOptions} from '../../../src/watch/loop.js'
import {tempDir} from '../../helpers/site.js'
import {FakePublisher, sleep, until} from './fakes.js'

const routes: Record<string, string[]> = {png: ['img'], html: ['www1', 'www2'], css: ['www1', 'www2']}

function setup(overrides: Partial<WatchLoopOptions> = {}, fake = new FakePublisher(), dir = tempDir('mirror-loop-')) {
  const events: WatchEvent[] = []
  const loop = new WatchLoop({
    targets: ['img', 'www1', 'www2'],
    route: (path) => routes[path.split('.').pop() ?? ''],
    publish: fake.publish,
    openTarget: fake.openTarget,
    pendingFile: join(dir, 'pending.json'),
    retry: {minMs: 40, maxMs: 400},
    reconcileMs: 0,
    onEvent: (e) => events.push(e),
    ...overrides,
  })
  const batches = (kind?: BatchKind) => events.filter((e): e is Extract<WatchEvent, {event: 'batch'}> => e.event === 'batch' && (!kind || e.kind === kind))
  return {loop, fake, events, batches, dir}
}

async function started(s: ReturnType<typeof setup>) {
  await s.loop.load()
  s.loop.start()
  await s.loop.whenIdle()
  s.fake.calls = []
}

t.test('start publishes everything once, to all targets in one publish', async (t) => {
  const s = setup()
  await s.loop.load()
  s.loop.start()
  await s.loop.whenIdle()
  t.equal(s.fake.calls.length, 1)
  t.same(s.fake.calls[0].targets, ['img', 'www1', 'www2'])
  t.equal(s.fake.calls[0].only, undefined, 'a full publish, not a list of paths')
  t.same(s.batches().map((b) => b.kind), ['initial'])
  await s.loop.stop()
})

t.test('a batch goes only to the targets its paths belong to, as `only` paths', async (t) => {
  const s = setup()
  await started(s)
  s.loop.addPaths(['index.html', 'about.html'])
  await s.loop.whenIdle()
  t.equal(s.fake.calls.length, 1, 'one publish for the batch')
  t.same(s.fake.calls[0].targets, ['www1', 'www2'], 'the image host is not touched by a page change')
  t.same(s.fake.calls[0].only, ['about.html', 'index.html'])
  const batch = s.batches('changes')[0]
  t.same(batch.paths, ['about.html', 'index.html'])
  t.ok(batch.ok)
  await s.loop.stop()
})

t.test('connections are opened once and reused between batches', async (t) => {
  const s = setup()
  await started(s)
  const first = s.fake.targets.get('www1')
  s.loop.addPaths(['a.html'])
  await s.loop.whenIdle()
  s.loop.addPaths(['b.html'])
  await s.loop.whenIdle()
  t.equal(s.fake.calls.length, 2)
  for (const call of s.fake.calls) t.equal(call.open.get('www1'), first, 'the same open target every batch')
  t.equal(first!.connects, 1)
  await s.loop.stop()
  t.equal(first!.closes, 1, 'closed at stop')
})

t.test('a failing target does not hold the others back; its changes are kept and caught up', async (t) => {
  const s = setup()
  await started(s)
  s.fake.failures.set('www2', new MirrorError('UNREACHABLE', 'connect ECONNREFUSED', {target: 'www2'}))
  // The open connection fails first: one immediate reconnect, then backoff.
  s.loop.addPaths(['a.html'])
  await until(() => s.batches().filter((b) => !b.ok).length >= 2)
  s.loop.addPaths(['b.html'])
  await until(() => s.fake.got('www1').includes('b.html'))
  t.ok(s.fake.got('www1').includes('a.html') && s.fake.got('www1').includes('b.html'), 'www1 got both changes while www2 was down')
  t.same(s.loop.pendingCounts().www2, 2, 'www2 keeps both changes')
  const failed = s.batches().filter((b) => b.targets.some((x) => x.target === 'www2' && !x.ok))
  t.ok(failed.every((b) => b.targets.find((x) => x.target === 'www2')!.pending > 0), 'every failure says how many changes are kept')
  const delays = failed.map((b) => b.targets.find((x) => x.target === 'www2')!.retryInMs)
  t.equal(delays[0], 0, 'a connection that was open from before is retried at once')
  t.ok(delays.slice(1).every((d, i, all) => i === 0 || d! >= all[i - 1]!), `then backoff grows: ${delays.join(', ')}`)
  const onDisk = () => JSON.parse(readFileSync(join(s.dir, 'pending.json'), 'utf8')).targets.www2?.paths.sort().join()
  t.ok(await until(() => onDisk() === 'a.html,b.html'), 'kept on disk too')

  s.fake.failures.delete('www2')
  await until(() => s.loop.pendingCounts().www2 === 0, 3000)
  t.same(s.fake.got('www2').filter((p) => p !== 'index.html'), ['a.html', 'b.html'], 'caught up when it came back')
  const retry = s.batches('retry').at(-1)!
  t.same(retry.targets.map((x) => x.target), ['www2'], 'the catch-up publishes the lagging target alone')
  t.ok(retry.targets[0].recovered)
  await s.loop.stop()
})

t.test('retry delays: retryable failures double up to the maximum, others wait the maximum', async (t) => {
  const s = setup({retry: {minMs: 30, maxMs: 120}})
  s.fake.failures.set('img', new MirrorError('TIMEOUT', 'timed out', {target: 'img'}))
  s.fake.failures.set('www1', new MirrorError('ROOT_MISSING', 'root /srv/www does not exist', {target: 'www1'}))
  await s.loop.load()
  s.loop.start()
  await until(() => s.batches().filter((b) => b.targets.some((x) => x.target === 'img')).length >= 4, 3000)
  const delays = (name: string) => s.batches().flatMap((b) => b.targets.filter((x) => x.target === name).map((x) => x.retryInMs))
  t.same(delays('img').slice(0, 4), [30, 60, 120, 120])
  t.equal(delays('www1')[0], 120, 'a missing root is not hammered')
  t.ok(s.fake.got('www2').length > 0, 'www2 was published meanwhile')
  await s.loop.stop()
})

t.test('pending changes survive a restart and are published first', async (t) => {
  const dir = tempDir('mirror-loop-')
  const first = setup({}, new FakePublisher(), dir)
  await started(first)
  first.fake.failures.set('www1', new MirrorError('UNREACHABLE', 'down', {target: 'www1'}))
  first.loop.addPaths(['news.html'])
  await until(() => first.batches().filter((b) => !b.ok).length >= 2)
  await first.loop.stop(['late.css'])
  const stopped = first.events.find((e) => e.event === 'stopped')
  t.same(stopped, {event: 'stopped', pending: {img: 0, www1: 2, www2: 1}}, 'the change not yet batched is kept too')

  const second = setup({}, new FakePublisher(), dir)
  await second.loop.load()
  t.same(second.loop.pendingCounts(), {img: 0, www1: 2, www2: 1})
  second.loop.start()
  await second.loop.whenIdle()
  t.same(second.loop.pendingCounts(), {img: 0, www1: 0, www2: 0}, 'the initial publish covered them')
  await second.loop.stop()
})

t.test('changes arriving during a publish go out in the next batch, none lost', async (t) => {
  const s = setup()
  await started(s)
  s.fake.delayMs = 100
  s.loop.addPaths(['a.html'])
  await sleep(20)
  s.loop.addPaths(['b.html'])
  s.loop.addPaths(['c.html'])
  await until(() => s.fake.calls.length >= 2)
  await s.loop.whenIdle()
  t.same(s.fake.calls.map((c) => c.only), [['a.html'], ['b.html', 'c.html']], 'what came during the publish is one more batch')
  await s.loop.stop()
})

t.test('a lock held by a live publisher is waited for, never broken', async (t) => {
  const s = setup()
  await started(s)
  s.fake.failures.set('www1', new MirrorError('LOCKED', 'locked by ann@otherhost', {target: 'www1'}))
  s.loop.addPaths(['a.html'])
  await until(() => s.batches().filter((b) => !b.ok).length >= 2)
  t.notOk(s.fake.calls.some((c) => c.breakLock), 'no breakLock')
  t.equal(s.loop.pendingCounts().www1, 1)
  await s.loop.stop()
})

t.test('--break-lock applies to the first publish of each target only', async (t) => {
  const s = setup({breakLock: true})
  await s.loop.load()
  s.loop.start()
  await s.loop.whenIdle()
  s.loop.addPaths(['a.html'])
  await s.loop.whenIdle()
  t.same(s.fake.calls.map((c) => c.breakLock), [true, false])
  await s.loop.stop()
})

t.test('stop aborts the publish in flight, waits for it and keeps what it did not finish', async (t) => {
  const s = setup()
  await started(s)
  s.fake.hang.add('www1')
  s.loop.addPaths(['a.html'])
  await until(() => s.fake.calls.length === 1)
  const before = Date.now()
  await s.loop.stop()
  t.ok(Date.now() - before < 1000, 'stop does not wait for the stalled publish to time out')
  t.ok(s.fake.calls[0].aborted(), 'the publish was told to stop')
  const stopped = s.events.at(-1)
  t.same(stopped, {event: 'stopped', pending: {img: 0, www1: 1, www2: 1}})
  t.notOk(s.batches().some((b) => b.targets.some((x) => x.retryInMs !== undefined)), 'no retry scheduled after stop')
})

t.test('reconcile: a periodic full publish with verify', async (t) => {
  const s = setup({reconcileMs: 80})
  await started(s)
  await until(() => s.fake.calls.length >= 1, 2000)
  await s.loop.whenIdle()
  const call = s.fake.calls[0]
  t.ok(call.verify, 'compares every file on the slaves')
  t.equal(call.only, undefined)
  t.same(call.targets, ['img', 'www1', 'www2'])
  t.equal(s.batches('reconcile').length >= 1, true)
  await s.loop.stop()
})

t.test('a path no segment takes is reported once and not published', async (t) => {
  const s = setup()
  await started(s)
  s.loop.addPaths(['notes.txt'])
  s.loop.addPaths(['notes.txt'])
  await s.loop.whenIdle()
  t.equal(s.fake.calls.length, 0)
  const warnings = s.events.filter((e) => e.event === 'warning')
  t.equal(warnings.length, 1)
  t.match(warnings[0], {path: 'notes.txt', message: /matches no segment/})
  await s.loop.stop()
})

t.test('a slave slow to connect does not delay the others: it goes on in a run of its own', async (t) => {
  const fake = new FakePublisher()
  fake.connectDelay.set('www2', 600)
  const s = setup({connectGraceMs: 100}, fake)
  const began = Date.now()
  await s.loop.load()
  s.loop.start()
  await until(() => s.fake.got('www1').length > 0)
  t.ok(Date.now() - began < 500, 'www1 was published without waiting for www2')
  await s.loop.whenIdle()
  t.ok(s.fake.got('www2').length > 0, 'www2 was published once connected')
  t.same(s.fake.calls.map((c) => c.targets), [['img', 'www1'], ['www2']])
  await s.loop.stop()
})

t.test('stop does not wait for a connection that does not answer', async (t) => {
  const fake = new FakePublisher()
  fake.connectDelay.set('www2', 5000)
  const s = setup({connectGraceMs: 50}, fake)
  await s.loop.load()
  s.loop.start()
  await until(() => s.fake.got('www1').length > 0)
  const before = Date.now()
  await s.loop.stop()
  t.ok(Date.now() - before < 1000, 'stopped at once')
  t.match(s.events.at(-1), {event: 'stopped'})
})

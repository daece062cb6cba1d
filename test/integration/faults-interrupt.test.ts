// Faults that cut a publish short over SSH: the slave's sshd killed mid-publish, and the master
// itself killed (SIGKILL). Either way nothing is half-written under a final name, the manifest on
// the slave tells the truth, and the next publish finishes the job without re-sending what landed.

import {existsSync} from 'node:fs'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {assertManifestTruthful, assertWhole, countFiles, exited, faultProject, guardOutside, leftovers, manyFiles, settledCount, tempNames, until} from '../helpers/faults.js'

// Enough files that, one at a time, the publish is still going when its manifest is first written (2 s)
// and when the slave's sshd is stopped: at 3,000 a faster publish sometimes finished first.
const TOTAL = 6000

t.test('sshd killed mid-publish: the other target completes, nothing half-written, the next publish finishes', async (t) => {
  const files = manyFiles(TOTAL)
  // b gets only the first directory: enough to show that it completes, without doubling the work.
  const segments = `segments:\n  - {name: first, match: ["d000/**"], targets: [a, b]}\n  - {name: rest, match: ["**"], targets: [a]}\n`
  const p = await faultProject(t, {slaves: ['a', 'b'], files, targetOptions: {a: 'transfers: 1, bulk: false'}, extraConfig: segments})
  const a = p.slaves.a
  const guard = await guardOutside(p)
  const child = p.spawn(['publish', '--json'])
  const done = exited(child)
  // Killed once the publish has recorded progress on the slave (the manifest is flushed as files land).
  await until('a manifest written mid-publish and files landed', async () => existsSync(join(a.state, 'manifest.json')) && (await countFiles(a.root)) > 100)
  await a.sshd.stop()
  const r = await done
  t.equal(r.code, 3, 'exit 3: partial')
  const out = JSON.parse(r.stdout)
  const failed = p.outcome(out, 'a')
  t.equal(failed.error?.code, 'CONNECTION_LOST', 'the lost connection is named as such')
  t.equal(failed.error?.target, 'a')
  t.equal(p.outcome(out, 'b').report?.sent, 100, 'the other target got everything')

  const landed = await settledCount(a.root)
  t.ok(landed > 0 && landed < TOTAL, `partly published (${landed} of ${TOTAL})`)
  await assertWhole(t, a.root, (path) => (files[path] === undefined ? undefined : [files[path]]))
  const manifest = await assertManifestTruthful(t, a)
  t.equal(manifest?.complete, false, 'the manifest says the publish did not finish')

  await p.restart('a')
  // The resume may go fast: only the interrupted run had to be slow enough to cut short.
  p.options.targetOptions = {}
  await p.writeConfig()
  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  const report = p.outcome(again.out, 'a').report!
  t.equal(report.sent, TOTAL - landed, 'only what had not landed is sent')
  t.equal(p.outcome(again.out, 'b').report?.sent, 0, 'the complete target is left alone')
  t.equal(await countFiles(a.root), TOTAL, 'every file there')
  await assertWhole(t, a.root, (path) => (files[path] === undefined ? undefined : [files[path]]), 'every file has its content')
  t.same(await leftovers(a.root), [], 'temporary files left by the kill are removed')
  t.equal((await assertManifestTruthful(t, a))?.files, TOTAL)
  await guard.check(t)
})

t.test('master SIGKILLed mid-publish over SSH: the next publish resumes, re-sends nothing, cleans up', async (t) => {
  const files = manyFiles(TOTAL)
  const p = await faultProject(t, {slaves: ['a'], files, targetOptions: {a: 'transfers: 1, bulk: false'}})
  const a = p.slaves.a
  const guard = await guardOutside(p)
  const child = p.spawn(['publish'])
  const done = exited(child)
  await until('a manifest written mid-publish and files landed', async () => existsSync(join(a.state, 'manifest.json')) && (await countFiles(a.root)) > 100)
  child.kill('SIGKILL')
  const r = await done
  t.equal(r.signal, 'SIGKILL', 'the publisher was killed, not finished')
  // sftp-server may still carry out requests it had read before the connection dropped.
  const landed = await settledCount(a.root)
  t.ok(landed > 0 && landed < TOTAL, `partly published (${landed} of ${TOTAL})`)
  await assertWhole(t, a.root, (path) => (files[path] === undefined ? undefined : [files[path]]))
  t.equal((await assertManifestTruthful(t, a))?.complete, false)
  t.ok(existsSync(join(a.state, 'lock')), 'the killed publisher left its lock')

  // `mirror status` over SSH tells what happened: who holds the lock, what is left over.
  const status = (await p.json(['status'])).out.targets[0] as unknown as {lockedBy?: {pid: number}; leftovers: string[]; customized: string[]; missing: string[]}
  t.equal(status.lockedBy?.pid, child.pid, 'status names the killed publisher as the lock holder')
  t.same(status.leftovers, await leftovers(a.root), 'status lists the temporary files left behind')
  t.same([status.customized, status.missing], [[], []], 'and no drift: the manifest lists only what landed')

  // The lock of a dead publisher on this host is taken over; the listing adopts what landed.
  p.options.targetOptions = {}
  await p.writeConfig()
  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  const outcome = p.outcome(again.out, 'a')
  t.equal(outcome.report?.sent, TOTAL - landed, 'nothing that landed is sent again')
  t.equal((outcome.plan?.unchanged ?? 0) + (outcome.report?.adopted ?? 0), landed, 'what landed is recognised')
  t.equal(await countFiles(a.root), TOTAL)
  await assertWhole(t, a.root, (path) => (files[path] === undefined ? undefined : [files[path]]), 'every file has its content')
  t.same(await leftovers(a.root), [], 'no temporary file left behind')
  t.notOk(existsSync(join(a.state, 'lock')), 'lock released')
  await guard.check(t)
})

/**
 * Publishes `files` to one slave, SIGKILLs the master once `underWay` says so (polling the
 * root's temporary names), and checks that nothing is half-written under a final name, and that
 * the next publish lands every file, leaves no temporary name and writes a complete manifest.
 */
async function killedInBulk(t: Test, files: Record<string, string>, what: string, underWay: (bulkTemps: string[]) => boolean): Promise<void> {
  const p = await faultProject(t, {slaves: ['a'], files})
  const a = p.slaves.a
  const guard = await guardOutside(p)
  const child = p.spawn(['publish'])
  const done = exited(child)
  await until(what, async () => underWay((await tempNames(a.root)).filter((p) => p.includes('.mirror-tmp-bulk-') && p.includes('/'))))
  child.kill('SIGKILL')
  t.equal((await done).signal, 'SIGKILL')
  // The slave's tar and sftp-server may still carry out what they had read before the kill.
  await settledCount(a.root)
  const content = (path: string) => (files[path] === undefined ? undefined : [files[path]])
  await assertWhole(t, a.root, content)

  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  t.equal(await countFiles(a.root), Object.keys(files).length)
  await assertWhole(t, a.root, content, 'every file has its content')
  t.same(await leftovers(a.root), [], 'the bulk uploads\' temporary directories are gone')
  t.equal((await assertManifestTruthful(t, a))?.complete, true)
  await guard.check(t)
}

t.test('master SIGKILLed in the middle of a bulk (tar) upload: nothing half-written under a final name, the next publish cleans up and finishes', async (t) => {
  // Big enough that the stream takes a while; small enough (below the delta size) to go in bulk.
  const files: Record<string, string> = {}
  for (let i = 0; i < 600; i++) files[`d${i % 7}/p${i}.html`] = `<p>${i}</p>${String(i).repeat(40_000)}`.slice(0, 100_000)
  await killedInBulk(t, files, 'a bulk upload under way', (temps) => temps.length > 20)
})

t.test('two bulk streams under way at once when the master is SIGKILLed: nothing half-written, the next publish cleans up both and finishes', async (t) => {
  // More files than one stream takes (2,000), so that a second stream runs beside the first.
  const files: Record<string, string> = {}
  for (let i = 0; i < 4200; i++) files[`d${i % 13}/p${i}.html`] = `<p>${i}</p>${String(i).repeat(5_000)}`.slice(0, 20_000)
  await killedInBulk(t, files, 'two bulk uploads under way at once', (temps) => new Set(temps.map((p) => p.slice(0, p.indexOf('/')))).size >= 2)
})

// The network to one slave stalls (its sshd and everything it forked stopped with SIGSTOP): that
// target fails with TIMEOUT within about its `timeout`, the publish does not hang, the other
// target completes (exit 3); once the slave answers again the next publish finishes the job.

import t from 'tap'

import {assertManifestTruthful, assertWhole, countFiles, exited, faultProject, guardOutside, leftovers, manyFiles, settledCount, smallSite, until} from '../helpers/faults.js'

/** Seconds: the stalled target's `timeout`. */
const TIMEOUT = 2

t.test('a slave stalled before the publish: TIMEOUT within its timeout, the other target completes', async (t) => {
  const p = await faultProject(t, {slaves: ['stuck', 'fine'], targetOptions: {stuck: `timeout: ${TIMEOUT}`}})
  const stuck = p.slaves.stuck
  stuck.sshd.suspend()
  p.onCleanup(() => stuck.sshd.resume())
  const guard = await guardOutside(p)

  // What a publish costs here anyway (start-up, scan, the healthy target), to tell a timeout from load.
  let started = Date.now()
  t.equal((await p.json(['publish', '--target', 'fine', '--dry-run'])).code, 0)
  const baseline = (Date.now() - started) / 1000
  started = Date.now()
  const r = await p.json(['publish'], 30_000)
  const seconds = (Date.now() - started) / 1000 - baseline
  t.equal(r.code, 3, 'exit 3: partial')
  const failed = p.outcome(r.out, 'stuck')
  t.equal(failed.error?.code, 'TIMEOUT', String(failed.error?.message))
  t.equal(failed.error?.target, 'stuck')
  t.match(failed.error?.message, /no SSH answer from 127\.0\.0\.1:\d+ within 2 s/)
  t.ok(seconds < TIMEOUT + 4, `gave up about ${seconds.toFixed(1)} s later than a publish without it (${baseline.toFixed(1)} s here), not a hang`)
  t.equal(p.outcome(r.out, 'fine').report?.sent, Object.keys(smallSite).length, 'the other target got everything')
  await guard.check(t)
})

t.test('a slave stalled mid-publish: TIMEOUT, nothing half-written; the next publish finishes the job', async (t) => {
  const files = manyFiles(1500)
  const segments = `segments:\n  - {name: first, match: ["d000/**"], targets: [stuck, fine]}\n  - {name: rest, match: ["**"], targets: [stuck]}\n`
  const p = await faultProject(t, {slaves: ['stuck', 'fine'], files, targetOptions: {stuck: `timeout: ${TIMEOUT}, transfers: 2, bulk: false`}, extraConfig: segments})
  const stuck = p.slaves.stuck
  p.onCleanup(() => stuck.sshd.resume())
  const guard = await guardOutside(p)
  const child = p.spawn(['publish', '--json'])
  const done = exited(child)
  await until('files landing on the slave', async () => (await countFiles(stuck.root)) > 50)
  stuck.sshd.suspend()
  const stalledAt = Date.now()
  const r = await done
  const seconds = (Date.now() - stalledAt) / 1000
  t.equal(r.code, 3, 'exit 3: partial')
  t.ok(seconds < TIMEOUT * 3 + 5, `gave up ${seconds.toFixed(1)} s after the stall, not a hang`)
  const out = JSON.parse(r.stdout)
  const failed = p.outcome(out, 'stuck')
  t.equal(failed.error?.code, 'TIMEOUT', String(failed.error?.message))
  t.match(failed.error?.message, /stopped answering/)
  t.equal(p.outcome(out, 'fine').report?.sent, 100, 'the other target got everything')
  const whole = (path: string) => (files[path] === undefined ? undefined : [files[path]])
  await assertWhole(t, stuck.root, whole, 'while stalled: no half-written file under a final name')

  // The slave wakes up: what its sftp-server still had queued must not leave a broken file either.
  stuck.sshd.resume()
  const landed = await settledCount(stuck.root)
  await assertWhole(t, stuck.root, whole, 'after it resumed: still none')
  await assertManifestTruthful(t, stuck)

  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  t.equal(p.outcome(again.out, 'stuck').report?.sent, 1500 - landed, 'only what had not landed is sent')
  t.equal(await countFiles(stuck.root), 1500)
  t.same(await leftovers(stuck.root), [], 'no temporary file left')
  await guard.check(t)
})

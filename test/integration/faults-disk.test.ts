// The slave's disk fills up (its root is a small tmpfs): DISK_FULL naming the target and the
// file, the other target completes (exit 3), nothing half-written, no temporary file left; once
// there is room again, the next publish finishes the job.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {assertManifestTruthful, assertWhole, countFiles, faultProject, guardOutside, leftovers, mountTmpfs, sh, snapshot, type FaultProject, type Slave} from '../helpers/faults.js'

/** The slave's tmpfs grown to `size`: the next publish finishes the job, every file whole, nothing written outside. */
async function withRoomAgain(t: Test, p: FaultProject, slave: Slave, size: string, files: Record<string, Buffer | string>, guard: Awaited<ReturnType<typeof guardOutside>>): Promise<void> {
  sh('mount', ['-o', `remount,size=${size}`, slave.root])
  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  t.equal(await countFiles(slave.root), Object.keys(files).length, 'with room again, the next publish finishes the job')
  await assertWhole(t, slave.root, (path) => (files[path] === undefined ? undefined : [files[path]]), 'every file whole')
  await guard.check(t)
}

t.test('a full disk on one slave: DISK_FULL with target and file, the others complete, nothing half-written', async (t) => {
  const files: Record<string, Buffer | string> = {'index.html': '<html><img src="img/a.png"></html>', 'about.html': '<html>about</html>'}
  for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) files[`img/${name}.png`] = randomBytes(150_000)
  const p = await faultProject(t, {slaves: ['small', 'big'], files, targetOptions: {small: 'transfers: 2'}})
  const small = p.slaves.small
  mountTmpfs(p, small.root, '512k')
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 3, 'exit 3: partial')
  const failed = p.outcome(r.out, 'small')
  t.equal(failed.error?.code, 'DISK_FULL')
  t.equal(failed.error?.target, 'small')
  t.match(failed.error?.path, /^img\/[a-f]\.png$/, 'names the file that did not fit')
  t.match(failed.error?.message, /disk is full/)
  // Later failures may race with the cleanup of earlier ones (space freed again): the first tells.
  t.equal(failed.report?.failed[0]?.code, 'DISK_FULL', 'the first failure is the full disk')
  t.equal(p.outcome(r.out, 'big').report?.sent, 8, 'the other target got everything')
  t.equal(p.outcome(r.out, 'big').error, undefined)

  await assertWhole(t, small.root, (path) => (files[path] === undefined ? undefined : [files[path]]))
  t.same(await leftovers(small.root), [], 'temporary files removed')
  t.ok((await countFiles(small.root)) < 8, 'not everything fitted')
  await assertManifestTruthful(t, small)

  // Text output: the target and the file are named on stderr, where cron mails go.
  const text = await p.cli(['publish'])
  t.equal(text.code, 3)
  t.match(text.stderr, /target small, file "img\/[a-f]\.png": the slave's disk is full/)
  t.match(text.stderr, /Free space on the file system/)

  await withRoomAgain(t, p, small, '4m', files, guard)
})

t.test('a disk already full, with the state on it too: a clear DISK_FULL, nothing left behind', async (t) => {
  const p = await faultProject(t, {slaves: ['full', 'ok']})
  const full = p.slaves.full
  const volume = join(full.base, 'volume')
  await fs.mkdir(volume)
  mountTmpfs(p, volume, '256k')
  full.root = join(volume, 'www')
  full.state = join(volume, 'state')
  await fs.mkdir(full.root)
  await p.writeConfig()
  // The slave's own data fills the disk to the last byte.
  await fs.writeFile(join(full.root, 'huge-log.txt'), Buffer.alloc(0))
  for (;;) {
    try {
      await fs.appendFile(join(full.root, 'huge-log.txt'), Buffer.alloc(4096, 'l'))
    } catch {
      break
    }
  }
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 3, 'exit 3: partial')
  const failed = p.outcome(r.out, 'full')
  t.equal(failed.error?.code, 'DISK_FULL', JSON.stringify(failed.error))
  t.equal(failed.error?.target, 'full')
  t.ok(p.outcome(r.out, 'ok').report?.ok, 'the other target completes')
  const inVolume = await snapshot(volume)
  t.same([...inVolume.keys()].filter((k) => !['www', 'www/huge-log.txt', 'state'].includes(k)), [], 'nothing half-written, no temporary file, no lock left')
  await guard.check(t)
})

t.test('the disk fills while big files share the connection\'s chunks in flight: every file whole or absent, nothing left behind', async (t) => {
  // Five 3 MB files at once: more chunks than the connection keeps in flight, so some wait
  // for a slot when the disk fills; none of them may write where a closed file was.
  const files: Record<string, Buffer | string> = {'index.html': '<html>home</html>'}
  for (let i = 0; i < 5; i++) files[`media/clip-${i}.bin`] = randomBytes(3 << 20)
  const p = await faultProject(t, {slaves: ['small'], files})
  const small = p.slaves.small
  mountTmpfs(p, small.root, '8m')
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 1, 'exit 1: its only target failed')
  t.equal(p.outcome(r.out, 'small').error?.code, 'DISK_FULL')
  await assertWhole(t, small.root, (path) => (files[path] === undefined ? undefined : [files[path]]))
  t.same(await leftovers(small.root), [], 'temporary files removed')
  t.ok((await countFiles(small.root)) < 6, 'not everything fitted')
  await assertManifestTruthful(t, small)

  await withRoomAgain(t, p, small, '32m', files, guard)
})

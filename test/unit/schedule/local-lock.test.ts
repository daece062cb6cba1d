// The master-side lock: one holder at a time, a dead holder's lock taken over.

import {spawn} from 'node:child_process'
import * as fs from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'

import t from 'tap'

import {acquireLocalLock, readLocalLock} from '../../../src/schedule/local-lock.js'
import {tempDir} from '../../helpers/site.js'

t.test('a second taker is told who holds the lock; release frees it', async (t) => {
  const file = join(tempDir(), 'state', 'schedule.lock')
  const first = await acquireLocalLock(file, 'mirror schedule run')
  t.ok(first.ok)
  // A live process other than us holds it.
  const sleeper = spawn('sleep', ['30'])
  t.teardown(() => sleeper.kill())
  const held = JSON.parse(await fs.readFile(file, 'utf8'))
  await fs.writeFile(file, JSON.stringify({...held, pid: sleeper.pid}))
  const second = await acquireLocalLock(file, 'mirror schedule run')
  t.notOk(second.ok)
  if (!second.ok) t.match(second.heldBy, {pid: sleeper.pid, host: hostname(), command: 'mirror schedule run'})
  t.same((await fs.readdir(join(file, '..'))).sort(), ['schedule.lock'], 'no temporary files left')
})

t.test('a lock whose process is gone is taken over', async (t) => {
  const file = join(tempDir(), 'schedule.lock')
  const dead = spawn('true')
  await new Promise((r) => dead.on('close', r))
  await fs.writeFile(file, JSON.stringify({pid: dead.pid, host: hostname(), since: '2026-01-01T00:00:00Z', command: 'mirror schedule run'}))
  t.equal(await readLocalLock(file), null, 'a stale lock is nobody\'s')
  const attempt = await acquireLocalLock(file, 'mirror schedule run')
  t.ok(attempt.ok)
  if (attempt.ok) {
    t.equal(JSON.parse(await fs.readFile(file, 'utf8')).pid, process.pid)
    await attempt.lock.release()
  }
  await t.rejects(fs.stat(file), {code: 'ENOENT'}, 'released')
})

t.test('release never removes a lock someone else took meanwhile', async (t) => {
  const file = join(tempDir(), 'schedule.lock')
  const attempt = await acquireLocalLock(file, 'a')
  t.ok(attempt.ok)
  await fs.writeFile(file, JSON.stringify({pid: 1, host: hostname(), since: 'x', command: 'b'}))
  if (attempt.ok) await attempt.lock.release()
  t.match(JSON.parse(await fs.readFile(file, 'utf8')), {command: 'b'})
})

// A slave that is not what the config says: its host key changed, its root does not exist, its
// root cannot be written (immutable, or a read-only file system). A clear error for that target,
// naming it, with nothing sent there; the other target completes (exit 3).

import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {faultProject, guardOutside, mountReadOnly, sh, smallSite} from '../helpers/faults.js'
import {readTree} from '../helpers/site.js'
import {generateKey} from '../helpers/sshd.js'

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/** The fingerprint as OpenSSH's own ssh-keygen prints it. */
function fingerprint(publicFile: string): string {
  const out = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicFile], {encoding: 'utf8'}).stdout
  const fp = out.split(' ')[1]
  if (!fp?.startsWith('SHA256:')) throw new Error(`ssh-keygen -l printed ${out}`)
  return fp
}

t.test('a changed host key: refused with both fingerprints, even with accept-new; nothing sent', async (t) => {
  const p = await faultProject(t, {slaves: ['moved', 'ok']})
  const moved = p.slaves.moved
  // known_hosts remembers another key for this host:port: the server was replaced, or someone is in between.
  const old = generateKey(moved.sshd.dir, 'old_host_key')
  const knownHosts = `[127.0.0.1]:${moved.sshd.port} ${old.publicLine.split(' ').slice(0, 2).join(' ')}\n`
  await fs.writeFile(moved.sshd.knownHostsFile, knownHosts)
  const presented = fingerprint(join(moved.sshd.dir, 'host_ed25519.pub'))
  const remembered = fingerprint(`${old.privateKey}.pub`)
  const guard = await guardOutside(p)

  const strict = await p.cli(['publish'])
  t.equal(strict.code, 3, 'exit 3, the other target completes')
  t.match(strict.stderr, /mirror: target moved: the host key of \[127\.0\.0\.1\]:\d+ has CHANGED/, 'names the target')
  t.ok(strict.stderr.includes(presented), `shows the key presented (${presented})`)
  t.ok(strict.stderr.includes(remembered), `shows the key known_hosts has (${remembered})`)
  // accept-new records a first-seen key, never a changed one.
  p.options.targetOptions = {moved: 'hostKeys: accept-new'}
  await p.writeConfig()
  const lenient = await p.json(['publish'])
  t.equal(lenient.code, 3)
  t.match(p.outcome(lenient.out, 'moved').error, {code: 'HOST_KEY_CHANGED', target: 'moved', message: new RegExp(`${escape(presented)}.*${escape(remembered)}`)}, 'accept-new: refused all the same')
  t.equal(readFileSync(moved.sshd.knownHostsFile, 'utf8'), knownHosts, 'known_hosts untouched')
  t.same(await fs.readdir(moved.root), [], 'nothing written in the root')
  t.notOk(existsSync(moved.state), 'no state (not even a lock) written on the slave')
  t.same(await readTree(p.slaves.ok.root), smallSite, 'the other target got everything')
  await guard.check(t)
})

t.test('a root that does not exist: ROOT_MISSING for that target, not created, the others complete', async (t) => {
  const p = await faultProject(t, {slaves: ['gone', 'ok'], noRoot: ['gone']})
  const gone = p.slaves.gone
  const guard = await guardOutside(p)
  const r = await p.cli(['publish'])
  t.equal(r.code, 3)
  t.match(r.stderr, new RegExp(`mirror: target gone: root ${gone.root} on \\S+ does not exist`))
  t.match(r.stderr, /mkdir -p/, 'says how to fix it')
  t.notOk(existsSync(gone.root), 'mirror does not create a missing root (it may be an unmounted disk)')
  t.notOk(existsSync(gone.state), 'no state written')
  t.same(await readTree(p.slaves.ok.root), smallSite)
  await guard.check(t)
})

t.test('a root the SSH user cannot write (immutable): PERMISSION_DENIED naming the target, the others complete', async (t) => {
  const p = await faultProject(t, {slaves: ['locked', 'ok']})
  const locked = p.slaves.locked
  await fs.writeFile(join(locked.root, 'index.html'), 'the old home page')
  // As root, only the immutable attribute (or a read-only mount) stops a write.
  sh('chattr', ['+i', locked.root, join(locked.root, 'index.html')])
  p.onCleanup(() => sh('chattr', ['-i', locked.root, join(locked.root, 'index.html')]))
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 3)
  const failed = p.outcome(r.out, 'locked')
  t.equal(failed.error?.code, 'PERMISSION_DENIED', String(failed.error?.message))
  t.match(failed.error?.message, /files failed; the first, "[^"]+": permission denied on the slave/)
  t.match(failed.error?.suggestion, `Give the SSH user write access to ${locked.root}`)
  t.same(await readTree(locked.root), {'index.html': 'the old home page'}, 'nothing changed in the root')
  t.same(await readTree(p.slaves.ok.root), smallSite, 'the other target got everything')
  await guard.check(t)
})

t.test('a root on a read-only file system: a clear error naming the target, the others complete', async (t) => {
  const p = await faultProject(t, {slaves: ['ro', 'ok']})
  const ro = p.slaves.ro
  await fs.writeFile(join(ro.root, 'index.html'), 'the old home page')
  mountReadOnly(p, ro.root)
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 3)
  const failed = p.outcome(r.out, 'ro')
  t.equal(failed.error?.code, 'PERMISSION_DENIED', String(failed.error?.message))
  t.match(failed.error?.message, /read-only/)
  t.same(await readTree(ro.root), {'index.html': 'the old home page'}, 'nothing changed in the root')
  t.same(await readTree(p.slaves.ok.root), smallSite, 'the other target got everything')
  await guard.check(t)
})

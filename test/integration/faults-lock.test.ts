// One publisher at a time per target, over SSH: a second master publishing to the same slave
// while the first runs is refused (LOCKED, exit 4, naming the holder) and writes nothing, so the
// two trees never interleave; a lock left by a publisher on another host that died is broken
// only on purpose (--break-lock); one left by a dead process on this host is taken over.

import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {hostname, userInfo} from 'node:os'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {assertWhole, countFiles, exited, faultProject, guardOutside, manyFiles, smallSite, until} from '../helpers/faults.js'
import {readTree, writeTree} from '../helpers/site.js'

t.test('two masters at once: the second is refused naming the holder, the trees never interleave', async (t) => {
  const files = manyFiles(600)
  const p = await faultProject(t, {slaves: ['www'], files, targetOptions: {www: 'transfers: 1, bulk: false'}})
  const www = p.slaves.www
  const guard = await guardOutside(p)
  // A second master: its own source (same paths, other content, one more file), same target.
  const other = join(p.dir, 'other-master')
  await writeTree(join(other, 'public'), {'d000/f0.html': 'from the OTHER master', 'other-only.html': 'other'})
  await fs.writeFile(join(other, 'mirror.config.yaml'), (await fs.readFile(p.configFile, 'utf8')).replace('config: ./ssh_config', `config: ${p.sshConfig}`))

  const first = p.spawn(['publish'])
  const firstDone = exited(first)
  await until('the first publish to hold the lock and send files', async () => existsSync(join(www.state, 'lock')) && (await countFiles(www.root)) > 20, 30_000, 10)
  // Paused mid-publish, lock held, so that the overlap is certain however fast this machine is.
  t.equal(first.exitCode, null, 'the first publish is mid-way')
  first.kill('SIGSTOP')
  p.onCleanup(() => first.kill('SIGCONT'))
  const second = await runCli(['publish'], {cwd: other, env: {SSH_AUTH_SOCK: ''}})
  t.equal(second.code, 4, 'exit 4: locked')
  t.match(second.stderr, new RegExp(`target www: locked by ${userInfo().username}@${hostname()} \\(pid ${first.pid}, publish\\) since \\d{4}-`), 'names the holder')
  t.match(second.stderr, /--break-lock/)
  t.notOk(existsSync(join(www.root, 'other-only.html')), 'the second master wrote nothing')
  first.kill('SIGCONT')

  const r = await firstDone
  t.equal(r.code, 0, r.stderr)
  const tree = await readTree(www.root)
  t.same(Object.keys(tree).sort(), Object.keys(files).sort(), 'exactly the first master\'s tree')
  await assertWhole(t, www.root, (path) => (files[path] === undefined ? undefined : [files[path]]), 'none of the second master\'s content')
  t.notOk(existsSync(join(www.state, 'lock')), 'the lock is released')
  await guard.check(t)
})

t.test('a stale lock from another host: refused until --break-lock; a dead publisher on this host is taken over', async (t) => {
  const p = await faultProject(t, {slaves: ['www']})
  const www = p.slaves.www
  await fs.mkdir(www.state, {recursive: true})
  const lock = (owner: object) => fs.writeFile(join(www.state, 'lock'), JSON.stringify({user: 'ann', since: '2026-01-01T00:00:00Z', command: 'publish', ...owner}))

  await lock({host: 'old-master', pid: 4242})
  const refused = await p.cli(['publish'])
  t.equal(refused.code, 4)
  t.match(refused.stderr, /target www: locked by ann@old-master \(pid 4242, publish\) since 2026-01-01T00:00:00Z/)
  t.same(await fs.readdir(www.root), [], 'nothing written under a held lock')
  t.equal(JSON.parse(await fs.readFile(join(www.state, 'lock'), 'utf8')).host, 'old-master', 'the lock is left as it was')

  const broken = await p.cli(['publish', '--break-lock'])
  t.equal(broken.code, 0, broken.stderr)
  t.same(await readTree(www.root), smallSite, 'published')
  t.notOk(existsSync(join(www.state, 'lock')), 'released after the publish')

  // A publisher on this host whose process is gone cannot be running: its lock is taken over.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {encoding: 'utf8'})
  await lock({host: hostname(), pid: Number(dead.stdout)})
  await fs.writeFile(join(p.source, 'about.html'), 'new about')
  const taken = await p.cli(['publish'])
  t.equal(taken.code, 0, taken.stderr)
  t.equal(await fs.readFile(join(www.root, 'about.html'), 'utf8'), 'new about')
  t.notOk(existsSync(join(www.state, 'lock')))
})

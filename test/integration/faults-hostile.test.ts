// Hostile input over SFTP: source names that look like path tricks or shell tricks, very long
// names, names that are not UTF-8, symlinks in the source that point out of it, and symlinks on
// the slave that point out of the root. Published faithfully where the server can hold them,
// refused or skipped clearly where not, and never a write (or delete) outside a target's root.

import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {MirrorError} from '../../src/errors.js'
import {SftpTarget} from '../../src/targets/ssh/sftp-target.js'
import {faultProject, guardOutside, leftovers, snapshot} from '../helpers/faults.js'
import {readTree, writeTree} from '../helpers/site.js'

/** Legal file names that a careless tool would misread as paths, options or shell. */
const names: Record<string, string> = {
  '..foo': 'dots before',
  'foo..': 'dots after',
  '...': 'three dots',
  '..dir/..inner..': 'dotted directory',
  '%2e%2e%2fescape.txt': 'percent-encoded dots',
  'new\nline.html': 'a newline',
  'tab\there.txt': 'a tab',
  'ctl\u0001\u001b[31m\u007f.txt': 'control characters and an escape sequence',
  "it's.html": 'single quote',
  'say "hi".html': 'double quotes',
  'back`tick`$(id).txt': 'shell syntax',
  'back\\slash.txt': 'backslash',
  '-rf': 'looks like an option',
  ' leading.txt': 'leading space',
  'trailing.txt ': 'trailing space',
  'ünïcødé 日本.html': 'unicode',
  ['a'.repeat(250) + '.html']: '255 bytes of ASCII',
  ['日'.repeat(85)]: '255 bytes of UTF-8',
}

t.test('hostile source names and symlinks over SFTP: published faithfully or skipped with a warning, nothing outside', async (t) => {
  const p = await faultProject(t, {slaves: ['www'], files: names})
  const www = p.slaves.www
  const src = p.source
  // A big file (hashed on the slave with sha256sum over exec) whose name is shell and option syntax.
  const bigName = "-n big\n$(touch pwned) 'x'.bin"
  const big = Buffer.alloc(1_200_000, 'b')
  await fs.writeFile(join(src, bigName), big)
  await fs.writeFile(join(www.root, bigName), big)
  // Not valid UTF-8: cannot be named again once decoded, so it is skipped with a warning.
  await fs.writeFile(Buffer.concat([Buffer.from(`${src}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'latin-1 name')
  // Symlinks: to a file in the tree (published as that file), out of the tree, to a directory.
  await writeTree(p.dir, {'secret.txt': 'master secret'})
  await fs.symlink('..foo', join(src, 'link-in.txt'))
  await fs.symlink(join(p.dir, 'secret.txt'), join(src, 'link-out-abs.txt'))
  await fs.symlink('../secret.txt', join(src, 'link-out-rel.txt'))
  await fs.symlink('..dir', join(src, 'link-dir'))
  await fs.symlink('/etc', join(src, 'etc'))
  const guard = await guardOutside(p)

  const r = await p.json(['publish'])
  t.equal(r.code, 0, r.stderr)
  const expected = {...names, 'link-in.txt': names['..foo'], [bigName]: big.toString()}
  t.same(await readTree(www.root), expected, 'every name published with its content, and nothing else')
  const outcome = p.outcome(r.out, 'www')
  t.equal(outcome.report?.adopted, 1, 'the big file already there was recognised by its hash on the slave')
  t.notOk(existsSync(join(www.root, 'pwned')) || existsSync(join(p.dir, 'pwned')), 'no name was run as a command')
  const warned = Object.fromEntries(r.out.warnings.map((w) => [w.path, w.message]))
  t.same(warned, {
    'bad-\uFFFD\uFFFD.txt': 'skipped: the name is not valid UTF-8',
    'link-out-abs.txt': 'skipped symlink: it points outside the source tree',
    'link-out-rel.txt': 'skipped symlink: it points outside the source tree',
    'link-dir': 'skipped symlink: it points to a directory (not followed)',
    etc: 'skipped symlink: it points outside the source tree',
  })
  t.same((await snapshot(www.root)).get('link-in.txt')?.type, 'file', 'an in-tree link is published as a file, not a link')

  // The names round-trip: the manifest holds them, and an unchanged source is a noop.
  const noop = await p.cli(['publish'])
  t.equal(noop.code, 0, noop.stderr)
  t.match(noop.stdout, /nothing to do/)
  t.match(noop.stderr, /warning: "bad-\\ufffd\\ufffd\.txt": skipped: the name is not valid UTF-8|warning: bad-\uFFFD\uFFFD\.txt: skipped: the name is not valid UTF-8/)
  t.match(noop.stderr, /warning: link-out-abs\.txt: skipped symlink: it points outside the source tree/)

  await guard.check(t)

  // And removing every hostile file from the source deletes exactly those on the slave.
  const outside = await guardOutside(p)
  for (const name of Object.keys(names)) await fs.rm(join(src, name))
  const cleared = await p.json(['publish'])
  t.equal(cleared.code, 0, cleared.stderr)
  t.same(Object.keys(await readTree(www.root)), [bigName], 'only those deleted (and the link to one of them, dangling now)')
  t.same(await leftovers(www.root), [])
  await outside.check(t, {source: false})
})

t.test('a name longer than 255 bytes is refused clearly by the target; nothing is written', async (t) => {
  const p = await faultProject(t, {slaves: ['www']})
  const www = p.slaves.www
  const target = new SftpTarget(
    {name: 'www', url: `sftp://slave-www${www.root}`, location: {kind: 'sftp', host: 'slave-www', root: www.root}, state: www.state, transfers: 4, hostKeys: 'strict', timeoutMs: 10_000, compress: false},
    {config: p.sshConfig},
  )
  t.teardown(() => target.close())
  await target.connect()
  const local = join(p.source, 'index.html')
  const options = {mode: 0o644, mtimeMs: Date.now()}
  await target.put(local, 'b'.repeat(255), options)
  let error: unknown
  try {
    await target.put(local, `dir/${'b'.repeat(256)}`, options)
  } catch (caught) {
    error = caught
  }
  t.ok(error instanceof MirrorError, 'refused')
  t.equal((error as MirrorError).code, 'UNSAFE_PATH')
  t.equal((error as MirrorError).target, 'www')
  t.match((error as MirrorError).message, /a component is longer than 255 bytes/)
  t.same(await fs.readdir(www.root), ['b'.repeat(255)], '255 bytes went through; nothing of the 256-byte one, not even its directory')
})

t.test('a symlink on the slave pointing outside the root: never written or deleted through', async (t) => {
  const files = {'index.html': 'home', 'img/logo.png': 'PNG-logo', 'css/site.css': 'body{}'}
  const p = await faultProject(t, {slaves: ['www'], files})
  const www = p.slaves.www
  // The slave's admin made img/ a link to a directory elsewhere, which holds a logo.png just
  // like the one published: the most tempting case for a write or a delete through the link.
  await fs.writeFile(join(www.outside, 'logo.png'), 'PNG-logo')
  await fs.symlink(www.outside, join(www.root, 'img'))
  const guard = await guardOutside(p)

  const r = await p.cli(['publish'])
  t.equal(r.code, 1, 'exit 1: the only target failed')
  t.match(r.stderr, /mirror: target www, file "img\/logo\.png": "img" on the slave is a symlink, not a directory: refusing to go through it/, 'the error names the target and the file')
  t.match(r.stderr, /mirror never writes or deletes through a symlink/, 'and says what to do')
  t.match(r.stdout, /www: FAILED  2 sent/, 'the other files were published')
  t.same(await readTree(www.root), {'index.html': 'home', 'css/site.css': 'body{}'})

  // Later: img/logo.png was published into a real img/, then the admin swapped img/ for the link
  // again, and the master dropped the logo: the delete must not go through the link either.
  await fs.rm(join(www.root, 'img'))
  await fs.mkdir(join(www.root, 'img'))
  t.equal((await p.cli(['publish'])).code, 0)
  await fs.rm(join(www.root, 'img'), {recursive: true})
  await fs.symlink(www.outside, join(www.root, 'img'))
  await fs.rm(join(p.source, 'img/logo.png'))
  for (const flags of [[], ['--verify']]) {
    const del = await p.json(['publish', ...flags])
    const o = p.outcome(del.out, 'www')
    t.equal(del.code, 1, `publish ${flags.join(' ')}: refused, so not a success`)
    t.match(o.error, {code: 'UNSAFE_PATH', path: 'img/logo.png', suggestion: /mirror never writes or deletes through a symlink/}, 'the refusal names the file and what to do')
    t.equal(await fs.readFile(join(www.outside, 'logo.png'), 'utf8'), 'PNG-logo', `publish ${flags.join(' ')}: nothing deleted through the link`)
    t.equal((await fs.lstat(join(www.root, 'img'))).isSymbolicLink(), true, 'the link itself is left alone')
  }
  await guard.check(t, {source: false})
})

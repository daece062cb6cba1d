// End to end through bin/run.js with file:// slaves: what a user sees (exit codes, stdout,
// stderr, --json) and what the slaves end up holding.

import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {readTree, sampleSite, tempDir, writeTree} from '../helpers/site.js'

async function project(extraConfig = '') {
  const dir = tempDir('mirror-e2e-')
  await writeTree(join(dir, 'public'), sampleSite)
  for (const s of ['img', 'www1', 'www2']) await fs.mkdir(join(dir, 'slaves', s), {recursive: true})
  const config = `source: ./public
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
protect: ["config.local.php"]
${extraConfig}`
  await fs.writeFile(join(dir, 'mirror.config.yaml'), config)
  const slave = (name: string) => join(dir, 'slaves', name)
  return {dir, slave, cli: (...args: string[]) => runCli(args, {cwd: dir})}
}

t.test('publish sends each segment to its targets and reports per target', async (t) => {
  const p = await project()
  const r = await p.cli('publish')
  t.equal(r.code, 0, r.stderr)
  t.same(Object.keys(await readTree(p.slave('img'))).sort(), ['img/logo.png', 'img/photo.jpg'])
  const pages = await readTree(p.slave('www1'))
  t.same(Object.keys(pages).sort(), ['about.html', 'css/site.css', 'index.html', 'news/2024/first.html'])
  t.same(await readTree(p.slave('www2')), pages, 'both cache mirrors hold the same pages')
  t.match(r.stdout, /www1: ok/)
  t.match(r.stdout, /\+ new\s+index\.html/)
  t.notOk(existsSync(join(p.slave('www1'), 'manifest.json')), 'no state inside the web root')
})

t.test('a second publish moves only the change and keeps the slave edit', async (t) => {
  const p = await project()
  t.equal((await p.cli('publish')).code, 0)
  await fs.writeFile(join(p.slave('www2'), 'about.html'), '<html>edited on www2</html>')
  await fs.writeFile(join(p.slave('www1'), 'local-only.txt'), 'mine')
  await fs.writeFile(join(p.dir, 'public/index.html'), '<html>new home</html>')
  await fs.writeFile(join(p.dir, 'public/about.html'), '<html>new about</html>')

  const diff = await p.cli('diff')
  t.equal(diff.code, 0)
  t.match(diff.stdout, /! kept\s+about\.html\s+\(customized on the slave\)/)
  t.equal(await fs.readFile(join(p.slave('www1'), 'index.html'), 'utf8'), sampleSite['index.html'], 'diff changed nothing')

  const r = await p.cli('publish', '--json')
  t.equal(r.code, 0, r.stderr)
  const result = JSON.parse(r.stdout)
  const www2 = result.targets.find((o: {target: string}) => o.target === 'www2')
  t.equal(www2.report.sent, 1, 'only index.html sent to www2')
  t.same(www2.report.kept, [{path: 'about.html', reason: 'customized on the slave'}])
  t.equal(await fs.readFile(join(p.slave('www2'), 'about.html'), 'utf8'), '<html>edited on www2</html>', 'customization survives')
  t.equal(await fs.readFile(join(p.slave('www1'), 'about.html'), 'utf8'), '<html>new about</html>')
  t.equal(await fs.readFile(join(p.slave('www1'), 'local-only.txt'), 'utf8'), 'mine', 'slave-only file untouched')
  const img = result.targets.find((o: {target: string}) => o.target === 'img')
  t.same(img.plan.actions, [], 'nothing to do on the image host')

  const noop = await p.cli('publish', '--json')
  const again = JSON.parse(noop.stdout)
  t.equal(again.hashed, 0, 'an unchanged tree is not read again')
  t.same(again.targets.map((o: {report: {sent: number}}) => o.report.sent), [0, 0, 0])

  // Changes the hashing does not read (a mode, on the master) are looked at on the slave as
  // well as those it does (the slaves are probed for those while the files are read).
  await fs.writeFile(join(p.slave('www1'), 'css/site.css'), 'body{color:red} /* www1 */')
  await fs.chmod(join(p.dir, 'public/css/site.css'), 0o600)
  await fs.writeFile(join(p.slave('www2'), 'index.html'), '<html>www2 home</html>')
  await fs.writeFile(join(p.dir, 'public/index.html'), '<html>newer home</html>')
  const mixed = JSON.parse((await p.cli('publish', '--json')).stdout).targets as Array<{target: string; report: {sent: number; kept: unknown[]}}>
  const kept = Object.fromEntries(mixed.map((o) => [o.target, o.report.kept]))
  t.same(kept, {img: [], www1: [{path: 'css/site.css', reason: 'customized on the slave'}], www2: [{path: 'about.html', reason: 'customized on the slave'}, {path: 'index.html', reason: 'customized on the slave'}]}, 'the earlier edit on www2 is still kept too')
  t.equal(await fs.readFile(join(p.slave('www1'), 'css/site.css'), 'utf8'), 'body{color:red} /* www1 */', 'the mode change did not overwrite the edit')
  t.equal(await fs.readFile(join(p.slave('www2'), 'index.html'), 'utf8'), '<html>www2 home</html>')
  t.equal(await fs.readFile(join(p.slave('www1'), 'index.html'), 'utf8'), '<html>newer home</html>')
  t.equal((await fs.stat(join(p.slave('www2'), 'css/site.css'))).mode & 0o777, 0o600, 'the mode went where nothing was customized')
})

t.test('--force overwrites a customization and keeps a backup in the state', async (t) => {
  const p = await project()
  await p.cli('publish')
  await fs.writeFile(join(p.slave('www1'), 'about.html'), 'edited')
  await fs.writeFile(join(p.dir, 'public/about.html'), 'from master')
  const r = await p.cli('publish', '--force')
  t.equal(r.code, 0, r.stderr)
  t.equal(await fs.readFile(join(p.slave('www1'), 'about.html'), 'utf8'), 'from master')
  const backups = join(p.dir, 'slaves/.mirror-state/www1/backups')
  const [run] = await fs.readdir(backups)
  t.equal(await fs.readFile(join(backups, run, 'about.html'), 'utf8'), 'edited', 'the slave version is recoverable')
})

t.test('deletes propagate, customized deletes are kept, --max-delete stops a runaway', async (t) => {
  const p = await project()
  await p.cli('publish')
  await fs.rm(join(p.dir, 'public/news'), {recursive: true})
  await fs.rm(join(p.dir, 'public/about.html'))
  await fs.writeFile(join(p.slave('www2'), 'about.html'), 'customized')

  const stopped = await p.cli('publish', '--max-delete', '1')
  t.equal(stopped.code, 5, 'exit 5: a safety limit stopped it')
  t.match(stopped.stderr, /target www1: 2 files to delete is more than --max-delete 1/)
  t.ok(existsSync(join(p.slave('www1'), 'about.html')), 'nothing deleted')
  t.match(stopped.stdout, /www2: about\.html \(customized on the slave, no longer published\)/, 'www2 was within the limit and reports the kept file')

  const r = await p.cli('publish')
  t.equal(r.code, 0, r.stderr)
  t.notOk(existsSync(join(p.slave('www1'), 'news')), 'deleted, and the emptied directories with it')
  t.notOk(existsSync(join(p.slave('www1'), 'about.html')))
  t.equal(await fs.readFile(join(p.slave('www2'), 'about.html'), 'utf8'), 'customized', 'a customized file is not deleted')
})

t.test('an existing slave: identical files adopted, different ones are conflicts', async (t) => {
  const p = await project()
  await writeTree(p.slave('www1'), {'index.html': sampleSite['index.html'], 'about.html': 'someone else wrote this'})
  const r = await p.cli('diff', '--target', 'www1')
  t.match(r.stdout, /= adopted\s+index\.html/)
  t.match(r.stdout, /! conflict\s+about\.html/)
  t.notMatch(r.stdout, /www2/, '--target limits the plan')
  await p.cli('publish')
  t.equal(await fs.readFile(join(p.slave('www1'), 'about.html'), 'utf8'), 'someone else wrote this')
})

t.test('a held lock: exit 4 naming the holder; --break-lock takes it over', async (t) => {
  const p = await project()
  const state = join(p.dir, 'slaves/.mirror-state/www1')
  await fs.mkdir(state, {recursive: true})
  await fs.writeFile(join(state, 'lock'), JSON.stringify({host: 'otherhost', user: 'ann', pid: 4242, since: '2026-01-01T00:00:00Z', command: 'publish'}))
  const r = await p.cli('publish', '--target', 'www1')
  t.equal(r.code, 4)
  t.match(r.stderr, /target www1: locked by ann@otherhost \(pid 4242, publish\)/)
  t.match(r.stderr, /--break-lock/)
  t.notOk(existsSync(join(p.slave('www1'), 'index.html')), 'nothing published under a held lock')
  const broken = await p.cli('publish', '--target', 'www1', '--break-lock')
  t.equal(broken.code, 0, broken.stderr)
  t.notOk(existsSync(join(state, 'lock')), 'lock released after the publish')
})

t.test('one target failing does not stop the others: exit 3 (partial)', async (t) => {
  const p = await project()
  await fs.rm(p.slave('www2'), {recursive: true})
  const r = await p.cli('publish')
  t.equal(r.code, 3)
  t.match(r.stderr, /target www2: root .* does not exist/)
  t.ok(existsSync(join(p.slave('www1'), 'index.html')), 'www1 published')
})

t.test('bad config: every problem named by key, exit 2, nothing pushed', async (t) => {
  const p = await project()
  await fs.writeFile(
    join(p.dir, 'mirror.config.yaml'),
    `source: ./public
targets:
  a: file:///
  b: ftp://host/x
segments:
  - name: pages
    match: ["**"]
    targets: [a, cache3]
    colour: blue
`,
  )
  const r = await p.cli('publish')
  t.equal(r.code, 2)
  t.match(r.stderr, /segments\[0\]: unknown key "colour"/)
  const r2 = await (async () => {
    await fs.writeFile(join(p.dir, 'mirror.config.yaml'), `source: ./public\ntargets:\n  a: file:///\n  b: ftp://host/x\nsegments:\n  - name: pages\n    match: ["**"]\n    targets: [a, cache3]\n`)
    return p.cli('publish')
  })()
  t.equal(r2.code, 2)
  t.match(r2.stderr, /targets\.a: a target root of "\/" would publish over the whole file system/)
  t.match(r2.stderr, /targets\.b: unsupported scheme "ftp"/)
  t.match(r2.stderr, /segments\[0\]\.targets\[1\]: no target named "cache3"/)
})

t.test('a file no segment matches is an error at plan time', async (t) => {
  const p = await project()
  const text = (await fs.readFile(join(p.dir, 'mirror.config.yaml'), 'utf8')).replace('match: ["**"]', 'match: ["**/*.html", "**/*.css"]')
  await fs.writeFile(join(p.dir, 'mirror.config.yaml'), text)
  await fs.writeFile(join(p.dir, 'public/robots.txt'), 'User-agent: *')
  const r = await p.cli('publish')
  t.equal(r.code, 2)
  t.match(r.stderr, /1 file\(s\) match no segment:\n\s+"robots\.txt"/)
  t.notOk(existsSync(join(p.slave('www1'), 'index.html')), 'nothing pushed')
})

t.test('init writes a config that loads', async (t) => {
  const dir = tempDir()
  const r = await runCli(['init', '--target', 'www=sftp://deploy@www.example.com/var/www/html', '--target', 'img=sftp://img-host/srv/img', '--images', 'img'], {cwd: dir})
  t.equal(r.code, 0, r.stderr)
  const text = await fs.readFile(join(dir, 'mirror.config.yaml'), 'utf8')
  t.match(text, /www: sftp:\/\/deploy@www\.example\.com\/var\/www\/html/)
  t.match(text, /mime: \["image\/\*"\]/)
  const again = await runCli(['init'], {cwd: dir})
  t.equal(again.code, 2, 'does not overwrite without --force')
  t.match(again.stderr, /already exists/)
})

t.test('an unchanged tree is a noop that takes no lock; a change of content, mode or of the slave by another master is still seen', async (t) => {
  const p = await project()
  t.equal((await p.cli('publish')).code, 0)
  // Another master holds www1 (a live publisher elsewhere): a publish that needed the lock would stop there.
  const lockFile = join(p.dir, 'slaves/.mirror-state/www1/lock')
  await fs.writeFile(lockFile, JSON.stringify({host: 'other-master', user: 'ann', pid: 1, since: new Date().toISOString(), command: 'publish', token: 'x'}))
  const noop = await p.cli('publish', '--json')
  t.equal(noop.code, 0, noop.stderr)
  t.same(JSON.parse(noop.stdout).targets.map((o: {report: {sent: number}}) => o.report.sent), [0, 0, 0], 'nothing to send, no lock needed')

  await fs.chmod(join(p.dir, 'public/about.html'), 0o600)
  const modeChange = await p.cli('publish', '--json')
  t.not(modeChange.code, 0, 'the mode change needs www1, which is locked')
  t.equal(JSON.parse(modeChange.stdout).targets.find((o: {target: string}) => o.target === 'www1').error.code, 'LOCKED')
  await fs.rm(lockFile)
  const after = JSON.parse((await p.cli('publish', '--json')).stdout).targets as Array<{target: string; report: {sent: number}}>
  t.same(Object.fromEntries(after.map((o) => [o.target, o.report.sent])), {img: 0, www1: 1, www2: 0}, 'www2 got it in the run before')
  t.equal((await fs.stat(join(p.slave('www1'), 'about.html'))).mode & 0o777, 0o600)

  // A second master with its own state publishes another home page to www2.
  const other = tempDir('mirror-e2e-other-')
  await writeTree(join(other, 'public'), {...sampleSite, 'index.html': '<html>from the other master</html>'})
  await fs.writeFile(join(other, 'mirror.config.yaml'), `source: ./public\ntargets:\n  www2: file://${p.slave('www2')}\nsegments:\n  - name: all\n    match: ["**"]\n    targets: [www2]\n`)
  t.equal((await runCli(['publish'], {cwd: other})).code, 0)
  const back = JSON.parse((await p.cli('publish', '--json')).stdout).targets as Array<{target: string; report: {sent: number; deleted: number}}>
  // Its home page and its mode of about.html are undone; the images it put there are deleted.
  t.match(back.find((o) => o.target === 'www2')?.report, {sent: 2, deleted: 2}, 'the other master\'s publish is noticed and undone')
  t.equal(await fs.readFile(join(p.slave('www2'), 'index.html'), 'utf8'), sampleSite['index.html'])
})

t.test('a config edited after a publish is checked again, and its new routing is published, not taken for a noop', async (t) => {
  const p = await project()
  t.equal((await p.cli('publish')).code, 0)
  const file = join(p.dir, 'mirror.config.yaml')
  const valid = await fs.readFile(file, 'utf8')
  await fs.writeFile(file, valid.replace('    targets: [img]\n', '    targets: [img]\n    colour: blue\n'))
  const bad = await p.cli('publish')
  t.equal(bad.code, 2, 'the edited config is validated again')
  t.match(bad.stderr, /segments\[0\]: unknown key "colour"/)

  // The images now go to www1 as well: same tree, new routing.
  await fs.writeFile(file, valid.replace('    targets: [img]\n', '    targets: [img, www1]\n'))
  const rerouted = JSON.parse((await p.cli('publish', '--json')).stdout).targets as Array<{target: string; report: {sent: number}}>
  t.same(Object.fromEntries(rerouted.map((o) => [o.target, o.report.sent])), {img: 0, www1: 2, www2: 0})
  t.equal(await fs.readFile(join(p.slave('www1'), 'img/logo.png'), 'utf8'), sampleSite['img/logo.png'])

  // Then a noop again, which still counts every file of each target.
  const noop = JSON.parse((await p.cli('publish', '--json')).stdout).targets as Array<{target: string; plan: {unchanged: number; actions: unknown[]}; report: {sent: number}}>
  t.same(
    Object.fromEntries(noop.map((o) => [o.target, [o.report.sent, o.plan.actions.length, o.plan.unchanged]])),
    {img: [0, 0, 2], www1: [0, 0, 6], www2: [0, 0, 4]},
  )
})

t.test('the master keeps signatures only of the large-file versions some target still holds', async (t) => {
  const p = await project()
  const video = join(p.dir, 'public/media/video.bin')
  await fs.mkdir(join(p.dir, 'public/media'), {recursive: true})
  const version = async (n: number) => {
    await fs.writeFile(video, Buffer.alloc(600_000, n))
    return createHash('sha256').update(Buffer.alloc(600_000, n)).digest('hex')
  }
  const signatures = async () => (await fs.readdir(join(p.dir, '.mirror/signatures'))).filter((name) => name.endsWith('.sig')).sort()
  const v1 = await version(1)
  t.equal((await p.cli('publish')).code, 0)
  t.same(await signatures(), [`${v1}.sig`])
  const v2 = await version(2)
  t.equal((await p.cli('publish')).code, 0)
  t.same(await signatures(), [`${v2}.sig`], 'every target moved on from the first version: its signature goes')
  const v3 = await version(3)
  t.equal((await p.cli('publish', '--target', 'www1')).code, 0)
  t.same(await signatures(), [`${v2}.sig`, `${v3}.sig`].sort(), 'www2 still holds the second version: a publish to www1 alone keeps its signature')
  t.equal((await p.cli('publish')).code, 0)
  t.same(await signatures(), [`${v3}.sig`])
})

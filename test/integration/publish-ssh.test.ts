// Publishing to real OpenSSH slaves on loopback through the CLI: segments to their hosts,
// customizations kept, a clean noop that does not list the slaves, a slave that is down.

import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {readTree, sampleSite, tempDir, writeTree} from '../helpers/site.js'
import {sshdFor, type Sshd} from '../helpers/sshd.js'

async function sshProject(t: Parameters<Parameters<typeof t.test>[1]>[0]) {
  const dir = tempDir('mirror-ssh-')
  const names = ['img', 'cache1', 'cache2'] as const
  const slaves = {} as Record<(typeof names)[number], Sshd>
  for (const name of names) slaves[name] = await sshdFor(t, {alias: `slave-${name}`})
  // One ssh_config naming all three hosts, as a user's ~/.ssh/config would.
  const sshConfig = join(dir, 'ssh_config')
  await fs.writeFile(sshConfig, (await Promise.all(names.map((n) => fs.readFile(slaves[n].sshConfigFile, 'utf8')))).join('\n'))
  for (const name of names) await fs.mkdir(join(dir, 'roots', name), {recursive: true})
  await writeTree(join(dir, 'public'), sampleSite)
  const root = (name: string) => join(dir, 'roots', name)
  await fs.writeFile(
    join(dir, 'mirror.config.yaml'),
    `source: ./public
ssh:
  config: ./ssh_config
targets:
  img: {url: "sftp://slave-img${root('img')}", state: "${dir}/state/img", compress: true}
  cache1: {url: "sftp://slave-cache1${root('cache1')}", state: "${dir}/state/cache1", timeout: 15}
  cache2: {url: "sftp://slave-cache2${root('cache2')}", state: "${dir}/state/cache2", timeout: 15}
segments:
  - name: images
    mime: ["image/*"]
    targets: [img]
  - name: pages
    match: ["**"]
    targets: [cache1, cache2]
`,
  )
  return {dir, slaves, root, cli: (...args: string[]) => runCli(args, {cwd: dir})}
}

t.test('publish over SSH: segments, customizations kept, only changes moved', async (t) => {
  const p = await sshProject(t)
  const first = await p.cli('publish')
  t.equal(first.code, 0, first.stderr)
  t.same(Object.keys(await readTree(p.root('img'))).sort(), ['img/logo.png', 'img/photo.jpg'])
  const pages = await readTree(p.root('cache1'))
  t.same(Object.keys(pages).sort(), ['about.html', 'css/site.css', 'index.html', 'news/2024/first.html'])
  t.same(await readTree(p.root('cache2')), pages)
  t.ok(existsSync(join(p.dir, 'state/cache1/manifest.json')), 'manifest in the configured state place')
  const mtime = (await fs.stat(join(p.dir, 'public/index.html'))).mtimeMs
  t.equal(Math.floor((await fs.stat(join(p.root('cache1'), 'index.html'))).mtimeMs / 1000), Math.floor(mtime / 1000), 'mtime kept')

  await fs.writeFile(join(p.root('cache2'), 'about.html'), 'hand-edited on cache2')
  await fs.writeFile(join(p.dir, 'public/about.html'), 'new about')
  await fs.writeFile(join(p.dir, 'public/img/new.png'), 'new image')
  const second = await p.cli('publish', '--json')
  t.equal(second.code, 0, second.stderr)
  const outcomes = JSON.parse(second.stdout).targets as Array<{target: string; report: {sent: number; kept: unknown[]}}>
  const by = Object.fromEntries(outcomes.map((o) => [o.target, o.report]))
  t.equal(by.img.sent, 1, 'img: only the new image')
  t.equal(by.cache1.sent, 1, 'cache1: only about.html')
  t.equal(by.cache2.sent, 0, 'cache2: nothing, its edit is kept')
  t.same(by.cache2.kept, [{path: 'about.html', reason: 'customized on the slave'}])
  t.equal(await fs.readFile(join(p.root('cache2'), 'about.html'), 'utf8'), 'hand-edited on cache2')
  t.equal(await fs.readFile(join(p.root('cache1'), 'about.html'), 'utf8'), 'new about')

  // A clean noop trusts the manifest and does not list the slave: a file deleted by hand on the
  // slave is only noticed (and repaired) by --verify.
  await fs.rm(join(p.root('cache1'), 'css/site.css'))
  const noop = await p.cli('publish', '--json')
  t.same(JSON.parse(noop.stdout).targets.map((o: {report: {sent: number}}) => o.report.sent), [0, 0, 0], 'noop sends nothing')
  t.notOk(existsSync(join(p.root('cache1'), 'css/site.css')))
  const verify = await p.cli('publish', '--verify')
  t.equal(verify.code, 0, verify.stderr)
  t.match(verify.stdout, /\* repaired\s+css\/site\.css/)
  t.equal(await fs.readFile(join(p.root('cache1'), 'css/site.css'), 'utf8'), sampleSite['css/site.css'])
})

t.test('a slave that is down does not stop the others; the next publish catches it up', async (t) => {
  const p = await sshProject(t)
  await p.slaves.cache2.stop()
  const r = await p.cli('publish')
  t.equal(r.code, 3, 'partial')
  t.match(r.stderr, /target cache2: /)
  t.ok(existsSync(join(p.root('cache1'), 'index.html')), 'cache1 published')
  t.ok(existsSync(join(p.root('img'), 'img/logo.png')), 'img published')
})

t.test('a first publish of many files streams them to two slaves from one read each, every file exact on both', async (t) => {
  const p = await sshProject(t)
  // Enough to go in tar streams; sizes across the memory classes of the shared reads, each file
  // its own bytes: memory given back too early would show as another file's bytes on a slave.
  const files: Record<string, string> = {}
  for (let i = 0; i < 700; i++) files[`docs/${i % 7}/page-${i}.html`] = `<p>${i}</p>`.padEnd(100 + ((i * 7919) % 20_000), String.fromCharCode(97 + (i % 26)))
  await writeTree(join(p.dir, 'public'), files)
  const r = await p.cli('publish', '--json')
  t.equal(r.code, 0, r.stderr)
  const expected = await readTree(join(p.dir, 'public'))
  const pages = Object.fromEntries(Object.entries(expected).filter(([path]) => !path.startsWith('img/')))
  t.same(await readTree(p.root('cache1')), pages, 'cache1 holds every page exactly')
  t.same(await readTree(p.root('cache2')), pages, 'cache2 too')

  // Too few to stream: each file goes by itself, from the same shared reads.
  const changed: Record<string, string> = {}
  for (let i = 0; i < 700; i += 10) changed[`docs/${i % 7}/page-${i}.html`] = `<p>changed ${i}</p>`.padEnd(100 + ((i * 104_729) % 60_000), String.fromCharCode(65 + (i % 26)))
  await writeTree(join(p.dir, 'public'), changed)
  const again = await p.cli('publish', '--json')
  t.equal(again.code, 0, again.stderr)
  const now = Object.fromEntries(Object.entries(await readTree(join(p.dir, 'public'))).filter(([path]) => !path.startsWith('img/')))
  t.same(await readTree(p.root('cache1')), now, 'cache1 holds every changed page exactly')
  t.same(await readTree(p.root('cache2')), now, 'cache2 too')
})

t.test('an unknown host key is refused with its fingerprint; nothing is sent', async (t) => {
  const p = await sshProject(t)
  await fs.writeFile(p.slaves.cache1.knownHostsFile, '')
  const r = await p.cli('publish', '--target', 'cache1')
  t.equal(r.code, 1)
  t.match(r.stderr, /target cache1: host \[127\.0\.0\.1\]:\d+ is not in known_hosts/)
  t.match(r.stderr, /SHA256:[A-Za-z0-9+/]+/)
  t.same(await fs.readdir(p.root('cache1')), [], 'nothing written')
})

t.test('a big file changed a little is rebuilt on the slave from its old blocks (delta over SFTP)', async (t) => {
  const p = await sshProject(t)
  const video = Buffer.alloc(3_000_000)
  for (let i = 0, x = 7; i < video.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    video[i] = x >>> 24
  }
  await fs.writeFile(join(p.dir, 'public/video.mp4'), video)
  t.equal((await p.cli('publish')).code, 0)
  const changed = Buffer.concat([video.subarray(0, 1_500_000), Buffer.alloc(4096, 'x'), video.subarray(1_500_000)])
  await fs.writeFile(join(p.dir, 'public/video.mp4'), changed)
  // In the same publish, a page goes away: deletes and a delta side by side.
  await fs.rm(join(p.dir, 'public/about.html'))
  const r = await p.cli('publish', '--json')
  t.equal(r.code, 0, r.stderr)
  t.notOk(existsSync(join(p.root('cache1'), 'about.html')), 'the removed page is deleted on the slave')
  const reports = Object.fromEntries(JSON.parse(r.stdout).targets.map((o: {target: string; report: {deltas: number; bytes: number}}) => [o.target, o.report]))
  t.equal(reports.cache1.deltas, 1, 'sent as a delta')
  t.ok(reports.cache1.bytes < 100_000, `only about the inserted bytes went over the wire (${reports.cache1.bytes})`)
  t.ok((await fs.readFile(join(p.root('cache1'), 'video.mp4'))).equals(changed), 'the slave has exactly the new file')
  t.same((await fs.readdir(p.root('cache1'))).filter((n) => n.startsWith('.mirror-tmp')), [], 'no temporary file left')
})

t.test('a big manifest rewritten from its unchanged blocks stays exact over several publishes', async (t) => {
  const p = await sshProject(t)
  const pages: Record<string, string> = {}
  for (let i = 0; i < 1500; i++) pages[`archive/${i % 20}/page-${i}.html`] = `<p>${i}</p>`
  await writeTree(join(p.dir, 'public'), pages)
  t.equal((await p.cli('publish')).code, 0)
  for (const round of [1, 2, 3]) {
    await fs.writeFile(join(p.dir, `public/archive/${round}/page-${round}.html`), `<p>edited ${round}</p>`)
    await fs.rm(join(p.dir, `public/archive/${round + 10}/page-${round + 10}.html`))
    const r = await p.cli('publish', '--json', '--target', 'cache1')
    t.equal(r.code, 0, r.stderr)
    t.match(JSON.parse(r.stdout).targets[0].report, {sent: 1, deleted: 1})
  }
  // --verify lists the slave and trusts nothing: a damaged manifest would show as a warning or drift.
  const verify = await p.cli('publish', '--json', '--verify', '--target', 'cache1')
  const outcome = JSON.parse(verify.stdout).targets[0]
  t.equal(outcome.warnings, undefined, 'the manifest on the slave reads back with a good checksum')
  t.same([outcome.plan.actions.length, outcome.report.sent], [0, 0], 'and it matches the slave exactly')
})

t.test('a slave that allows only SFTP takes a first publish of many assets and pages: the streams fall back to one by one, nothing waits forever', async (t) => {
  const dir = tempDir('mirror-sftp-only-')
  const slave = await sshdFor(t, {alias: 'slave-sftp-only', extraConfig: ['ForceCommand internal-sftp']})
  // Enough small assets to be streamed (500 and more), and more pages than transfers at once.
  const files: Record<string, string> = {}
  for (let i = 0; i < 600; i++) files[`img/thumb-${i}.png`] = `thumb ${i}`
  for (let i = 0; i < 80; i++) files[`news/page-${i}.html`] = `<img src="/img/thumb-${i}.png"> ${i}`
  await writeTree(join(dir, 'public'), files)
  const root = join(dir, 'www')
  await fs.mkdir(root)
  await fs.writeFile(join(dir, 'mirror.config.yaml'), `source: ./public\nssh:\n  config: ${slave.sshConfigFile}\ntargets:\n  www: {url: "sftp://slave-sftp-only${root}", state: "${dir}/state", transfers: 16}\n`)
  const result = await runCli(['publish', '--json'], {cwd: dir, timeoutMs: 60_000})
  t.equal(result.code, 0, result.stderr)
  t.same(await readTree(root), files, 'every asset and page landed, byte for byte')
})

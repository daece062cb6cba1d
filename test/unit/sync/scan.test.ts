import {createHash} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {execFileSync} from 'node:child_process'

import {listWithFind} from '../../../src/sync/find-listing.js'
import {collectSource, hashSource, listSource, packEntries, scanSource, unpackEntries, walkSource, type Lister} from '../../../src/sync/scan.js'
import {tempDir, writeTree} from '../../helpers/site.js'

t.test('scan hashes files, honours exclude, and caches hashes by size and mtime', async (t) => {
  const dir = tempDir()
  await writeTree(join(dir, 'src'), {'a.html': 'abc', 'sub/b.css': 'x', '.git/config': 'secret', '.well-known/x': 'y'})
  const cacheFile = join(dir, 'cache.json')
  const first = await scanSource(join(dir, 'src'), {exclude: ['.git/**'], cacheFile})
  t.same(first.entries.map((e) => e.path), ['.well-known/x', 'a.html', 'sub/b.css'], 'dotfiles published, excluded ones not')
  t.equal(first.entries[1].hash, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.equal(first.hashed, 3)
  const second = await scanSource(join(dir, 'src'), {exclude: ['.git/**'], cacheFile})
  t.equal(second.hashed, 0, 'nothing read again')
  await fs.writeFile(join(dir, 'src/a.html'), 'abcd')
  const third = await scanSource(join(dir, 'src'), {exclude: ['.git/**'], cacheFile})
  t.equal(third.hashed, 1, 'only the changed file read')
  t.same([...third.previous!], [['a.html', first.entries[1].hash]], 'the version it replaced is known (a delta can start from it)')
  const touched = join(dir, 'src/sub/b.css')
  await fs.utimes(touched, new Date(), new Date(Date.now() - 60_000))
  const fourth = await scanSource(join(dir, 'src'), {exclude: ['.git/**'], cacheFile})
  t.equal(fourth.hashed, 1, 'a touched file is read again')
  t.same([...fourth.previous!], [], 'same content: no previous version to speak of')
})

t.test('before reading any file, the scan tells which paths it must read and which are gone (the slaves are probed for them meanwhile)', async (t) => {
  const dir = tempDir()
  const root = join(dir, 'src')
  await writeTree(root, {'same.html': 'same', 'edited.html': 'old', 'gone.html': 'bye', 'sub/kept.css': 'k'})
  const cacheFile = join(dir, 'cache')
  await scanSource(root, {exclude: [], cacheFile})
  await fs.writeFile(join(root, 'edited.html'), 'new text')
  await fs.writeFile(join(root, 'added.html'), 'hello')
  await fs.rm(join(root, 'gone.html'))
  const tree = await walkSource(root, {exclude: []})
  let told: string[] | undefined
  const scanned = await hashSource(tree, {
    root,
    cacheFile,
    onCandidates: (paths) => {
      told = [...paths].sort()
      // Same size, so the walk's numbers still stand: the hash shows whether it was read after this.
      writeFileSync(join(root, 'added.html'), 'HELLO')
    },
  })
  t.same(told, ['added.html', 'edited.html', 'gone.html'], 'the edited and the added file, and the one gone; not the unchanged')
  t.equal(scanned.hashed, 2)
  t.equal(scanned.entries.find((e) => e.path === 'added.html')!.hash, createHash('sha256').update('HELLO').digest('hex'), 'told before the file was read')

  let fresh: string[] | undefined
  await writeTree(join(dir, 'fresh'), {'a.txt': 'a', 'b/c.txt': 'c'})
  await hashSource(await walkSource(join(dir, 'fresh'), {exclude: []}), {root: join(dir, 'fresh'), cacheFile: join(dir, 'fresh-cache'), onCandidates: (paths) => (fresh = [...paths].sort())})
  t.same(fresh, ['a.txt', 'b/c.txt'], 'with no cache, every file')

  // A whole big tree read anew is not a change to look for on the slaves: nothing is told.
  const many: Record<string, string> = {}
  for (let i = 0; i < 1200; i++) many[`d${i % 10}/f${i}.html`] = `${i}`
  await writeTree(join(dir, 'many'), many)
  let manyTold: string[] | undefined
  const read = await hashSource(await walkSource(join(dir, 'many'), {exclude: []}), {root: join(dir, 'many'), onCandidates: (paths) => (manyTold = paths)})
  t.equal(read.hashed, 1200)
  t.equal(manyTold, undefined, '1,200 files read anew: not told')
})

t.test('hostile names are published faithfully; symlinks out of the tree are not followed', async (t) => {
  const dir = tempDir()
  const outside = tempDir()
  await fs.writeFile(join(outside, 'passwd'), 'root:x:0:0')
  await writeTree(join(dir, 'src'), {'new\nline.html': 'n', 'tab\there.txt': 't', 'quote\'s "x".html': 'q', 'real.txt': 'r'})
  await fs.symlink(join(outside, 'passwd'), join(dir, 'src/escape.txt'))
  await fs.symlink(outside, join(dir, 'src/escape-dir'))
  await fs.symlink('real.txt', join(dir, 'src/alias.txt'))
  await fs.symlink('/nonexistent', join(dir, 'src/dangling'))
  const result = await scanSource(join(dir, 'src'), {exclude: []})
  t.same(result.entries.map((e) => e.path).sort(), ['alias.txt', 'new\nline.html', 'quote\'s "x".html', 'real.txt', 'tab\there.txt'].sort())
  t.equal(result.entries.find((e) => e.path === 'alias.txt')?.hash, result.entries.find((e) => e.path === 'real.txt')?.hash, 'an in-tree link is published as its file')
  const printed = JSON.parse(JSON.stringify(result.entries)) as Array<{path: string; abs: string}>
  const real = await fs.realpath(join(dir, 'src/real.txt'))
  t.equal(printed.find((e) => e.path === 'alias.txt')?.abs, real, 'a link is sent from (and printed as) the file it points to')
  t.equal(printed.find((e) => e.path === 'new\nline.html')?.abs, join(dir, 'src', 'new\nline.html'), 'a file is sent from its place in the source')
  t.equal(result.entries.find((e) => e.path === 'real.txt')?.abs, join(dir, 'src/real.txt'))
  const warned = Object.fromEntries(result.warnings.map((w) => [w.path, w.message]))
  t.match(warned['escape.txt'], /outside the source tree/)
  t.match(warned['escape-dir'], /outside the source tree|directory/)
  t.match(warned['dangling'], /points to nothing/)
})

t.test('a missing source is a clear usage error', async (t) => {
  await t.rejects(scanSource('/nonexistent/public', {exclude: []}), {code: 'USAGE', message: /source \/nonexistent\/public does not exist/})
})

t.test('a name that is not valid UTF-8 is skipped with a warning, not a crash', async (t) => {
  const dir = tempDir()
  await writeTree(join(dir, 'src'), {'ok.html': 'ok'})
  await fs.writeFile(Buffer.concat([Buffer.from(join(dir, 'src') + '/'), Buffer.from([0x66, 0xff, 0x2e, 0x68])]), 'bad')
  const result = await scanSource(join(dir, 'src'), {exclude: []})
  t.same(result.entries.map((e) => e.path), ['ok.html'])
  t.match(result.warnings[0].message, /not valid UTF-8/)
})

t.test('excluded directories are not entered', async (t) => {
  const dir = tempDir()
  await writeTree(join(dir, 'src'), {'cache/a/b.html': 'x', 'keep/c.html': 'y', 'keep/x.swp': 'z'})
  const result = await scanSource(join(dir, 'src'), {exclude: ['cache/**', '**/*.swp']})
  t.same(result.entries.map((e) => e.path), ['keep/c.html'])
})

t.test('entries packed to cross threads come back the same: odd names, links, sizes, times, modes', async (t) => {
  const dir = tempDir()
  await writeTree(join(dir, 'src'), {'new\nline.html': 'n', 'ünï/日本.txt': 'u', 'real.txt': 'r', 'empty': ''})
  await fs.chmod(join(dir, 'src/real.txt'), 0o640)
  await fs.symlink('real.txt', join(dir, 'src/alias.txt'))
  const {entries} = await scanSource(join(dir, 'src'), {exclude: []})
  const packed = packEntries(entries, join(dir, 'src'))
  const back = unpackEntries(structuredClone(packed, {transfer: [packed.numbers.buffer as ArrayBuffer]}))
  t.same(JSON.parse(JSON.stringify(back)), JSON.parse(JSON.stringify(entries)), 'path, abs, size, mtimeMs, mode and hash of every entry')
  t.equal(back.find((e) => e.path === 'alias.txt')?.abs, await fs.realpath(join(dir, 'src/real.txt')), 'a link still sends the file it points to')
  t.same(unpackEntries(packEntries([], dir)), [], 'no entries')
})

const printers: Record<string, (src: string, exclude?: string[]) => Promise<string>> = {
  ...Object.fromEntries((['find', 'node'] as Lister[]).map((lister) => [`the walk by ${lister}`, async (src: string, exclude: string[] = []) => (await walkSource(src, {exclude, lister})).print])),
  'find\'s listing as it stands': async (src, exclude = []) => (await listSource(src, {exclude}))!.print,
}

for (const [printer, printOf] of Object.entries(printers)) t.test(`the tree's print (what a quick noop trusts) changes with any change a publish must see, and only then: ${printer}`, async (t) => {
  const dir = tempDir()
  const src = join(dir, 'src')
  await writeTree(src, {'a.html': 'abc', 'sub/b.css': 'x', 'real.txt': 'one', 'other.txt': 'two', 'cache/tmp.bin': 'excluded'})
  await fs.symlink('real.txt', join(src, 'alias.txt'))
  const print = () => printOf(src, ['cache/**'])
  const seen = new Set([await print()])
  t.equal(await print(), [...seen][0], 'an untouched tree prints the same')
  const changes: Array<[string, () => Promise<unknown>]> = [
    ['content and size', () => fs.writeFile(join(src, 'a.html'), 'abcd')],
    ['mtime alone', () => fs.utimes(join(src, 'sub/b.css'), new Date(), new Date(Date.now() - 60_000))],
    ['mode', () => fs.chmod(join(src, 'a.html'), 0o600)],
    ['a rename', () => fs.rename(join(src, 'sub/b.css'), join(src, 'sub/c.css'))],
    ['a new file', () => fs.writeFile(join(src, 'new.html'), '')],
    ['what a symlink points to', async () => {
      await fs.rm(join(src, 'alias.txt'))
      await fs.symlink('other.txt', join(src, 'alias.txt'))
    }],
    ['a deleted file', () => fs.rm(join(src, 'new.html'))],
    ['where a link leads, the link untouched', async () => {
      await fs.rm(join(src, 'real.txt'))
      await fs.writeFile(join(src, 'real.txt'), 'one!')
    }],
  ]
  for (const [what, change] of changes) {
    await change()
    const now = await print()
    t.notOk(seen.has(now), what)
    seen.add(now)
    t.equal(await print(), now, `${what}: stable once made`)
  }
  const before = await print()
  await fs.writeFile(join(src, 'cache/tmp.bin'), 'churn')
  await fs.writeFile(join(src, 'cache/more.bin'), 'more')
  t.equal(await print(), before, 'what an excluded directory holds does not count')
})

t.test('GNU find and Node\'s own walk find the same tree: files, numbers, warnings and print', async (t) => {
  const dir = tempDir()
  const outside = tempDir()
  const src = join(dir, 'src')
  await writeTree(src, {
    'index.html': 'home',
    'with space/and\nnewline.html': 'n',
    'deep/a/b/c/d.css': 'deep',
    'cache/big.bin': 'excluded dir',
    'notes.swp': 'excluded file',
    'sub/keep.swp.txt': 'kept',
    'ünïcode/日本.txt': 'u',
    'real.txt': 'r',
    'empty/.keep': '',
  })
  await fs.mkdir(join(src, 'empty-dir'))
  await fs.chmod(join(src, 'index.html'), 0o640)
  await fs.chmod(join(src, 'real.txt'), 0o4755)
  await fs.writeFile(join(outside, 'secret'), 's')
  await fs.symlink('real.txt', join(src, 'alias.txt'))
  await fs.symlink(join(outside, 'secret'), join(src, 'escape.txt'))
  await fs.symlink('/nonexistent', join(src, 'dangling'))
  await fs.symlink('deep', join(src, 'dir-link'))
  execFileSync('mkfifo', [join(src, 'pipe')])
  // A name that is not UTF-8 (Node cannot name it again to read it).
  await fs.writeFile(Buffer.concat([Buffer.from(`${src}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.html')]), 'x')
  const options = {exclude: ['cache/**', '**/*.swp']}
  if (!(await listWithFind(src))) throw new Error('GNU find gave no listing: this test needs it (findutils)')
  const byFind = await walkSource(src, {...options, lister: 'find'})
  const byNode = await walkSource(src, {...options, lister: 'node'})
  const sorted = <T extends {path: string}>(list: readonly T[]) => [...list].sort((a, b) => (a.path < b.path ? -1 : 1))
  t.same(byFind.files, byNode.files, 'the same files with the same size, mtime, inode, mode and source')
  t.same(sorted(byFind.warnings), sorted(byNode.warnings), 'the same warnings')
  t.equal(byFind.print, byNode.print, 'the same print')
  t.same(
    byFind.files.map((f) => f.path),
    ['alias.txt', 'deep/a/b/c/d.css', 'empty/.keep', 'index.html', 'real.txt', 'sub/keep.swp.txt', 'with space/and\nnewline.html', 'ünïcode/日本.txt'],
    'excludes applied, links into the tree kept',
  )
  t.same(
    sorted(byFind.warnings).map((w) => w.path),
    ['bad-\uFFFD\uFFFD.html', 'dangling', 'dir-link', 'escape.txt', 'pipe'],
    'a bad name, links out of the tree or to nothing or to a directory, a fifo: each named',
  )
  t.equal(byFind.files.find((f) => f.path === 'real.txt')?.mode, 0o104755, 'setuid bit and file type kept in the mode')
})

t.test('a listing that cannot be read to its end counts for nothing: Node walks the tree instead', async (t) => {
  const dir = tempDir()
  const src = join(dir, 'src')
  await writeTree(src, {'a.html': 'a', 'sub/b.css': 'b'})
  const listing = (await listWithFind(src))!
  // A good record first, then one find would never print.
  const output = Buffer.concat([listing.output.subarray(0, listing.output.indexOf(0) + 1), Buffer.from('f 1 1 644 -1.0 ghost.html\0')])
  const tree = await collectSource(src, {exclude: []}, {...listing, output})
  t.same(tree.files.map((f) => f.path), ['a.html', 'sub/b.css'], 'every file once, none of the listing\'s own')
  t.same(tree.warnings, [])
})

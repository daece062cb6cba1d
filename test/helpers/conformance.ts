// One conformance suite for every target kind (local directory, SFTP): each case checks one
// sentence of the Target interface's contract against a real slave root on this machine.

import {mkdtempSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {Test} from 'tap'

import {MirrorError} from '../../src/errors.js'
import type {LockOwner, Target} from '../../src/targets/target.js'

export interface ConformanceSetup {
  target: Target
  /** Local path of the target's root, to inspect what landed. */
  root: string
  /** Local path of the target's state directory. */
  stateDir: string
  /** A second, independent Target instance on the same slave root and state (for locking). */
  reopen(): Promise<Target>
  cleanup(): Promise<void>
}

function localFile(content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'mirror-src-'))
  const file = join(dir, 'f')
  writeFileSync(file, content)
  return file
}

const owner = (pid: number): LockOwner => ({host: 'master', user: 'tester', pid, since: new Date().toISOString(), command: 'publish'})

async function errorCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return undefined
  } catch (error) {
    return error instanceof MirrorError ? error.code : `not a MirrorError: ${String(error)}`
  }
}

export function runConformance(t: Test, kind: string, setup: () => Promise<ConformanceSetup>): void {
  const withTarget = (name: string, body: (t: Test, s: ConformanceSetup) => Promise<void>) =>
    t.test(`${kind}: ${name}`, async (t) => {
      const s = await setup()
      t.teardown(() => s.cleanup())
      await s.target.connect()
      await body(t, s)
    })

  withTarget('put writes the bytes, mode and mtime, creating parent directories', async (t, {target, root}) => {
    const mtimeMs = Date.UTC(2024, 0, 2, 3, 4, 5)
    await target.put(localFile('<h1>hello</h1>'), 'a/b/index.html', {mode: 0o640, mtimeMs})
    t.equal(await fs.readFile(join(root, 'a/b/index.html'), 'utf8'), '<h1>hello</h1>')
    const stat = await fs.stat(join(root, 'a/b/index.html'))
    t.equal(stat.mode & 0o777, 0o640, 'mode kept')
    t.equal(Math.floor(stat.mtimeMs / 1000) * 1000, mtimeMs, 'mtime kept')
    t.same(await fs.readdir(join(root, 'a/b')), ['index.html'], 'no temporary file left beside it')
  })

  withTarget('put replaces an existing file atomically', async (t, {target, root}) => {
    await fs.writeFile(join(root, 'page.html'), 'old')
    await target.put(localFile('new content'), 'page.html', {mode: 0o644, mtimeMs: Date.now()})
    t.equal(await fs.readFile(join(root, 'page.html'), 'utf8'), 'new content')
    t.same(await fs.readdir(root), ['page.html'])
  })

  withTarget('put handles names with spaces, quotes, unicode and newlines', async (t, {target, root}) => {
    const names = ["it's a \"file\".html", 'ünïcødé/日本.txt', 'line\nbreak.txt', 'back\\slash.txt']
    for (const name of names) await target.put(localFile(name), name, {mode: 0o644, mtimeMs: Date.now()})
    for (const name of names) t.equal(await fs.readFile(join(root, name), 'utf8'), name, name)
    const stats = await target.stat(names)
    for (const name of names) t.equal(stats.get(name)?.type, 'file', `stat ${JSON.stringify(name)}`)
  })

  withTarget('put never writes through a symlinked directory', async (t, {target, root}) => {
    const outside = mkdtempSync(join(tmpdir(), 'mirror-outside-'))
    await fs.symlink(outside, join(root, 'img'))
    t.equal(await errorCode(target.put(localFile('x'), 'img/evil.png', {mode: 0o644, mtimeMs: Date.now()})), 'UNSAFE_PATH')
    t.same(await fs.readdir(outside), [], 'nothing written outside the root')
  })

  withTarget('put never replaces a directory that stands where the file goes', async (t, {target, root}) => {
    await fs.mkdir(join(root, 'taken.html'))
    await fs.writeFile(join(root, 'taken.html', 'inside.txt'), 'the slave\'s own')
    t.equal(await errorCode(target.put(localFile('x'), 'taken.html', {mode: 0o644, mtimeMs: Date.now()})), 'UNSAFE_PATH')
    t.equal(await fs.readFile(join(root, 'taken.html', 'inside.txt'), 'utf8'), "the slave's own", 'the directory and its content stay')
    t.same(await fs.readdir(root), ['taken.html'], 'no temporary file left behind')
  })

  withTarget('put refuses paths that leave the root', async (t, {target}) => {
    for (const path of ['../escape.txt', '/etc/passwd', 'a/../../b', 'a//b', 'nul\0byte']) {
      t.equal(await errorCode(target.put(localFile('x'), path, {mode: 0o644, mtimeMs: Date.now()})), 'UNSAFE_PATH', JSON.stringify(path))
    }
  })

  withTarget('put does not replace a symlink target file, it replaces the link itself', async (t, {target, root}) => {
    const outside = mkdtempSync(join(tmpdir(), 'mirror-outside-'))
    await fs.writeFile(join(outside, 'secret'), 'keep me')
    await fs.symlink(join(outside, 'secret'), join(root, 'link.html'))
    await target.put(localFile('published'), 'link.html', {mode: 0o644, mtimeMs: Date.now()})
    t.equal(await fs.readFile(join(outside, 'secret'), 'utf8'), 'keep me', 'file outside untouched')
    t.equal(await fs.readFile(join(root, 'link.html'), 'utf8'), 'published')
    t.notOk((await fs.lstat(join(root, 'link.html'))).isSymbolicLink(), 'the link was replaced by a file')
  })

  withTarget('stat reports files, symlinks and missing paths without following links', async (t, {target, root}) => {
    await fs.mkdir(join(root, 'd'))
    await fs.writeFile(join(root, 'd/f.txt'), '12345')
    await fs.symlink('/etc', join(root, 'l'))
    const stats = await target.stat(['d/f.txt', 'l', 'missing', 'l/passwd', 'd/f.txt/x'])
    t.equal(stats.get('d/f.txt')?.type, 'file')
    t.equal(stats.get('d/f.txt')?.size, 5)
    t.equal(stats.get('l')?.type, 'symlink')
    t.equal(stats.get('missing'), null)
    t.equal(stats.get('d/f.txt/x'), null)
  })

  withTarget('stat of many paths at once', async (t, {target, root}) => {
    const paths = Array.from({length: 500}, (_, i) => `many/${i}.txt`)
    await fs.mkdir(join(root, 'many'))
    await Promise.all(paths.slice(0, 250).map((p) => fs.writeFile(join(root, p), p)))
    const stats = await target.stat(paths)
    t.equal([...stats.values()].filter(Boolean).length, 250)
    t.equal(stats.size, 500)
  })

  withTarget('list walks the tree, does not enter symlinks, and can prune', async (t, {target, root}) => {
    await fs.mkdir(join(root, 'a/b'), {recursive: true})
    await fs.mkdir(join(root, 'skip'))
    await fs.writeFile(join(root, 'a/b/c.txt'), 'c')
    await fs.writeFile(join(root, 'top.txt'), 't')
    await fs.writeFile(join(root, 'skip/x.txt'), 'x')
    await fs.symlink('/etc', join(root, 'etc-link'))
    const listing = await target.list((dir) => dir === 'skip')
    t.same([...listing.keys()].sort(), ['a/b/c.txt', 'etc-link', 'top.txt'])
    t.equal(listing.get('etc-link')?.type, 'symlink')
  })

  withTarget('hash is the SHA-256 of the content', async (t, {target, root}) => {
    await fs.writeFile(join(root, 'h.txt'), 'abc')
    t.equal(await target.hash('h.txt'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  withTarget('remove deletes a file, tolerates a missing one, and never follows a link', async (t, {target, root}) => {
    const outside = mkdtempSync(join(tmpdir(), 'mirror-outside-'))
    await fs.writeFile(join(outside, 'keep'), 'k')
    await fs.symlink(outside, join(root, 'dirlink'))
    await fs.writeFile(join(root, 'gone.txt'), 'g')
    await target.remove('gone.txt')
    await target.remove('never-was.txt')
    t.equal(await errorCode(target.remove('dirlink/keep')), 'UNSAFE_PATH')
    t.same(await fs.readdir(outside), ['keep'])
    t.same((await fs.readdir(root)).sort(), ['dirlink'])
  })

  withTarget('removeEmptyDir only removes empty directories', async (t, {target, root}) => {
    await fs.mkdir(join(root, 'empty'))
    await fs.mkdir(join(root, 'full'))
    await fs.writeFile(join(root, 'full/x'), 'x')
    t.equal(await target.removeEmptyDir('empty'), true)
    t.equal(await target.removeEmptyDir('full'), false)
    t.same((await fs.readdir(root)).sort(), ['full'])
  })

  withTarget('state lives outside the root and is written atomically', async (t, {target, root, stateDir}) => {
    t.equal(await target.readState('manifest.json'), null)
    const written = await target.writeState('manifest.json', Buffer.from('{"a":1}'))
    t.equal((await target.readState('manifest.json'))?.toString(), '{"a":1}')
    t.equal((await target.statState('manifest.json'))?.size, 7)
    t.same(written, await target.statState('manifest.json'), 'writeState resolves to the stat the target then reports')
    t.equal(await fs.readFile(join(stateDir, 'manifest.json'), 'utf8'), '{"a":1}')
    t.same(await fs.readdir(root), [], 'nothing of the state is in the web root')
  })

  withTarget('writeState takes bytes made on demand, and a short stream leaves the old file in place', async (t, {target, root, stateDir}) => {
    // Chunks of every kind of length: empty, small, and longer than one write request.
    const parts = [Buffer.from('{"rows":['), Buffer.alloc(0), Buffer.alloc(200_000, 'a'), Buffer.alloc(70_000, 'b'), Buffer.from(']}\n')]
    const whole = Buffer.concat(parts)
    let made = 0
    const written = await target.writeState('manifest.json', {
      size: whole.length,
      *chunks() {
        for (const part of parts) {
          made++
          yield part
        }
      },
    })
    t.equal(made, parts.length, 'each chunk is made once')
    t.ok((await target.readState('manifest.json'))?.equals(whole), 'the file holds the chunks in order')
    t.same(written, await target.statState('manifest.json'), 'writeState resolves to the stat the target then reports')

    const short = target.writeState('manifest.json', {size: whole.length + 1, chunks: () => parts})
    t.equal(await errorCode(short), 'INTERNAL', 'fewer bytes than announced is an error')
    const long = target.writeState('manifest.json', {size: 10, chunks: () => parts})
    t.equal(await errorCode(long), 'INTERNAL', 'more bytes than announced is an error')
    t.ok((await target.readState('manifest.json'))?.equals(whole), 'the old file is still whole')
    t.same(await fs.readdir(stateDir), ['manifest.json'], 'no temporary file is left')
    t.same(await fs.readdir(root), [], 'nothing of the state is in the web root')
  })

  withTarget('appendState adds to the end of a state file, creating it; removeState removes it', async (t, {target, root, stateDir}) => {
    await target.appendState('manifest.journal', Buffer.from('one\n'))
    await target.appendState('manifest.journal', Buffer.alloc(100_000, 'x'))
    await target.appendState('manifest.journal', Buffer.from('\nthree\n'))
    const text = await fs.readFile(join(stateDir, 'manifest.journal'), 'utf8')
    t.equal(text, `one\n${'x'.repeat(100_000)}\nthree\n`)
    await target.removeState('manifest.journal')
    t.equal(await target.statState('manifest.journal'), null)
    await t.resolves(target.removeState('manifest.journal'), 'removing what is not there is not an error')
    t.same(await fs.readdir(root), [], 'nothing of the state is in the web root')
  })

  withTarget('backup copies the slave file into the state', async (t, {target, root, stateDir}) => {
    await fs.mkdir(join(root, 'p'))
    await fs.writeFile(join(root, 'p/page.html'), 'customized')
    await target.backup('p/page.html', 'run-1')
    t.equal(await fs.readFile(join(stateDir, 'backups/run-1/p/page.html'), 'utf8'), 'customized')
    t.equal(await fs.readFile(join(root, 'p/page.html'), 'utf8'), 'customized', 'original left in place')
  })

  withTarget('lock is exclusive, names its holder, and can be broken', async (t, s) => {
    await s.target.lock(owner(111))
    const other = await s.reopen()
    await other.connect()
    try {
      await other.lock(owner(222))
      t.fail('second lock should be refused')
    } catch (error) {
      t.equal((error as MirrorError).code, 'LOCKED')
      t.match((error as MirrorError).message, /pid 111/, 'names the holder')
    }
    await other.lock(owner(222), true)
    await s.target.unlock()
    t.ok(await s.target.statState('lock'), 'unlock by a former holder leaves the new lock alone')
    await other.unlock()
    t.equal(await s.target.statState('lock'), null)
    await other.close()
  })
}

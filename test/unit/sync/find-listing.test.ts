import {lstatSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {listWithFind, parseListing} from '../../../src/sync/find-listing.js'
import {tempDir, writeTree} from '../../helpers/site.js'

const records = (...lines: string[]) => Buffer.from(lines.map((l) => `${l}\0`).join(''))

t.test('find\'s records read back as the numbers Node\'s lstat gives', async (t) => {
  const dir = tempDir()
  await writeTree(dir, {'a.html': 'abc', 'sub dir/b\nc.css': 'xy'})
  await fs.chmod(join(dir, 'a.html'), 0o600)
  await fs.symlink('a.html', join(dir, 'link'))
  const found = await listWithFind(dir)
  if (!found) throw new Error('GNU find gave no listing: this test needs it (findutils)')
  t.same(found.links, ['link'], 'the symlinks are named at once')
  t.equal(found.count, 4, 'every entry counted')
  const listing = parseListing(found.output)!
  t.same(listing.map((e) => e.path).sort(), ['a.html', 'link', 'sub dir', 'sub dir/b\nc.css'])
  for (const entry of listing.filter((e) => e.type === 'f')) {
    const stats = lstatSync(join(dir, entry.path))
    t.same({ino: entry.ino, size: entry.size, mode: entry.mode, mtimeMs: entry.mtimeMs}, {ino: stats.ino, size: stats.size, mode: stats.mode, mtimeMs: stats.mtimeMs}, entry.path)
  }
  t.equal(listing.find((e) => e.path === 'sub dir')?.type, 'd', 'a directory says so')
})

t.test('a listing is read exactly, or not at all', async (t) => {
  const [entry] = parseListing(records('f 12 3 644 1700000000.1234567890 a b\nc')) ?? []
  t.same(entry, {path: 'a b\nc', type: 'f', ino: 12, size: 3, mode: 0o100644, mtimeMs: 1700000000 * 1000 + 123456789 / 1e6}, 'spaces and newlines stay in the path')
  t.equal(parseListing(records('f 1 1 644 1700000000.5 x'))?.[0].mtimeMs, 1700000000500, 'a shorter fraction is padded')
  t.equal(parseListing(records('f 18446744073709551615 1 644 1.0 x'))?.[0].ino, 18446744073709551615, 'a 64-bit inode rounds as Node rounds it')
  t.same(parseListing(Buffer.alloc(0)), [], 'an empty tree')
  for (const [bad, what] of [
    ['f 1 1 644 -5.0 x', 'a time before 1970'],
    ['f 1 1 9a4 1.0 x', 'a mode that is not octal'],
    ['f x 1 644 1.0 y', 'an inode that is not a number'],
    ['f 1 1 644 1.0 ', 'no path'],
    ['f 1 1 644', 'a record cut short'],
  ]) {
    t.equal(parseListing(records(bad)), undefined, what)
  }
  t.equal(parseListing(Buffer.from('f 1 1 644 1.0 x')), undefined, 'a last record without its NUL')
})

t.test('a pruned directory is not listed, whatever its name holds', async (t) => {
  const dir = tempDir()
  await writeTree(dir, {'a.html': 'a', 'cache/x': 'x', 'c[a]che*/y': 'y', 'cache2/z': 'z'})
  const found = await listWithFind(dir, ['cache', 'c[a]che*'])
  t.same(parseListing(found!.output)!.map((e) => e.path).sort(), ['a.html', 'cache2', 'cache2/z'], 'glob characters in a name are only characters')
})

import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {tarEnd, tarHeader, tarMemberBytes, writeTarMember} from '../../../src/targets/ssh/tar.js'

t.test('the system tar extracts what the bulk upload writes: content, mode and mtime', async (t) => {
  const dir = t.testdir({out: {}})
  const files = [
    {name: 'f0', data: Buffer.from('hello\n'), mode: 0o640, mtime: 1_700_000_000},
    {name: 'f1', data: Buffer.alloc(0), mode: 0o600, mtime: 1_600_000_000},
    {name: 'f2', data: Buffer.alloc(1536, 7), mode: 0o755, mtime: 1_650_000_000},
  ]
  // Written in place into a buffer that held other bytes before, as a bulk stream reuses its buffers.
  const archive = Buffer.alloc(files.reduce((sum, f) => sum + tarMemberBytes(f.data.length), 0) + 1024, 0xaa)
  let at = 0
  for (const f of files) at += writeTarMember(archive, at, f.name, f.data, f.mode, f.mtime)
  tarEnd().copy(archive, at)
  const run = spawnSync('tar', ['-x', '-o', '-p', '-f', '-', '-C', join(dir, 'out')], {input: archive})
  t.equal(run.status, 0, run.stderr?.toString())
  for (const f of files) {
    const path = join(dir, 'out', f.name)
    t.ok((await fs.readFile(path)).equals(f.data), `${f.name}: content`)
    const stat = await fs.stat(path)
    t.equal(stat.mode & 0o7777, f.mode, `${f.name}: mode`)
    t.equal(Math.floor(stat.mtimeMs / 1000), f.mtime, `${f.name}: mtime`)
  }
})

t.test('only plain short names (never a path) go into a header', async (t) => {
  t.throws(() => tarHeader('../etc/passwd', 1, 0o644, 0))
  t.throws(() => tarHeader('a/b', 1, 0o644, 0))
  t.throws(() => tarHeader('line\nbreak', 1, 0o644, 0))
  t.throws(() => tarHeader('x'.repeat(101), 1, 0o644, 0))
  t.throws(() => tarHeader('naïve', 1, 0o644, 0))
})

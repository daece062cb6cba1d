// The built CLI's helper threads (the source walk, the delta thread) must never keep a
// process alive once its work is done: a publish that hangs after its report is a cron job
// that never ends. Runs the built modules, as bin/run.js does.

import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import t from 'tap'

import {projectDir} from '../helpers/cli.js'
import {tempDir, writeTree} from '../helpers/site.js'

const dist = (path: string) => JSON.stringify(join(projectDir, 'dist', path))

/** Runs `script` as a module file (not --eval: workers inherit the flags, and refuse that one). */
function runScript(script: string) {
  const file = join(tempDir(), 'script.mjs')
  writeFileSync(file, script)
  return spawnSync(process.execPath, [file], {encoding: 'utf8', timeout: 20_000})
}

t.test('the delta thread started ahead of use lets the process end', async (t) => {
  const run = runScript(`const {startDeltaThread} = await import(${dist('sync/delta-aside.js')}); startDeltaThread(); console.log('started')`)
  t.equal(run.status, 0, `exits by itself (signal ${run.signal}): ${run.stderr}`)
  t.match(run.stdout, /started/)
})

t.test('the walk\'s hashing thread, handed its tree or closed unused, lets the process end', async (t) => {
  const files: Record<string, string> = {}
  for (let i = 0; i < 300; i++) files[`d${i % 7}/sub${i % 3}/file-${i}.html`] = `page ${i}`
  const root = join(tempDir(), 'src')
  await writeTree(root, files)
  const walk = (scan: boolean) =>
    runScript(
      `const {walkAside} = await import(${dist('sync/walk-aside.js')});
       const walked = await walkAside(${JSON.stringify(root)}, {exclude: []});
       const out = {enough: walked.count >= 300};
       if (${scan}) {
         const scanned = await walked.scan({});
         Object.assign(out, {files: scanned.entries.length, hashed: scanned.hashed});
       } else walked.close();
       console.log(JSON.stringify(out))`,
    )
  const scanned = walk(true)
  t.equal(scanned.status, 0, `exits by itself (signal ${scanned.signal}): ${scanned.stderr}`)
  t.same(JSON.parse(scanned.stdout), {enough: true, files: 300, hashed: 300})
  const closed = walk(false)
  t.equal(closed.status, 0, `closed unused: exits by itself (signal ${closed.signal}): ${closed.stderr}`)
  t.same(JSON.parse(closed.stdout), {enough: true})
})

t.test('files hashed by two threads get the hashes one thread gives, and a file gone is named', async (t) => {
  const files: Record<string, Buffer> = {}
  // Sizes from empty to 4 MB (larger than the read buffer: read in parts), 80 MB in all, so
  // that the helper thread is up while files are still left to take.
  for (let i = 0; i < 200; i++) files[`f${i}.bin`] = Buffer.alloc((i * 7919) % 40_000, i)
  for (let i = 0; i < 20; i++) files[`big${i}.bin`] = Buffer.alloc(4 << 20, i)
  const root = join(tempDir(), 'src')
  await writeTree(root, files)
  const paths = Object.keys(files).map((name) => join(root, name))
  const expected = Object.values(files).map((data) => createHash('sha256').update(data).digest('hex'))
  const hashed = runScript(
    `const {hashFilesTogether} = await import(${dist('sync/hash-helper.js')});
     console.log(JSON.stringify(await hashFilesTogether(${JSON.stringify(paths)})))`,
  )
  t.equal(hashed.status, 0, `exits by itself (signal ${hashed.signal}): ${hashed.stderr}`)
  t.same(JSON.parse(hashed.stdout), expected, 'every hash is the file\'s SHA-256, in order')
  const gone = join(root, 'gone.bin')
  const failed = runScript(
    `const {hashFilesTogether} = await import(${dist('sync/hash-helper.js')});
     await hashFilesTogether(${JSON.stringify([...paths, gone])}).then(() => console.log('no error'), (error) => console.log(error.message))`,
  )
  t.equal(failed.status, 0, `exits by itself (signal ${failed.signal}): ${failed.stderr}`)
  t.match(failed.stdout, /ENOENT.*gone\.bin/, 'the missing file is named in the error')
})

// The built CLI's helper threads (the source walk, the delta thread) must never keep a
// process alive once its work is done: a publish that hangs after its report is a cron job
// that never ends. Runs the built modules, as bin/run.js does.

import {spawnSync} from 'node:child_process'
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

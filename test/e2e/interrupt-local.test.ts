// The master killed (SIGKILL) in the middle of a publish: the next publish resumes, does not
// send again what already landed, and leaves no temporary file behind.

import {spawn} from 'node:child_process'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {binRun, runCli} from '../helpers/cli.js'
import {readTree, tempDir} from '../helpers/site.js'

/** Files under their final names (temporary ones are not landed: the next publish removes them). */
async function countFiles(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, {recursive: true, withFileTypes: true}).catch(() => [])
  return entries.filter((e) => e.isFile() && !e.name.startsWith('.mirror-tmp-')).length
}

t.test('SIGKILL mid-publish, then publish again: complete, nothing re-sent, no temp files', async (t) => {
  const dir = tempDir('mirror-kill-')
  const files = 4000
  for (let d = 0; d < 40; d++) {
    await fs.mkdir(join(dir, 'public', `d${d}`), {recursive: true})
    await Promise.all(Array.from({length: files / 40}, (_, i) => fs.writeFile(join(dir, 'public', `d${d}`, `f${i}.html`), `page ${d}/${i} `.repeat(200))))
  }
  await fs.mkdir(join(dir, 'www'))
  await fs.writeFile(join(dir, 'mirror.config.yaml'), `source: ./public\ntargets:\n  www: file://${dir}/www\npublish:\n  transfers: 4\n`)

  const child = spawn(process.execPath, [binRun, 'publish'], {cwd: dir, stdio: 'ignore'})
  let landed = 0
  while (landed < 300) {
    await new Promise((r) => setTimeout(r, 20))
    landed = await countFiles(join(dir, 'www'))
    if (child.exitCode !== null) break
  }
  t.equal(child.exitCode, null, 'the publish was still running when killed')
  child.kill('SIGKILL')
  await new Promise((r) => child.once('close', r))
  const before = await countFiles(join(dir, 'www'))
  t.ok(before > 0 && before < files, `partly published (${before} of ${files})`)

  const r = await runCli(['publish', '--json'], {cwd: dir})
  t.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout).targets[0].report
  t.ok(report.sent <= files - before + 4, `only what had not landed was sent (${report.sent})`)
  t.ok(report.adopted >= before - 4, `what landed was adopted (${report.adopted})`)
  const tree = await readTree(join(dir, 'www'))
  t.equal(Object.keys(tree).length, files, 'every file there')
  t.same(Object.keys(tree).filter((p) => p.includes('.mirror-tmp-')), [], 'no temporary file left')
  t.equal(tree['d7/f3.html'], 'page 7/3 '.repeat(200))
})

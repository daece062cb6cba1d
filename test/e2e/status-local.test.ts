import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {sampleSite, tempDir, writeTree} from '../helpers/site.js'

t.test('status reports last publish and drift: customized, missing, slave-only, leftovers', async (t) => {
  const dir = tempDir('mirror-status-')
  await writeTree(join(dir, 'public'), sampleSite)
  await fs.mkdir(join(dir, 'www'))
  await fs.writeFile(join(dir, 'mirror.config.yaml'), `source: ./public\ntargets:\n  www: file://${dir}/www\n  gone: file://${dir}/nowhere\n`)
  const cli = (...args: string[]) => runCli(args, {cwd: dir})
  t.equal((await cli('publish', '--target', 'www')).code, 0)

  await fs.writeFile(join(dir, 'www/about.html'), 'edited on the slave')
  await fs.rm(join(dir, 'www/css/site.css'))
  await fs.writeFile(join(dir, 'www/local.txt'), 'mine')
  await fs.writeFile(join(dir, 'www/.mirror-tmp-0123456789-abcd'), 'half')

  const r = await cli('status', '--json')
  t.equal(r.code, 3, 'one target unreachable: partial')
  const {targets} = JSON.parse(r.stdout)
  const www = targets.find((s: {target: string}) => s.target === 'www')
  t.same(www.customized, ['about.html'])
  t.same(www.missing, ['css/site.css'])
  t.same(www.extra, ['local.txt'])
  t.same(www.leftovers, ['.mirror-tmp-0123456789-abcd'])
  t.equal(www.lastPublish.files, 6)
  const gone = targets.find((s: {target: string}) => s.target === 'gone')
  t.equal(gone.reachable, false)
  t.equal(gone.error.code, 'ROOT_MISSING')

  const text = await cli('status', '--target', 'www')
  t.match(text.stdout, /customized on the slave \(kept\): 1\n\s+about\.html/)

  // --verify repairs what is missing and cleans the leftover, and keeps the customization.
  const verify = await cli('publish', '--target', 'www', '--verify')
  t.equal(verify.code, 0, verify.stderr)
  t.match(verify.stdout, /\* repaired\s+css\/site\.css/)
  const after = JSON.parse((await cli('status', '--target', 'www', '--json', '--deep')).stdout).targets[0]
  t.same(after.missing, [])
  t.same(after.leftovers, [])
  t.same(after.customized, ['about.html'])
})

// A plain `mirror publish` that finds nothing to do is answered before oclif loads
// (src/cli/head-start.ts). What the user sees must not tell the two ways apart: the same
// output, the same JSON, the same exit code; and every flag that way does not read still goes
// through oclif.

import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {sampleSite, tempDir, writeTree} from '../helpers/site.js'

async function published() {
  const dir = tempDir('mirror-noop-')
  await writeTree(join(dir, 'public'), sampleSite)
  for (const s of ['www1', 'www2']) await fs.mkdir(join(dir, 'slaves', s), {recursive: true})
  await fs.writeFile(join(dir, 'mirror.config.yaml'), `source: ./public\ntargets:\n  www1: file://${dir}/slaves/www1\n  www2: file://${dir}/slaves/www2\n`)
  const cli = (...args: string[]) => runCli(args, {cwd: dir})
  const first = await cli('publish')
  if (first.code !== 0) throw new Error(first.stderr)
  return {dir, cli}
}

t.test('a clean noop reads the same whichever way it is answered', async (t) => {
  const {cli} = await published()
  // --force is not a plain flag: that run goes through oclif and the command.
  const [quick, full] = [await cli('publish'), await cli('publish', '--force')]
  t.equal(quick.code, 0, quick.stderr)
  t.equal(quick.stdout, full.stdout, 'the same plans and report')
  t.equal(quick.stderr, full.stderr)
  t.match(quick.stdout, /www1 .*\n {2}nothing to do · \d+ unchanged/)
  t.match(quick.stdout, /Report:\n {2}www1: ok {2}0 sent/)
  const [quickJson, fullJson] = [await cli('publish', '--json'), await cli('publish', '--json', '--force')]
  t.equal(quickJson.code, 0)
  t.same(JSON.parse(quickJson.stdout), JSON.parse(fullJson.stdout), 'the same JSON document')
  t.equal(JSON.parse(quickJson.stdout).ok, true)
  const one = await cli('publish', '--target', 'www2', '-v')
  t.equal(one.code, 0)
  t.notMatch(one.stdout, /www1/, 'only the named target')
  t.match(one.stdout, /www2: ok/)
})

t.test('flags the quick answer does not read still reach oclif, even with nothing to do', async (t) => {
  const {cli} = await published()
  const typo = await cli('publish', '--tagret', 'www1')
  t.equal(typo.code, 2, 'a usage error')
  t.match(typo.stderr, /Nonexistent flag: --tagret/)
  const help = await cli('publish', '--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /--dry-run/)
  const unknown = await cli('publish', '--target', 'nope')
  t.not(unknown.code, 0, 'an unknown target is an error')
  t.match(unknown.stderr, /nope/)
})

t.test('a change after a clean noop is published (the quick answer never hides one)', async (t) => {
  const {dir, cli} = await published()
  t.equal((await cli('publish')).code, 0)
  await fs.writeFile(join(dir, 'public/index.html'), '<html>changed</html>')
  const r = await cli('publish')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /> changed\s+index\.html/)
  t.equal(await fs.readFile(join(dir, 'slaves/www1/index.html'), 'utf8'), '<html>changed</html>')
})

t.test('a publish with changes reads the same run without oclif as through it', async (t) => {
  const [a, b] = [await published(), await published()]
  for (const {dir} of [a, b]) {
    await fs.writeFile(join(dir, 'public/index.html'), '<html>changed</html>')
    await fs.writeFile(join(dir, 'public/new.html'), '<html>new</html>')
  }
  // Paths, times and the files' mtimes differ between the two runs; nothing else may.
  const same = (text: string, dir: string) => text.replaceAll(dir, 'DIR').replace(/\d+(\.\d+)?\s?(ms|s)\b/g, 'T')
  const [plain, full] = [await a.cli('publish'), await b.cli('publish', '--force')]
  t.equal(plain.code, 0, plain.stderr)
  t.equal(same(plain.stdout, a.dir), same(full.stdout, b.dir), 'the same plans and report')
  t.equal(same(plain.stderr, a.dir), same(full.stderr, b.dir))
  t.match(plain.stdout, /> changed\s+index\.html/)
  t.equal(await fs.readFile(join(a.dir, 'slaves/www2/new.html'), 'utf8'), '<html>new</html>')
  for (const {dir} of [a, b]) await fs.writeFile(join(dir, 'public/index.html'), '<html>again</html>')
  const [plainJson, fullJson] = [await a.cli('publish', '--json'), await b.cli('publish', '--json', '--force')]
  t.equal(plainJson.code, 0)
  const doc = (text: string, dir: string) => JSON.parse(same(text, dir).replace(/"(durationMs|mtimeMs|startedAt|finishedAt|generation)":\s*("[^"]*"|\d+)/g, '"$1":0'))
  t.same(doc(plainJson.stdout, a.dir), doc(fullJson.stdout, b.dir), 'the same JSON document')
})

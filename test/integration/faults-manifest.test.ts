// A damaged, hand-edited or forged manifest on the slave, and a master-side copy that disagrees
// with the slave's: detected (checksum) and treated safely. With no trusted manifest the slave is
// planned as on a first publish, so nothing is deleted on the manifest's word and a customized
// file is a conflict, kept; the user is warned; the next publish rebuilds the manifest.

import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {assertManifestTruthful, faultProject, guardOutside, smallSite, type FaultProject} from '../helpers/faults.js'

async function published(t: Test): Promise<FaultProject> {
  const p = await faultProject(t, {slaves: ['www']})
  const first = await p.cli(['publish'])
  t.equal(first.code, 0, first.stderr)
  return p
}

const manifestFile = (p: FaultProject) => join(p.slaves.www.state, 'manifest.json')

/** The master's copy of the slave's manifest and the meta that vouches for it. */
async function masterCopy(p: FaultProject): Promise<{manifest: string; meta: string}> {
  const dir = join(p.dir, '.mirror/targets')
  const names = await fs.readdir(dir)
  const manifest = names.find((n) => n.endsWith('.manifest.json'))
  const meta = names.find((n) => n.endsWith('.meta.json'))
  if (!manifest || !meta) throw new Error(`no master-side copy in ${dir}: ${names.join(', ')}`)
  return {manifest: join(dir, manifest), meta: join(dir, meta)}
}

/** Since the last publish: a customization on the slave, a file of the slave's own, a file removed from the source. */
async function drift(p: FaultProject): Promise<void> {
  const root = p.slaves.www.root
  await fs.writeFile(join(root, 'about.html'), 'customized on the slave')
  await fs.writeFile(join(root, 'local.txt'), 'the slave\'s own')
  await fs.rm(join(p.source, 'css/site.css'))
}

async function assertSafe(t: Test, p: FaultProject): Promise<void> {
  const root = p.slaves.www.root
  t.equal(await fs.readFile(join(root, 'about.html'), 'utf8'), 'customized on the slave', 'the customization is kept')
  t.equal(await fs.readFile(join(root, 'local.txt'), 'utf8'), 'the slave\'s own', 'the slave\'s own file is untouched')
  t.equal(await fs.readFile(join(root, 'css/site.css'), 'utf8'), smallSite['css/site.css'], 'nothing deleted on the word of an untrusted manifest')
}

t.test('a garbled manifest on the slave: warned, nothing deleted on its word, customizations kept, rebuilt', async (t) => {
  const p = await published(t)
  const before = JSON.parse(await fs.readFile(manifestFile(p), 'utf8')) as {generation: number}
  await drift(p)
  const guard = await guardOutside(p)
  await fs.writeFile(manifestFile(p), '{"format":1,"files":{"index.html":["trunc')

  const status = await p.json(['status'])
  t.equal((status.out.targets[0] as unknown as {manifestDamaged: boolean}).manifestDamaged, true, 'status says the manifest is damaged')

  const text = await p.cli(['publish'])
  t.equal(text.code, 0, text.stderr)
  t.match(text.stderr, /warning: target www: the manifest on the slave is damaged \(not JSON\): nothing will be deleted on its word/)
  t.match(text.stdout, /! conflict\s+about\.html/, 'the customized file is a conflict, left alone')
  await assertSafe(t, p)

  const rebuilt = await assertManifestTruthful(t, p.slaves.www)
  t.equal(rebuilt?.complete, true, 'the publish rebuilt a valid manifest')
  const after = JSON.parse(await fs.readFile(manifestFile(p), 'utf8')) as {generation: number}
  t.ok(after.generation > before.generation, `its generation goes on from the master's copy (${before.generation} -> ${after.generation})`)
  const again = await p.json(['publish'])
  t.equal(again.code, 0, again.stderr)
  t.same(p.outcome(again.out, 'www').warnings, undefined, 'no warning once rebuilt')
  await assertSafe(t, p)
  await guard.check(t)
})

t.test('a hand-edited manifest (checksum no longer matches), then a forged one (valid checksum, paths out of the root): neither trusted', async (t) => {
  const p = await published(t)
  await drift(p)
  const guard = await guardOutside(p)
  // Someone "helps": drops a record and adds the slave's own file, as if mirror had published it.
  const edited = (await fs.readFile(manifestFile(p), 'utf8')).replace(/"about\.html":\[[^\]]*\],/, '').replace('"files":{', '"files":{"local.txt":["0000",1,0,420],')
  await fs.writeFile(manifestFile(p), edited)
  const r = await p.json(['publish'])
  t.equal(r.code, 0, r.stderr)
  const outcome = p.outcome(r.out, 'www')
  t.match(outcome.warnings, [{code: 'MANIFEST_CORRUPT', target: 'www', message: /checksum mismatch/}], 'the --json outcome carries the warning')
  t.same(outcome.report?.kept, [{path: 'about.html', reason: 'a different file is already on the slave'}])
  t.equal(outcome.report?.deleted, 0)
  await assertSafe(t, p)
  await assertManifestTruthful(t, p.slaves.www)

  // Forged with a correct checksum, naming a file outside the root (relative and absolute) that
  // the source does not have: trusted, it would be a delete outside the root.
  const head = JSON.parse(await fs.readFile(manifestFile(p), 'utf8')) as Record<string, unknown> & {files: Record<string, unknown>}
  const sentinel = join(p.slaves.www.outside, 'logo.png')
  const row = [createHash('sha256').update('OUTSIDE logo').digest('hex'), 12, 0, 420]
  const files = JSON.stringify({...head.files, '../outside/logo.png': row, [sentinel]: row})
  const {files: _files, checksum: _checksum, ...rest} = head
  await fs.writeFile(manifestFile(p), `${JSON.stringify({...rest, checksum: createHash('sha256').update(files).digest('hex')}).slice(0, -1)},"files":${files}}\n`)
  const forged = await p.json(['publish'])
  t.equal(forged.code, 0, forged.stderr)
  const o = p.outcome(forged.out, 'www')
  t.match(o.warnings, [{code: 'MANIFEST_CORRUPT', message: /unsafe path "\.\.\/outside\/logo\.png"/}], 'a manifest naming such paths is not trusted')
  t.equal(o.report?.deleted, 0)
  t.equal(await fs.readFile(sentinel, 'utf8'), 'OUTSIDE logo', 'nothing outside the root deleted')
  await assertSafe(t, p)
  await assertManifestTruthful(t, p.slaves.www)
  await guard.check(t, {source: false})
})

t.test("the master's copy of the manifest damaged, or stale: the slave's is used, nothing lost", async (t) => {
  const p = await published(t)
  const root = p.slaves.www.root
  const copy = await masterCopy(p)
  // Kept for later: a copy that lists about.html, as a .mirror restored from a backup would.
  const stale = {manifest: await fs.readFile(copy.manifest), meta: await fs.readFile(copy.meta)}

  // Damaged copy, meta still vouching for it: its checksum gives it away; the slave's is read.
  await fs.writeFile(copy.manifest, (await fs.readFile(copy.manifest, 'utf8')).replace('index.html', 'index.htm!'))
  await fs.rm(join(p.source, 'about.html'))
  const r = await p.json(['publish'])
  t.equal(r.code, 0, r.stderr)
  t.equal(p.outcome(r.out, 'www').report?.deleted, 1, "the slave's manifest was used: the removed page is deleted")
  t.notOk(existsSync(join(root, 'about.html')))
  t.same(p.outcome(r.out, 'www').warnings, undefined, "the slave's manifest is fine: no warning")

  // The stale copy back: the slave's manifest changed since, so the copy is not used, and a
  // file the slave's admin has since put there under that name is not deleted on its word.
  await fs.writeFile(join(root, 'about.html'), '<html>about</html>')
  await fs.writeFile(join(p.source, 'news.html'), 'news')
  await fs.writeFile(copy.manifest, stale.manifest)
  await fs.writeFile(copy.meta, stale.meta)
  const r2 = await p.json(['publish'])
  t.equal(r2.code, 0, r2.stderr)
  t.equal(p.outcome(r2.out, 'www').report?.deleted, 0)
  t.equal(await fs.readFile(join(root, 'about.html'), 'utf8'), '<html>about</html>', "the slave's own file survives")
  await assertManifestTruthful(t, p.slaves.www)
})

import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import type {Config} from '../../src/config/load.js'
import {parseConfig} from '../../src/config/validate.js'
import {renderSite} from '../../src/render/index.js'
import {GENERATED_META, listSnapshot, startOrigin, type Origin} from '../helpers/origin.js'
import {tempDir} from '../helpers/site.js'

function configFor(origin: Origin, dir: string, volatile = true): Config {
  const yaml = `source: site
targets:
  www: file://${dir}/www
render:
  origin: ${origin.url}
${volatile ? `  volatile: ['${GENERATED_META}']\n` : ''}`
  return parseConfig(yaml, join(dir, 'mirror.config.yaml'))
}

/** Files whose bytes or mtime differ between two listings, plus those added or gone. */
function changed(before: Record<string, {mtimeMs: number; sha: string}>, after: Record<string, {mtimeMs: number; sha: string}>): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)])
  return [...names].filter((n) => before[n]?.mtimeMs !== after[n]?.mtimeMs || before[n]?.sha !== after[n]?.sha).sort()
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20))

t.test('a second render of an unchanged site rewrites nothing and asks conditionally', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-inc-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  await tick()
  const requestsBefore = origin.requests.length
  const report = await renderSite(config)
  const after = await listSnapshot(join(dir, 'site'))
  t.same(changed(before, after), [], 'every file keeps its bytes and its mtime')
  t.same(report.files.written, [])
  t.same(report.files.removed, [])
  t.equal(report.files.unchanged, Object.keys(after).length)
  t.ok(report.notModified > 40, `the origin answered 304 for unchanged pages and files (${report.notModified})`)
  t.equal(origin.requests.length - requestsBefore, report.requests, 'the report counts the requests made')
})

t.test('without the volatile pattern, a generated timestamp makes the page look changed', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-inc-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir, false)
  await renderSite(config)
  await tick()
  const report = await renderSite(config)
  t.same(report.files.written, ['index.html'], 'the home page, sent without validators, differs by its timestamp only')
})

t.test('a changed page changes only its file; a changed image only its file, and the report says which pages use it', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-inc-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  await tick()

  origin.edit('/about', 'We moved to a new office.')
  const report = await renderSite(config)
  const after = await listSnapshot(join(dir, 'site'))
  t.same(changed(before, after), ['about.html'])
  t.same(report.files.written, ['about.html'])
  t.match(await fs.readFile(join(dir, 'site/about.html'), 'utf8'), 'We moved to a new office.')
  await tick()

  origin.edit('/img/logo.png', 'new logo')
  const second = await renderSite(config)
  t.same(second.files.written, ['img/logo.png'])
  t.same(changed(after, await listSnapshot(join(dir, 'site'))), ['img/logo.png'])
  t.ok(second.embeds['img/logo.png'].includes('index.html'), 'the report names the pages a changed image affects')
  t.ok(second.embeds['img/logo.png'].includes('about.html'), 'including pages that use it through the stylesheet')
})

t.test('a page gone from the origin leaves the snapshot; a page failing for a moment keeps its last copy', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-inc-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  await tick()

  origin.setStatus('/orphan', 410)
  origin.setStatus('/about', 503)
  const report = await renderSite(config)
  t.same(report.files.removed, ['orphan.html'])
  t.notOk(existsSync(join(dir, 'site/orphan.html')), 'a page the origin no longer has is deleted from the snapshot')
  t.match(report.errors, [{url: '/about', status: 503, kept: 'about.html'}], 'a server error is reported, and the previous copy kept')
  t.ok(report.errors.find((e) => e.url === '/about')?.linkedFrom.includes('/'))
  const after = await listSnapshot(join(dir, 'site'))
  t.same(after['about.html'], before['about.html'], 'the kept copy has its old bytes and mtime')
  t.same(changed(before, after), ['orphan.html'])
})

import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import type {Config} from '../../src/config/load.js'
import {parseConfig} from '../../src/config/validate.js'
import {renderSite} from '../../src/render/index.js'
import {GENERATED_META, listSnapshot, startOrigin, type Origin} from '../helpers/origin.js'
import {tempDir} from '../helpers/site.js'

function configFor(origin: Origin | string, dir: string, extra = ''): Config {
  const yaml = `source: site
targets:
  www: file://${dir}/www
render:
  origin: ${typeof origin === 'string' ? origin : origin.url}
  volatile: ['${GENERATED_META}']
  retries: 1
${extra}`
  return parseConfig(yaml, join(dir, 'mirror.config.yaml'))
}

/** Nothing of a failed render may be left beside the snapshot either. */
async function leftovers(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.includes('.render-') || n.includes('.previous-'))
}

t.test('an entry answering 500 fails the render and leaves the previous snapshot untouched', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  origin.edit('/about', 'changed, but must not land')
  origin.setStatus('/', 500)
  await t.rejects(renderSite(config), {code: 'RENDER_FAILED', message: /entry \/ answered HTTP 500; the snapshot was left as it was/})
  t.same(await listSnapshot(join(dir, 'site')), before, 'every file as it was, bytes and mtimes')
  t.same(await leftovers(dir), [])
})

t.test('an origin that goes down mid-crawl fails the render; the previous snapshot stays', async (t) => {
  const origin = await startOrigin({posts: 40})
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  origin.edit('/about', 'changed, but must not land')
  origin.dieAfter(25)
  await t.rejects(renderSite(config), {code: 'RENDER_FAILED', retryable: true, message: /stopped answering during the render/})
  t.same(await listSnapshot(join(dir, 'site')), before)
  t.same(await leftovers(dir), [])
})

t.test('a first render that fails creates no snapshot at all', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  origin.setStatus('/', 503)
  await t.rejects(renderSite(configFor(origin, dir)), {code: 'RENDER_FAILED'})
  t.notOk(existsSync(join(dir, 'site')))
  t.same(await leftovers(dir), [])
})

t.test('an origin that is not running is said plainly', async (t) => {
  const origin = await startOrigin()
  const url = origin.url
  await origin.close()
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await t.rejects(renderSite(configFor(url, dir)), {code: 'RENDER_FAILED', message: new RegExp(`cannot reach the origin ${url}`), suggestion: /origin is running/})
  t.notOk(existsSync(join(dir, 'site')))
})

t.test('an interrupted render stops at once and changes nothing', async (t) => {
  const origin = await startOrigin({posts: 60, latencyMs: 20})
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  const full = await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  origin.edit('/about', 'changed, but must not land')
  const controller = new AbortController()
  const started = origin.requests.length
  const watch = setInterval(() => {
    if (origin.requests.length - started > 10) controller.abort()
  }, 2)
  t.teardown(() => clearInterval(watch))
  await t.rejects(renderSite(config, {signal: controller.signal}), {code: 'INTERRUPTED', message: /the snapshot was left as it was/})
  const sent = origin.requests.length - started
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(origin.requests.length - started, sent, 'no request is sent after the render gave up')
  t.ok(sent < full.requests / 2, `it stopped early (${sent} of ${full.requests} requests)`)
  t.same(await listSnapshot(join(dir, 'site')), before)
  t.same(await leftovers(dir), [])
})

t.test('a source holding files a render did not write is refused, not replaced', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await fs.mkdir(join(dir, 'site'))
  await fs.writeFile(join(dir, 'site/hand-made.html'), 'mine')
  await t.rejects(renderSite(configFor(origin, dir)), {code: 'RENDER_FAILED', message: /holds files that mirror render did not write/, suggestion: /Move those files/})
  t.equal(await fs.readFile(join(dir, 'site/hand-made.html'), 'utf8'), 'mine')
  t.equal(origin.requests.length, 0, 'the origin was not even asked')
})

t.test('one render at a time per snapshot', async (t) => {
  const origin = await startOrigin({latencyMs: 20})
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  const first = renderSite(config)
  await new Promise((resolve) => setTimeout(resolve, 50))
  await t.rejects(renderSite(config), {code: 'LOCKED', message: /another render \(pid \d+/})
  const report = await first
  t.ok(report.pages > 10, 'the first render finished undisturbed')
  await t.resolves(renderSite(config), 'the lock is released when a render ends')
})

t.test('a render that died between its two renames is repaired by the next one', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-fail-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const config = configFor(origin, dir)
  await renderSite(config)
  const before = await listSnapshot(join(dir, 'site'))
  // As if a render moved the snapshot aside and was killed before moving the new one in.
  await fs.rename(join(dir, 'site'), join(dir, '.site.previous-deadbeef'))
  await fs.mkdir(join(dir, '.site.render-cafebabe'))
  const report = await renderSite(config)
  t.same(report.files.written, [], 'the old snapshot was found again, so nothing looks changed')
  t.same(await listSnapshot(join(dir, 'site')), before)
  t.same(await leftovers(dir), [])
})

// `mirror watch --render` against a real HTTP origin (the test site of test/helpers/origin.ts):
// the first render is published, and an edit on the origin is rendered and published when the
// local hook is POSTed to, as one batch.

import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {parseConfig} from '../../src/config/validate.js'
import type {WatchEvent} from '../../src/watch/events.js'
import {startWatch} from '../../src/watch/run-watch.js'
import {GENERATED_META, startOrigin} from '../helpers/origin.js'
import {readTree, tempDir} from '../helpers/site.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check: () => Promise<boolean> | boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await Promise.resolve().then(check).catch(() => false)) return true
    await sleep(50)
  }
  return Promise.resolve().then(check).catch(() => false)
}

t.test('renders at start and on the hook, and publishes what changed', async (t) => {
  const origin = await startOrigin({posts: 3})
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-watch-render-')
  await fs.mkdir(join(dir, 'www'))
  const config = parseConfig(
    `source: site
targets:
  www: file://${dir}/www
render:
  origin: ${origin.url}
  volatile: ['${GENERATED_META}']
watch:
  debounce: 60
`,
    join(dir, 'mirror.config.yaml'),
  )
  const events: WatchEvent[] = []
  const session = await startWatch(config, {render: {intervalMs: 3_600_000, hookPort: 0}, reconcileMs: 0, rootCheckMs: 100, onEvent: (e) => events.push(e)})
  t.teardown(() => session.stop())
  const watching = events.find((e) => e.event === 'watching')
  t.match(watching, {renderHook: /^http:\/\/127\.0\.0\.1:\d+\/render$/}, 'the hook is on loopback')

  t.ok(await until(() => events.some((e) => e.event === 'render' && e.ok)), 'the first render ran')
  const site = async () => JSON.stringify(await readTree(join(dir, 'site')))
  t.ok(await until(async () => (await site()) === JSON.stringify(await readTree(join(dir, 'www')))), 'and was published')
  await session.whenIdle()

  origin.edit('/about', 'About us, edited on the origin')
  const before = events.length
  const hook = (watching as {renderHook: string}).renderHook
  const answer = await fetch(hook, {method: 'POST'})
  t.equal(answer.status, 202, 'the hook accepts the request')
  t.ok(await until(() => events.slice(before).some((e) => e.event === 'render' && e.ok)), 'a render ran')
  t.ok(await until(async () => (await fs.readFile(join(dir, 'www/about.html'), 'utf8').catch(() => '')).includes('edited on the origin')), 'the edit reached the slave')
  await session.whenIdle()
  const published = events.slice(before).filter((e): e is Extract<WatchEvent, {event: 'batch'}> => e.event === 'batch' && e.changed > 0)
  t.equal(published.length, 1, 'one publish for the render')
  t.ok(published[0].paths.includes('about.html'))
  t.ok(published[0].changed < 5, `only what changed was sent (${published[0].paths.join(', ')})`)

  const wrong = await fetch(hook.replace('/render', '/nope'))
  t.equal(wrong.status, 404)
})

t.test('without a render block, --render is refused', async (t) => {
  const dir = tempDir('mirror-watch-render-')
  await fs.mkdir(join(dir, 'site'))
  const config = parseConfig(`source: site\ntargets:\n  www: file://${dir}/www\n`, join(dir, 'mirror.config.yaml'))
  await t.rejects(startWatch(config, {render: {intervalMs: 1000}, onEvent: () => {}}), {code: 'USAGE', message: /--render needs a "render" block/})
})

// The executor's order on a real local target: pages travel while their assets do, but take
// their final names only after them; a publish stopped meanwhile lands no page and leaves no
// temporary file. The target is mirror's own LocalTarget with a slow asset, nothing faked below.

import {existsSync, mkdirSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import t from 'tap'

import {loadConfig} from '../../../src/config/load.js'
import {publish} from '../../../src/sync/publish.js'
import {LocalTarget} from '../../../src/targets/local-target.js'
import type {PutOptions} from '../../../src/targets/target.js'
import {readTree, tempDir, writeTree} from '../../helpers/site.js'

const ASSET = 'img/photo.jpg'
const PAGE = 'index.html'

/** A local target whose asset waits (up to 5 s) for the page's temporary file before it goes. */
class SlowAssetTarget extends LocalTarget {
  pageTravelled = false
  pageLandedBeforeAsset = false
  onAssetLanding = () => {}

  override async put(localPath: string, path: string, options: PutOptions): Promise<void> {
    if (path !== ASSET) return super.put(localPath, path, options)
    const root = (this as unknown as {root: string}).root
    for (let waited = 0; waited < 5000 && !this.pageTravelled; waited += 10) {
      this.pageTravelled = readdirSync(root).some((name) => name.startsWith('.mirror-tmp-'))
      if (!this.pageTravelled) await sleep(10)
    }
    this.onAssetLanding()
    await super.put(localPath, path, options)
    this.pageLandedBeforeAsset = existsSync(join(root, PAGE))
  }
}

async function setUp() {
  const dir = tempDir('mirror-executor-')
  const source = join(dir, 'public')
  const slave = join(dir, 'slave')
  await writeTree(source, {[PAGE]: `<img src="/${ASSET}">`, [ASSET]: 'jpeg bytes'})
  mkdirSync(slave)
  writeFileSync(join(dir, 'mirror.config.yaml'), `source: ./public\nstate: ./state\ntargets:\n  www: {url: "file://${slave}", state: "${join(dir, 'slave-state')}"}\n`)
  const config = await loadConfig({cwd: dir})
  const target = new SlowAssetTarget(config.targets[0])
  await target.connect()
  return {config, target, slave}
}

t.test('a page is written while its asset is on the way, and gets its final name only after the asset landed', async (t) => {
  const {config, target, slave} = await setUp()
  const result = await publish(config, {openTargets: new Map([['www', target]])})
  t.equal(result.targets[0].error, undefined)
  t.ok(target.pageTravelled, 'the page was on the slave under its temporary name before the asset landed')
  t.notOk(target.pageLandedBeforeAsset, 'the page was not under its final name when the asset landed')
  t.same(Object.keys(await readTree(slave)).sort(), [ASSET, PAGE])
})

t.test('a publish stopped while the assets are on the way lands no page and leaves no temporary file', async (t) => {
  const {config, target, slave} = await setUp()
  const stop = new AbortController()
  target.onAssetLanding = () => stop.abort()
  const result = await publish(config, {openTargets: new Map([['www', target]]), signal: stop.signal})
  const report = result.targets[0].report!
  t.equal(result.targets[0].error?.code, 'INTERRUPTED')
  t.same(report.failed, [], 'the page held back is not reported as failed: it was never sent')
  t.same(Object.keys(await readTree(slave)), [ASSET], 'the asset landed, the page did not')
  t.same(readdirSync(slave).filter((name) => name.startsWith('.mirror-tmp-')), [], 'no temporary file is left')
})

// End to end through bin/run.js: `mirror render` against a real origin on loopback, as a user
// runs it: exit codes, the --json report, the text summary and stderr wording.

import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {GENERATED_META, startOrigin, type Origin} from '../helpers/origin.js'
import {tempDir} from '../helpers/site.js'

async function project(origin: Origin | undefined, render = true) {
  const dir = tempDir('mirror-e2e-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const block = render && origin ? `render:\n  origin: ${origin.url}\n  volatile: ['${GENERATED_META}']\n  retries: 0\n` : ''
  await fs.writeFile(join(dir, 'mirror.config.yaml'), `source: ./site\ntargets:\n  www: file://${dir}/www\n${block}`)
  return {dir, cli: (...args: string[]) => runCli(args, {cwd: dir})}
}

t.test('render --json prints the report and saves the snapshot', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const p = await project(origin)
  const r = await p.cli('render', '--json')
  t.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout)
  t.match(report, {ok: true, origin: origin.url, source: join(p.dir, 'site')})
  t.ok(report.pages > 20)
  t.ok(report.files.written.includes('index.html'))
  t.same(report.broken, [{url: '/missing', status: 404, linkedFrom: ['/']}])
  t.ok(existsSync(join(p.dir, 'site/index.html')))
  t.equal(r.stderr, '', 'no progress bar outside a terminal')

  const again = await p.cli('render', '--json')
  t.same(JSON.parse(again.stdout).files.written, [], 'an unchanged site rewrites nothing')
})

t.test('render prints a summary a person can act on', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const p = await project(origin)
  const r = await p.cli('render')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, new RegExp(`^Rendered ${origin.url} into ${p.dir}/site in `))
  t.match(r.stdout, /Broken links \(1\):\n {2}\/missing: HTTP 404 \(linked from \/\)/)
  t.match(r.stdout, /Errors \(1\):\n {2}\/broken: HTTP 500 \(linked from \/\)/)
  t.match(r.stdout, /Redirect map for nginx: \.mirror-redirects\.map/)
  const limited = await p.cli('render', '--max-pages', '5')
  t.equal(limited.code, 0, limited.stderr)
  t.match(limited.stdout, /Cut off by limits \(\d+\):\n {2}\S+: beyond render\.maxPages/, '--max-pages cuts the crawl and says so')
})

t.test('a failed render exits 1, says why, and leaves the snapshot', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const p = await project(origin)
  t.equal((await p.cli('render')).code, 0)
  const index = await fs.readFile(join(p.dir, 'site/index.html'), 'utf8')
  origin.setStatus('/', 500)
  const r = await p.cli('render')
  t.equal(r.code, 1)
  t.match(r.stderr, 'mirror: entry / answered HTTP 500; the snapshot was left as it was\n  Fix the page on the origin')
  t.equal(await fs.readFile(join(p.dir, 'site/index.html'), 'utf8'), index)
  const json = await p.cli('render', '--json')
  t.equal(json.code, 1)
  t.match(JSON.parse(json.stdout), {ok: false, error: {code: 'RENDER_FAILED'}})
})

t.test('render without a render block is a usage error', async (t) => {
  const p = await project(undefined, false)
  const r = await p.cli('render')
  t.equal(r.code, 2)
  t.match(r.stderr, 'mirror: the config has no "render" block')
})

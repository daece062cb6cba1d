// `mirror watch` through bin/run.js, as a supervisor or a user at a terminal runs it: one JSON
// object per line with --json, one line per batch without; SIGTERM / Ctrl-C exit 0 with nothing
// half-written; a watch killed with SIGKILL is restarted and finishes the job.

import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {binRun} from '../helpers/cli.js'
import {readTree, sampleSite, tempDir, writeTree} from '../helpers/site.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check: () => Promise<boolean> | boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await Promise.resolve().then(check).catch(() => false)) return true
    await sleep(25)
  }
  return Promise.resolve().then(check).catch(() => false)
}

async function project() {
  const dir = tempDir('mirror-e2e-watch-')
  await writeTree(join(dir, 'public'), sampleSite)
  for (const s of ['img', 'www']) await fs.mkdir(join(dir, 'slaves', s), {recursive: true})
  await fs.writeFile(
    join(dir, 'mirror.config.yaml'),
    `source: ./public
targets:
  img: file://${dir}/slaves/img
  www: file://${dir}/slaves/www
segments:
  - name: images
    match: ["**/*.{png,jpg}"]
    targets: [img]
  - name: pages
    match: ["**"]
    targets: [www]
watch:
  debounce: 80
`,
  )
  const pagesMatch = async () => {
    const source = Object.entries(await readTree(join(dir, 'public'))).filter(([k]) => !/\.(png|jpg)$/.test(k))
    return JSON.stringify(await readTree(join(dir, 'slaves/www'))) === JSON.stringify(Object.fromEntries(source))
  }
  return {dir, src: (p: string) => join(dir, 'public', p), www: (p: string) => join(dir, 'slaves/www', p), pagesMatch}
}

interface Running {
  child: ChildProcessWithoutNullStreams
  stdout: () => string
  stderr: () => string
  lines: () => string[]
  exit: Promise<number | null>
}

function start(t: Test, cwd: string, args: string[]): Running {
  const child = spawn(process.execPath, [binRun, 'watch', ...args], {cwd, env: {...process.env, NO_COLOR: '1'}})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return {child, stdout: () => stdout, stderr: () => stderr, lines: () => stdout.split('\n').filter(Boolean), exit}
}

const events = (r: Running) => r.lines().map((line) => JSON.parse(line) as {event: string; time: string; [k: string]: unknown})

t.test('--json: one JSON object per event and line; SIGTERM exits 0 leaving nothing half-done', async (t) => {
  const p = await project()
  const r = start(t, p.dir, ['--json'])
  t.ok(await until(() => events(r).some((e) => e.event === 'batch' && e.kind === 'initial')), 'the initial publish is reported')
  t.ok(await p.pagesMatch(), 'and the pages are on the slave')

  await fs.writeFile(p.src('index.html'), '<html>from watch</html>')
  // On a slow machine the start-up's second pass (catch-up) may be the batch that carries it.
  const carried = () => events(r).find((e) => e.event === 'batch' && e.kind !== 'initial' && (e.paths as string[]).includes('index.html'))
  t.ok(await until(() => Boolean(carried())), 'a batch for the edit')
  t.match(carried(), {kind: /^(changes|catch-up)$/, paths: ['index.html'], changed: 1, ok: true})
  // A catch-up publishes to every target; the edit may still be pending after it (it came in
  // while that publish ran), for the next batch to confirm.
  t.match((carried()?.targets as Array<{target: string}>).find((o) => o.target === 'www'), {ok: true, sent: 1})
  t.type(carried()?.durationMs, 'number')
  t.equal(await fs.readFile(p.www('index.html'), 'utf8'), '<html>from watch</html>')
  // Stopped only once the edit no longer waits for www: after a catch-up, the batch that confirms it.
  const wwwPending = () => {
    const lastForWww = events(r)
      .filter((e) => e.event === 'batch')
      .map((e) => (e.targets as Array<{target: string; pending: number}>).find((o) => o.target === 'www'))
      .filter(Boolean)
      .at(-1)
    return lastForWww?.pending
  }
  t.ok(await until(() => wwwPending() === 0), 'nothing waits for www')

  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'exit 0 on SIGTERM')
  const all = events(r)
  t.ok(all.every((e) => typeof e.time === 'string' && !Number.isNaN(Date.parse(e.time))), 'every event is timestamped')
  t.same(all[0].event, 'watching')
  t.match(all.at(-1), {event: 'stopped', pending: {img: 0, www: 0}})
  t.equal(r.stderr(), '', 'nothing on stderr')
  t.notOk(existsSync(join(p.dir, 'slaves/.mirror-state/www/lock')), 'the slave lock is released')
  t.notOk(existsSync(join(p.dir, '.mirror/watch.lock')), 'the watch lock is released')
})

t.test('text: one line per published batch saying what, where and how long', async (t) => {
  const p = await project()
  const r = start(t, p.dir, [])
  t.ok(await until(() => /initial: /.test(r.stdout()) && /source watched/.test(r.stdout())))
  // Past start-up, so that both changes are one ordinary batch.
  await sleep(1000)
  await fs.writeFile(p.src('about.html'), 'new about')
  await fs.rm(p.src('news'), {recursive: true})
  t.ok(await until(() => /\[1 sent, 1 deleted\]/.test(r.stdout())), 'the batch is reported')
  r.child.kill('SIGINT')
  t.equal(await r.exit, 0, 'exit 0 on Ctrl-C')
  const lines = r.lines()
  t.match(lines[0], /^\d\d:\d\d:\d\d watching .*public → img, www · debounce 80 ms · reconcile every 300 s$/)
  t.match(r.stdout(), /\d\d:\d\d:\d\d initial: 6 files \(.*, \+3 more\) → img, www \[6 sent\] in \d+ ms/)
  // On a slow machine the start-up's second pass may be the one that carries them.
  const batches = lines.filter((l) => / (changes|catch-up): /.test(l))
  t.equal(batches.length, 1, 'the edit and the delete are one batch')
  t.match(batches[0], /(changes|catch-up): 2 files \(about\.html, news\/2024\/first\.html\) → www \[1 sent, 1 deleted\] in \d+ ms$/)
  t.match(lines.at(-1), /\d\d:\d\d:\d\d stopped$/)
})

t.test('a target that is down is reported with its pending changes, the other goes on', async (t) => {
  const p = await project()
  await fs.rm(join(p.dir, 'slaves/img'), {recursive: true})
  const r = start(t, p.dir, [])
  t.ok(await until(() => /initial: /.test(r.stdout())))
  await fs.writeFile(p.src('img/logo.png'), 'new logo')
  await fs.writeFile(p.src('index.html'), 'new index')
  // On a slow machine the start-up's second pass (catch-up) may be the one that carries it.
  t.ok(await until(() => /(changes|catch-up): .*index\.html.*→ www/.test(r.stdout())), 'www is published')
  t.match(r.stdout(), /img FAILED: root .*slaves\/img does not exist or is not a directory \(\d+ changes? kept, retry in/)
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
  // www's edit may still wait for the batch that confirms it when a catch-up carried it.
  t.match(r.lines().at(-1), /stopped; kept for the next start: img 1 change(, www 1 change)?$/)
})

t.test('killed with SIGKILL mid-publish, a restarted watch finishes the job and cleans up', async (t) => {
  const p = await project()
  const first = start(t, p.dir, ['--json'])
  t.ok(await until(() => events(first).some((e) => e.event === 'batch')))
  await fs.mkdir(p.src('media'))
  const big = Buffer.alloc(1 << 20, 'b')
  for (let i = 0; i < 40; i++) await fs.writeFile(p.src(`media/page${i}.html`), big)
  // Kill it while the batch is being sent.
  await until(() => existsSync(p.www('media')), 10_000)
  first.child.kill('SIGKILL')
  await first.exit

  const second = start(t, p.dir, ['--json'])
  t.ok(await until(() => p.pagesMatch(), 20_000), 'the slave ends up exactly like the source')
  t.ok(
    await until(() => events(second).some((e) => e.event === 'warning' && /did not stop cleanly/.test(String(e.message)))),
    'the restart noticed and compared in full',
  )
  await until(async () => !Object.keys(await readTree(join(p.dir, 'slaves/www'))).some((k) => k.includes('.mirror-tmp-')))
  const temps = Object.keys(await readTree(join(p.dir, 'slaves/www'))).filter((k) => k.includes('.mirror-tmp-'))
  t.same(temps, [], 'no temporary file left on the slave')
  second.child.kill('SIGTERM')
  t.equal(await second.exit, 0)
})

t.test('SIGHUP reconciles now: a file deleted on a slave is put back', async (t) => {
  const p = await project()
  const r = start(t, p.dir, ['--json'])
  t.ok(await until(() => events(r).some((e) => e.event === 'batch' && e.kind === 'initial')))
  await fs.rm(p.www('about.html'))
  r.child.kill('SIGHUP')
  t.ok(await until(() => existsSync(p.www('about.html'))), 'repaired')
  t.ok(await until(() => events(r).some((e) => e.event === 'batch' && e.kind === 'reconcile')), 'reported as a reconcile')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('bad usage: exit 2 with a message', async (t) => {
  const p = await project()
  const r = start(t, p.dir, ['--target', 'nope'])
  t.equal(await r.exit, 2)
  t.match(r.stderr(), /no target named "nope"/)
  const render = start(t, p.dir, ['--render', '--json'])
  t.equal(await render.exit, 2)
  t.match(render.stderr(), /--render needs a "render" block in the config/)
  t.match(events(render), [{event: 'error', error: {code: 'USAGE'}}], '--json stays one object per line')
})

t.test('a second watch of the same config is refused', async (t) => {
  const p = await project()
  const first = start(t, p.dir, ['--json'])
  t.ok(await until(() => events(first).some((e) => e.event === 'batch')))
  const second = start(t, p.dir, [])
  t.equal(await second.exit, 4)
  t.match(second.stderr(), /another mirror watch \(pid \d+, since .*\) is running for this config/)
  first.child.kill('SIGTERM')
  t.equal(await first.exit, 0)
})

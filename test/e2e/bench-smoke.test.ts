// `npm run bench` runs end to end on the tiny corpus against real sshd slaves: it prints the
// markdown table with the mirror / rsync ratios, writes the same as JSON, verifies every slave
// after every run, and a deliberately wrong publisher is reported as WRONG.

import {spawn} from 'node:child_process'
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import t from 'tap'

import {projectDir} from '../helpers/cli.js'
import {tempDir} from '../helpers/site.js'

interface ToolJson {
  tool: string
  correct?: string
  runs: Array<{wallMs: number; verdicts: Array<{ok: boolean}>}>
}

function runBench(args: string[]): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(projectDir, 'scripts/bench.js'), ...args], {cwd: projectDir, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGTERM'), 100_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
}

t.test('the benchmark runs on the tiny corpus and reports ratios and a verdict per tool', async (t) => {
  const dir = tempDir('mirror-bench-smoke-')
  t.teardown(() => rmSync(dir, {recursive: true, force: true}))
  const out = join(dir, 'results')
  const r = await runBench(['--tiny', '--no-build', '--no-install', '--module', 'publish', '--scenario', 'init,mutate', '--tool', 'mirror,rsync-par', '--sanity', '--out', out, '--cache', join(dir, 'cache'), '--workdir', join(dir, 'work')])
  t.equal(r.code, 0, r.stderr.slice(-3000))

  t.match(r.stdout, /\| scenario \| tool \| runs \| wall s \| machine CPU s \| wire MB[^|]* \| tool-counted MB \| peak RSS MB \| correct \|/, 'the results table')
  t.match(r.stdout, /\| scenario \| wall ratio \| goal \| bytes ratio \| goal \| mirror correct \|/, 'the ratio table')
  t.match(r.stdout, /\| init \| mirror \| 1 \| \d+\.\d+ \|/, 'a timed mirror row')
  t.match(r.stdout, /\| mutate \| rsync-par \| 1 \| \d+\.\d+ \|.*\| ok \|/, 'rsync verified')
  t.match(r.stdout, /\| init \| wrong \|.*WRONG on 2\/4 slaves: 1 missing, 1 differ/, 'a wrong answer shows as wrong')
  t.match(r.stdout, /^Link: none /m, 'says which link the run used (--link adds an emulated one)')

  t.ok(existsSync(join(out, 'latest-tiny.md')), 'markdown written')
  const json = JSON.parse(readFileSync(join(out, 'latest-tiny.json'), 'utf8'))
  const publish = json.modules.find((m: {module: string}) => m.module === 'publish')
  const corpus = publish.data.corpora[0]
  t.equal(corpus.corpus, 'tiny')
  t.same(
    corpus.scenarios.map((s: {scenario: string}) => s.scenario),
    ['init', 'mutate'],
  )
  for (const scenario of corpus.scenarios) {
    t.type(scenario.ratios.wall, 'number', `${scenario.scenario}: wall ratio`)
    const tools = Object.fromEntries(scenario.tools.map((tool: ToolJson) => [tool.tool, tool]))
    t.type(tools.mirror.correct, 'string', `${scenario.scenario}: mirror has a verdict`)
    t.equal(tools['rsync-par'].correct, 'ok', `${scenario.scenario}: rsync verified on every slave`)
    t.equal(tools['rsync-par'].runs[0].verdicts.length, 4, 'four slaves checked')
    t.match(tools.wrong.correct, /^WRONG/, `${scenario.scenario}: the wrong copier is caught`)
  }
  t.equal(json.mode, 'tiny')
  t.type(json.method.wire, 'string', 'says how bytes were counted')
  t.equal(json.link, null, 'no emulated link unless asked for')
})

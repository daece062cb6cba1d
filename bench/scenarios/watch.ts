// The watch-latency benchmark (issue 4): from a file written on the master to its new content
// readable on every one of the 4 sshd slaves, over single edits and bursts, for `mirror watch`
// and for lsyncd (rsync over ssh to the same slaves, delay 0, its lowest). Reports p50 and p99.

import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import {CORPORA, ensureCorpus} from '../corpus.js'
import {linkText} from '../link.js'
import {copyTree, emptySlaves, type SlaveSet} from '../slaves.js'
import type {BenchContext, ModuleResult, ScenarioModule} from '../types.js'

const GOAL_P50_MS = 300
const GOAL_P99_MS = 1000
/** An edit not on every slave after this long counts as lost (its latency is recorded as this). */
const EDIT_TIMEOUT_MS = 15_000
const POLL_MS = 5
const BURST_SIZE = 20

interface Sample {
  kind: 'single' | 'burst'
  ms: number
  lost: boolean
}

interface WatcherResult {
  tool: string
  label: string
  skipped?: string
  error?: string
  readyMs?: number
  samples: Sample[]
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A watcher under test: started against the source and the slaves, stopped by the pid it was started with. */
interface Watcher {
  child: ChildProcess
  output: () => string
  stop(): Promise<void>
}

function startProcess(cmd: string, args: string[], cwd: string): Watcher {
  const child = spawn(cmd, args, {cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: {...process.env, NO_COLOR: '1'}})
  let out = ''
  child.stdout?.on('data', (d) => (out = (out + d).slice(-200_000)))
  child.stderr?.on('data', (d) => (out = (out + d).slice(-200_000)))
  const exited = new Promise<void>((r) => child.once('close', () => r()))
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      try {
        process.kill(-child.pid!, 'SIGTERM')
      } catch {
        return
      }
      await Promise.race([exited, sleep(5000)])
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Gone.
      }
    },
  }
}

export const watchModule: ScenarioModule = {
  id: 'watch',
  title: 'watch: latency from a write on the master to every slave, mirror watch vs lsyncd',
  unavailable(ctx) {
    if (!existsSync(join(ctx.projectDir, 'src/commands/watch.ts'))) return 'src/commands/watch.ts (mirror watch) does not exist yet'
    if (!existsSync(join(ctx.projectDir, 'dist/commands/watch.js'))) return 'dist/commands/watch.js is missing (mirror watch not built)'
    return undefined
  },
  async run(ctx) {
    const result: ModuleResult = {sections: [], data: undefined, failures: [], warnings: []}
    const set = await ctx.slaves()
    const corpus = ensureCorpus(CORPORA[ctx.options.tiny ? 'tiny' : 'small'], ctx.options.cacheDir, ctx.log)
    const singles = ctx.options.tiny ? 5 : ctx.options.quick ? 12 : 50
    const bursts = ctx.options.tiny ? 1 : ctx.options.quick ? 1 : 5
    const dir = join(ctx.options.workDir, 'watch')
    const source = join(dir, 'source')
    const pages = [...corpus.baseTree.keys()].filter((p) => p.endsWith('.html')).sort()
    const tools: WatcherResult[] = [
      {tool: 'mirror', label: 'mirror watch (default debounce)', samples: []},
      {tool: 'lsyncd', label: 'lsyncd, default.rsync over ssh, delay = 0', samples: [], skipped: have('lsyncd') ? undefined : 'lsyncd is not installed (apt-get install lsyncd)'},
    ]
    let editNo = 0
    for (const tool of tools) {
      if (tool.skipped) continue
      await copyTree(corpus.base, source)
      await emptySlaves(set)
      await copyTree(undefined, join(dir, 'project'))
      const started = Date.now()
      const watcher = tool.tool === 'mirror' ? startMirror(ctx, set, dir, source) : startLsyncd(set, dir, source)
      try {
        const ready = await waitForSlaves(set, corpus.baseTree, watcher, 300_000)
        if (ready !== true) {
          tool.error = `${ready}: ${watcher.output().trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`
          ctx.log(`watch ${tool.tool}: ${tool.error}`)
          continue
        }
        tool.readyMs = Date.now() - started
        // Let the initial publish and the watcher's crawl settle.
        await sleep(1500)
        ctx.log(`watch ${tool.tool}: slaves hold the source after ${(tool.readyMs / 1000).toFixed(1)} s; ${singles} single edits, ${bursts} bursts of ${BURST_SIZE}`)
        for (let i = 0; i < singles; i++) {
          const path = pages[(i * 37) % pages.length]
          const [sample] = await edit(set, source, [path], ++editNo)
          tool.samples.push({kind: 'single', ...sample})
          await sleep(200)
        }
        for (let b = 0; b < bursts; b++) {
          const paths = Array.from({length: BURST_SIZE}, (_, k) => pages[(b * 101 + k * 13 + 7) % pages.length])
          const unique = [...new Set(paths)]
          for (const sample of await edit(set, source, unique, ++editNo)) tool.samples.push({kind: 'burst', ...sample})
          await sleep(500)
        }
        const lost = tool.samples.filter((s) => s.lost).length
        ctx.log(`watch ${tool.tool}: p50 ${percentile(tool.samples.map((s) => s.ms), 50)} ms, p99 ${percentile(tool.samples.map((s) => s.ms), 99)} ms${lost ? `, ${lost} edits not on every slave within ${EDIT_TIMEOUT_MS / 1000} s` : ''}`)
      } finally {
        await watcher.stop()
      }
    }
    await emptySlaves(set)

    const row = (t: WatcherResult, kind?: Sample['kind']) => {
      const values = t.samples.filter((s) => !kind || s.kind === kind).map((s) => s.ms)
      const lost = t.samples.filter((s) => (!kind || s.kind === kind) && s.lost).length
      const p50 = percentile(values, 50)
      const p99 = percentile(values, 99)
      return [
        t.tool,
        kind ?? 'all',
        String(values.length),
        p50 === undefined ? '–' : `${p50}${kind ? '' : p50 <= GOAL_P50_MS ? ' (met)' : ' (not met)'}`,
        p99 === undefined ? '–' : `${p99}${kind ? '' : p99 <= GOAL_P99_MS ? ' (met)' : ' (not met)'}`,
        values.length ? String(Math.max(...values)) : '–',
        String(lost),
      ]
    }
    const rows = tools.filter((t) => t.samples.length > 0).flatMap((t) => [row(t, 'single'), row(t, 'burst'), row(t)])
    const mirror = tools[0]
    const lsyncd = tools[1]
    const mirrorP50 = percentile(mirror.samples.map((s) => s.ms), 50)
    const lsyncdP50 = percentile(lsyncd.samples.map((s) => s.ms), 50)
    const lostMirror = mirror.samples.filter((s) => s.lost).length
    if (mirror.error) result.failures.push(`watch mirror: ${mirror.error}`)
    if (lostMirror > 0) result.failures.push(`watch mirror: ${lostMirror} edits were not on every slave within ${EDIT_TIMEOUT_MS / 1000} s`)
    if (lsyncd.error) result.warnings.push(`watch lsyncd: ${lsyncd.error}`)
    result.sections.push({
      title: 'watch: write on the master → new content on all 4 slaves (ms)',
      intro: [
        `Source: the ${corpus.spec.name} corpus (${corpus.files.toLocaleString('en-US')} files); link: ${linkText(ctx.options.link)}. Each single edit appends a marker to one page and waits until all 4 slave copies contain it (polled every ${POLL_MS} ms); a burst writes ${BURST_SIZE} pages back to back, each timed from its own write. Goal: p50 < ${GOAL_P50_MS} ms, p99 < ${GOAL_P99_MS} ms, and below lsyncd's.`,
      ],
      headers: ['tool', 'edits', 'n', 'p50 ms', 'p99 ms', 'max ms', 'lost'],
      rows,
      notes: [
        ...(mirrorP50 !== undefined && lsyncdP50 !== undefined ? [`mirror p50 / lsyncd p50: ${(mirrorP50 / lsyncdP50).toFixed(2)}.`] : []),
        ...tools.filter((t) => t.skipped || t.error).map((t) => `${t.tool}: ${t.skipped ?? t.error}.`),
      ],
    })
    result.data = {corpus: corpus.spec.name, singles, bursts, burstSize: BURST_SIZE, tools}
    return result
  },
}

function startMirror(ctx: BenchContext, set: SlaveSet, dir: string, source: string): Watcher {
  const project = join(dir, 'project')
  mkdirSync(project, {recursive: true})
  const targets = set.slaves.map((s) => `  ${s.name}: {url: "sftp://${s.name}${s.root}", state: "${s.state}"}`).join('\n')
  writeFileSync(join(project, 'mirror.config.yaml'), `# Written by the benchmark (bench/scenarios/watch.ts).\nsource: "${source}"\nstate: ./.mirror\nssh:\n  config: "${set.sshConfig}"\ntargets:\n${targets}\n`)
  return startProcess(process.execPath, [ctx.binRun, 'watch', '--json'], project)
}

function startLsyncd(set: SlaveSet, dir: string, source: string): Watcher {
  const config = join(dir, 'lsyncd.conf.lua')
  const lua = (s: string) => JSON.stringify(s)
  const syncs = set.slaves.map(
    (s) => `sync {
  default.rsync,
  source = ${lua(`${source}/`)},
  target = ${lua(`${s.name}:${s.root}/`)},
  delay = 0,
  rsync = { archive = true, rsh = ${lua(`/usr/bin/ssh -F ${set.sshConfig} -o BatchMode=yes`)} },
}`,
  )
  writeFileSync(config, `-- Written by the benchmark (bench/scenarios/watch.ts).\nsettings {\n  nodaemon = true,\n  logfile = ${lua(join(dir, 'lsyncd.log'))},\n  statusFile = ${lua(join(dir, 'lsyncd.status'))},\n}\n${syncs.join('\n')}\n`)
  return startProcess('lsyncd', [config], dir)
}

/** Waits until every slave holds every file of the tree (by size); bounded by `timeoutMs`. */
async function waitForSlaves(set: SlaveSet, tree: Map<string, readonly [number, string]>, watcher: Watcher, timeoutMs: number): Promise<true | string> {
  const deadline = Date.now() + timeoutMs
  const paths = [...tree.keys()]
  while (Date.now() < deadline) {
    if (watcher.child.exitCode !== null || watcher.child.signalCode !== null) return `exited (${watcher.child.exitCode ?? watcher.child.signalCode}) before the slaves held the source`
    let all = true
    for (const s of set.slaves) {
      for (let i = 0; i < paths.length && all; i += Math.max(1, Math.floor(paths.length / 50))) {
        const st = await fs.stat(join(s.root, paths[i])).catch(() => null)
        if (!st || st.size !== tree.get(paths[i])![0]) all = false
      }
      if (!all) break
    }
    if (all) {
      // The sample says yes: confirm on every file.
      const missing = await Promise.all(set.slaves.map(async (s) => (await Promise.all(paths.map((p) => fs.stat(join(s.root, p)).then((st) => st.size === tree.get(p)![0], () => false)))).filter((ok) => !ok).length))
      if (missing.every((n) => n === 0)) return true
    }
    await sleep(250)
  }
  return `the slaves did not hold the source within ${timeoutMs / 1000} s`
}

/** Appends a unique marker to each path, then times until every slave's copy contains it. */
async function edit(set: SlaveSet, source: string, paths: string[], n: number): Promise<Array<{ms: number; lost: boolean}>> {
  const marks = paths.map((p, k) => `<!-- bench edit ${n}.${k} of ${p} -->\n`)
  const written: number[] = []
  for (let k = 0; k < paths.length; k++) {
    const file = join(source, paths[k])
    const old = readFileSync(file)
    await fs.writeFile(file, Buffer.concat([old, Buffer.from(marks[k])]))
    written.push(performance.now())
  }
  const seen: Array<Array<number | undefined>> = paths.map(() => set.slaves.map(() => undefined))
  const deadline = performance.now() + EDIT_TIMEOUT_MS
  // Bounded by the deadline; each round reads only what is not there yet.
  while (performance.now() < deadline && seen.some((row) => row.some((t) => t === undefined))) {
    await Promise.all(
      paths.flatMap((p, k) =>
        set.slaves.map(async (s, j) => {
          if (seen[k][j] !== undefined) return
          const content = await fs.readFile(join(s.root, p), 'utf8').catch(() => '')
          if (content.endsWith(marks[k])) seen[k][j] = performance.now()
        }),
      ),
    )
    await sleep(POLL_MS)
  }
  return paths.map((_, k) => {
    const lost = seen[k].some((t) => t === undefined)
    const last = lost ? written[k] + EDIT_TIMEOUT_MS : Math.max(...(seen[k] as number[]))
    return {ms: Math.round(last - written[k]), lost}
  })
}

// The publish benchmark (issue 3): mirror against rsync and rclone pushing the same corpus to the
// same 4 sshd slaves. Scenarios: init (empty slaves), noop (slaves hold the tree), mutate (slaves
// hold the base, the master the mutated copy), and rss100k (peak RSS publishing 100,000 files).
// Every run starts from a reset (untimed) and ends with a file-by-file verification.

import {statSync} from 'node:fs'
import {join} from 'node:path'

import {CORPORA, ensureCorpus, type Corpus, type Tree} from '../corpus.js'
import {linkText} from '../link.js'
import {machineBusyMs, median} from '../measure.js'
import {PUBLISHERS, type Publisher, type PublishEnv, type ToolRun} from '../publishers.js'
import {megabytes, ratio, ratioText, secondsSpread, seconds} from '../report.js'
import {copyTree, emptySlaves, flush, removeTree, resetTree, type SlaveSet} from '../slaves.js'
import type {BenchContext, ModuleResult, ScenarioModule, Section} from '../types.js'
import {verdictText, verifyRoot, type HashCache, type Verdict} from '../verify.js'

type Scenario = 'init' | 'noop' | 'mutate'

/** The issue's goals, mirror / rsync in parallel (for the 20,000-file corpus). */
const GOALS: Record<Scenario, {wall: number; wire?: number}> = {
  init: {wall: 1.0},
  noop: {wall: 0.5},
  mutate: {wall: 0.7, wire: 1.2},
}
const RSS_GOAL_MB = 250

/** "exit 0", "exit 3", "timeout", "signal SIGKILL": ToolRun.exit for a sentence. */
const exitLabel = (exit: string) => (exit === '0' ? 'exit 0' : exit)
/** The tools the ratios compare. */
const RATIO_PAIR = new Set(['mirror', 'rsync-par'])

export interface RunRecord {
  run: number
  wallMs: number
  wireBytes?: number
  toolBytes?: number
  peakRssKb?: number
  /** CPU time of the whole machine during the run (the tool, ssh, and the slaves' sshd and helpers), ms. */
  cpuMs?: number
  exit: string
  ok: boolean
  error?: string
  info?: Record<string, number>
  verdicts: Verdict[]
}

export interface ToolResult {
  tool: string
  label: string
  skipped?: string
  runs: RunRecord[]
  median?: {wallMs?: number; wireBytes?: number; toolBytes?: number; peakRssKb?: number; cpuMs?: number}
  correct?: string
}

export interface ScenarioResult {
  scenario: string
  tools: ToolResult[]
  ratios?: {wall?: number; wire?: number; goalWall?: number; goalWire?: number}
}

export interface CorpusResult {
  corpus: string
  files: number
  bytes: number
  mutation?: {edited: number; added: number; deleted: number; grown: string}
  runs: number
  scenarios: ScenarioResult[]
}

export const publishModule: ScenarioModule = {
  id: 'publish',
  title: 'publish: mirror vs rsync and rclone, 4 sshd slaves',
  unavailable: () => undefined,
  async run(ctx) {
    const result: ModuleResult = {sections: [], data: undefined, failures: [], warnings: []}
    const corpora: CorpusResult[] = []
    const set = await ctx.slaves()
    const tools = selectTools(ctx)
    const env: PublishEnv = {
      set,
      projectDir: join(ctx.options.workDir, 'project'),
      workDir: ctx.options.workDir,
      binRun: ctx.binRun,
      timeoutMs: ctx.options.timeoutMs,
      profileDir: ctx.options.profile ? join(ctx.options.outDir, 'profiles') : undefined,
    }
    const scenarios = (['init', 'noop', 'mutate'] as const).filter((s) => ctx.options.scenarios.includes(s))
    for (const name of ctx.options.corpora) {
      const spec = CORPORA[name]
      if (!spec) throw new Error(`no corpus named ${name} (have ${Object.keys(CORPORA).join(', ')})`)
      if (name === 'files100k') continue
      const corpus = ensureCorpus(spec, ctx.options.cacheDir, ctx.log)
      if (scenarios.length === 0) continue
      const runs = ctx.options.runs ?? (name === 'large' ? 3 : 5)
      const data = await benchCorpus(ctx, env, corpus, scenarios, tools, runs, result)
      corpora.push(data)
      result.sections.push(...sectionsFor(ctx, data))
    }
    let rss: Rss100kResult | undefined
    if (ctx.options.scenarios.includes('rss100k') && ctx.options.tools.includes('mirror')) {
      rss = await benchRss100k(ctx, env, result)
      result.sections.push(rss100kSection(rss))
    }
    await emptySlaves(set)
    result.data = {corpora, rss100k: rss}
    return result
  },
}

function selectTools(ctx: BenchContext): Array<Publisher & {skipped?: string}> {
  const ids = [...ctx.options.tools, ...(ctx.options.sanity ? ['wrong'] : [])]
  return PUBLISHERS.filter((p) => ids.includes(p.id)).map((p) => {
    const why = p.unavailable()
    return why ? {...p, skipped: why} : p
  })
}

/** path → mtime in whole seconds, for the verifier's mtime note. */
function mtimesOf(root: string, tree: Tree): Map<string, number> {
  const out = new Map<string, number>()
  for (const path of tree.keys()) out.set(path, Math.floor(statSync(join(root, path)).mtimeMs / 1000))
  return out
}

async function benchCorpus(ctx: BenchContext, env: PublishEnv, corpus: Corpus, scenarios: readonly Scenario[], tools: Array<Publisher & {skipped?: string}>, runs: number, out: ModuleResult): Promise<CorpusResult> {
  const {slaves} = env.set
  const snapDir = join(ctx.options.workDir, 'snapshots', corpus.spec.name)
  const masterState = join(env.projectDir, '.mirror')
  const baseMtimes = mtimesOf(corpus.base, corpus.baseTree)
  const hashCache: HashCache = new Map()
  const mutatedMtimes = corpus.mutated ? mtimesOf(corpus.mutated, corpus.mutatedTree!) : undefined
  /** mirror's own "slaves hold the tree" state: roots, slave state and master state as its publish left them. */
  let snapshot: 'none' | 'ready' | string = 'none'

  const takeSnapshot = async () => {
    // Full copies (not hard links): later runs may write into the slave roots in place.
    await Promise.all(slaves.map(async (s) => {
      await copyTree(s.root, join(snapDir, s.name, 'root'))
      await copyTree(s.state, join(snapDir, s.name, 'state'))
    }))
    await copyTree(masterState, join(snapDir, 'master'))
    snapshot = 'ready'
  }

  /** Per slave: the paths the last verification found wrong, which the next reset must re-copy whatever their size and mtime. */
  const bad = new Map<string, string[]>()
  const reset = async (tool: Publisher, scenario: Scenario) => {
    await removeTree(masterState)
    if (scenario === 'init') {
      await emptySlaves(env.set)
    } else if (tool.id === 'mirror') {
      await Promise.all(slaves.map(async (s) => {
        await resetTree(join(snapDir, s.name, 'root'), s.root, bad.get(s.name))
        await copyTree(join(snapDir, s.name, 'state'), s.state)
      }))
      await copyTree(join(snapDir, 'master'), masterState)
    } else {
      await Promise.all(slaves.map(async (s) => {
        await resetTree(corpus.base, s.root, bad.get(s.name))
        await removeTree(s.state)
      }))
    }
    bad.clear()
    await flush(ctx.options.workDir)
  }

  const verify = async (scenario: Scenario): Promise<Verdict[]> => {
    const tree = scenario === 'mutate' ? corpus.mutatedTree! : corpus.baseTree
    const mtimes = scenario === 'mutate' ? mutatedMtimes : baseMtimes
    const verdicts: Verdict[] = []
    // One slave at a time: hashing is CPU-bound and the machine may be small.
    for (const s of slaves) {
      const wrong: string[] = []
      verdicts.push(await verifyRoot(s.root, tree, {mtimes, cache: hashCache, bad: wrong}))
      bad.set(s.name, wrong)
    }
    return verdicts
  }

  let verifyMs = 0
  const measure = async (tool: Publisher, scenario: Scenario, run: number): Promise<RunRecord> => {
    const source = scenario === 'mutate' ? corpus.mutated! : corpus.base
    const before = await ctx.wire.read()
    const busyBefore = machineBusyMs()
    let r: ToolRun
    if (ctx.options.profile && tool.id === 'mirror') env.profileDir = join(ctx.options.outDir, 'profiles', `${corpus.spec.name}-${scenario}`)
    try {
      r = await tool.run(env, source)
    } catch (error) {
      r = {wallMs: NaN, ok: false, exit: 'error', error: String(error)}
    }
    const busyAfter = machineBusyMs()
    const after = await ctx.wire.read()
    const verifyStarted = Date.now()
    const verdicts = await verify(scenario)
    verifyMs = Date.now() - verifyStarted
    return {
      run,
      wallMs: r.wallMs,
      wireBytes: before !== undefined && after !== undefined ? after - before : undefined,
      toolBytes: r.toolBytes,
      peakRssKb: r.peakRssKb,
      cpuMs: busyBefore !== undefined && busyAfter !== undefined ? busyAfter - busyBefore : undefined,
      exit: r.exit,
      ok: r.ok,
      error: r.error,
      info: r.info,
      verdicts,
    }
  }

  const mirror = tools.find((t) => t.id === 'mirror' && !t.skipped)
  const prepareSnapshot = async () => {
    ctx.log(`${corpus.spec.name}: mirror's first publish of the base (untimed), to give noop and mutate their starting state`)
    await reset(mirror!, 'init')
    const r = await measure(mirror!, 'init', 0)
    if (r.ok && r.verdicts.every((v) => v.ok)) await takeSnapshot()
    else snapshot = `mirror's first publish did not produce the base (${r.error ?? verdictText(r.verdicts)})`
  }

  const results: ScenarioResult[] = []
  for (const scenario of scenarios) {
    if (scenario === 'mutate' && !corpus.mutated) continue
    const byTool = new Map<string, ToolResult>(tools.map((t) => [t.id, {tool: t.id, label: t.label, skipped: t.skipped, runs: []}]))
    if (scenario !== 'init' && mirror && snapshot === 'none') await prepareSnapshot()
    for (let run = 1; run <= runs; run++) {
      // Rotate the order each run, so slow drift of the machine's load does not favour one tool.
      const order = tools.map((_, i) => tools[(i + run - 1) % tools.length])
      for (const tool of order) {
        const entry = byTool.get(tool.id)!
        if (tool.skipped) continue
        // --quick: the pair the ratios compare gets every run; the other baselines one run each.
        if (ctx.options.quick && run > 1 && !RATIO_PAIR.has(tool.id)) continue
        if (tool.id === 'mirror' && scenario !== 'init' && snapshot !== 'ready') {
          entry.skipped = snapshot
          continue
        }
        const resetStarted = Date.now()
        await reset(tool, scenario)
        const resetMs = Date.now() - resetStarted
        const record = await measure(tool, scenario, run)
        entry.runs.push(record)
        const bad = record.verdicts.filter((v) => !v.ok).length
        ctx.log(`${corpus.spec.name} ${scenario} run ${run}/${runs} ${tool.id}: ${seconds(record.wallMs)} s, CPU ${seconds(record.cpuMs)} s, wire ${megabytes(record.wireBytes)} MB, ${exitLabel(record.exit)}, ${bad === 0 ? 'verified' : verdictText(record.verdicts)}${record.error ? ` (${record.error})` : ''} [untimed: reset ${seconds(resetMs)} s, verify ${seconds(verifyMs)} s]`)
        if (tool.id === 'mirror' && scenario === 'init' && snapshot === 'none' && record.ok && bad === 0) await takeSnapshot()
      }
    }
    const toolResults = [...byTool.values()]
    for (const t of toolResults) {
      if (t.runs.length === 0) continue
      const pick = (k: 'wallMs' | 'wireBytes' | 'toolBytes' | 'peakRssKb' | 'cpuMs') => median(t.runs.map((r) => r[k]).filter((v): v is number => v !== undefined))
      t.median = {wallMs: pick('wallMs'), wireBytes: pick('wireBytes'), toolBytes: pick('toolBytes'), peakRssKb: pick('peakRssKb'), cpuMs: pick('cpuMs')}
      const wrongRuns = t.runs.filter((r) => r.verdicts.some((v) => !v.ok))
      const failedRuns = t.runs.filter((r) => !r.ok)
      t.correct = wrongRuns.length === 0 ? verdictText(t.runs.at(-1)!.verdicts) : `${verdictText(wrongRuns[0].verdicts)} (${wrongRuns.length}/${t.runs.length} runs)`
      if (failedRuns.length > 0) t.correct += `; exit ≠ 0 in ${failedRuns.length}/${t.runs.length} runs`
      const line = `${corpus.spec.name} ${scenario}: ${t.tool}: ${t.correct}${wrongRuns[0] ? ` e.g. ${wrongRuns[0].verdicts.flatMap((v) => v.examples).slice(0, 3).join('; ')}` : ''}${failedRuns[0]?.error ? ` — ${failedRuns[0].error}` : ''}`
      if (wrongRuns.length > 0 || failedRuns.length > 0) {
        if (t.tool === 'mirror') out.failures.push(line)
        else if (t.tool !== 'wrong') out.warnings.push(line)
      }
    }
    const m = byTool.get('mirror')?.median
    const r = byTool.get('rsync-par')?.median
    results.push({
      scenario,
      tools: toolResults,
      ratios: {wall: ratio(m?.wallMs, r?.wallMs), wire: ratio(m?.wireBytes ?? undefined, r?.wireBytes), goalWall: GOALS[scenario].wall, goalWire: GOALS[scenario].wire},
    })
  }
  await removeTree(snapDir)
  const mutation = corpus.mutation ? {edited: corpus.mutation.edited.length, added: corpus.mutation.added.length, deleted: corpus.mutation.deleted.length, grown: corpus.mutation.grown} : undefined
  return {corpus: corpus.spec.name, files: corpus.files, bytes: corpus.bytes, mutation, runs, scenarios: results}
}

function sectionsFor(ctx: BenchContext, data: CorpusResult): Section[] {
  const wireHeader = ctx.wire.exact ? 'wire MB' : 'wire MB (n/a)'
  const rows: string[][] = []
  const skipped = new Set<string>()
  for (const s of data.scenarios) {
    for (const t of s.tools) {
      if (t.runs.length === 0) {
        skipped.add(`${t.tool}: ${t.skipped ?? 'not run'}`)
        continue
      }
      rows.push([
        s.scenario,
        t.tool,
        String(t.runs.length),
        secondsSpread(t.median?.wallMs, t.runs.map((r) => r.wallMs)),
        seconds(t.median?.cpuMs),
        megabytes(t.median?.wireBytes),
        megabytes(t.median?.toolBytes),
        t.median?.peakRssKb ? (t.median.peakRssKb / 1024).toFixed(0) : '–',
        t.correct ?? '–',
      ])
    }
  }
  const m = data.mutation
  const intro = [
    `${data.files.toLocaleString('en-US')} files, ${megabytes(data.bytes)} MB; 4 slaves; link: ${linkText(ctx.options.link)}; medians [min–max] over the runs.` +
      (m ? ` Mutation: ${m.edited} edited, ${m.added} added, ${m.deleted} deleted, 4 KiB inserted in the middle of ${m.grown}.` : ''),
  ]
  const notes = [...skipped].map((s) => `Not run: ${s}.`)
  const ratios: string[][] = data.scenarios.map((s) => {
    const mirror = s.tools.find((t) => t.tool === 'mirror')
    return [s.scenario, ratioText(s.ratios?.wall, s.ratios?.goalWall), s.ratios?.goalWall !== undefined ? `≤ ${s.ratios.goalWall}` : '', ratioText(s.ratios?.wire, s.ratios?.goalWire), s.ratios?.goalWire !== undefined ? `≤ ${s.ratios.goalWire}` : '–', mirror?.correct ?? mirror?.skipped ?? '–']
  })
  return [
    {
      title: `publish, ${data.corpus} corpus`,
      intro,
      headers: ['scenario', 'tool', 'runs', 'wall s', 'machine CPU s', wireHeader, 'tool-counted MB', 'peak RSS MB', 'correct'],
      rows,
      notes,
    },
    {
      title: `publish, ${data.corpus} corpus: mirror / rsync-par`,
      intro: [`Ratios of medians; goals are the issue's, set for the 20,000-file corpus.`],
      headers: ['scenario', 'wall ratio', 'goal', 'bytes ratio', 'goal', 'mirror correct'],
      rows: ratios,
    },
  ]
}

export interface Rss100kResult {
  files: number
  bytes: number
  runs: Array<{step: string; tool: string; wallMs: number; peakRssKb?: number; wireBytes?: number; exit: string; error?: string; correct?: string}>
}

/** Publishes 100,000 small files to the 4 slaves (init, then a noop) and records mirror's peak RSS; rsync in parallel for scale. */
async function benchRss100k(ctx: BenchContext, publishEnv: PublishEnv, out: ModuleResult): Promise<Rss100kResult> {
  const corpus = ensureCorpus(CORPORA.files100k, ctx.options.cacheDir, ctx.log)
  // 400,000 file writes take a while on a small machine: at least 40 minutes before a run counts as hung.
  const env: PublishEnv = {...publishEnv, timeoutMs: Math.max(publishEnv.timeoutMs, 40 * 60_000), profileDir: undefined}
  const set: SlaveSet = env.set
  const result: Rss100kResult = {files: corpus.files, bytes: corpus.bytes, runs: []}
  const steps: Array<[string, Publisher]> = [
    ['init', PUBLISHERS.find((p) => p.id === 'mirror')!],
    ['noop', PUBLISHERS.find((p) => p.id === 'mirror')!],
  ]
  const rsync = PUBLISHERS.find((p) => p.id === 'rsync-par')!
  if (ctx.options.tools.includes('rsync-par') && !rsync.unavailable()) steps.push(['init', rsync])
  for (let i = 0; i < steps.length; i++) {
    const [step, tool] = steps[i]
    if (step === 'init') {
      await removeTree(join(env.projectDir, '.mirror'))
      await emptySlaves(set)
      await flush(ctx.options.workDir)
    }
    const before = await ctx.wire.read()
    const r = await tool.run(env, corpus.base)
    const after = await ctx.wire.read()
    const verdicts: Verdict[] = []
    for (const s of set.slaves) verdicts.push(await verifyRoot(s.root, corpus.baseTree))
    // A run killed at the timeout leaves the slaves half done: that is "unfinished", not a wrong answer.
    const correct = r.exit === 'timeout' ? `unfinished (killed at the ${env.timeoutMs / 60_000} min timeout): ${verdictText(verdicts)}` : verdictText(verdicts)
    result.runs.push({step, tool: tool.id, wallMs: r.wallMs, peakRssKb: r.peakRssKb, wireBytes: before !== undefined && after !== undefined ? after - before : undefined, exit: r.exit, error: r.error, correct})
    ctx.log(`files100k ${step} ${tool.id}: ${seconds(r.wallMs)} s, peak RSS ${r.peakRssKb ? (r.peakRssKb / 1024).toFixed(0) : '?'} MB, ${exitLabel(r.exit)}, ${correct}${r.error ? ` (${r.error})` : ''}`)
    if (tool.id === 'mirror' && r.exit === 'timeout') out.failures.push(`files100k ${step}: mirror did not finish within ${env.timeoutMs / 60_000} min (killed); ${verdictText(verdicts)}`)
    else if (tool.id === 'mirror' && (!r.ok || verdicts.some((v) => !v.ok))) out.failures.push(`files100k ${step}: mirror: ${correct}; ${exitLabel(r.exit)}${r.error ? ` — ${r.error}` : ''}`)
    // After an unfinished init, the "noop" would be a resume: not what this row means.
    if (step === 'init' && tool.id === 'mirror' && r.exit === 'timeout') {
      const noop = steps.findIndex(([s, t], j) => j > i && s === 'noop' && t.id === 'mirror')
      if (noop !== -1) steps.splice(noop, 1)
    }
  }
  return result
}

function rss100kSection(data: Rss100kResult): Section {
  return {
    title: 'publish of 100,000 files to 4 targets: peak RSS',
    intro: [`${data.files.toLocaleString('en-US')} files, ${megabytes(data.bytes)} MB; one run each; goal: mirror's peak RSS ≤ ${RSS_GOAL_MB} MB.`],
    headers: ['step', 'tool', 'wall s', 'peak RSS MB', 'goal', 'wire MB', 'correct'],
    rows: data.runs.map((r) => [
      r.step,
      r.tool,
      seconds(r.wallMs),
      r.peakRssKb ? (r.peakRssKb / 1024).toFixed(0) : '–',
      r.tool === 'mirror' && r.peakRssKb ? (r.peakRssKb / 1024 <= RSS_GOAL_MB ? 'met' : 'not met') : '',
      megabytes(r.wireBytes),
      `${r.correct ?? '–'}${r.exit !== '0' ? `; ${exitLabel(r.exit)}` : ''}`,
    ]),
  }
}

// The render benchmark (issue 5): one generated dynamic origin on loopback (test/helpers/origin.ts:
// several hundred posts, per-page latency, edit/login/history links on every page, an endless
// calendar) crawled by `mirror render`, `wget --mirror …` and `wget2 --mirror …` with the same
// options. Reports time, requests, files saved and the snapshot's broken links and missing assets.

import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {median, runProcess, type ProcessRun} from '../measure.js'
import {ratio, ratioText, secondsSpread} from '../report.js'
import {removeTree} from '../slaves.js'
import type {BenchContext, ModuleResult, ScenarioModule} from '../types.js'

/** The issue's goal: mirror's time at most a quarter of wget2's. */
const GOAL_VS_WGET2 = 0.25
const WGET_OPTIONS = ['--mirror', '--convert-links', '--adjust-extension', '--page-requisites']

interface RenderRun {
  wallMs: number
  exit: string
  /** True when the tool was still crawling at the time limit and was killed. */
  cut: boolean
  requests: number
  files: number
  htmlFiles: number
  /** Links (<a>) to a real page of the site with no file behind them in the snapshot. */
  brokenLinks: number
  /** Links to what a snapshot leaves out (edit/login/history pages, the endless calendar, robots-forbidden pages): no file, by design. */
  leftOut: number
  /** Images, stylesheets, scripts, media a saved page uses that the snapshot lacks. */
  missingAssets: number
  /** Real pages of the site (origin.pages) with no HTML file in the snapshot. */
  pagesMissing: number
  realPages: number
  examples: string[]
  error?: string
}

interface RenderToolResult {
  tool: string
  label: string
  skipped?: string
  runs: RenderRun[]
  medianMs?: number
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

function countFiles(root: string): number {
  if (!existsSync(root)) return 0
  return readdirSync(root, {recursive: true, withFileTypes: true}).filter((e) => e.isFile()).length
}

export const renderModule: ScenarioModule = {
  id: 'render',
  title: 'render: mirror render vs wget and wget2 crawling one dynamic origin',
  unavailable(ctx) {
    const index = join(ctx.projectDir, 'src/render/index.ts')
    if (!existsSync(index) || !/export (async )?function renderSite\b/.test(readFileSync(index, 'utf8'))) return 'src/render/index.ts does not export renderSite yet'
    if (!existsSync(join(ctx.projectDir, 'test/helpers/origin.ts'))) return 'test/helpers/origin.ts (the generated origin) does not exist yet'
    if (!existsSync(join(ctx.projectDir, 'dist/commands/render.js'))) return 'dist/commands/render.js is missing (mirror render not built)'
    return undefined
  },
  async run(ctx) {
    const result: ModuleResult = {sections: [], data: undefined, failures: [], warnings: []}
    // Imported here so a checkout without the origin helper still runs the other modules.
    const {startOrigin, checkSnapshot, GENERATED_META} = await import('../../test/helpers/origin.js')
    const posts = ctx.options.tiny ? 30 : 400
    const latencyMs = 30
    const assetLatencyMs = 5
    const limitMs = ctx.options.tiny ? 15_000 : ctx.options.quick ? 30_000 : 180_000
    const origin = await startOrigin({posts, latencyMs, assetLatencyMs})
    const dir = join(ctx.options.workDir, 'render')
    const tools: RenderToolResult[] = [
      {tool: 'mirror', label: 'mirror render (cold: no previous snapshot)', runs: []},
      {tool: 'mirror-warm', label: 'mirror render again, nothing changed (conditional requests)', runs: []},
      {tool: 'wget', label: `wget ${WGET_OPTIONS.join(' ')}`, runs: [], skipped: have('wget') ? undefined : 'wget is not installed'},
      {tool: 'wget2', label: `wget2 ${WGET_OPTIONS.join(' ')}`, runs: [], skipped: have('wget2') ? undefined : 'wget2 is not installed (apt-get install wget2)'},
    ]
    try {
      const measure = async (tool: RenderToolResult, run: number): Promise<RenderRun> => {
        const project = join(dir, 'project')
        const snapshot = tool.tool.startsWith('mirror') ? join(project, 'site') : join(dir, `${tool.tool}-site`)
        if (tool.tool !== 'mirror-warm') {
          await removeTree(project)
          await removeTree(snapshot)
        }
        const before = origin.requests.length
        let proc: ProcessRun
        if (tool.tool.startsWith('mirror')) {
          mkdirSync(project, {recursive: true})
          writeFileSync(
            join(project, 'mirror.config.yaml'),
            `# Written by the benchmark (bench/scenarios/render.ts).\nsource: ./site\ntargets:\n  local: "file://${join(dir, 'unused-target')}"\nrender:\n  origin: ${origin.url}\n  volatile: ['${GENERATED_META}']\n`,
          )
          if (tool.tool === 'mirror-warm' && !existsSync(snapshot)) {
            // The warm run needs a previous render: make one, untimed.
            await runProcess(process.execPath, [ctx.binRun, 'render', '--json'], {cwd: project, timeoutMs: limitMs, env: {...process.env, NO_COLOR: '1'}})
          }
          proc = await runProcess(process.execPath, [ctx.binRun, 'render', '--json'], {cwd: project, timeoutMs: limitMs, rss: true, env: {...process.env, NO_COLOR: '1'}})
        } else {
          mkdirSync(snapshot, {recursive: true})
          proc = await runProcess(tool.tool, [...WGET_OPTIONS, '--no-host-directories', '--directory-prefix', snapshot, '--quiet', `${origin.url}/`], {cwd: dir, timeoutMs: limitMs, rss: true})
        }
        const requests = origin.requests.length - before
        const check = existsSync(snapshot) ? await checkSnapshot(snapshot) : {missing: [], external: [], htmlFiles: []}
        const saved = new Set(check.htmlFiles.map(pageKey))
        const real = new Set(origin.pages.map(pageKey))
        const pagesMissing = [...real].filter((k) => !saved.has(k)).length
        const pageLinks = check.missing.filter((m) => m.kind === 'page')
        const broken = pageLinks.filter((m) => real.has(pageKey(new URL(m.resolved).pathname + new URL(m.resolved).search)))
        const assets = check.missing.filter((m) => m.kind === 'asset')
        const exit = proc.timedOut ? 'killed at the limit' : proc.signal ? `signal ${proc.signal}` : String(proc.code)
        // wget exits 8 when some request answered an error (the origin has a 404 and a 500 on purpose).
        const ok = proc.code === 0 || (!tool.tool.startsWith('mirror') && proc.code === 8)
        return {
          wallMs: proc.wallMs,
          exit,
          cut: proc.timedOut,
          requests,
          files: countFiles(snapshot),
          htmlFiles: check.htmlFiles.length,
          brokenLinks: broken.length,
          leftOut: pageLinks.length - broken.length,
          missingAssets: assets.length,
          pagesMissing,
          realPages: real.size,
          examples: [...broken, ...assets].slice(0, 3).map((m) => `${m.file}: ${m.link}`),
          error: ok || proc.timedOut ? undefined : (proc.stderr || proc.stdout).trim().split('\n').slice(-2).join(' | ').slice(0, 300),
        }
      }
      const runs = ctx.options.runs ?? 3
      for (let run = 1; run <= runs; run++) {
        for (const tool of tools) {
          if (tool.skipped) continue
          // A crawler cut at the limit would be cut again: once is enough.
          if (tool.runs.some((r) => r.cut)) continue
          const r = await measure(tool, run)
          tool.runs.push(r)
          ctx.log(`render run ${run}/${runs} ${tool.tool}: ${(r.wallMs / 1000).toFixed(2)} s${r.cut ? ' (killed at the limit)' : ''}, ${r.requests} requests, ${r.files} files, ${r.brokenLinks} broken links, ${r.missingAssets} missing assets, ${r.pagesMissing} pages missing`)
        }
      }
    } finally {
      await origin.close()
    }
    for (const t of tools) t.medianMs = median(t.runs.map((r) => r.wallMs))
    const by = Object.fromEntries(tools.map((t) => [t.tool, t]))
    const limitNote = (t: RenderToolResult) => (t.runs.some((r) => r.cut) ? ` (killed at the ${limitMs / 1000} s limit, still crawling)` : '')
    const rows = tools
      .filter((t) => t.runs.length > 0)
      .map((t) => {
        const last = t.runs.at(-1)!
        const medianOf = (k: 'requests' | 'files' | 'brokenLinks' | 'missingAssets' | 'pagesMissing' | 'leftOut') => String(median(t.runs.map((r) => r[k])) ?? '–')
        return [
          t.tool,
          `${secondsSpread(t.medianMs, t.runs.map((r) => r.wallMs))}${limitNote(t)}`,
          medianOf('requests'),
          medianOf('files'),
          last.cut ? `${medianOf('brokenLinks')} (links not converted: killed)` : medianOf('brokenLinks'),
          medianOf('missingAssets'),
          `${medianOf('pagesMissing')} of ${last.realPages}`,
          medianOf('leftOut'),
          last.error ? `exit ${last.exit}: ${last.error}` : last.exit,
        ]
      })
    const mirrorMs = by.mirror?.medianMs
    const vs = (t?: RenderToolResult) => {
      if (!t || t.runs.length === 0) return '–'
      const r = ratio(mirrorMs, t.medianMs)
      const last = t.runs.at(-1)!
      if (t.runs.some((x) => x.cut)) return `< ${r?.toFixed(3) ?? '–'} (${t.tool} did not finish)`
      // A crawler that stopped early is fast for the wrong reason: say so next to its ratio.
      if (last.pagesMissing > last.realPages / 2) return `${ratioText(r)} (not comparable: ${t.tool} saved only ${last.realPages - last.pagesMissing} of ${last.realPages} real pages)`
      return ratioText(r)
    }
    for (const t of tools.filter((t) => t.tool.startsWith('mirror'))) {
      for (const r of t.runs) {
        if (r.brokenLinks > 0 || r.missingAssets > 0 || r.exit !== '0') result.failures.push(`render ${t.tool}: exit ${r.exit}, ${r.brokenLinks} broken links, ${r.missingAssets} missing assets${r.examples.length ? ` e.g. ${r.examples.join('; ')}` : ''}${r.error ? ` — ${r.error}` : ''}`)
      }
    }
    result.sections.push({
      title: 'render: one origin crawled by mirror, wget and wget2',
      intro: [
        `Origin: test/helpers/origin.ts with ${posts} posts (${origin.pages.length} real pages), ${latencyMs} ms per page and ${assetLatencyMs} ms per asset, edit/login/history/diff links on every page and an endless calendar. wget and wget2 run with \`${WGET_OPTIONS.join(' ')}\` (robots.txt honoured, their default). Links and assets are followed by test/helpers/origin.ts checkSnapshot() on each saved snapshot, served from disk: a *broken link* leads to a real page of the site (origin.pages) with no file behind it; links to what a snapshot leaves out (edit/login/history pages, the endless calendar, robots-forbidden pages) are counted apart.`,
      ],
      headers: ['tool', 'wall s', 'requests', 'files saved', 'broken links', 'missing assets', 'real pages missing', 'links to left-out URLs', 'exit'],
      rows,
      notes: [`mirror / wget2: ${vs(by.wget2)} (goal ≤ ${GOAL_VS_WGET2}); mirror / wget: ${vs(by.wget)}.`, ...tools.filter((t) => t.skipped).map((t) => `Not run: ${t.tool}: ${t.skipped}.`)],
    })
    result.data = {posts, latencyMs, assetLatencyMs, limitMs, realPages: origin.pages.length, tools}
    return result
  },
}

/**
 * A page's identity across the tools' naming schemes: "/blog/?page=2", mirror's
 * "blog/index@page=2.html" and wget's "blog/index.html?page=2.html" all become "blog?page=2".
 */
export function pageKey(path: string): string {
  let s = path
  try {
    s = decodeURIComponent(s)
  } catch {
    // Keep it as written.
  }
  s = s.replace(/^\/+/, '').replace('@', '?')
  const at = s.indexOf('?')
  let p = at < 0 ? s : s.slice(0, at)
  let q = at < 0 ? '' : s.slice(at + 1)
  q = q.replace(/\.html$/, '')
  p = p.replace(/\.html$/, '').replace(/(^|\/)index$/, '$1').replace(/\/+$/, '')
  return q ? `${p}?${q}` : p
}

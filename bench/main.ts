// `npm run bench` (through scripts/bench.js): parses the flags, starts the slaves on first use,
// runs each scenario module (publish, render, watch), then writes the markdown table and the JSON
// to bench-results/ and prints the table. Always stops what it started, also on Ctrl-C.

import {execFileSync, spawnSync} from 'node:child_process'
import {cpus, freemem, loadavg, tmpdir, totalmem} from 'node:os'
import {appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {linkText, parseLink, relayWireCounter} from './link.js'
import {killRunning, wireCounter} from './measure.js'
import {summarizeProfiles} from './profile.js'
import {markdownTable} from './report.js'
import {MODULES} from './scenarios/index.js'
import {startSlaves, type SlaveSet} from './slaves.js'
import type {BenchContext, BenchOptions, ModuleResult, Section} from './types.js'

const projectDir = join(dirname(fileURLToPath(import.meta.url)), '..')

const HELP = `npm run bench -- [flags]

  --quick            small corpus (2,000 files), 3 runs of mirror and rsync-par (1 of the other baselines),
                     no 100,000-file run, shorter render and watch runs
  --tiny             tiny corpus, 1 run (the smoke test)
  (default)          small (5 runs) and large (20,000 files, 650 MB; 3 runs) corpora, and the 100,000-file RSS run
  --runs N           runs per scenario and tool (median reported)
  --corpus LIST      small,large,tiny (comma-separated)
  --scenario LIST    init,noop,mutate,rss100k
  --tool LIST        mirror,rsync-seq,rsync-par,rclone-par
  --module LIST      publish,render,watch (the modules whose prerequisites exist run)
  --timeout SEC      per tool run (default 900); a run that takes longer is killed and reported
  --link RTT_MS,MBIT put an emulated link between every tool and every slave, e.g. --link 20,100:
                     a user-space TCP relay per slave (bench/link.ts; no loss, no jitter) adds the RTT
                     and paces each direction at MBIT Mbit/s per slave; bytes are then counted at the
                     relays. Check the relay itself with: node --import tsx bench/link-check.ts 20,100
  --profile          run mirror with --cpu-prof; the report lists where its time goes
  --sanity           add a deliberately wrong publisher: its verdict must be WRONG
  --out DIR          results directory (default bench-results/)
  --workdir DIR      slave roots and configs (default: a fresh dir under the temp dir)
  --cache DIR        generated corpora (default: <tmp>/mirror-bench-cache)
  --keep             keep the work directory
`

function parseOptions(argv: string[]): BenchOptions {
  const {values} = parseArgs({
    args: argv,
    options: {
      quick: {type: 'boolean', default: false},
      tiny: {type: 'boolean', default: false},
      runs: {type: 'string'},
      corpus: {type: 'string'},
      scenario: {type: 'string'},
      tool: {type: 'string'},
      module: {type: 'string'},
      timeout: {type: 'string'},
      link: {type: 'string'},
      profile: {type: 'boolean', default: false},
      sanity: {type: 'boolean', default: false},
      out: {type: 'string'},
      workdir: {type: 'string'},
      cache: {type: 'string'},
      keep: {type: 'boolean', default: false},
      help: {type: 'boolean', short: 'h', default: false},
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const list = (value: string | undefined, fallback: string[]) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : fallback)
  const tiny = values.tiny
  const quick = values.quick
  const full = !tiny && !quick
  const runs = values.runs === undefined ? (tiny ? 1 : quick ? 3 : undefined) : Number(values.runs)
  if (runs !== undefined && (!Number.isInteger(runs) || runs < 1 || runs > 50)) throw new Error('--runs takes a whole number from 1 to 50')
  const timeout = Number(values.timeout ?? 900)
  if (!(timeout > 0)) throw new Error('--timeout takes seconds')
  return {
    quick,
    tiny,
    runs,
    corpora: list(values.corpus, tiny ? ['tiny'] : quick ? ['small'] : ['small', 'large']),
    scenarios: list(values.scenario, full ? ['init', 'noop', 'mutate', 'rss100k'] : ['init', 'noop', 'mutate']),
    tools: list(values.tool, ['mirror', 'rsync-seq', 'rsync-par', 'rclone-par']),
    modules: list(values.module, ['publish', 'render', 'watch']),
    outDir: resolve(values.out ?? join(projectDir, 'bench-results')),
    workDir: resolve(values.workdir ?? join(tmpdir(), `mirror-bench-${process.pid}`)),
    cacheDir: resolve(values.cache ?? join(tmpdir(), 'mirror-bench-cache')),
    timeoutMs: timeout * 1000,
    profile: values.profile,
    keep: values.keep,
    sanity: values.sanity,
    link: values.link === undefined ? undefined : parseLink(values.link),
  }
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).split('\n')[0].trim()
  } catch (error) {
    const stderr = (error as {stderr?: string}).stderr
    return stderr ? stderr.split('\n')[0].trim() : 'not installed'
  }
}

function machine(workDir: string) {
  const probe = spawnSync('/usr/sbin/sshd', ['-V'], {encoding: 'utf8'})
  const sshd = `${probe.stderr ?? ''}${probe.stdout ?? ''}`.split('\n')[0].trim() || 'sshd: unknown version'
  const fsType = (path: string) => {
    try {
      return execFileSync('df', ['--output=fstype', path], {encoding: 'utf8'}).trim().split('\n').at(-1)!.trim()
    } catch {
      return 'unknown'
    }
  }
  return {
    mirror: gitDescribe(),
    workDirFs: fsType(workDir),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: version('uname', ['-r']),
    node: process.version,
    openssh: sshd,
    rsync: version('rsync', ['--version']),
    rclone: version('rclone', ['version']),
    wget: version('wget', ['--version']),
    wget2: version('wget2', ['--version']),
    lsyncd: version('lsyncd', ['--version']),
  }
}

/**
 * Copies the built mirror (bin, dist, templates, package.json; node_modules linked) into the work
 * directory and returns its bin/run.js: every run of a long benchmark measures the same build,
 * even when the checkout is rebuilt meanwhile.
 */
function freezeMirror(workDir: string): string {
  const dir = join(workDir, 'mirror-under-test')
  mkdirSync(dir, {recursive: true})
  for (const part of ['bin', 'dist', 'templates']) {
    if (existsSync(join(projectDir, part))) cpSync(join(projectDir, part), join(dir, part), {recursive: true})
  }
  copyFileSync(join(projectDir, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(projectDir, 'node_modules'), join(dir, 'node_modules'))
  return join(dir, 'bin/run.js')
}

function gitDescribe(): string {
  try {
    const head = execFileSync('git', ['-C', projectDir, 'rev-parse', '--short', 'HEAD'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
    const dirty = execFileSync('git', ['-C', projectDir, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
    return dirty ? `${head} with uncommitted changes in src/` : head
  } catch {
    return 'unknown'
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const mode = options.tiny ? 'tiny' : options.quick ? 'quick' : 'full'
  mkdirSync(options.outDir, {recursive: true})
  const logFile = join(options.outDir, `bench-${mode}-${stamp}.log`)
  const log = (line: string) => {
    const text = `[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`
    process.stderr.write(text)
    appendFileSync(logFile, text)
  }
  if (!existsSync(join(projectDir, 'dist/commands/index.js'))) throw new Error('dist/ is missing: build first (npx tsc -p .), or run through `npm run bench`')
  mkdirSync(options.workDir, {recursive: true})
  const binRun = freezeMirror(options.workDir)
  mkdirSync(options.cacheDir, {recursive: true})
  if (options.profile) rmSync(join(options.outDir, 'profiles'), {recursive: true, force: true})

  let slaves: SlaveSet | undefined
  let starting: Promise<SlaveSet> | undefined
  const ctx: BenchContext = {
    options,
    projectDir,
    binRun,
    // Behind the link, the loopback counters would see every byte twice (tool-relay, relay-sshd).
    wire: options.link ? relayWireCounter(() => slaves?.link) : wireCounter(),
    log,
    slaves: () =>
      (starting ??= startSlaves(options.workDir, 4, options.link).then((s) => {
        if (s.link) log(`link: ${linkText(options.link)}: relay process ${s.link.pid} on 127.0.0.1 ports ${s.link.ports.join(', ')}`)
        return (slaves = s)
      })),
  }
  let stopping = false
  const cleanup = async () => {
    if (stopping) return
    stopping = true
    killRunning()
    await slaves?.stop()
    if (!options.keep) rmSync(options.workDir, {recursive: true, force: true})
  }
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping the slaves`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const info = machine(options.workDir)
  const loadBefore = loadavg()
  const results: Array<{module: string; title: string; skipped?: string; result?: ModuleResult; error?: string}> = []
  try {
    for (const module of MODULES.filter((m) => options.modules.includes(m.id))) {
      const why = module.unavailable(ctx)
      if (why) {
        log(`${module.id}: skipped: ${why}`)
        results.push({module: module.id, title: module.title, skipped: why})
        continue
      }
      log(`${module.id}: ${module.title}`)
      try {
        results.push({module: module.id, title: module.title, result: await module.run(ctx)})
      } catch (error) {
        log(`${module.id}: failed: ${(error as Error).stack ?? error}`)
        results.push({module: module.id, title: module.title, error: String((error as Error).message ?? error)})
      }
    }
  } finally {
    await cleanup()
  }
  const loadAfter = loadavg()
  const profile = options.profile ? summarizeProfiles(join(options.outDir, 'profiles')) : undefined

  const failures = results.flatMap((r) => r.result?.failures ?? [])
  const warnings = results.flatMap((r) => r.result?.warnings ?? [])
  const sections: Section[] = results.flatMap((r) => r.result?.sections ?? [])
  const md = [
    `## mirror benchmark (${mode}), ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `mirror: ${info.mirror} (the build in dist/ when the run started).`,
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB; Linux ${info.kernel}; Node ${info.node}; ${info.openssh}; ${info.rsync}; rclone: ${info.rclone}. Slave roots on ${info.workDirFs}.`,
    `Load average ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (other processes share the machine: compare medians, expect noise).`,
    '',
    `Link: ${linkText(options.link)}.${options.link ? ' Each direction is delayed by half the RTT and paced at the rate, per slave, through a bottleneck queue of the bandwidth-delay product + 256 KiB; no loss, no jitter (bench/link.ts).' : ''}`,
    '',
    `Bytes on the wire: ${ctx.wire.method}. "tool-counted" is what each tool reports itself (mirror: report.bytes; rsync: --stats sent + received; rclone: its transfer stats). Peak RSS: GNU time's maximum resident set size (rsync and rclone: the largest of the 4 processes).`,
    '',
    `Publish runs: before each run, untimed, the slaves are reset (init: emptied; noop and mutate: made to hold the base again with a local \`rsync -a --delete\` from a pristine copy, after removing every file the last verification found wrong; for mirror that copy is what its own first publish left, with its manifests, and its master state is restored too; for rsync and rclone it is the base tree), then flushed to disk. After each run, every slave is compared with the source: the file list, and the SHA-1 of every file (a file is re-read unless its inode, size, mtime and ctime are those it had when it was last hashed: any write changes its ctime or inode).`,
    '',
    ...sections.flatMap((s) => [markdownTable(s), '']),
    ...results.filter((r) => r.skipped || r.error).map((r) => `- ${r.module}: ${r.skipped ? `skipped: ${r.skipped}` : `failed: ${r.error}`}`),
    ...(failures.length > 0 ? ['', '**mirror failures (wrong results, errors, runs that did not finish):**', ...failures.map((f) => `- ${f}`)] : ['', 'mirror correctness: no failure in any verified run.']),
    ...(warnings.length > 0 ? ['', 'Harness / baseline warnings:', ...warnings.map((w) => `- ${w}`)] : []),
    ...(profile ? ['', profile.markdown] : []),
    '',
  ].join('\n')
  const json = {
    mode,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options,
    machine: {...info, loadBefore, loadAfter, freeMemGiB: +(freemem() / 2 ** 30).toFixed(1)},
    method: {wire: ctx.wire.method, wireExact: ctx.wire.exact},
    link: options.link ? {...options.link, text: linkText(options.link), model: 'user-space TCP relay per slave: delay RTT/2 and pace at the rate each direction, bounded queue, no loss, no jitter'} : null,
    modules: results.map((r) => ({module: r.module, title: r.title, skipped: r.skipped, error: r.error, data: r.result?.data})),
    failures,
    warnings,
    profile: profile?.data,
  }
  const mdFile = join(options.outDir, `bench-${mode}-${stamp}.md`)
  const jsonFile = join(options.outDir, `bench-${mode}-${stamp}.json`)
  writeFileSync(mdFile, md)
  writeFileSync(jsonFile, `${JSON.stringify(json, null, 2)}\n`)
  copyFileSync(mdFile, join(options.outDir, `latest-${mode}.md`))
  copyFileSync(jsonFile, join(options.outDir, `latest-${mode}.json`))
  process.stdout.write(`${md}\n`)
  log(`wrote ${mdFile}, ${jsonFile} and ${logFile}`)
  if (results.some((r) => r.error)) process.exitCode = 1
}

main().catch((error) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`)
  process.exit(1)
})

// What a benchmark scenario module is: something that measures one aspect of mirror against its
// baselines (publish vs rsync/rclone, render vs wget/wget2, watch vs lsyncd) and returns tables
// for the report plus its raw data for the JSON. main.ts runs the modules; it knows none of them.

import type {LinkSpec} from './link.js'
import type {WireCounter} from './measure.js'
import type {SlaveSet} from './slaves.js'

export interface BenchOptions {
  /** Small corpus only, fewer runs: a few minutes. */
  quick: boolean
  /** The tiny corpus, one run: the smoke test. */
  tiny: boolean
  /** Runs per scenario and tool; undefined: 1 (tiny), 3 (quick), 5 for the small and 3 for the large corpus (full). */
  runs: number | undefined
  /** Corpus names (corpus.ts CORPORA) for the publish scenarios. */
  corpora: string[]
  /** Publish scenarios: init, noop, mutate, rss100k. */
  scenarios: string[]
  /** Publisher ids (publishers.ts). */
  tools: string[]
  /** Module ids to run (publish, render, watch). */
  modules: string[]
  outDir: string
  workDir: string
  cacheDir: string
  /** Per tool run; a run that takes longer is killed and reported as a timeout. */
  timeoutMs: number
  /** Run mirror with --cpu-prof and summarize where its time goes. */
  profile: boolean
  /** Keep the work directory (slave roots, configs) afterwards. */
  keep: boolean
  /** Add the deliberately wrong publisher, to show the verifier catches it. */
  sanity: boolean
  /** The emulated link between every tool and every slave (link.ts), or undefined: plain loopback. */
  link?: LinkSpec
}

export interface BenchContext {
  options: BenchOptions
  /** The mirror checkout under test. */
  projectDir: string
  binRun: string
  wire: WireCounter
  log(line: string): void
  /** The 4 sshd slaves, started on first use and stopped by main.ts at the end. */
  slaves(): Promise<SlaveSet>
}

/** One table of the report. */
export interface Section {
  title: string
  /** Lines printed above the table. */
  intro?: string[]
  headers: string[]
  rows: string[][]
  /** Lines printed below the table. */
  notes?: string[]
}

export interface ModuleResult {
  sections: Section[]
  /** Raw measurements for the JSON file. */
  data: unknown
  /** Correctness failures of mirror found by verification, one line each. */
  failures: string[]
  /** Problems of the harness or a baseline (a baseline that did not verify, a tool that crashed). */
  warnings: string[]
}

export interface ScenarioModule {
  id: string
  title: string
  /** Why the module cannot run in this checkout or on this machine, or undefined. */
  unavailable(ctx: BenchContext): string | undefined
  run(ctx: BenchContext): Promise<ModuleResult>
}

// The clean noop: a publish whose answer is known from the walk's print alone, because every
// target's last publish recorded that print and its slave still has the manifest that publish
// wrote (one stat each). Reads and changes nothing else, anywhere. Light to import on purpose:
// bin/run.js answers a plain `mirror publish` with it before the CLI framework loads.

import {createHash} from 'node:crypto'
import {join} from 'node:path'

import type {Config} from '../config/load.js'
import type {TargetConfig} from '../config/schema.js'
import type {Target} from '../targets/target.js'
import type {PublishEvent} from './events.js'
import {emptyReport} from './report.js'
import {heldSource, type HeldSource} from './manifest-cache.js'
import {selectTargets, type OpeningTargets} from './opening.js'
import {countActions, type TargetPlan} from './plan.js'
import type {PublishOptions, PublishResult, TargetOutcome} from './publish.js'
import type {WalkedTree} from './walk-aside.js'

/**
 * The publish's result when it is a clean noop: the targets are closed and the walk let go.
 * Undefined as soon as one target is not known to be up to date; the walk and the connections
 * are then left as they were, for the publish to go on with.
 */
export async function cleanNoop(
  config: Config,
  walked: WalkedTree,
  early: OpeningTargets,
  options: Pick<PublishOptions, 'targets' | 'dryRun' | 'openTargets' | 'onEvent'>,
  started = Date.now(),
): Promise<PublishResult | undefined> {
  const held = await allHeld(selectTargets(config, options.targets), early, options.openTargets, join(config.stateDir, 'targets'), routedPrint(config, walked.print))
  if (!held?.length) return undefined
  const emit = options.onEvent ?? (() => {})
  walked.close()
  // The same print: the same files and warnings as the scan that recorded it.
  const {files, warnings} = held[0].source
  emit({type: 'scan-done', files, hashed: 0, durationMs: Date.now() - started})
  return {source: config.source, files, hashed: 0, warnings, dryRun: Boolean(options.dryRun), targets: await heldOutcomes(held, options, emit)}
}

/** The walk's print with what decides where its files go: a change of either changes it. */
export function routedPrint(config: Config, treePrint: string): string {
  const routing = JSON.stringify({segments: config.segments, protect: config.protect, exclude: config.exclude})
  return createHash('sha256').update(`${treePrint}\n${routing}`).digest('hex')
}

/** The plan of a target that already holds exactly its entries. */
export function upToDatePlan(target: Target, unchanged: number, protectedPaths: number): TargetPlan {
  return {target: target.name, url: target.url, actions: [], unchanged, protected: protectedPaths, bytes: 0, counts: countActions([]), verified: false}
}

type Held = Array<{target: Target; reused: boolean; plan: TargetPlan; generation: number; source: HeldSource}>

/**
 * Every target is known to hold what a walk with this print publishes, and its manifest is
 * still the one the master wrote (one stat each). Undefined as soon as one is not: then the
 * publish goes the usual way, with the connections already open.
 */
async function allHeld(
  selected: readonly TargetConfig[],
  early: OpeningTargets,
  openTargets: Map<string, Target> | undefined,
  cacheDir: string,
  print: string,
): Promise<Held | undefined> {
  const records = await Promise.all(selected.map((t) => heldSource(t, cacheDir)))
  // A record from before the scan's file count was kept cannot answer: the usual way then.
  if (records.some((r) => r?.print !== print || r.files === undefined)) return undefined
  const held = await Promise.all(
    selected.map(async (targetConfig, i) => {
      const record = records[i]!
      const reused = openTargets?.get(targetConfig.name)
      const opened = early.get(targetConfig.name)
      if (!reused && !opened) return undefined
      try {
        const target = reused ?? (await opened!.target)
        if (opened) await opened.connected
        const remote = await target.statState('manifest.json')
        if (remote?.size !== record.size || remote.mtimeMs !== record.mtimeMs) return undefined
        const plan = upToDatePlan(target, record.unchanged, record.protected)
        return {target, reused: Boolean(reused), plan, generation: record.generation, source: record}
      } catch {
        // Unreachable, or anything else: the usual way meets it and reports it.
        return undefined
      }
    }),
  )
  return held.every(Boolean) ? (held as Held) : undefined
}

async function heldOutcomes(held: Held, options: Pick<PublishOptions, 'dryRun'>, emit: (event: PublishEvent) => void): Promise<TargetOutcome[]> {
  return Promise.all(
    held.map(async ({target, reused, plan, generation}) => {
      emit({type: 'target-planned', target: target.name, plan})
      if (!reused) await target.close()
      emit({type: 'target-done', target: target.name, ok: true})
      return {target: target.name, url: target.url, plan, ...(options.dryRun ? {} : {report: {...emptyReport(target), generation}})}
    }),
  )
}

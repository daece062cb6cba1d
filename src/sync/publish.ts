// The publish pipeline: scan the source once, route files to targets, then per target (all in
// parallel, bounded) connect, lock, load the manifest, probe only what the plan needs, plan, and
// execute. `dryRun` stops after planning and never takes a lock or writes anything.

import {existsSync} from 'node:fs'
import {hostname, userInfo} from 'node:os'
import {join} from 'node:path'

import pLimit from 'p-limit'

import type {Config} from '../config/load.js'
import type {TargetConfig} from '../config/schema.js'
import {MirrorError, toMirrorError, withContext} from '../errors.js'
import {createTarget} from '../targets/index.js'
import {isTempName} from '../targets/paths.js'
import type {LockOwner, Target} from '../targets/target.js'
import type {PublishEvent} from './events.js'
import {executePlan} from './executor.js'
import {emptyReport, type TargetReport} from './report.js'
import {emptyManifest, fingerprint, ManifestBodies, type Manifest, type ParsedFiles, type WrittenManifest} from './manifest.js'
import {loadManifest, recordHeldSource, saveManifestCopy, upToDateGeneration, type LoadedManifest} from './manifest-cache.js'
import type {RoutedEntry, TargetPlan} from './plan.js'
import {needsHash, SharedPlanning, type SlaveFile} from './planner.js'
import {compileGlobs} from './globs.js'
import type {ScanResult, ScanWarning, SourceEntry} from './scan.js'
import {walkConfigSource, type WalkedTree} from './walk-aside.js'
import {startDeltaThread} from './delta-aside.js'
import {hashCacheFile} from './hash-cache.js'
import {deltaSized} from './delta.js'
import {SharedReads} from './shared-reads.js'
import {SignatureStore} from './signatures.js'
import {processAlive} from '../util/process.js'
import {createRouter} from './segments.js'
import {openEarly, selectTargets, type OpeningTargets} from './opening.js'
import {cleanNoop, routedPrint, upToDatePlan} from './clean-noop.js'
import {limitHeapGrowth} from '../util/heap.js'

/** From this many source files on, the heap is kept tight (see limitHeapGrowth). */
const BIG_TREE_FILES = 50_000

export interface PublishOptions {
  /** Only these targets (names); all when empty. */
  targets?: readonly string[]
  /** Plan only: no lock, no writes, anywhere. */
  dryRun?: boolean
  /** Overwrite customizations and conflicts, keeping a backup of the slave's version. */
  force?: boolean
  /** List every slave in full instead of trusting the manifest for unchanged paths. */
  verify?: boolean
  breakLock?: boolean
  maxDelete?: number
  /** Only these source paths (a watch batch); others are left as they are. */
  only?: readonly string[]
  signal?: AbortSignal
  onEvent?: (event: PublishEvent) => void
  /** Open targets to reuse (watch keeps connections between batches); by name. */
  openTargets?: Map<string, Target>
  /** The source's walk, when the caller started it already (walkConfigSource with the same `only`). */
  walking?: Promise<WalkedTree>
  /** The targets' connections, when the caller started them already (openEarly with the same targets). */
  opening?: OpeningTargets
}

export interface TargetOutcome {
  target: string
  url: string
  plan?: TargetPlan
  report?: TargetReport
  /** Set when the target failed before or instead of executing. */
  error?: ReturnType<MirrorError['toJSON']>
  /** What the user should know though the target did not fail (MANIFEST_CORRUPT: rebuilt from the slave). */
  warnings?: Array<ReturnType<MirrorError['toJSON']>>
}

export interface PublishResult {
  source: string
  files: number
  hashed: number
  warnings: ScanWarning[]
  dryRun: boolean
  targets: TargetOutcome[]
}

export function publisherName(): string {
  return `${userInfo().username}@${hostname()}`
}

/**
 * Routes every source entry to its targets; a file no segment matches is an error. Targets that
 * take the same segments get the same map (and every target of a segment the same entry
 * objects): on a 100,000-file site, four copies of the routing would be a quarter of the heap.
 * The maps are read-only from here on.
 */
export function routeEntries(config: Config, entries: ScanResult['entries']): Map<string, Map<string, RoutedEntry>> {
  const router = createRouter(config.segments)
  const segmentsOf = (target: string) => config.segments.filter((s) => s.targets.includes(target)).map((s) => s.name).join('\0')
  const shared = new Map<string, Map<string, RoutedEntry>>()
  const byTarget = new Map<string, Map<string, RoutedEntry>>()
  for (const t of config.targets) {
    const key = segmentsOf(t.name)
    if (!shared.has(key)) shared.set(key, new Map())
    byTarget.set(t.name, shared.get(key)!)
  }
  // Per segment, the distinct maps its targets fill (with the first target's name, for errors),
  // in plain arrays: this loop runs once per file, mostly before V8 has compiled it, and a Map
  // iterator per file made it 50-80 ms of every changed publish's critical path (20,000 files).
  const mapsOf = new Map(
    config.segments.map((segment) => {
      const maps: Array<Map<string, RoutedEntry>> = []
      const names: string[] = []
      for (const name of segment.targets) {
        const map = byTarget.get(name)!
        if (!maps.includes(map)) maps.push(map), names.push(name)
      }
      return [segment, {maps, names}] as const
    }),
  )
  const unrouted: string[] = []
  for (let i = 0; i < entries.length; i++) {
    const source = entries[i]
    const segment = router.segmentFor(source.path)
    if (!segment) {
      unrouted.push(source.path)
      continue
    }
    const routed: RoutedEntry = {path: router.targetPath(segment, source.path), segment: segment.name, source}
    const {maps, names} = mapsOf.get(segment)!
    for (let m = 0; m < maps.length; m++) {
      const clash = maps[m].get(routed.path)
      if (clash) {
        throw new MirrorError('USAGE', `"${source.path}" (segment ${segment.name}) and "${clash.source.path}" (segment ${clash.segment}) land on the same path`, {
          target: names[m],
          path: routed.path,
          suggestion: 'Give one of the segments a different "path".',
        })
      }
      maps[m].set(routed.path, routed)
    }
  }
  if (unrouted.length > 0) {
    const shown = unrouted.slice(0, 10).map((p) => `  ${JSON.stringify(p)}`).join('\n')
    throw new MirrorError('UNROUTED_FILE', `${unrouted.length} file(s) match no segment:\n${shown}${unrouted.length > 10 ? '\n  …' : ''}`, {
      path: unrouted[0],
      suggestion: 'Add a last segment with match: ["**"], or exclude these files.',
    })
  }
  return byTarget
}

export async function publish(config: Config, options: PublishOptions = {}): Promise<PublishResult> {
  const emit = options.onEvent ?? (() => {})
  const selected = selectTargets(config, options.targets)
  const started = Date.now()
  // The walk goes first, on its own thread: it then runs beside the handshakes.
  const walking = options.walking ?? walkConfigSource(config, options.only)
  const early = options.opening ?? openEarly(config, selected, options.openTargets)
  for (const name of early.keys()) emit({type: 'target-connecting', target: name})
  const cacheDir = join(config.stateDir, 'targets')
  // Targets whose manifests hold the same files share one parsed map (read-only from here on).
  const parsedFiles: ParsedFiles = new Map()
  // Targets locked and their manifests loaded while the source is hashed (see prepareEarly).
  let prepared: Map<string, Promise<LoadedManifest>> | undefined
  let probedEarly: Map<string, Promise<EarlyProbe>> | undefined
  const lockedEarly = new Set<string>()
  const protect = compileGlobs(config.protect)
  let scan: ScanResult
  let routed: ReturnType<typeof routeEntries>
  let print: string | undefined
  try {
    const walked = await walking
    // A watch batch walks only its paths, and --verify looks at everything: no quick noop.
    if (!options.only && !options.verify) {
      print = routedPrint(config, walked.print)
      const answer = await cleanNoop(config, walked, early, options, started)
      if (answer) return answer
    }
    // Not a clean noop: a large file that changed will want its delta soon, when any version
    // has a signature to make one from (a thread of its own is some 10 MB of memory).
    if (!options.dryRun && existsSync(signaturesDir(config))) startDeltaThread()
    if (!options.only && !options.dryRun) prepared = prepareEarly(early, (name, target) => takeLock(target, options.breakLock).then(() => lockedEarly.add(name)), cacheDir, selected, parsedFiles)
    if (prepared && !options.verify) probedEarly = probeEarly(config, early, prepared, walked.candidates(), protect)
    if (walked.count >= BIG_TREE_FILES) limitHeapGrowth()
    scan = await walked.scan({cacheFile: hashCacheFile(config.stateDir), only: options.only})
    emit({type: 'scan-done', files: scan.entries.length, hashed: scan.hashed, durationMs: Date.now() - started})
    routed = routeEntries(config, scan.entries)
  } catch (error) {
    await Promise.all(
      [...early].map(async ([name, e]) => {
        const target = await e.target.catch(() => undefined)
        await prepared?.get(name)?.catch(() => {})
        await probedEarly?.get(name)
        if (target && lockedEarly.has(name)) await target.unlock().catch(() => {})
        await target?.close()
      }),
    )
    throw error
  }
  const scope = options.only ? scopeMatcher(config, options.only) : undefined
  // Protected paths are never recorded in a manifest, so they are not part of its fingerprint
  // either. Once per routed map: targets taking the same segments share one.
  const heldPrints = new Map<Map<string, RoutedEntry>, {fingerprint: string; published: number}>()
  const heldPrintOf = (entries: Map<string, RoutedEntry>) => {
    let held = heldPrints.get(entries)
    if (!held) {
      const paths = [...entries.keys()].filter((path) => !protect(path))
      held = {fingerprint: fingerprint(paths, (path) => entries.get(path)!.source), published: paths.length}
      heldPrints.set(entries, held)
    }
    return held
  }

  const limit = pLimit(config.publish.parallel)
  const signatures = new SignatureStore(signaturesDir(config))
  if (!options.dryRun) startDeltas(scan, signatures)
  const reads = new SharedReads<SourceEntry>(readersOf(config))
  const bodies = new ManifestBodies()
  const planning = new SharedPlanning()
  const backupId = new Date().toISOString().replace(/[:.]/g, '-')
  // Only a publish that may reach every target prunes signatures (see pruneSignatures); it
  // notes the large-file versions each target holds once it is over.
  const pruning = !options.dryRun && !options.only && selected.length === config.targets.length
  const versionsHeld = new Map<string, Set<string>>()
  const outcomes = await Promise.all(
    selected.map((targetConfig) =>
      limit(async (): Promise<TargetOutcome> => {
        const outcome: TargetOutcome = {target: targetConfig.name, url: targetConfig.url}
        const reused = options.openTargets?.get(targetConfig.name)
        const opened = early.get(targetConfig.name)
        const target = reused ?? (await (opened?.target ?? createTarget(targetConfig, config)))
        const preparing = prepared?.get(targetConfig.name)
        let locked = false
        try {
          if (opened) await opened.connected
          else if (!reused) {
            emit({type: 'target-connecting', target: target.name})
            await target.connect()
          }
          const entries = routed.get(target.name)!
          const held = print ? heldPrintOf(entries) : undefined
          const current = held?.fingerprint
          const published = held?.published ?? 0
          // From now on this walk of the source means "up to date" for this target, until either changes.
          const remember = () => recordHeldSource(targetConfig, cacheDir, current!, {print: print!, unchanged: published, protected: entries.size - published, files: scan.entries.length, warnings: scan.warnings}).catch(() => {})
          // The clean noop: the slave's manifest is still the one this master wrote, and it
          // holds exactly these entries. Nothing to plan, nothing to lock.
          if (current && !scope) {
            const generation = await upToDateGeneration(target, targetConfig, cacheDir, current)
            if (generation !== undefined) {
              outcome.plan = upToDatePlan(target, published, entries.size - published)
              emit({type: 'target-planned', target: target.name, plan: outcome.plan})
              if (!options.dryRun) outcome.report = {...emptyReport(target), generation}
              await remember()
              return outcome
            }
          }
          let loaded: LoadedManifest
          if (preparing) {
            loaded = await preparing
          } else {
            if (!options.dryRun) {
              await takeLock(target, options.breakLock)
              locked = true
            }
            loaded = await loadManifest(target, targetConfig, cacheDir, parsedFiles)
          }
          if (loaded.corrupt) outcome.warnings = [withContext(loaded.corrupt, target.name).toJSON()]
          const base = loaded.manifest
          // No trusted manifest (first publish, a damaged one, an interrupted publish): look at everything.
          const listed = Boolean(options.verify) || base === null || !base.complete
          const planBase = base && scope ? {...base, files: new Map([...base.files].filter(([p]) => scope(p, entries)))} : base
          const slave = await probeSlave(target, entries, planBase, protect, listed, !options.dryRun, planning, probedEarly?.get(target.name))
          const plan = planning.plan({target: target.name, url: target.url, entries, base: planBase, slave, listed, protect, force: Boolean(options.force)})
          outcome.plan = plan
          emit({type: 'target-planned', target: target.name, plan})
          if (options.dryRun) return outcome
          outcome.report = await executePlan(target, plan, {
            base: base ?? {...emptyManifest(target.name), generation: loaded.generationHint},
            maxDelete: options.maxDelete ?? config.publish.maxDelete,
            backupId,
            publisher: publisherName(),
            signal: options.signal,
            onEvent: options.onEvent,
            signatures,
            reads,
            baseBytes: base ? loaded.bytes : undefined,
            bodies,
            onManifestWritten: (data, manifest, written) => {
              if (pruning && manifest.complete) versionsHeld.set(target.name, largeVersions(manifest.files))
              return saveManifestCopy(targetConfig, cacheDir, data, manifest, written)
            },
          })
          // Nothing written: the manifest it had is still the one it holds.
          if (pruning && !versionsHeld.has(target.name) && base) versionsHeld.set(target.name, largeVersions(base.files))
          if (!outcome.report.ok) outcome.error = outcome.report.error
          else if (current && outcome.report.kept.length === 0) await remember()
        } catch (error) {
          outcome.error = withContext(error, target.name).toJSON()
        } finally {
          // An early lock (or probe) may still be on its way when this target stops sooner: wait for it.
          await preparing?.catch(() => {})
          await probedEarly?.get(target.name)
          if (locked || lockedEarly.has(target.name)) await target.unlock()
          if (!reused) await target.close()
          emit({type: 'target-done', target: target.name, ok: !outcome.error})
        }
        return outcome
      }),
    ),
  )
  if (pruning && outcomes.every((o) => !o.error)) await pruneSignatures(signatures, scan.entries, versionsHeld, started)
  return {source: config.source, files: scan.entries.length, hashed: scan.hashed, warnings: scan.warnings, dryRun: Boolean(options.dryRun), targets: outcomes}
}

/**
 * After a publish that reached every target, drops the signatures of large-file versions none
 * of them holds any more: a delta is only ever made against a version a target holds. Those are
 * the source's (a target found up to date holds exactly them) and those of each target's final
 * manifest (customized files keep their published version). After anything less, nothing goes:
 * a target not reached may still hold an older version.
 */
async function pruneSignatures(signatures: SignatureStore, entries: readonly SourceEntry[], versionsHeld: Map<string, Set<string>>, started: number): Promise<void> {
  const live = new Set<string>()
  for (const entry of entries) if (deltaSized(entry.size)) live.add(entry.hash)
  for (const versions of versionsHeld.values()) for (const hash of versions) live.add(hash)
  await signatures.prune(live, started)
}

/** The content hashes of a manifest's large files: the versions a delta could be made against. */
function largeVersions(files: WrittenManifest['files']): Set<string> {
  const versions = new Set<string>()
  if (typeof files === 'function') {
    for (const [, record] of files()) if (deltaSized(record.size)) versions.add(record.hash)
  } else {
    files.forEach((record) => deltaSized(record.size) && versions.add(record.hash))
  }
  return versions
}

/**
 * Once a walk shows that the source changed, each target with an early connection is locked and
 * its manifest loaded while the source is hashed: the round trips and the manifest's parse are
 * then off the critical path. `lock` records the targets it locked, for the unlock.
 */
function prepareEarly(
  early: OpeningTargets,
  lock: (name: string, target: Target) => Promise<unknown>,
  cacheDir: string,
  selected: readonly TargetConfig[],
  parsedFiles: ParsedFiles,
): Map<string, Promise<LoadedManifest>> {
  const prepared = new Map<string, Promise<LoadedManifest>>()
  for (const targetConfig of selected) {
    const opened = early.get(targetConfig.name)
    if (!opened) continue
    const loading = (async () => {
      const target = await opened.target
      await opened.connected
      await lock(targetConfig.name, target)
      return loadManifest(target, targetConfig, cacheDir, parsedFiles)
    })()
    // Failures are met (and reported per target) where the target's turn comes.
    loading.catch(() => {})
    prepared.set(targetConfig.name, loading)
  }
  return prepared
}

/** A slave's answers for the paths probed while the source was hashed; undefined when none. */
type EarlyProbe = Map<string, SlaveFile | null> | undefined

/**
 * While the source is hashed, each prepared target's slave is probed for the paths the hashing
 * must read and those gone since the last scan, routed to it: almost always the paths the plan
 * will ask about (pathsToProbe), which then wait only for the rest, if any. Not when there are
 * too many to be a change (a lost hash cache makes every file a candidate, the manifest would
 * ask about few), nor without a trusted manifest (the slave is listed in full then).
 * A failure here only means no early answers: the probe after the scan meets it and reports it.
 */
function probeEarly(
  config: Config,
  early: OpeningTargets,
  prepared: Map<string, Promise<LoadedManifest>>,
  candidates: Promise<readonly string[] | undefined>,
  protect: (path: string) => boolean,
): Map<string, Promise<EarlyProbe>> {
  const router = createRouter(config.segments)
  const probes = new Map<string, Promise<EarlyProbe>>()
  for (const [name, loading] of prepared) {
    const probe = (async () => {
      const [loaded, paths] = await Promise.all([loading, candidates])
      const base = loaded.manifest
      if (!paths || paths.length === 0 || !base?.complete || paths.length > Math.max(EARLY_PROBES_MIN, base.files.size / 10)) return undefined
      const routed: string[] = []
      for (const path of paths) {
        const segment = router.segmentFor(path)
        if (!segment?.targets.includes(name)) continue
        const at = router.targetPath(segment, path)
        if (!protect(at)) routed.push(at)
      }
      const target = await early.get(name)!.target
      return await target.stat(routed)
    })().catch(() => undefined)
    probes.set(name, probe)
  }
  return probes
}

/** Early probes are made for up to this many candidates, or a tenth of the manifest's files. */
const EARLY_PROBES_MIN = 1000

const signaturesDir = (config: Config) => join(config.stateDir, 'signatures')

/**
 * A large file that changed since this master last hashed it usually goes to its targets as a
 * delta against that version: the computation starts now, on the delta thread, largest first,
 * while the targets are planned. The executor asks for the same delta (computed once) when the
 * target holds that version; a target that holds another gets its own.
 */
function startDeltas(scan: ScanResult, signatures: SignatureStore): void {
  if (!scan.previous || scan.previous.size === 0) return
  const changed = scan.entries.filter((e) => deltaSized(e.size) && scan.previous!.has(e.path)).sort((a, b) => b.size - a.size)
  for (const entry of changed) signatures.deltaFor(scan.previous.get(entry.path)!, entry.hash, entry.abs).catch(() => {})
}

/**
 * How many targets a source file goes to: those of its segment. Asked once per file read, so
 * nothing is stored per file; when every segment goes to as many targets, nothing is routed.
 */
function readersOf(config: Config): (file: SourceEntry) => number {
  const count = new Map(config.segments.map((segment) => [segment, new Set(segment.targets).size]))
  const counts = new Set(count.values())
  if (counts.size <= 1) {
    const all = [...counts][0] ?? 1
    return () => all
  }
  const router = createRouter(config.segments)
  return (file) => {
    const segment = router.segmentFor(file.path)
    return segment ? count.get(segment)! : 1
  }
}

/** For a watch batch: a manifest path is in scope when its source path is one of `only`. */
function scopeMatcher(config: Config, only: readonly string[]) {
  const router = createRouter(config.segments)
  const inScope = new Set<string>()
  for (const path of only) {
    const segment = router.segmentFor(path)
    if (segment) inScope.add(router.targetPath(segment, path))
  }
  return (targetPath: string, entries: Map<string, RoutedEntry>) => inScope.has(targetPath) || entries.has(targetPath)
}

function lockOwner(): LockOwner {
  return {host: hostname(), user: userInfo().username, pid: process.pid, since: new Date().toISOString(), command: process.argv.slice(2).join(' ') || 'mirror'}
}

/**
 * Takes the target's lock. A lock left by a publisher on this same host whose process is gone
 * (killed, crashed) is stale beyond doubt and is taken over; any other lock is respected.
 */
async function takeLock(target: Target, breakLock = false): Promise<void> {
  try {
    await target.lock(lockOwner(), breakLock)
  } catch (error) {
    if ((error as MirrorError).code !== 'LOCKED') throw error
    const holder = await target
      .readState('lock')
      .then((data) => (data ? (JSON.parse(data.toString()) as LockOwner) : undefined))
      .catch(() => undefined)
    if (!holder || holder.host !== hostname() || holder.pid === process.pid || processAlive(holder.pid)) throw error
    await target.lock(lockOwner(), true)
    // Two publishers may have found the same stale lock: only the one whose lock stands goes on.
    const now = await target.readState('lock').then((data) => (data ? (JSON.parse(data.toString()) as LockOwner) : undefined)).catch(() => undefined)
    if (now?.pid !== process.pid) throw error
  }
}


/**
 * Finds out what the slave has where the plan needs to know: the paths `pathsToProbe` names
 * (none on a clean noop), or a full listing; then hashes the files whose size and mtime cannot
 * decide. With a listing, temporary files left by a killed run are cleaned up too.
 */
async function probeSlave(
  target: Target,
  entries: Map<string, RoutedEntry>,
  base: Manifest | null,
  protect: (path: string) => boolean,
  listed: boolean,
  cleanTemps: boolean,
  planning: SharedPlanning,
  probedEarly?: Promise<EarlyProbe>,
): Promise<Map<string, SlaveFile | null>> {
  let slave: Map<string, SlaveFile | null>
  if (listed) {
    const listing = await target.list()
    slave = new Map()
    const temps: string[] = []
    for (const [path, stat] of listing) {
      if (isTempName(path)) temps.push(path)
      else if (entries.has(path) || base?.files.has(path)) slave.set(path, stat)
    }
    if (cleanTemps) {
      await Promise.all(temps.map((p) => target.remove(p).catch(() => {})))
      // Then the temporary directories of bulk uploads that held them.
      const dirs = new Set(temps.filter((p) => p.includes('/')).map((p) => p.slice(0, p.lastIndexOf('/'))).filter(isTempName))
      await Promise.all([...dirs].map((d) => target.removeEmptyDir(d).catch(() => false)))
    }
  } else {
    const paths = planning.pathsToProbe(entries, base, protect)
    const known = await probedEarly
    slave = await target.stat(known ? paths.filter((path) => !known.has(path)) : paths)
    // Only the paths asked about: the plan (and its sharing between targets) reads every answer.
    if (known) for (const path of paths) if (known.has(path)) slave.set(path, known.get(path)!)
  }
  const toHash = [...slave].filter(([path, stat]) => needsHash(stat, base?.files.get(path), entries.get(path))).map(([path]) => path)
  const limit = pLimit(Math.max(1, target.capabilities.maxTransfers))
  await Promise.all(
    toHash.map((path) =>
      limit(async () => {
        try {
          const stat = slave.get(path)!
          slave.set(path, {...stat, hash: await target.hash(path)})
        } catch (error) {
          throw withContext(toMirrorError(error), target.name, path)
        }
      }),
    ),
  )
  return slave
}

// Carries out one target's plan and returns its report. The order is the safety: assets
// before the pages that reference them, deletes only after every upload landed, the manifest
// written as files land so that an interrupted publish resumes where it stopped.

import pLimit from 'p-limit'

import {MirrorError, withContext} from '../errors.js'
import {parentDirs} from '../targets/paths.js'
import type {RemoteStat, StateBytes, Target} from '../targets/target.js'
import type {PublishEvent} from './events.js'
import {JOURNAL, journalHeader, journalLine, manifestStream, serializeManifest, type Manifest, type ManifestBodies, type ManifestRecord, type ManifestRows, type RowChange, type WrittenManifest} from './manifest.js'
import type {Action, TargetPlan} from './plan.js'
import {recordAfter} from './planner.js'
import {DELTA_MIN_SIZE, deltaSized, diffBuffers} from './delta.js'
import type {SourceEntry} from './scan.js'
import type {SharedReads} from './shared-reads.js'
import type {SignatureStore} from './signatures.js'
import {emptyReport, type TargetReport} from './report.js'

export interface ExecuteOptions {
  /** The manifest the plan was made against (what lands is recorded over it and written as it lands). */
  base: Manifest
  /** Stop before deleting more than this many files. */
  maxDelete?: number
  /** Names the backup folder of this run. */
  backupId: string
  publisher: string
  signal?: AbortSignal
  onEvent?: (event: PublishEvent) => void
  /** Block signatures of large published files; enables delta transfer where the target can. */
  signatures?: SignatureStore
  /** Source files read once for all targets (bulk uploads). */
  reads?: SharedReads<SourceEntry>
  /** The base manifest's bytes as they are on the slave: lets a rewrite send only what differs. */
  baseBytes?: Buffer
  /** Final manifest bodies shared with the other targets of the publish. */
  bodies?: ManifestBodies
  /** Final manifests of this many files or more are made row by row as they are written (default BIG_MANIFEST_FILES). */
  streamManifestFrom?: number
  /** Called after each successful manifest write with the bytes written, what they hold and the file's stat on the slave. */
  onManifestWritten?: (data: Buffer | StateBytes, manifest: WrittenManifest, written: RemoteStat) => Promise<void>
}

/** A publish still running after this long starts recording on the slave what has landed. */
const MANIFEST_FLUSH_MS = 2000
/** Then what lands is journalled at most this often. */
const JOURNAL_APPEND_MS = 1000
/** Publishes with fewer actions than this write the manifest once, at the end. */
const JOURNAL_MIN_ACTIONS = 500
/**
 * From this many small files on, they go in one stream (`putMany`) where the target has one.
 * A stream costs the slave's sshd far more per byte than SFTP at first (measured: 134 files of a
 * 20,000-file update to 4 slaves took 6.6–7.4 s in tar streams and 4.5–5.2 s over SFTP, the
 * sshds' CPU 1.5 s against 0.3 s each); it pays off for a first publish of thousands of files.
 */
const BULK_MIN_FILES = 500
/**
 * Deletes in flight at once per target: a delete is a request, not a transfer (one with a backup
 * to make is). Behind a 20 ms link, 100 deletes sent 32 at a time took 0.24 s, at once 0.06-0.14 s.
 */
const DELETES_AT_ONCE = 256
/**
 * Files under way at once per target, of each kind (assets, pages), those staged and waiting to
 * take their final name included (a page waits for every asset): each holds a little memory
 * until it lands, and its temporary file on the slave. Apart, so that an asset never waits for
 * a page that waits for it.
 */
const FILES_AT_ONCE = 1024
/** Files per stream: an interrupted stream costs at most this many re-sends. */
const BULK_BATCH_FILES = 2000
/**
 * Streams at once per target. A stream's files are renamed into place over SFTP once it ends,
 * a request each: with one stream at a time, the stream stood still while they were. Plans of
 * BIG_MANIFEST_FILES actions or more keep to one: a first publish of 100,000 files took 59.5 s
 * instead of 92.5 s with two, but its peak memory rose from 235 to 258 MB (a stream's buffers
 * waiting for the channel, twice per target).
 */
const BULK_STREAMS = 2

/**
 * Final manifests of this many files are made row by row as they are written, one target at a
 * time: the targets of a big first publish finish together, and their manifests (a map of the
 * files and 13 MB of bytes each at 100,000 files) were the publish's peak memory.
 */
const BIG_MANIFEST_FILES = 50_000
const bigManifestWrites = pLimit(1)

/** Thrown to a page waiting for its final name when the publish stopped before its assets were done. */
const HELD_BACK = new Error('held back: the publish stopped before the assets were done')
/** The error is HELD_BACK, or a target's error made from it. */
const heldBack = (error: unknown): boolean => {
  for (let at = error, depth = 0; at && depth < 4; at = (at as {cause?: unknown}).cause, depth++) if (at === HELD_BACK) return true
  return false
}

const isPage = (path: string) => /\.(html?|xhtml|php)$/i.test(path)

export async function executePlan(target: Target, plan: TargetPlan, options: ExecuteOptions): Promise<TargetReport> {
  const started = Date.now()
  const emit = options.onEvent ?? (() => {})
  const base = options.base.files
  let generation = options.base.generation
  const report: TargetReport = {...emptyReport(target), generation}

  // What landed is marked on the plan's actions, and the manifest's files are made from the base
  // and the marked actions when written: a map of every file per target, for the whole publish,
  // was a fifth of the live memory of a first publish of 100,000 files to four slaves.
  const recorded = new Uint8Array(plan.actions.length)
  let fileCount = base.size
  const currentFiles = () => {
    const files = new Map(base)
    for (let i = 0; i < recorded.length; i++) {
      if (!recorded[i]) continue
      const action = plan.actions[i]
      const record = recordAfter(action)
      if (record === null) files.delete(action.path)
      else if (record) files.set(action.path, record)
    }
    return files
  }
  // The recorded changes, as journal lines in plan order: what the final manifest adds to the base.
  function* changes() {
    for (let i = 0; i < recorded.length; i++) if (recorded[i]) yield journalLine(plan.actions[i].path, recordAfter(plan.actions[i])!)
  }
  // The recorded changes as rows in path order: a new record, or null for a path that leaves.
  const changedRows = () => {
    const rows: RowChange[] = []
    for (let i = 0; i < recorded.length; i++) {
      if (!recorded[i]) continue
      const record = recordAfter(plan.actions[i])
      if (record !== undefined) rows.push([plan.actions[i].path, record])
    }
    return rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }
  // The paths the manifest holds now, without building its map: the base's not deleted, and those added.
  function* publishedPaths() {
    const gone = new Set<string>()
    for (let i = 0; i < recorded.length; i++) {
      if (!recorded[i]) continue
      const action = plan.actions[i]
      const record = recordAfter(action)
      if (record === null) gone.add(action.path)
      else if (record && !base.has(action.path)) yield action.path
    }
    for (const path of base.keys()) if (!gone.has(path)) yield path
  }
  // Changes recorded since the manifest was last written or journalled.
  let pending: string[] = []
  const apply = (action: Action) => {
    const record = recordAfter(action)
    if (record === undefined) return
    const i = indexOfAction(plan.actions, action)
    if (!recorded[i]) {
      recorded[i] = 1
      fileCount += (record ? 1 : 0) - (base.has(action.path) ? 1 : 0)
    }
    pending.push(journalLine(action.path, record))
  }

  let dirty = false
  let journaling = false
  let onSlave = options.baseBytes
  let lastFlush = Date.now()
  let flushing: Promise<void> = Promise.resolve()
  const flush = async (final: boolean) => {
    dirty = false
    pending = []
    lastFlush = Date.now()
    generation = options.base.generation + 1
    const head = {target: options.base.target, generation, publishedAt: new Date().toISOString(), publisher: options.publisher, complete: final}
    const big = fileCount >= (options.streamManifestFrom ?? BIG_MANIFEST_FILES)
    const write = async () => {
      let data: Buffer | StateBytes
      let manifest: WrittenManifest
      if (big && final) {
        // Made row by row from the base and what landed, never as a map: see BIG_MANIFEST_FILES.
        const rows = finalRows(base, plan.actions, recorded)
        const stream = manifestStream(head, rows)
        manifest = {...head, files: rows}
        // Whole bytes only when the slave's copy can be patched into them (a small publish to a
        // big site sends the rows that changed, not 13 MB); else they are written as they are made.
        data = patchable(target, onSlave, stream.size) ? Buffer.concat([...stream.chunks()], stream.size) : stream
      } else {
        // The manifest on the slave holds exactly the base when nothing was written since: the
        // new rows are spliced from its bytes.
        const spliceable = options.base.complete && onSlave !== undefined && onSlave === options.baseBytes
        const body = final ? options.bodies?.get(base, changes(), currentFiles, spliceable ? () => ({manifest: onSlave!, rows: changedRows()}) : undefined) : undefined
        const files = body?.files ?? currentFiles()
        data = serializeManifest({...head, files}, undefined, body)
        manifest = {...head, files}
      }
      const written = Buffer.isBuffer(data) ? await writeManifest(target, data, onSlave, options.bodies) : await target.writeState('manifest.json', data)
      // Kept only for a later write to be diffed against: after the final one there is none.
      onSlave = final || !Buffer.isBuffer(data) ? undefined : data
      await options.onManifestWritten?.(data, manifest, written)
    }
    return big ? bigManifestWrites(write) : write()
  }
  // A publish that lasts writes the manifest once as incomplete, then journals what lands: the
  // bytes it costs grow with the files sent, not with the size of the tree times the flushes.
  const startJournal = async () => {
    journaling = true
    await target.writeState(JOURNAL, journalHeader(options.base.generation + 1))
    await flush(false)
  }
  const appendJournal = async () => {
    const lines = pending
    pending = []
    lastFlush = Date.now()
    await target.appendState(JOURNAL, Buffer.from(lines.join('')))
  }
  // A small publish cut short is cheap to redo (what landed is recognised by its hash): not
  // worth a second full manifest write on the wire.
  const worthJournal = plan.actions.length >= JOURNAL_MIN_ACTIONS
  const maybeFlush = () => {
    if (!dirty || !worthJournal || Date.now() - lastFlush < (journaling ? JOURNAL_APPEND_MS : MANIFEST_FLUSH_MS)) return
    lastFlush = Date.now()
    flushing = flushing.then(journaling ? appendJournal : startJournal).catch(() => {})
  }

  for (const action of plan.actions) {
    if (action.kind === 'keep' || action.kind === 'conflict') report.kept.push({path: action.path, reason: action.reason ?? action.kind})
    if (action.kind === 'adopt' || action.kind === 'keep') {
      apply(action)
      if (action.kind === 'adopt') report.adopted++
      dirty = true
    }
  }

  const limit = pLimit(Math.max(1, target.capabilities.maxTransfers))
  const deleteLimit = pLimit(DELETES_AT_ONCE)
  const assetsUnderWay = pLimit(FILES_AT_ONCE)
  const pagesUnderWay = pLimit(FILES_AT_ONCE)
  let fatal: MirrorError | undefined
  let firstFailure: MirrorError | undefined

  const failed = (action: Action, error: unknown) => {
    const err = withContext(error, target.name, action.path)
    firstFailure ??= err
    report.failed.push({path: action.path, code: err.code, message: err.message})
    emit({type: 'file-failed', target: target.name, path: action.path, error: err.toJSON()})
    // A dead connection or a full disk fails every later file the same way: stop early.
    if (['CONNECTION_LOST', 'DISK_FULL', 'TIMEOUT', 'UNREACHABLE'].includes(err.code)) fatal ??= err
  }
  const sent = (action: Action, bytes: number, delta: boolean) => {
    apply(action)
    dirty = true
    report.sent++
    report.bytes += bytes
    if (delta) report.deltas++
    emit({type: 'file-done', target: target.name, path: action.path, kind: action.kind, bytes})
    maybeFlush()
  }
  // Signatures of large files sent, being recorded for the next change (they never throw).
  const signing: Array<Promise<void>> = []
  const halted = () => Boolean(fatal || options.signal?.aborted)
  const attempt = async (action: Action, work: () => Promise<void>) => {
    if (halted()) return
    try {
      await work()
    } catch (error) {
      // A file held back because the publish stopped did not fail: it was never sent.
      if (heldBack(error)) return
      failed(action, error)
    }
  }
  /**
   * Runs `work` in one of the target's transfer slots, which `work` may give back before it ends:
   * a file does once its bytes are staged (PutOptions.onStaged). Its rename, and a page's wait
   * for its assets, keep no other file from travelling; once the assets are done every staged
   * page lands at once. Behind a 20 ms link, holding their slots, 200 pages landed 32 at a time
   * (0.5 s after the assets, 0.3 s now), and the first assets' renames, queued behind the
   * bytes sent meanwhile, held theirs 0.3 s (a 20,000-file mutate: 2.83 -> 2.73 s). Pages
   * waiting in every slot also left none to the assets a failed stream hands back: a first
   * publish to a slave without exec, of 500 assets and more pages than transfers, hung.
   */
  const inSlot = <T>(work: (freeSlot: () => void) => Promise<T>): Promise<T> => {
    let result!: Promise<T>
    const slot = limit(
      () =>
        new Promise<void>((freeSlot) => {
          const free = () => freeSlot()
          result = work(free)
          result.then(free, free)
        }),
    )
    return slot.then(() => result)
  }
  const sendOne = (action: Action, landAfter?: Promise<unknown>) => {
    const transfer = () =>
      inSlot((freeSlot) =>
        attempt(action, async () => {
          if (action.backup) await target.backup(action.path, options.backupId)
          const result = await send(target, action, options.signatures, options.reads, landAfter, freeSlot)
          if (result.signing) signing.push(result.signing)
          sent(action, result.bytes, result.delta)
        }),
      )
    return (landAfter ? pagesUnderWay : assetsUnderWay)(transfer)
  }

  /** Small files in streams where the target can; what it did not take goes one by one. */
  const sendBulk = async (actions: Action[], landAfter?: Promise<unknown>) => {
    const streams = pLimit(plan.actions.length >= BIG_MANIFEST_FILES ? 1 : BULK_STREAMS)
    const batches: Array<Promise<void>> = []
    for (let start = 0; start < actions.length; start += BULK_BATCH_FILES) {
      const batch = actions.slice(start, start + BULK_BATCH_FILES)
      batches.push(streams(() => (halted() ? undefined : sendBatch(batch, landAfter))))
    }
    await Promise.all(batches)
  }
  const sendBatch = async (batch: Action[], landAfter: Promise<unknown> | undefined) => {
    const byPath = new Map(batch.map((a) => [a.path, a]))
    const reported = new Set<string>()
    const reads = options.reads
    const files = batch.map((a) => {
      const source = a.source!
      const {size, mode, mtimeMs} = source
      return {localPath: source.abs, path: a.path, size, options: {mode, mtimeMs}, read: reads ? () => reads.read(source) : undefined, release: reads?.release}
    })
    try {
      await target.putMany!(
        files,
        (path, error) => {
          reported.add(path)
          const action = byPath.get(path)!
          if (error) failed(action, error)
          else sent(action, action.source!.size, false)
        },
        options.signal,
        landAfter,
      )
    } catch (error) {
      if (heldBack(error)) return
      for (const action of batch) if (!reported.has(action.path)) failed(action, error)
      return
    }
    await Promise.all(batch.filter((a) => !reported.has(a.path)).map((a) => sendOne(a, landAfter)))
  }

  // A large file's delta is the longest single piece of a small publish: all of them start now,
  // largest first, on the delta thread, while the small files go out.
  if (options.signatures) {
    const signatures = options.signatures
    const deltas = plan.actions.filter((a) => deltaPossible(target, a)).sort((a, b) => b.source!.size - a.source!.size)
    for (const a of deltas) signatures.deltaFor(a.baseHash!, a.source!.hash, a.source!.abs).catch(() => {})
  }

  // Assets first, pages last: a page never lands before what it references. Pages travel while
  // the assets do (one by one, or in streams) and take their final names once every asset is done.
  const bulkable = (a: Action) => Boolean(target.putMany) && !a.backup && a.source!.size < DELTA_MIN_SIZE
  const assets = transferGroup(plan.actions, false, bulkable)
  const assetsDone = Promise.all([...assets.single.map((a) => sendOne(a)), assets.bulk.length > 0 ? sendBulk(assets.bulk) : undefined])
  const pagesMayLand = assetsDone.then(() => {
    if (halted()) throw HELD_BACK
  })
  pagesMayLand.catch(() => {})
  const pages = transferGroup(plan.actions, true, bulkable)
  await Promise.all([
    assetsDone,
    ...pages.single.map((a) => sendOne(a, pagesMayLand)),
    pages.bulk.length > 0 ? sendBulk(pages.bulk, pagesMayLand) : undefined,
  ])

  // The manifest's temporary file (and, for a patch, the old one) is opened while the deletes
  // go out: its write starts a round trip sooner. A guess at the write to come: a wrong one only
  // costs the requests.
  if (plan.actions.length > 0 && !journaling && !halted()) target.prepareState?.('manifest.json', onSlave && patchable(target, onSlave, onSlave.length) ? onSlave.length : undefined)

  // Deletes go last, and only when every upload landed (rclone's rule): a failed upload may
  // mean the new page that replaces a deleted one is not there yet.
  const deletes = plan.actions.filter((a) => a.kind === 'delete')
  let stopped: MirrorError | undefined
  if (report.failed.length === 0 && !fatal && !options.signal?.aborted && deletes.length > 0) {
    const onSlave = deletes.filter((a) => a.reason !== 'already gone on the slave')
    if (options.maxDelete !== undefined && onSlave.length > options.maxDelete) {
      stopped = new MirrorError('MAX_DELETE', `${onSlave.length} files to delete is more than --max-delete ${options.maxDelete}: no file was deleted`, {
        target: target.name,
        suggestion: 'Check the plan with `mirror diff`; raise --max-delete if the deletes are intended.',
      })
    } else {
      await Promise.all(
        deletes.map((action) =>
          (action.backup ? limit : deleteLimit)(() =>
            attempt(action, async () => {
              if (action.backup) await target.backup(action.path, options.backupId)
              await target.remove(action.path)
              apply(action)
              dirty = true
              report.deleted++
              emit({type: 'file-done', target: target.name, path: action.path, kind: 'delete', bytes: 0})
            }),
          ),
        ),
      )
      await removeEmptiedDirs(target, deletes.map((a) => a.path), publishedPaths())
    }
  }

  await flushing
  if (dirty || plan.actions.length > 0 || generation === 0 || !options.base.complete) {
    try {
      await flush(true)
      // Ignored from now on (the manifest is complete); removed so it does not linger.
      if (journaling) await target.removeState(JOURNAL).catch(() => {})
    } catch (error) {
      fatal ??= withContext(error, target.name, '(state) manifest.json')
    }
  }
  report.generation = generation
  await Promise.all(signing)

  const failure = fatal ?? stopped ?? (options.signal?.aborted ? new MirrorError('INTERRUPTED', 'interrupted', {target: target.name}) : undefined)
  if (failure || report.failed.length > 0) {
    report.ok = false
    report.error = (failure ?? summarizeFailures(target.name, report.failed, firstFailure!)).toJSON()
  }
  report.durationMs = Date.now() - started
  return report
}

/** Where an action is in its plan: the plan is sorted by path, with one action per path. */
function indexOfAction(actions: readonly Action[], action: Action): number {
  let low = 0
  let high = actions.length - 1
  while (low <= high) {
    const middle = (low + high) >>> 1
    const path = actions[middle].path
    if (path === action.path) {
      if (actions[middle] === action) return middle
      break
    }
    if (path < action.path) low = middle + 1
    else high = middle - 1
  }
  const at = actions.indexOf(action)
  if (at === -1) throw new MirrorError('INTERNAL', 'an action that is not in the plan was carried out', {path: action.path})
  return at
}

/**
 * The transfers (add, update, repair) of the pages or of the other files: those that go in
 * streams (in plan order), and those that go one by one (all of them when too few could stream
 * to be worth it). Built in one pass: on a first publish of 100,000 files, each list of the plan's
 * size is almost a megabyte per target.
 */
function transferGroup(actions: readonly Action[], pages: boolean, bulkable: (action: Action) => boolean): {bulk: Action[]; single: Action[]} {
  const inGroup = (a: Action) => (a.kind === 'add' || a.kind === 'update' || a.kind === 'repair') && isPage(a.path) === pages
  const bulk: Action[] = []
  const single: Action[] = []
  for (const action of actions) if (inGroup(action)) (bulkable(action) ? bulk : single).push(action)
  // The largest first: a 50 MB video (or its delta) queued behind hundreds of thumbnails would
  // hold back every page that waits for it.
  if (bulk.length >= BULK_MIN_FILES || bulk.length === 0) return {bulk, single: largestFirst(single)}
  // Too few to stream: all of them one by one.
  return {bulk: [], single: largestFirst(actions.filter(inGroup))}
}

/** Sorted by source size, largest first; the same size stays in plan order. */
const largestFirst = (actions: Action[]) => actions.sort((a, b) => b.source!.size - a.source!.size)

/**
 * The target's error when files failed: a single failure is its own error (with its file); for
 * several, how many and the first, under their code when they all share it.
 */
function summarizeFailures(target: string, failed: TargetReport['failed'], first: MirrorError): MirrorError {
  if (failed.length === 1) return first
  const code = failed.every((f) => f.code === first.code) ? first.code : 'TRANSFER_FAILED'
  return new MirrorError(code, `${failed.length} files failed; the first, ${JSON.stringify(first.path)}: ${first.message}`, {
    target,
    suggestion: first.suggestion,
    retryable: first.retryable,
  })
}

/**
 * The final manifest's rows: the base's, with what landed recorded over them, in path order.
 * The order is worked out once, as two arrays of references; the records are made as the rows
 * are read. The same files as the executor's map of them (`currentFiles`), without the map.
 */
export function finalRows(base: ReadonlyMap<string, ManifestRecord>, actions: readonly Action[], recorded: Uint8Array): ManifestRows {
  const landed: Action[] = []
  for (let i = 0; i < recorded.length; i++) if (recorded[i]) landed.push(actions[i])
  landed.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const kept = [...base.keys()].sort()
  return function* () {
    let k = 0
    for (const action of landed) {
      for (; k < kept.length && kept[k] < action.path; k++) yield [kept[k], base.get(kept[k])!]
      if (k < kept.length && kept[k] === action.path) k++
      const record = recordAfter(action)
      if (record) yield [action.path, record]
      // Undefined: the record does not change. Null: the path leaves the manifest.
      else if (record === undefined && base.has(action.path)) yield [action.path, base.get(action.path)!]
    }
    for (; k < kept.length; k++) yield [kept[k], base.get(kept[k])!]
  }
}

/** Manifests smaller than this are simply written whole. */
const MANIFEST_DELTA_MIN = 64 << 10
/** Small blocks: a manifest changes row by row, scattered through the file. */
const MANIFEST_BLOCK = 256

/**
 * Writes the manifest; a big one whose previous version is on the slave is rebuilt there from
 * its unchanged blocks (copy-data), so a small publish to a 20,000-file site does not send 2 MB.
 */
async function writeManifest(target: Target, data: Buffer, previous: Buffer | undefined, bodies: ManifestBodies | undefined): Promise<RemoteStat> {
  if (patchable(target, previous, data.length)) {
    const delta = bodies ? bodies.diff(previous!, data, MANIFEST_BLOCK) : diffBuffers(previous!, data, MANIFEST_BLOCK)
    if (delta.literalBytes < data.length / 2) return target.patchState!('manifest.json', previous!.length, delta.ops, data)
  }
  return target.writeState('manifest.json', data)
}

/**
 * A manifest of `size` bytes may be rebuilt on the slave from `previous`, the version there.
 * Only bytes the previous version has can be copied: from half the size down, the patch could
 * never be taken (the end of a long first publish, whose last write was early on).
 */
function patchable(target: Target, previous: Buffer | undefined, size: number): boolean {
  return Boolean(previous && previous.length > size / 2 && target.patchState && target.capabilities.copyData && size >= MANIFEST_DELTA_MIN)
}

/**
 * Sends one file: as a delta against the slave's current version when the target can copy
 * ranges server-side and the master has that version's signature, else whole. Large files
 * leave their signature behind for the next change. `landAfter` and `onStaged` as PutOptions has them.
 */
async function send(
  target: Target,
  action: Action,
  signatures: SignatureStore | undefined,
  reads: SharedReads<SourceEntry> | undefined,
  landAfter: Promise<unknown> | undefined,
  onStaged: () => void,
): Promise<{bytes: number; delta: boolean; signing?: Promise<void>}> {
  const source = action.source!
  const options = {mode: source.mode, mtimeMs: source.mtimeMs, landAfter, onStaged}
  if (!signatures || !deltaSized(source.size)) {
    // Small files are read once for every target that sends them.
    const shared = reads && source.size < DELTA_MIN_SIZE ? reads : undefined
    await target.put(source.abs, action.path, {...options, read: shared && (() => shared.read(source)), release: shared?.release})
    return {bytes: source.size, delta: false}
  }
  let result = {bytes: source.size, delta: false}
  // Computed once for all targets, off this thread; undefined when the old version's signature is unknown.
  const delta = deltaPossible(target, action) ? await signatures.deltaFor(action.baseHash!, source.hash, source.abs) : undefined
  // A delta that saves less than a fifth is not worth the extra requests.
  if (delta && delta.literalBytes < source.size * 0.8) {
    await target.patch!(source.abs, action.path, delta.ops, options)
    result = {bytes: delta.literalBytes, delta: true}
  } else {
    await target.put(source.abs, action.path, options)
  }
  // A no-op when the delta already recorded it, or another target did. Awaited at the end of the
  // publish, not here: the signature is for the next change, and the pages wait for this file.
  return {...result, signing: signatures.remember(source.hash, source.abs)}
}

/** The action may go as a delta: an update of a large file whose slave copy is the published one, on a target that copies ranges. */
function deltaPossible(target: Target, action: Action): boolean {
  return Boolean(action.kind === 'update' && action.source && deltaSized(action.source.size) && action.baseHash && !action.backup && target.patch && target.capabilities.copyData)
}

/**
 * After deletes, removes directories left empty, deepest first. Directories that still hold a
 * published file, or anything of the slave's own, are not empty and stay.
 */
async function removeEmptiedDirs(target: Target, deleted: string[], stillPublished: Iterable<string>): Promise<void> {
  const candidates = new Set<string>()
  for (const path of deleted) for (const dir of parentDirs(path)) candidates.add(dir)
  // A candidate that still holds a published file stays; each path's parents, innermost first.
  // Paths come mostly in order, a directory's files together: those after the first are skipped
  // (20,000 paths were 20-40 ms of every publish that deletes, per target).
  let lastDir: string | undefined
  for (const path of stillPublished) {
    if (candidates.size === 0) break
    const end = path.lastIndexOf('/')
    if (lastDir !== undefined && end === lastDir.length && path.startsWith(lastDir)) continue
    lastDir = end > 0 ? path.slice(0, end) : undefined
    for (let at = end; at > 0; at = path.lastIndexOf('/', at - 1)) candidates.delete(path.slice(0, at))
  }
  const byDepth = [...candidates].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1))
  for (const dir of byDepth) {
    // An unremovable directory is untidy, not a failure of the publish.
    await target.removeEmptyDir(dir).catch(() => false)
  }
}

// The three-way planner: for every path, the source now vs the manifest (what was published)
// vs the slave now, decided with no I/O. The publisher first asks `pathsToProbe` which slave
// paths it must look at (none on a clean noop), then `needsHash` which of those must be
// hashed, then calls `planTarget`.

import type {RemoteStat} from '../targets/target.js'
import type {Manifest, ManifestRecord} from './manifest.js'
import {countActions, type Action, type RoutedEntry, type TargetPlan} from './plan.js'

/** What the slave has at a path: its stat, plus its hash when the publisher computed one. */
export interface SlaveFile extends RemoteStat {
  hash?: string
}

export interface PlanInput {
  target: string
  url: string
  /** Source entries routed to this target, by path under the target root. */
  entries: ReadonlyMap<string, RoutedEntry>
  /** The manifest (what was published); null on a first publish or when it cannot be trusted. */
  base: Manifest | null
  /** What the slave has at the probed paths (null: absent), or at every path when `listed`. */
  slave: ReadonlyMap<string, SlaveFile | null>
  /** True when `slave` is a full listing, so a path missing from it is missing on the slave. */
  listed: boolean
  protect: (path: string) => boolean
  force: boolean
}

const sameContent = (a: {hash: string; mode: number}, b: {hash: string; mode: number}) => a.hash === b.hash && a.mode === b.mode

/**
 * The slave paths whose state decides the plan: everything new or changed in the source since
 * the manifest, and everything published that the source no longer has. A path the source and
 * the manifest agree on is not probed; that is what makes a clean noop free.
 */
export function pathsToProbe(entries: ReadonlyMap<string, RoutedEntry>, base: Manifest | null, protect: (path: string) => boolean): string[] {
  const paths: string[] = []
  // forEach, not for-of: these loops over every file run once per publish, mostly before V8
  // compiles them, and an iterator result and an entry array per file made them 4 times slower.
  entries.forEach((entry, path) => {
    if (protect(path)) return
    const record = base?.files.get(path)
    if (!record || !sameContent(record, entry.source)) paths.push(path)
  })
  base?.files.forEach((_, path) => {
    if (!entries.has(path) && !protect(path)) paths.push(path)
  })
  return paths
}

/**
 * True when size and mtime cannot tell whether the slave's file is the published one (or the
 * one about to be sent), so its content must be hashed. A file whose size matches neither
 * cannot be equal to either, and one whose size and mtime match the manifest is as published.
 */
export function needsHash(stat: RemoteStat | null, record: ManifestRecord | undefined, entry: RoutedEntry | undefined): boolean {
  if (!stat || stat.type !== 'file') return false
  if (record && stat.size === record.size && stat.mtimeMs === record.mtimeMs) return false
  return stat.size === record?.size || stat.size === entry?.source.size
}

function slaveIsAsPublished(slave: SlaveFile, record: ManifestRecord): boolean {
  if (slave.type !== 'file') return false
  if (slave.hash !== undefined) return slave.hash === record.hash
  return slave.size === record.size && slave.mtimeMs === record.mtimeMs
}

const describeNonFile = (slave: SlaveFile) => `a ${slave.type === 'dir' ? 'directory' : slave.type} stands there on the slave`

/**
 * The "add" of a routed entry is the same action on every target it goes to: made once, not
 * once per target (a first publish of 100,000 files to four slaves would otherwise hold
 * 400,000). It is never changed once made.
 */
const addActions = new WeakMap<RoutedEntry, Action>()

function addAction(entry: RoutedEntry): Action {
  let action = addActions.get(entry)
  if (!action) {
    action = {kind: 'add', path: entry.path, source: entry.source}
    addActions.set(entry, action)
  }
  return action
}

export function planTarget(input: PlanInput): TargetPlan {
  const {entries, base, slave, listed, protect, force} = input
  const actions: Action[] = []
  let unchanged = 0
  let protectedCount = 0

  /** undefined: not probed, so as published. null: absent on the slave. */
  const slaveAt = (path: string): SlaveFile | null | undefined => {
    const found = slave.get(path)
    if (found !== undefined) return found
    return listed ? null : undefined
  }

  // forEach for the reason given in pathsToProbe; `return` goes on to the next file.
  entries.forEach((entry, path) => {
    if (protect(path)) {
      protectedCount++
      return
    }
    const source = entry.source
    const record = base?.files.get(path)
    const now = slaveAt(path)
    if (record) {
      const sourceChanged = !sameContent(record, source)
      if (now === undefined) {
        if (sourceChanged) actions.push({kind: 'update', path, source, baseHash: record.hash})
        else unchanged++
      } else if (now === null) {
        actions.push({kind: 'repair', path, source, reason: 'missing on the slave'})
      } else if (now.type !== 'file') {
        actions.push({kind: 'keep', path, source, reason: describeNonFile(now)})
      } else if (slaveIsAsPublished(now, record)) {
        if (sourceChanged) actions.push({kind: 'update', path, source, baseHash: record.hash})
        else unchanged++
      } else if (now.hash === source.hash) {
        // The slave already has the new content (an interrupted run, or the same edit made there).
        actions.push({kind: 'adopt', path, source, slave: now, reason: 'already on the slave'})
      } else if (force) {
        actions.push({kind: 'update', path, source, backup: true, reason: 'customized on the slave, overwritten (--force), backup kept'})
      } else {
        actions.push({kind: 'keep', path, source, reason: 'customized on the slave'})
      }
      return
    }
    // Not published here before: a first publish, or a file new to the source.
    if (now === undefined || now === null) {
      actions.push(addAction(entry))
    } else if (now.type !== 'file') {
      actions.push({kind: 'conflict', path, source, reason: describeNonFile(now)})
    } else if (now.hash === source.hash) {
      actions.push({kind: 'adopt', path, source, slave: now, reason: 'already on the slave'})
    } else if (force) {
      actions.push({kind: 'update', path, source, backup: true, reason: 'differed on the slave, overwritten (--force), backup kept'})
    } else {
      actions.push({kind: 'conflict', path, source, reason: 'a different file is already on the slave'})
    }
  })

  if (base) {
    base.files.forEach((record, path) => {
      if (entries.has(path)) return
      if (protect(path)) {
        protectedCount++
        return
      }
      const now = slaveAt(path)
      if (now === undefined || now === null) {
        // Already gone on the slave: only the manifest changes.
        actions.push({kind: 'delete', path, reason: now === null ? 'already gone on the slave' : undefined})
      } else if (now.type !== 'file') {
        actions.push({kind: 'keep', path, reason: `${describeNonFile(now)}, no longer published`})
      } else if (slaveIsAsPublished(now, record)) {
        actions.push({kind: 'delete', path})
      } else if (force) {
        actions.push({kind: 'delete', path, backup: true, reason: 'customized on the slave, deleted (--force), backup kept'})
      } else {
        actions.push({kind: 'keep', path, reason: 'customized on the slave, no longer published'})
      }
    })
  }

  actions.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const transfers = actions.filter((a) => a.kind === 'add' || a.kind === 'update' || a.kind === 'repair')
  return {
    target: input.target,
    url: input.url,
    actions,
    unchanged,
    protected: protectedCount,
    bytes: transfers.reduce((sum, a) => sum + (a.source?.size ?? 0), 0),
    counts: countActions(actions),
    verified: listed,
  }
}

/**
 * Plans shared by the targets of one publish. Targets that take the same entries over the same
 * manifest files probe the same paths, and when their slaves answer alike their plans differ
 * only in the target's name. Each is a pass over every file of the site (20,000 on a big one,
 * one target after the other on one thread): made once, not once per target.
 */
export class SharedPlanning {
  private readonly probes = new WeakMap<object, WeakMap<object, string[]>>()
  private readonly plans = new Map<string, TargetPlan>()
  private readonly ids = new WeakMap<object, number>()
  private lastId = 0

  /** `pathsToProbe`, once per entries and manifest files. The list is shared: read it only. */
  pathsToProbe(entries: ReadonlyMap<string, RoutedEntry>, base: Manifest | null, protect: (path: string) => boolean): readonly string[] {
    if (!base) return pathsToProbe(entries, base, protect)
    let byFiles = this.probes.get(entries)
    if (!byFiles) this.probes.set(entries, (byFiles = new WeakMap()))
    let paths = byFiles.get(base.files)
    if (!paths) byFiles.set(base.files, (paths = pathsToProbe(entries, base, protect)))
    return paths
  }

  /** `planTarget`, made once for targets whose inputs are the same but for their name and URL. */
  plan(input: PlanInput): TargetPlan {
    // A full listing differs from slave to slave in what no plan looks at; comparing it would
    // cost what planning does. An empty one (a first publish to fresh slaves) compares for free:
    // planned once instead of once per slave, 60-90 ms apiece at 20,000 files, all of it before
    // the later slaves' first byte.
    if (input.listed && input.slave.size > 0) return planTarget(input)
    const answers = [...input.slave]
      .map(([path, s]) => `${path}\0${s ? `${s.type}\0${s.size}\0${s.mtimeMs}\0${s.mode}\0${s.hash ?? ''}` : '-'}`)
      .sort()
      .join('\n')
    const key = `${input.listed ? 'listed' : 'probed'} ${this.id(input.entries)} ${input.base ? this.id(input.base.files) : '-'} ${this.id(input.protect)} ${input.force}\n${answers}`
    const made = this.plans.get(key)
    if (made) return {...made, target: input.target, url: input.url}
    const plan = planTarget(input)
    this.plans.set(key, plan)
    return plan
  }

  private id(of: object): number {
    let id = this.ids.get(of)
    if (id === undefined) this.ids.set(of, (id = ++this.lastId))
    return id
  }
}

/**
 * The manifest record an action leaves behind, or null when the path leaves the manifest
 * (deleted, or kept but no longer published so no longer managed), or undefined when the
 * record does not change (keep of a published file, conflict). A new record at each call: the
 * executor makes them only to write them.
 */
export function recordAfter(action: Action): ManifestRecord | null | undefined {
  switch (action.kind) {
    case 'add':
    case 'update':
    case 'repair': {
      const s = action.source!
      return {hash: s.hash, size: s.size, mtimeMs: Math.floor(s.mtimeMs / 1000) * 1000, mode: s.mode}
    }
    case 'adopt': {
      const s = action.source!
      const slave = action.slave!
      return {hash: s.hash, size: slave.size, mtimeMs: slave.mtimeMs, mode: slave.mode}
    }
    case 'delete':
      return null
    case 'keep':
      return action.source ? undefined : null
    case 'conflict':
      return undefined
  }
}

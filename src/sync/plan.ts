// The plan: what publishing would do on each target, as data. Produced by the planner with no
// I/O, printed by `mirror diff` / `--dry-run` / `--json`, carried out by the executor.

import type {SourceEntry} from './scan.js'

/**
 * - add: new on the slave
 * - update: the master changed it and the slave still has what was published (or --force)
 * - repair: published before, missing on the slave: sent again
 * - delete: gone from the source, the slave still has what was published
 * - keep: changed on the slave since it was published (a local customization): left alone
 * - conflict: first publish, the slave already has a different file there: left alone
 * - adopt: the slave already has exactly this content: recorded, nothing sent
 */
export type ActionKind = 'add' | 'update' | 'repair' | 'delete' | 'keep' | 'conflict' | 'adopt'

export const ACTION_KINDS: readonly ActionKind[] = ['add', 'update', 'repair', 'delete', 'keep', 'conflict', 'adopt']

export interface Action {
  kind: ActionKind
  /** Path under the target's root. */
  path: string
  /** The source file to send or record (absent for deletes). */
  source?: SourceEntry
  /** Back up the slave's version into the target's state before overwriting or deleting it. */
  backup?: boolean
  /** Why, for the itemized output: e.g. "customized on the slave". */
  reason?: string
  /** For update: the content hash the slave has now (what was published), the base of a delta. */
  baseHash?: string
  /** For adopt: what the slave has, so the manifest records its real size and mtime. */
  slave?: {size: number; mtimeMs: number; mode: number}
}

export interface TargetPlan {
  target: string
  url: string
  /** Every path that needs something (adopt included), sorted by path. */
  actions: Action[]
  /** Paths already as published. */
  unchanged: number
  /** Paths skipped because they match `protect`. */
  protected: number
  /** Bytes the transfers will send. */
  bytes: number
  counts: Record<ActionKind, number>
  /** True when the slave was listed in full (first publish, --verify, or an untrusted manifest). */
  verified: boolean
}

/** A source entry routed to a target, under its path there. */
export interface RoutedEntry {
  path: string
  segment: string
  source: SourceEntry
}

export function countActions(actions: readonly Action[]): Record<ActionKind, number> {
  const counts = Object.fromEntries(ACTION_KINDS.map((k) => [k, 0])) as Record<ActionKind, number>
  for (const action of actions) counts[action.kind]++
  return counts
}

/** True when carrying out the plan would change something on the slave. */
export function hasChanges(plan: TargetPlan): boolean {
  const c = plan.counts
  return c.add + c.update + c.repair + c.delete + c.adopt > 0
}

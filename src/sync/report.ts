// A target's report: what carrying out its plan did. Made by the executor; a clean noop makes
// an empty one without loading the executor.

import type {MirrorError} from '../errors.js'
import type {Target} from '../targets/target.js'

export interface TargetReport {
  target: string
  url: string
  ok: boolean
  /** Files sent (add, update, repair). */
  sent: number
  /** Bytes sent: whole files, or only the new bytes of a delta. */
  bytes: number
  /** Files rebuilt on the slave from their old blocks plus new bytes. */
  deltas: number
  deleted: number
  adopted: number
  /** Customizations and conflicts left alone on the slave. */
  kept: Array<{path: string; reason: string}>
  failed: Array<{path: string; code: string; message: string}>
  error?: ReturnType<MirrorError['toJSON']>
  durationMs: number
  generation: number
}

/** The report of a target where nothing was done. */
export function emptyReport(target: Pick<Target, 'name' | 'url'>): TargetReport {
  return {target: target.name, url: target.url, ok: true, sent: 0, bytes: 0, deltas: 0, deleted: 0, adopted: 0, kept: [], failed: [], durationMs: 0, generation: 0}
}

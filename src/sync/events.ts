// Events a publish emits while it runs: the progress display and `watch --json` consume them;
// the sync core never prints.

import type {MirrorError} from '../errors.js'
import type {ActionKind, TargetPlan} from './plan.js'

export type PublishEvent =
  | {type: 'scan-done'; files: number; hashed: number; durationMs: number}
  | {type: 'target-connecting'; target: string}
  | {type: 'target-planned'; target: string; plan: TargetPlan}
  | {type: 'file-done'; target: string; path: string; kind: ActionKind; bytes: number}
  | {type: 'file-failed'; target: string; path: string; error: ReturnType<MirrorError['toJSON']>}
  | {type: 'target-done'; target: string; ok: boolean}

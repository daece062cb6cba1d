// What `mirror watch` reports while it runs: one event per batch, target state change, render
// or warning. The text formatter prints one line per event; `--json` prints each as one line.

import type {MirrorError} from '../errors.js'

export type ErrorJson = ReturnType<MirrorError['toJSON']>

/**
 * Why a batch ran: `initial` is the full publish at start, `catch-up` the full publish after the
 * watcher finished crawling (for changes made while it crawled), `changes` a batch of changed
 * paths, `retry` a target that had failed, `reconcile` the periodic full comparison with every
 * slave (`--verify`), `render` the full publish after a re-render replaced the source tree.
 */
export type BatchKind = 'initial' | 'catch-up' | 'changes' | 'retry' | 'reconcile' | 'render'

export interface BatchTarget {
  target: string
  ok: boolean
  sent: number
  deleted: number
  bytes: number
  /** Customizations and conflicts left alone on the slave. */
  kept: number
  /** Source paths still waiting for this target after the batch. */
  pending: number
  error?: ErrorJson
  /** Files that failed on this target (the first 10), with why. */
  failed?: Array<{path: string; code: string; message: string}>
  /** For a failed target: when it is tried again. */
  retryInMs?: number
  /** True when this batch brought back a target that had been failing. */
  recovered?: boolean
}

export type WatchEvent =
  | {
      event: 'watching'
      source: string
      targets: string[]
      debounceMs: number
      reconcileS: number
      /** Changes left by the previous watch, per target, published first. */
      pending: Record<string, number>
      /** The local URL that triggers a render (`--render-hook`). */
      renderHook?: string
    }
  | {event: 'ready'; durationMs: number}
  | {
      event: 'batch'
      kind: BatchKind
      /** Paths sent or deleted on at least one target (target paths; the first 1000). */
      paths: string[]
      /** How many distinct paths were sent or deleted. */
      changed: number
      targets: BatchTarget[]
      durationMs: number
      ok: boolean
    }
  | {event: 'warning'; message: string; path?: string; target?: string}
  | {event: 'render'; ok: boolean; reason: string; durationMs: number; summary?: unknown; error?: ErrorJson}
  | {event: 'error'; error: ErrorJson}
  | {event: 'stopped'; pending: Record<string, number>}

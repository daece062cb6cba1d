// Runs delta-files.ts requests on one worker thread, started on first use and shared by the whole
// process: a delta or signature of a large file is seconds of JavaScript over its bytes, and on
// the publishing thread it would stall every target's SSH traffic meanwhile. Where no worker can
// run (the TypeScript sources under the test runner, a worker that died), the same code runs here.

import {Worker} from 'node:worker_threads'

import {runDeltaRequest, type DeltaRequest} from './delta-files.js'
import type {Delta} from './delta.js'

type Answer = {id: number; result?: unknown; error?: {message: string; code?: string}}

/** The worker went away with requests in flight: they run again here. */
class WorkerGone extends Error {}

let worker: Worker | undefined
let broken = !import.meta.url.endsWith('.js')
let nextId = 0
const waiting = new Map<number, {resolve: (value: unknown) => void; reject: (error: Error) => void}>()

const inline = runDeltaRequest

function start(): Worker | undefined {
  if (worker || broken) return worker
  try {
    worker = new Worker(new URL('./delta-worker.js', import.meta.url))
  } catch {
    broken = true
    return undefined
  }
  worker.on('message', ({id, result, error}: Answer) => {
    const pending = waiting.get(id)
    if (!pending) return
    waiting.delete(id)
    // Only awaited answers keep the process alive.
    if (waiting.size === 0) worker?.unref()
    if (error === undefined) pending.resolve(result)
    // The file's own error (ENOENT, EACCES) keeps its code: the executor reports it per file.
    else pending.reject(Object.assign(new Error(error.message), error.code ? {code: error.code} : {}))
  })
  const fail = () => {
    broken = true
    worker = undefined
    for (const pending of waiting.values()) pending.reject(new WorkerGone())
    waiting.clear()
  }
  worker.on('error', fail)
  worker.on('exit', fail)
  // After the listeners: adding a 'message' listener holds the worker's port again.
  worker.unref()
  return worker
}

function run(request: DeltaRequest): Promise<unknown> {
  const thread = start()
  if (!thread) return inline(request)
  const id = nextId++
  const answered = new Promise((resolve, reject) => {
    waiting.set(id, {resolve, reject})
    thread.ref()
    thread.postMessage({...request, id})
  })
  return answered.catch((error: unknown) => {
    if (error instanceof WorkerGone) return inline(request)
    throw error
  })
}

/**
 * The delta of `file` against the signature in `signatureFile`, or undefined when there is no
 * usable signature; the new version's signature is then recorded in `newSignatureFile`, when
 * the file still is version `newHash`.
 * Computed on the worker thread (see runDeltaRequest).
 */
export function deltaAside(signatureFile: string, file: string, newSignatureFile: string, newHash: string): Promise<Delta | undefined> {
  return run({op: 'delta', signatureFile, file, newSignatureFile, newHash}) as Promise<Delta | undefined>
}

/** Records the signature of `file`, version `hash`, in `signatureFile` unless one is there; on the worker thread. */
export function signatureAside(file: string, signatureFile: string, hash: string): Promise<void> {
  return run({op: 'signature', file, signatureFile, hash}) as Promise<void>
}

/**
 * Starts the worker ahead of its first request, when deltas are likely soon (the source
 * changed): its start, 150 ms on a busy machine, then overlaps the hashing of the source.
 */
export function startDeltaThread(): void {
  start()
}

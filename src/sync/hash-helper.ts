// Two threads hashing one list of files: the calling thread (the walk's own) and a helper,
// each taking the next file from a shared counter until none is left. Built for the hashing
// of a first publish, which the plan waits for while the other core would be idle.

import {Worker} from 'node:worker_threads'

import {hashLocalFileSync} from './file-hash.js'

/**
 * The SHA-256 (hex) of each file of `paths`, in order, read with blocking reads here and on a
 * helper thread. Throws the first error of a file this thread reads; a file the helper could
 * not read, or left when it stopped, is read here again, so its error is the same either way.
 * Without a helper (it cannot start, or this runs from TypeScript source) every file is read here.
 */
export async function hashFilesTogether(paths: readonly string[]): Promise<string[]> {
  const counter = new Int32Array(new SharedArrayBuffer(4))
  const helped = startHelper(paths, counter)
  const hashes: string[] = new Array(paths.length)
  try {
    for (let i = Atomics.add(counter, 0, 1); i < paths.length; i = Atomics.add(counter, 0, 1)) hashes[i] = hashLocalFileSync(paths[i])
  } catch (error) {
    // The helper takes no more files.
    Atomics.store(counter, 0, paths.length)
    throw error
  }
  const theirs = await helped
  for (let i = 0; i < paths.length; i++) hashes[i] ??= theirs[i] ?? hashLocalFileSync(paths[i])
  return hashes
}

/** The helper's hashes once it is done (a hole where it read nothing), or none when it never ran. */
function startHelper(paths: readonly string[], counter: Int32Array): Promise<Array<string | undefined>> {
  if (!import.meta.url.endsWith('.js')) return Promise.resolve([])
  let helper: Worker
  try {
    helper = new Worker(new URL('./hash-helper-worker.js', import.meta.url), {workerData: {paths, counter: counter.buffer}})
  } catch {
    return Promise.resolve([])
  }
  return new Promise((resolve) => {
    helper.once('message', resolve)
    helper.once('error', () => resolve([]))
    helper.once('exit', () => resolve([]))
  })
}

// The helper side of hash-helper.ts: takes the next file from the shared counter until none is
// left, then sends the hashes it made.

import {parentPort, workerData} from 'node:worker_threads'

import {hashLocalFileSync} from './file-hash.js'

const {paths, counter} = workerData as {paths: string[]; counter: SharedArrayBuffer}
const next = new Int32Array(counter)
const hashes: Array<string | undefined> = new Array(paths.length)
for (let i = Atomics.add(next, 0, 1); i < paths.length; i = Atomics.add(next, 0, 1)) {
  try {
    hashes[i] = hashLocalFileSync(paths[i])
  } catch {
    // Left out: the calling thread reads this file itself and meets the error there.
  }
}
parentPort!.postMessage(hashes)

// The worker side of delta-aside.ts: block signatures and deltas of large files, computed off the
// publishing thread. Each request names files, not bytes: the worker reads them itself, so a
// 50 MB video never crosses between threads.

import {readFileSync} from 'node:fs'
import {parentPort} from 'node:worker_threads'

import {deltaForFile, writeSignatureFor, type DeltaRequest} from './delta-files.js'

const port = parentPort!
/** Blocking reads: this thread is the deltas' own (see Read in delta-files.ts). */
const read = async (file: string) => readFileSync(file)

async function answer(request: DeltaRequest & {id: number}): Promise<void> {
  try {
    const result = request.op === 'delta' ? await deltaForFile(request.signatureFile, request.file, request.newSignatureFile, read) : await writeSignatureFor(request.file, request.signatureFile, read)
    port.postMessage({id: request.id, result})
  } catch (error) {
    port.postMessage({id: request.id, error: {message: error instanceof Error ? error.message : String(error), code: (error as NodeJS.ErrnoException).code}})
  }
}

// One request at a time, in the order they came: each holds its file's bytes while it waits on
// the disk, and a first publish asks for the signatures of hundreds of large files at once (they
// all held their bytes together: 140 MB for a 650 MB site).
let queue = Promise.resolve()
port.on('message', (request: DeltaRequest & {id: number}) => {
  queue = queue.then(() => answer(request))
})

// The worker side of delta-aside.ts: block signatures and deltas of large files, computed off the
// publishing thread. Each request names files, not bytes: the worker reads them itself, so a
// 50 MB video never crosses between threads.

import {parentPort} from 'node:worker_threads'

import {deltaForFile, writeSignatureFor, type DeltaRequest} from './delta-files.js'

const port = parentPort!

port.on('message', async (request: DeltaRequest & {id: number}) => {
  try {
    const result = request.op === 'delta' ? await deltaForFile(request.signatureFile, request.file, request.newSignatureFile) : await writeSignatureFor(request.file, request.signatureFile)
    port.postMessage({id: request.id, result})
  } catch (error) {
    port.postMessage({id: request.id, error: {message: error instanceof Error ? error.message : String(error), code: (error as NodeJS.ErrnoException).code}})
  }
})

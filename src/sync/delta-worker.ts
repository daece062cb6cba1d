// The worker side of delta-aside.ts: block signatures and deltas of large files, computed off the
// publishing thread. Each request names files, not bytes: the worker reads them itself, so a
// 50 MB video never crosses between threads.

import {parentPort} from 'node:worker_threads'

import {runDeltaRequest, type DeltaRequest} from './delta-files.js'

const port = parentPort!

port.on('message', (request: DeltaRequest & {id: number}) => {
  runDeltaRequest(request).then(
    (result) => port.postMessage({id: request.id, result}),
    (error: unknown) => port.postMessage({id: request.id, error: {message: error instanceof Error ? error.message : String(error), code: (error as NodeJS.ErrnoException).code}}),
  )
})

// The worker side of walk-aside.ts: walks the source, sends the tree's summary, and sends the
// file list only when asked for it.

import {parentPort, workerData} from 'node:worker_threads'

import {toMirrorError} from '../errors.js'
import {walkSource, type ScanOptions} from './scan.js'

const port = parentPort!
const {root, options} = workerData as {root: string; options: Pick<ScanOptions, 'exclude' | 'only'>}

try {
  const tree = await walkSource(root, options)
  port.postMessage({type: 'summary', print: tree.print, count: tree.files.length, warnings: tree.warnings})
  port.once('message', () => {
    port.postMessage({type: 'files', files: tree.files})
    port.close()
  })
} catch (error) {
  port.postMessage({type: 'error', error: toMirrorError(error).toJSON()})
  port.close()
}

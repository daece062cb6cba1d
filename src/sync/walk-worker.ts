// The worker side of walk-aside.ts: walks the source, sends the tree's summary, then, when asked,
// hashes the files (hashSource) and sends the entries, or sends the file list itself.

import {parentPort, workerData} from 'node:worker_threads'

import {toMirrorError} from '../errors.js'
import {hashSourceFirst, packEntries, walkSource, type ScanOptions} from './scan.js'
import type {ScanRequest} from './walk-aside.js'

const port = parentPort!
const {root, options} = workerData as {root: string; options: Pick<ScanOptions, 'exclude' | 'only'>}

try {
  const tree = await walkSource(root, options)
  port.postMessage({type: 'summary', print: tree.print, count: tree.files.length, warnings: tree.warnings})
  port.once('message', (request: ScanRequest | 'files') => {
    if (request === 'files') {
      port.postMessage({type: 'files', files: tree.files})
      port.close()
      return
    }
    // This thread is the walk's own: blocking reads keep libuv's shared threadpool free. The
    // hashes go out first, the cache is saved after (a publish lasts longer than that).
    hashSourceFirst(tree, {...request, root, blocking: true})
      .then(
        async ({result, cacheSaved}) => {
          const entries = packEntries(result.entries, root)
          port.postMessage({type: 'scanned', result: {...result, entries}}, [entries.numbers.buffer as ArrayBuffer])
          await cacheSaved.catch(() => {})
        },
        (error: unknown) => port.postMessage({type: 'error', error: toMirrorError(error).toJSON()}),
      )
      .finally(() => port.close())
  })
} catch (error) {
  port.postMessage({type: 'error', error: toMirrorError(error).toJSON()})
  port.close()
}

// The worker side of walk-aside.ts. Either it walks the source itself, sends the tree's summary,
// then, when asked, hashes the files (hashSource) and sends the entries, or sends the file list
// itself; or it is handed find's listing (made on the calling thread) with the request, reads
// it into files and hashes them straight away.

import {parentPort, workerData} from 'node:worker_threads'

import {toMirrorError} from '../errors.js'
import type {FindListing} from './find-listing.js'
import {collectSource, hashSourceFirst, packEntries, walkSource, type ScanOptions, type SourceTree} from './scan.js'
import type {ScanRequest} from './walk-aside.js'

const port = parentPort!
const {root, options, listing, request} = workerData as {root: string; options: Pick<ScanOptions, 'exclude' | 'only'>; listing?: FindListing; request?: ScanRequest}

/** Sends the hashed entries, then saves the hash cache and lets the thread end. */
function hash(tree: SourceTree, request: ScanRequest): void {
  // This thread is the walk's own: blocking reads keep libuv's shared threadpool free. The
  // hashes go out first, the cache is saved after (a publish lasts longer than that).
  // The paths it must read go out first: the publish probes the slaves for them meanwhile.
  const onCandidates = (paths: string[]) => port.postMessage({type: 'candidates', paths})
  hashSourceFirst(tree, {...request, root, blocking: true, onCandidates})
    .then(
      async ({result, cacheSaved}) => {
        const entries = packEntries(result.entries, root)
        port.postMessage({type: 'scanned', result: {...result, entries}}, [entries.numbers.buffer as ArrayBuffer])
        await cacheSaved.catch(() => {})
      },
      (error: unknown) => port.postMessage({type: 'error', error: toMirrorError(error).toJSON()}),
    )
    .finally(() => port.close())
}

if (listing && request) {
  // The listing crossed as a plain Uint8Array.
  const output = Buffer.from(listing.output.buffer, listing.output.byteOffset, listing.output.length)
  collectSource(root, options, {...listing, output}).then(
    (tree) => hash(tree, request),
    (error: unknown) => {
      port.postMessage({type: 'error', error: toMirrorError(error).toJSON()})
      port.close()
    },
  )
} else {
  try {
    const tree = await walkSource(root, {...options, lister: 'node'})
    port.postMessage({type: 'summary', print: tree.print, count: tree.files.length, warnings: tree.warnings})
    port.once('message', (asked: ScanRequest | 'files') => {
      if (asked === 'files') {
        port.postMessage({type: 'files', files: tree.files})
        port.close()
        return
      }
      hash(tree, asked)
    })
  } catch (error) {
    port.postMessage({type: 'error', error: toMirrorError(error).toJSON()})
    port.close()
  }
}

// The worker side of walk-aside.ts: walks the source (or its part of it, beside a helper that
// walks the rest), sends the tree's summary, then, when asked, hashes the files (hashSource)
// and sends the entries, or sends the file list itself.

import {type MessagePort, parentPort, workerData} from 'node:worker_threads'

import {MirrorError, toMirrorError, type ErrorCode} from '../errors.js'
import {hashSourceFirst, joinWalks, packEntries, packFiles, unpackFiles, walkSource, type PackedFiles, type ScanOptions, type ScanWarning, type SourceTree, type WalkPart} from './scan.js'
import type {ScanRequest} from './walk-aside.js'

/** What a helper sends the walker it helps: its part of the tree, or why it has none. */
export type PartMessage = {files: PackedFiles; warnings: ScanWarning[]} | {error: {code: ErrorCode; message: string; path?: string; suggestion?: string}}

const port = parentPort!
const {root, options, part, peer} = workerData as {root: string; options: Pick<ScanOptions, 'exclude' | 'only'>; part?: WalkPart; peer?: MessagePort}

if (part && part.index > 0) await help(part, peer!)
else await lead()

/** A helper: walks its part and hands it to the walker with index 0, then ends. */
async function help(part: WalkPart, to: MessagePort): Promise<void> {
  try {
    const tree = await walkSource(root, options, part)
    const files = packFiles(tree.files, root)
    to.postMessage({files, warnings: tree.warnings} satisfies PartMessage, [files.numbers.buffer as ArrayBuffer])
  } catch (error) {
    const {code, message, path, suggestion} = toMirrorError(error)
    to.postMessage({error: {code, message, path, suggestion}} satisfies PartMessage)
  }
  to.close()
}

/** The other parts, from their helpers; a helper that ends without a word is stood in for. */
function partsFrom(from: MessagePort, mine: WalkPart): Promise<Array<Pick<SourceTree, 'files' | 'warnings'>>> {
  return new Promise((resolve, reject) => {
    let answered = false
    from.once('message', (message: PartMessage) => {
      answered = true
      from.close()
      if ('error' in message) reject(new MirrorError(message.error.code, message.error.message, {path: message.error.path, suggestion: message.error.suggestion}))
      else resolve([{files: unpackFiles(message.files, root), warnings: message.warnings}])
    })
    from.once('close', () => {
      if (answered) return
      const others = Array.from({length: mine.of - 1}, (_, i) => walkSource(root, options, {index: i + 1, of: mine.of}))
      Promise.all(others).then(resolve, reject)
    })
  })
}

async function lead(): Promise<void> {
  try {
    const helped = part && peer ? partsFrom(peer, part) : undefined
    // Met below; not an unhandled rejection while this walk runs.
    helped?.catch(() => {})
    const own = await walkSource(root, options, part)
    const tree = helped ? joinWalks(root, [own, ...(await helped)]) : own
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
}

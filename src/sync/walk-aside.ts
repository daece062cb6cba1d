// Walks the source beside the targets' SSH handshakes instead of taking turns with them. Where
// GNU find is there, it lists the tree in a process of its own (find-listing.ts) and this thread
// only reads its answer; else the walk (an lstat of every file) runs on a worker thread. The
// tree's print comes first; the files are hashed on a worker thread, and cross over only when
// the caller needs them (a quick noop never does), while this thread locks the targets and reads
// their manifests. A small tree and a very big one are hashed on the calling thread instead
// (see HASH_ASIDE_MIN_FILES and HASH_ASIDE_MAX_FILES).

import {join} from 'node:path'
import {Worker} from 'node:worker_threads'

import type {Config} from '../config/load.js'

import {MirrorError, type ErrorCode} from '../errors.js'
import type {FindListing} from './find-listing.js'
import {collectSource, hashSource, listSource, unpackEntries, walkSource, type HashOptions, type ListedSource, type PackedEntries, type ScanOptions, type ScanResult, type ScanWarning, type SourceFile, type SourceTree} from './scan.js'

/** What the caller decides of the hashing; where the files are is the walk's. */
export type ScanRequest = Pick<HashOptions, 'cacheFile' | 'only'>

/**
 * Up to this many files the worker hashes them itself. Above, the file list crosses over and
 * is hashed here: the worker's copy of the tree and of the hash cache, held beside this
 * thread's tables until the cache is saved, would raise a big publish's peak memory.
 */
const HASH_ASIDE_MAX_FILES = 50_000

/**
 * Below this many files they are hashed here: a worker thread costs 60-80 ms of CPU to start
 * (a V8 isolate, Node's bootstrap, the scan's modules again), more than reading the hash cache
 * and hashing a small change of a small tree, and this thread mostly waits for the handshakes
 * meanwhile. Behind a 20 ms link, a 2,000-file change took a quarter less CPU.
 */
const HASH_ASIDE_MIN_FILES = 5_000

export interface WalkedTree {
  /** Changes whenever the files would (see SourceTree.print, ListedSource.print). */
  print: string
  /** How many files, or more (a listing counts directories too): for decisions about memory. */
  count: number
  /**
   * The tree's files with their hashes (see hashSource), handed over once: asked again with the
   * same request (after a prefetch), the same answer.
   */
  scan(request: ScanRequest): Promise<ScanResult>
  /**
   * Starts the hashing for `request` now, unless the tree is big enough that the caller may
   * want to limit its heap first (it then waits for scan).
   */
  prefetch(request: ScanRequest): void
  /** Lets the worker go when the file list is not needed. */
  close(): void
  /**
   * The source paths the hashing must read (the hash cache could not answer for them) and those
   * the cache knew that are gone, as soon as the hashing knows them, before it reads any file.
   * Undefined when it ends without saying (it failed). Meanwhile the publish probes the slaves
   * for the paths it will most likely change.
   */
  candidates(): Promise<readonly string[] | undefined>
}

type Message =
  | {type: 'summary'; print: string; count: number; warnings: ScanWarning[]}
  | {type: 'scanned'; result: Omit<ScanResult, 'entries'> & {entries: PackedEntries}}
  | {type: 'files'; files: SourceFile[]}
  | {type: 'candidates'; paths: string[]}
  | {type: 'error'; error: {code: ErrorCode; message: string; path?: string; suggestion?: string}}

/**
 * Starts the walk of a config's source: everything but the excludes and the master's own state.
 * Light to import, so a command can start it before it loads the rest of the publish.
 */
export function walkConfigSource(config: Config, only?: readonly string[]): Promise<WalkedTree> {
  const walking = walkAside(config.source, {exclude: [...config.exclude, ...stateDirExclude(config)], only})
  // Met where the caller awaits it; not an unhandled rejection meanwhile.
  walking.catch(() => {})
  return walking
}

/** Keeps the master's own state out of the published tree when it sits inside the source. */
function stateDirExclude(config: Config): string[] {
  const rel = join(config.stateDir).startsWith(`${config.source}/`) ? config.stateDir.slice(config.source.length + 1) : undefined
  return rel ? [`${rel}/**`] : []
}

export async function walkAside(root: string, options: Pick<ScanOptions, 'exclude' | 'only'>): Promise<WalkedTree> {
  // A watch batch names a few paths: not worth a thread. Run from TypeScript source (the tests
  // under tap), a worker would compile its modules again, for seconds: only the build uses one.
  if (options.only || !import.meta.url.endsWith('.js')) return inline(root, await walkSource(root, options))
  // find does the stats in its own process: no thread to start before the print is known (a
  // worker took 0.1 to 0.2 s to start, beside the handshakes, before its walk began).
  const listed = process.platform === 'linux' ? await listSource(root, options) : undefined
  if (listed) return listedAside(root, options, listed)
  let worker: Worker
  try {
    worker = new Worker(new URL('./walk-worker.js', import.meta.url), {workerData: {root, options}})
  } catch {
    return inline(root, await walkSource(root, options))
  }
  // Keeps the process alive only while an answer is awaited: a publish that ends without
  // asking for the file list (an error on the way) just leaves it behind.
  worker.unref()
  const next = () =>
    new Promise<Message | undefined>((resolve, reject) => {
      worker.ref()
      const onMessage = (message: Message) => {
        // Told on the way (the listener added with the hashing request takes it), not an answer.
        if (message.type === 'candidates') return
        off()
        resolve(message)
      }
      const onError = (error: Error) => {
        off()
        reject(error)
      }
      const onExit = () => {
        off()
        resolve(undefined)
      }
      const off = () => {
        worker.unref()
        worker.off('message', onMessage)
        worker.off('error', onError)
        worker.off('exit', onExit)
      }
      worker.on('message', onMessage)
      worker.on('error', onError)
      worker.on('exit', onExit)
    })
  const fail = (message: Message | undefined): never => {
    void worker.terminate()
    throw errorOf(message)
  }
  let first: Message | undefined
  try {
    first = await next()
  } catch {
    // A worker that cannot run here (not a walk that failed): the same walk, on this thread.
    return inline(root, await walkSource(root, options))
  }
  if (first?.type !== 'summary') return fail(first)
  const summary = first
  let asked = false
  const candidates = new Candidates()
  const scan = scanOnce(async (request) => {
    asked = true
    const answer = next()
    if (summary.count > HASH_ASIDE_MAX_FILES) {
      worker.postMessage('files')
      const message = await answer
      if (message?.type !== 'files') return fail(message)
      return hashSource({files: message.files, warnings: summary.warnings, print: summary.print}, {...request, root, onCandidates: candidates.found})
    }
    worker.on('message', (message: Message) => {
      if (message.type === 'candidates') candidates.found(message.paths)
    })
    worker.postMessage(request)
    const message = await answer
    if (message?.type !== 'scanned') return fail(message)
    // The worker saves the hash cache after answering, then ends: the process waits for it.
    worker.ref()
    return {...message.result, entries: unpackEntries(message.result.entries)}
  })
  return {
    print: summary.print,
    count: summary.count,
    scan: candidates.told(scan),
    prefetch(request) {
      if (summary.count <= HASH_ASIDE_MAX_FILES) scan(request).catch(() => {})
    },
    close() {
      if (!asked) void worker.terminate()
    },
    candidates: () => candidates.known,
  }
}

/**
 * A tree listed by find on this thread: its files are read from the listing and hashed on a
 * worker thread of its own (on this thread below HASH_ASIDE_MIN_FILES and beyond
 * HASH_ASIDE_MAX_FILES).
 */
function listedAside(root: string, options: Pick<ScanOptions, 'exclude'>, listed: ListedSource): WalkedTree {
  const {count} = listed.listing
  const aside = count >= HASH_ASIDE_MIN_FILES && count <= HASH_ASIDE_MAX_FILES
  // Let go of once read: 100,000 files make a 7 MB listing.
  let kept: FindListing | undefined = listed.listing
  const candidates = new Candidates()
  const scan = scanOnce(async (request) => {
    const listing = kept!
    kept = undefined
    const told = {...request, onCandidates: candidates.found}
    return aside ? hashInWorker(root, options, listing, told) : hashHere(root, options, listing, told)
  })
  return {
    print: listed.print,
    count: listed.listing.count,
    scan: candidates.told(scan),
    prefetch(request) {
      if (count <= HASH_ASIDE_MAX_FILES) scan(request).catch(() => {})
    },
    close() {
      kept = undefined
    },
    candidates: () => candidates.known,
  }
}

/** What a hashing tells of the paths it must read: once, by the hashing or (as unknown) by its end. */
class Candidates {
  private tell!: (paths: readonly string[] | undefined) => void
  readonly known = new Promise<readonly string[] | undefined>((resolve) => (this.tell = resolve))
  readonly found = (paths: readonly string[]) => this.tell(paths)

  /** `scan`, telling "unknown" once its hashing is over without having said. */
  told(scan: (request: ScanRequest) => Promise<ScanResult>): (request: ScanRequest) => Promise<ScanResult> {
    return (request) => {
      const result = scan(request)
      result.then(() => this.tell(undefined), () => this.tell(undefined))
      return result
    }
  }
}

type Told = ScanRequest & Pick<HashOptions, 'onCandidates'>

function hashInWorker(root: string, options: Pick<ScanOptions, 'exclude'>, listing: FindListing, told: Told): Promise<ScanResult> {
  const {onCandidates, ...request} = told
  let worker: Worker
  try {
    worker = new Worker(new URL('./walk-worker.js', import.meta.url), {workerData: {root, options: {exclude: options.exclude}, listing, request}})
  } catch {
    return hashHere(root, options, listing, told)
  }
  // Referenced until it ends: it saves the hash cache after answering, and the process waits.
  return new Promise<ScanResult>((resolve, reject) => {
    worker.on('message', (message: Message) => {
      if (message.type === 'candidates') onCandidates?.(message.paths)
      else if (message.type === 'scanned') resolve({...message.result, entries: unpackEntries(message.result.entries)})
      else reject(errorOf(message))
    })
    // A thread that cannot run here (not a hashing that failed): the same work, on this thread.
    worker.once('error', () => resolve(hashHere(root, options, listing, told)))
    worker.once('exit', () => reject(errorOf(undefined)))
  })
}

/** The files of find's listing, hashed on this thread. */
async function hashHere(root: string, options: Pick<ScanOptions, 'exclude'>, listing: FindListing, told: Told): Promise<ScanResult> {
  return hashSource(await collectSource(root, options, listing), {...told, root})
}

/** scan() made once: asked again with the same request (after a prefetch), the same answer. */
function scanOnce(start: (request: ScanRequest) => Promise<ScanResult>): (request: ScanRequest) => Promise<ScanResult> {
  let made: {key: string; result: Promise<ScanResult>} | undefined
  return (request) => {
    const key = JSON.stringify([request.cacheFile ?? null, request.only ?? null])
    if (made && made.key !== key) return Promise.reject(new MirrorError('INTERNAL', 'the walked tree was already handed over'))
    made ??= {key, result: start(request)}
    return made.result
  }
}

function errorOf(message: Message | undefined): MirrorError {
  if (message?.type === 'error') return new MirrorError(message.error.code, message.error.message, {path: message.error.path, suggestion: message.error.suggestion})
  return new MirrorError('INTERNAL', 'the source walk stopped without an answer')
}

function inline(root: string, walked: SourceTree): WalkedTree {
  let kept: SourceTree | undefined = walked
  const candidates = new Candidates()
  return {
    print: walked.print,
    count: walked.files.length,
    scan: candidates.told(
      scanOnce((request) => {
        const tree = kept!
        kept = undefined
        return hashSource(tree, {...request, root, onCandidates: candidates.found})
      }),
    ),
    prefetch() {},
    close() {},
    candidates: () => candidates.known,
  }
}

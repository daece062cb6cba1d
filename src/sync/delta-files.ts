// Deltas and signatures of files on the master's disk, for the signature store: read the file
// through a reused window, compute, write the signature under a temporary name and rename it.
// Runs in the delta worker (delta-worker.ts) or, where no worker can run, on the calling thread.

import {createHash, randomBytes} from 'node:crypto'
import {closeSync, fstatSync, openSync, readFileSync, readSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {dirname} from 'node:path'

import {deltaAndSignature, parseSignature, serializeSignature, signatureSteps, type ByteSource, type Delta, type Signature, type Window} from './delta.js'

/** Files and the SHA-256 (hex) of the version a signature is recorded for. */
export type DeltaRequest =
  | {op: 'delta'; signatureFile: string; file: string; newSignatureFile: string; newHash: string}
  | {op: 'signature'; file: string; signatureFile: string; hash: string}

/**
 * Runs a request; requests run one at a time, deltas before signatures: a delta holds up a
 * transfer (and every page behind it), a signature only the next publish. After a delta, the
 * new version's signature is recorded too, behind every delta asked for by then; a signature
 * under way steps aside every megabyte for deltas asked for meanwhile.
 */
export function runDeltaRequest(request: DeltaRequest): Promise<unknown> {
  if (request.op === 'signature') return recordSignature(request.file, request.signatureFile, request.hash)
  return queued('now', () => {
    const {delta, next} = deltaForFile(request.signatureFile, request.file, request.newHash)
    recordSignature(request.file, request.newSignatureFile, request.newHash, next).catch(() => {})
    return delta
  })
}

const urgent: Array<() => Promise<void>> = []
const later: Array<() => Promise<void>> = []
let running = false

function queued<T>(when: 'now' | 'later', job: () => T | Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    ;(when === 'now' ? urgent : later).push(async () => {
      try {
        resolve(await job())
      } catch (error) {
        reject(error)
      }
    })
    if (!running) void drain()
  })
}

async function drain(): Promise<void> {
  running = true
  for (let next = urgent.shift() ?? later.shift(); next; next = urgent.shift() ?? later.shift()) {
    await next()
    // Requests that came while a job ran are messages not yet read: read them before choosing.
    await turn()
  }
  running = false
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Called by a long 'later' job between its steps: requests that arrived meanwhile are read, and
 * the urgent ones run now. A 50 MB video's signature is 0.2-0.4 s of this thread; the deltas of
 * the photos asked for just after it would otherwise wait for all of it, and every page with them.
 */
async function stepAside(): Promise<void> {
  await turn()
  for (let next = urgent.shift(); next; next = urgent.shift()) await next()
}

/** Signatures being recorded, by signature file: a second request for one waits for the first. */
const recording = new Map<string, Promise<void>>()

/**
 * Records the signature of `file` in `signatureFile` unless one is already there, and only when
 * the bytes read are version `hash`: the file may have changed since it was hashed, and a
 * signature filed under the wrong version would make a later delta copy the wrong blocks.
 * `made` is one already made from bytes of that version (by a delta): the file is not read again.
 */
function recordSignature(file: string, signatureFile: string, hash: string, made?: Signature): Promise<void> {
  let pending = recording.get(signatureFile)
  if (!pending) {
    pending = queued('later', async () => {
      if (await exists(signatureFile)) return
      await storeSignature(signatureFile, made ? serializeSignature(made) : await readSignature(file, hash))
    }).finally(() => recording.delete(signatureFile))
    recording.set(signatureFile, pending)
  }
  return pending
}

/**
 * The delta of `file` against the signature in `signatureFile`, or undefined when that
 * signature is missing or damaged, or the file changes while it is read (it is then sent whole,
 * and the send notices the change). Other errors of the file (ENOENT, EACCES) are thrown.
 * With it, the file's own signature when the same pass could make it and the bytes read were
 * version `hash`: a 50 MB video is then read once, not twice.
 */
function deltaForFile(signatureFile: string, file: string, hash: string): {delta?: Delta; next?: Signature} {
  let signature: Signature
  try {
    signature = parseSignature(readFileSync(signatureFile))
  } catch {
    return {}
  }
  try {
    const read = createHash('sha256')
    const {delta, next} = throughWindow(file, deltaWindow, (source) => deltaAndSignature(signature, source, read))
    return {delta, next: next && read.digest('hex') === hash ? next : undefined}
  } catch (error) {
    if (error instanceof ChangedWhileRead) return {}
    throw error
  }
}

/** The serialized signature of `file`, read through its window; only when it is version `hash`. */
async function readSignature(file: string, hash: string): Promise<Buffer> {
  const read = createHash('sha256')
  const signature = await throughWindow(file, signatureWindow, async (source) => {
    const steps = signatureSteps(source, undefined, read)
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) return serializeSignature(step.value)
      await stepAside()
    }
  })
  if (read.digest('hex') !== hash) throw new ChangedWhileRead(`${file} is no longer version ${hash}`)
  return signature
}

async function storeSignature(signatureFile: string, signature: Buffer): Promise<void> {
  await fs.mkdir(dirname(signatureFile), {recursive: true})
  // Unique per writer: another mirror process (or thread) may be recording the same version.
  const temp = `${signatureFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await fs.writeFile(temp, signature)
    await fs.rename(temp, signatureFile)
  } finally {
    await fs.rm(temp, {force: true})
  }
}

const exists = (file: string) => fs.stat(file).then(() => true, () => false)

class ChangedWhileRead extends Error {}

/** Bytes read at a time; a window must also hold a whole block (128 KiB at most). */
const WINDOW = 4 << 20

/**
 * A window buffer of this thread, made on first use. Deltas run without a break and share one;
 * a signature, which lets deltas run in its pauses, has the other.
 */
class WindowBuffer {
  private buffer: Buffer | undefined
  get(): Buffer {
    return (this.buffer ??= Buffer.allocUnsafe(WINDOW))
  }
}

const deltaWindow = new WindowBuffer()
const signatureWindow = new WindowBuffer()

/**
 * Runs `use` on `file` read through `window`, with blocking reads: this is the deltas' own
 * thread (libuv's threadpool, shared by every thread, stays free for the publish). Nothing else
 * may read through the same window until `use` is done.
 */
function throughWindow<T>(file: string, window: WindowBuffer, use: (source: ByteSource) => T): T
function throughWindow<T>(file: string, window: WindowBuffer, use: (source: ByteSource) => Promise<T>): Promise<T>
function throughWindow<T>(file: string, windowBuffer: WindowBuffer, use: (source: ByteSource) => T | Promise<T>): T | Promise<T> {
  const fd = openSync(file, 'r')
  let closeNow = true
  try {
    const buffer = windowBuffer.get()
    const {size} = fstatSync(fd)
    let window: Window = {bytes: buffer.subarray(0, 0), offset: 0}
    const view = (start: number, end: number): Window => {
      if (start >= window.offset && Math.min(end, size) <= window.offset + window.bytes.length) return window
      const length = Math.min(buffer.length, size - start)
      let got = 0
      while (got < length) {
        const n = readSync(fd, buffer, got, length - got, start + got)
        if (n === 0) throw new ChangedWhileRead(`${file} shrank while it was read`)
        got += n
      }
      window = {bytes: buffer.subarray(0, length), offset: start}
      return window
    }
    const result = use({size, view})
    if (!(result instanceof Promise)) return result
    closeNow = false
    return result.finally(() => closeSync(fd))
  } finally {
    if (closeNow) closeSync(fd)
  }
}

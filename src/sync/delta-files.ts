// Deltas and signatures of files on the master's disk, for the signature store: read the file,
// compute, write the signature under a temporary name and rename it. Runs in the delta worker
// (delta-worker.ts) or, where no worker can run, on the calling thread.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {dirname} from 'node:path'

import {computeDelta, computeSignature, parseSignature, serializeSignature, type Delta} from './delta.js'

export type DeltaRequest =
  | {op: 'delta'; signatureFile: string; file: string; newSignatureFile: string}
  | {op: 'signature'; file: string; signatureFile: string}

/**
 * How files are read: promises by default; the delta worker, a thread of its own, reads with
 * blocking calls and leaves libuv's threadpool (shared by every thread) to the publish.
 */
type Read = (file: string) => Promise<Buffer>

/** Signatures being written, by file: a request for one of them waits for that write. */
const recording = new Map<string, Promise<void>>()

/**
 * The delta of `file` against the signature in `signatureFile`, or undefined when that
 * signature is missing or damaged (the file is then sent whole). The new version's signature is
 * written to `newSignatureFile` from the same read, when it is not there yet: after the delta is
 * answered (it is only for the next publish), and `writeSignatureFor` waits for it.
 */
export async function deltaForFile(signatureFile: string, file: string, newSignatureFile: string, read: Read = fs.readFile): Promise<Delta | undefined> {
  let signature
  try {
    signature = parseSignature(await read(signatureFile))
  } catch {
    return undefined
  }
  const data = await read(file)
  const delta = computeDelta(signature, data)
  if (!recording.has(newSignatureFile)) {
    const writing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        if (!(await exists(newSignatureFile))) await writeSignature(newSignatureFile, data)
      })
      .catch(() => {})
      .finally(() => recording.delete(newSignatureFile))
    recording.set(newSignatureFile, writing)
  }
  return delta
}

/** Records the signature of `file` in `signatureFile` unless one is already there. */
export async function writeSignatureFor(file: string, signatureFile: string, read: Read = fs.readFile): Promise<void> {
  await recording.get(signatureFile)
  if (await exists(signatureFile)) return
  await writeSignature(signatureFile, await read(file))
}

async function writeSignature(signatureFile: string, data: Uint8Array): Promise<void> {
  await fs.mkdir(dirname(signatureFile), {recursive: true})
  // Unique per writer: another mirror process (or thread) may be recording the same version.
  const temp = `${signatureFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await fs.writeFile(temp, serializeSignature(computeSignature(data)))
    await fs.rename(temp, signatureFile)
  } finally {
    await fs.rm(temp, {force: true})
  }
}

const exists = (file: string) => fs.stat(file).then(() => true, () => false)

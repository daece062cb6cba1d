// The master's store of block signatures for large published files, keyed by content hash (so
// every target that got the same version shares one). A delta for a changed file is computed
// against the signature of the version the slave has.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import {computeSignature, parseSignature, serializeSignature, type Delta, type Signature} from './delta.js'

export class SignatureStore {
  constructor(private readonly dir: string) {}

  private file(hash: string): string {
    return join(this.dir, `${hash}.sig`)
  }

  async get(hash: string): Promise<Signature | undefined> {
    try {
      return parseSignature(await fs.readFile(this.file(hash)))
    } catch {
      // Missing or damaged: the file is simply sent whole.
      return undefined
    }
  }

  /**
   * Records the signature of `content` (whose SHA-256 is `hash`) unless it is already known;
   * given as a function, the content is only read when the signature is not on disk yet.
   * Several targets publishing the same version at once share one computation; a signature that
   * cannot be written only costs the next change a whole-file send, so it never throws.
   */
  remember(hash: string, content: Uint8Array | (() => Promise<Uint8Array>)): Promise<void> {
    let pending = this.inFlight.get(hash)
    if (!pending) {
      pending = this.write(hash, content).catch(() => {}).finally(() => this.inFlight.delete(hash))
      this.inFlight.set(hash, pending)
    }
    return pending
  }

  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly deltas = new Map<string, Promise<Delta>>()

  /**
   * The delta from version `baseHash` to version `hash`, computed once for every target that
   * needs it (they usually hold the same old version). A failed computation is not kept.
   */
  deltaFor(baseHash: string, hash: string, compute: () => Promise<Delta>): Promise<Delta> {
    const key = `${baseHash}>${hash}`
    let pending = this.deltas.get(key)
    if (!pending) {
      pending = compute()
      pending.catch(() => this.deltas.delete(key))
      this.deltas.set(key, pending)
    }
    return pending
  }

  private async write(hash: string, content: Uint8Array | (() => Promise<Uint8Array>)): Promise<void> {
    const file = this.file(hash)
    if (await fs.stat(file).then(() => true, () => false)) return
    const data = typeof content === 'function' ? await content() : content
    await fs.mkdir(this.dir, {recursive: true})
    // Unique per writer: another mirror process may be recording the same version.
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    try {
      await fs.writeFile(temp, serializeSignature(computeSignature(data)))
      await fs.rename(temp, file)
    } finally {
      await fs.rm(temp, {force: true})
    }
  }
}

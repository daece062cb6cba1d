// The master's store of block signatures for large published files, keyed by content hash (so
// every target that got the same version shares one). A delta for a changed file is computed
// against the signature of the version the slave has. The work itself (reading the file,
// a pass over its bytes) runs on the delta worker thread (delta-aside.ts).

import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import {deltaAside, signatureAside} from './delta-aside.js'
import {parseSignature, type Delta, type Signature} from './delta.js'

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

  /** True when the signature of version `hash` is on disk (it may still turn out damaged). */
  has(hash: string): Promise<boolean> {
    return fs.stat(this.file(hash)).then(() => true, () => false)
  }

  /**
   * Records the signature of `file` (whose SHA-256 is `hash`) unless it is already known.
   * Several targets publishing the same version at once share one computation; a signature that
   * cannot be written only costs the next change a whole-file send, so it never throws.
   */
  remember(hash: string, file: string): Promise<void> {
    let pending = this.inFlight.get(hash)
    if (!pending) {
      pending = signatureAside(file, this.file(hash), hash).catch(() => {}).finally(() => this.inFlight.delete(hash))
      this.inFlight.set(hash, pending)
    }
    return pending
  }

  /**
   * Removes the signatures of versions no target holds any more: every one not in `live`, written
   * before `before` (ms; a publish running beside this one may be recording its own). Without it
   * the store keeps a signature of every version of every large file ever published.
   * Never throws: a signature left behind only takes space.
   */
  async prune(live: ReadonlySet<string>, before: number): Promise<number> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[])
    let removed = 0
    for (const name of names) {
      // Temporary files of a recording under way are not signatures yet.
      if (!name.endsWith('.sig') || live.has(name.slice(0, -4))) continue
      const file = join(this.dir, name)
      const stats = await fs.stat(file).catch(() => undefined)
      if (stats && stats.mtimeMs < before && (await fs.rm(file).then(() => true, () => false))) removed++
    }
    return removed
  }

  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly deltas = new Map<string, Promise<Delta | undefined>>()

  /**
   * The delta from version `baseHash` to `file` (version `hash`), computed once for every target
   * that needs it (they usually hold the same old version), or undefined when the old version's
   * signature is missing or damaged. The new version's signature is recorded next, behind every
   * delta asked for, when the file is still that version.
   * A failed computation is not kept.
   */
  deltaFor(baseHash: string, hash: string, file: string): Promise<Delta | undefined> {
    const key = `${baseHash}>${hash}`
    let pending = this.deltas.get(key)
    if (!pending) {
      pending = deltaAside(this.file(baseHash), file, this.file(hash), hash)
      pending.catch(() => this.deltas.delete(key))
      this.deltas.set(key, pending)
    }
    return pending
  }
}

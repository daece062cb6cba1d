// The changes each target still has to receive, kept on the master under the state directory so
// that a target that is down, or a watch that is killed, loses nothing: the next watch loads
// them and publishes them first. Written atomically (temporary name, then rename).

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {dirname} from 'node:path'

/** What one target still needs: source paths, and whether a full publish (or verify) is owed. */
export interface PendingWork {
  paths: string[]
  full?: 'publish' | 'verify'
}

export type PendingSnapshot = Record<string, PendingWork>

interface PendingFile {
  format: 1
  updatedAt: string
  targets: PendingSnapshot
}

/** Reads the saved pending work; a missing file is none, a damaged one is reported and ignored. */
export async function loadPending(file: string): Promise<{pending: PendingSnapshot; damaged?: string}> {
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {pending: {}}
    return {pending: {}, damaged: (error as Error).message}
  }
  try {
    const parsed = JSON.parse(text) as PendingFile
    if (parsed.format !== 1 || typeof parsed.targets !== 'object' || parsed.targets === null) throw new Error('unknown format')
    const pending: PendingSnapshot = {}
    for (const [name, work] of Object.entries(parsed.targets)) {
      const paths = Array.isArray(work?.paths) ? work.paths.filter((p): p is string => typeof p === 'string') : []
      const full = work?.full === 'publish' || work?.full === 'verify' ? work.full : undefined
      pending[name] = full ? {paths, full} : {paths}
    }
    return {pending}
  } catch (error) {
    return {pending: {}, damaged: (error as Error).message}
  }
}

/**
 * Saves snapshots of the pending work, one write at a time: a save asked for while a write is
 * under way is coalesced into one more write with the newest snapshot.
 */
export class PendingWriter {
  private next: (() => PendingSnapshot) | undefined
  private writing: Promise<void> | undefined
  private lastError: Error | undefined

  constructor(private readonly file: string) {}

  /** Schedules a write of `snapshot()` (called when the write starts, so it is the newest). */
  save(snapshot: () => PendingSnapshot): void {
    this.next = snapshot
    this.writing ??= this.drain()
  }

  /** Resolves when everything asked for so far is on disk; rejects with the last write error. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing
    if (this.lastError) throw this.lastError
  }

  private async drain(): Promise<void> {
    while (this.next) {
      const snapshot = this.next()
      this.next = undefined
      try {
        await writePending(this.file, snapshot)
        this.lastError = undefined
      } catch (error) {
        this.lastError = error as Error
      }
    }
    this.writing = undefined
  }
}

export async function writePending(file: string, pending: PendingSnapshot): Promise<void> {
  const body: PendingFile = {format: 1, updatedAt: new Date().toISOString(), targets: pending}
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`
  await fs.mkdir(dirname(file), {recursive: true})
  try {
    await fs.writeFile(temp, `${JSON.stringify(body)}\n`)
    await fs.rename(temp, file)
  } catch (error) {
    await fs.rm(temp, {force: true}).catch(() => {})
    throw error
  }
}

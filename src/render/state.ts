// The master-side memory of the last successful render, under `<stateDir>/render/`: per URL its
// file, validators (ETag, Last-Modified) and content hashes, plus a content-addressed cache of
// raw HTML and CSS so a 304 page can still be rewritten. Never inside the snapshot.

import {createHash, randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

export const STATE_VERSION = 1

export interface ResourceState {
  /** Path in the snapshot. */
  file: string
  kind: 'page' | 'asset' | 'redirect'
  contentType?: string
  etag?: string
  lastModified?: string
  /** sha256 of the body the origin sent (HTML and CSS bodies are in the cache under it). */
  rawHash?: string
  /** sha256 of the saved file with the volatile patterns removed. */
  outHash: string
  /** Size and mtime of the saved file, to notice a hand edit of the snapshot. */
  size: number
  mtimeMs: number
}

export interface RenderState {
  version: number
  origin: string
  source: string
  renderedAt: string
  resources: Record<string, ResourceState>
  /** Asset file → the page files that embed it. */
  embeds: Record<string, string[]>
  /** The redirect map written into the snapshot, if any. */
  redirectMap?: string
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export class StateStore {
  readonly dir: string
  readonly cacheDir: string

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'render')
    this.cacheDir = join(this.dir, 'cache')
  }

  /** The last state, or undefined when there is none or it is unreadable (the render then starts fresh). */
  async load(): Promise<RenderState | undefined> {
    try {
      const state = JSON.parse(await fs.readFile(join(this.dir, 'state.json'), 'utf8')) as RenderState
      return state.version === STATE_VERSION ? state : undefined
    } catch {
      return undefined
    }
  }

  async save(state: RenderState): Promise<void> {
    await fs.mkdir(this.dir, {recursive: true})
    const file = join(this.dir, 'state.json')
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`
    await fs.writeFile(temp, JSON.stringify(state))
    await fs.rename(temp, file)
  }

  cachePath(hash: string): string {
    return join(this.cacheDir, hash.slice(0, 2), hash)
  }

  /** Stores a raw body under its hash; an existing blob is the same bytes and is left alone. */
  async putRaw(hash: string, body: Buffer): Promise<void> {
    const file = this.cachePath(hash)
    try {
      await fs.access(file)
      return
    } catch {
      // not cached yet
    }
    await fs.mkdir(join(this.cacheDir, hash.slice(0, 2)), {recursive: true})
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`
    await fs.writeFile(temp, body)
    await fs.rename(temp, file)
  }

  async getRaw(hash: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.cachePath(hash))
    } catch {
      return undefined
    }
  }

  async hasRaw(hash: string): Promise<boolean> {
    try {
      await fs.access(this.cachePath(hash))
      return true
    } catch {
      return false
    }
  }

  /** Deletes cached bodies the new state no longer names (after a successful render only). */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    let buckets: string[]
    try {
      buckets = await fs.readdir(this.cacheDir)
    } catch {
      return
    }
    for (const bucket of buckets) {
      const dir = join(this.cacheDir, bucket)
      const names = await fs.readdir(dir).catch(() => [] as string[])
      await Promise.all(names.filter((name) => !keep.has(name)).map((name) => fs.rm(join(dir, name), {force: true})))
    }
  }
}

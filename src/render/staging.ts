// Where a render is written and how it replaces the snapshot: a staging directory beside
// `source`, swapped in by two renames only after the crawl succeeded, one render at a time
// (a lock under the state directory), and recovery from a crash between the two renames.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {hostname} from 'node:os'
import {basename, dirname, join} from 'node:path'

import {MirrorError} from '../errors.js'
import {processAlive} from '../util/process.js'

const STAGING_TAG = '.render-'
const PREVIOUS_TAG = '.previous-'

function siblings(source: string): {dir: string; prefix: string} {
  return {dir: dirname(source), prefix: `.${basename(source)}`}
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path)
    return true
  } catch {
    return false
  }
}

/** Takes the render lock; throws LOCKED when a live render holds it. Returns the release function. */
export async function lockRender(stateRenderDir: string): Promise<() => Promise<void>> {
  await fs.mkdir(stateRenderDir, {recursive: true})
  const file = join(stateRenderDir, 'lock')
  const me = JSON.stringify({pid: process.pid, host: hostname(), since: new Date().toISOString()})
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(file, me, {flag: 'wx'})
      return async () => {
        await fs.rm(file, {force: true})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = await fs
      .readFile(file, 'utf8')
      .then((text) => JSON.parse(text) as {pid: number; host: string; since: string})
      .catch(() => undefined)
    if (holder && holder.host === hostname() && processAlive(holder.pid)) {
      throw new MirrorError('LOCKED', `another render (pid ${holder.pid}, since ${holder.since}) is writing this snapshot`, {
        suggestion: 'Wait for it to finish; if no render is running, delete ' + file,
      })
    }
    // The holder died without releasing: the lock is stale.
    await fs.rm(file, {force: true})
  }
  throw new MirrorError('LOCKED', `could not take the render lock ${file}`)
}

/**
 * Puts things right after a render that died: a snapshot moved aside but not replaced is moved
 * back, leftover staging directories are removed. Call with the lock held.
 */
export async function recover(source: string): Promise<void> {
  const {dir, prefix} = siblings(source)
  const names = await fs.readdir(dir).catch(() => [] as string[])
  const previous = names.filter((n) => n.startsWith(prefix + PREVIOUS_TAG))
  if (!(await exists(source)) && previous.length > 0) {
    await fs.rename(join(dir, previous[0]), source)
  }
  // A previous snapshot moved back above is no longer under its old name; rm of it is a no-op.
  const leftovers = names.filter((n) => n.startsWith(prefix + STAGING_TAG) || n.startsWith(prefix + PREVIOUS_TAG))
  await Promise.all(leftovers.map((n) => fs.rm(join(dir, n), {recursive: true, force: true})))
}

/** A fresh staging directory beside `source` (same file system, so the swap is a rename). */
export async function createStaging(source: string): Promise<string> {
  const {dir, prefix} = siblings(source)
  await fs.mkdir(dir, {recursive: true})
  const staging = join(dir, `${prefix}${STAGING_TAG}${randomBytes(4).toString('hex')}`)
  await fs.mkdir(staging)
  return staging
}

/** True when `source` holds files (a render into it would replace them). */
export async function hasContent(source: string): Promise<boolean> {
  const names = await fs.readdir(source).catch(() => [] as string[])
  return names.length > 0
}

/**
 * Replaces `source` by `staging`. Between the two renames `source` is briefly absent; a crash
 * there is undone by `recover`. The previous snapshot is deleted only after the swap.
 */
export async function swapInto(staging: string, source: string): Promise<void> {
  const {dir, prefix} = siblings(source)
  if (!(await exists(source))) {
    await fs.rename(staging, source)
    return
  }
  const previous = join(dir, `${prefix}${PREVIOUS_TAG}${randomBytes(4).toString('hex')}`)
  await fs.rename(source, previous)
  try {
    await fs.rename(staging, source)
  } catch (error) {
    await fs.rename(previous, source)
    throw error
  }
  await fs.rm(previous, {recursive: true, force: true})
}

export async function removeStaging(staging: string): Promise<void> {
  await fs.rm(staging, {recursive: true, force: true})
}

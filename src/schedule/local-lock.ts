// A lock file on the master (in the state directory) that lets one process at a time do a job:
// one scheduled publish per config (a run that finds the previous one still running skips),
// one `mirror watch` per config. It records the holder's pid; a lock whose process is gone is
// stale and taken over. Not the targets' publish lock, which lives on each slave.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {hostname} from 'node:os'
import {dirname} from 'node:path'

import {processAlive} from '../util/process.js'

export interface LocalLockHolder {
  pid: number
  host: string
  /** ISO time the lock was taken. */
  since: string
  command: string
}

export interface LocalLock {
  holder: LocalLockHolder
  /** Removes the lock file if it is still ours. Never throws. */
  release(): Promise<void>
}

/** `tookOver`: the stale holder whose lock was replaced (that process ended without releasing it). */
export type LockAttempt = {ok: true; lock: LocalLock; tookOver?: LocalLockHolder} | {ok: false; heldBy: LocalLockHolder}


/** A holder is stale when it names this machine and its process is gone. */
export function isStale(holder: Partial<LocalLockHolder>): boolean {
  return holder.host === hostname() && typeof holder.pid === 'number' && holder.pid !== process.pid && !processAlive(holder.pid)
}

/**
 * Takes the lock at `file`, or reports who holds it. The lock file appears atomically with its
 * content (written under a temporary name, then hard-linked into place), so a reader never sees
 * a half-written holder.
 */
export async function acquireLocalLock(file: string, command: string): Promise<LockAttempt> {
  const holder: LocalLockHolder = {pid: process.pid, host: hostname(), since: new Date().toISOString(), command}
  const token = randomBytes(8).toString('hex')
  const body = `${JSON.stringify({...holder, token})}\n`
  await fs.mkdir(dirname(file), {recursive: true})
  const temp = `${file}.${token}.tmp`
  await fs.writeFile(temp, body)
  try {
    let stale: LocalLockHolder | undefined
    // Two attempts: the second after removing a stale lock.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.link(temp, file)
        return {ok: true, lock: {holder, release: () => releaseIfOurs(file, token)}, ...(stale ? {tookOver: stale} : {})}
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const text = await fs.readFile(file, 'utf8').catch(() => '')
      const held = parseHolder(text)
      if (!isStale(held) && attempt === 0 && text !== '') return {ok: false, heldBy: held}
      if (attempt === 1) return {ok: false, heldBy: held}
      stale = held
      // Stale (or empty, a crash between create and write in an older version): remove it,
      // but only if it is still the same stale lock, then try once more.
      if ((await fs.readFile(file, 'utf8').catch(() => '')) === text) await fs.rm(file, {force: true})
    }
    return {ok: false, heldBy: parseHolder(await fs.readFile(file, 'utf8').catch(() => ''))}
  } finally {
    await fs.rm(temp, {force: true}).catch(() => {})
  }
}

/** Who holds the lock at `file`, or null when nobody (or only a stale holder) does. */
export async function readLocalLock(file: string): Promise<LocalLockHolder | null> {
  const text = await fs.readFile(file, 'utf8').catch(() => null)
  if (text === null) return null
  const holder = parseHolder(text)
  return isStale(holder) ? null : holder
}

function parseHolder(text: string): LocalLockHolder {
  try {
    const parsed = JSON.parse(text) as Partial<LocalLockHolder>
    return {pid: Number(parsed.pid), host: String(parsed.host ?? '?'), since: String(parsed.since ?? '?'), command: String(parsed.command ?? 'mirror')}
  } catch {
    return {pid: 0, host: '?', since: '?', command: 'mirror'}
  }
}

async function releaseIfOurs(file: string, token: string): Promise<void> {
  const text = await fs.readFile(file, 'utf8').catch(() => '')
  if (text.includes(token)) await fs.rm(file, {force: true}).catch(() => {})
}

// Recognises a target's publish lock left behind by a mirror process of this machine that is
// gone (a watch or a scheduled publish killed with SIGKILL, a reboot): such a lock can be taken
// over without asking, where a lock of a live or remote publisher must be waited for.

import {isStale} from '../schedule/local-lock.js'
import type {LockOwner, Target} from '../targets/target.js'

/** The owner of the target's lock when that lock is stale; null otherwise (or when unreadable). */
export async function staleLockOwner(target: Target): Promise<Partial<LockOwner> | null> {
  const data = await target.readState('lock').catch(() => null)
  if (!data) return null
  try {
    const owner = JSON.parse(data.toString('utf8')) as Partial<LockOwner>
    return isStale(owner) ? owner : null
  } catch {
    return null
  }
}

// Facts about local processes (for the locks that decide whether a holder is still alive), and
// how this one stops cleanly when asked to.

/** True when a process with this pid exists on this machine (EPERM: it exists, someone else's). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Runs `work` with a signal that Ctrl-C (SIGINT) or SIGTERM aborts: long work then stops where
 * it is safe to, and says what it did, instead of dying mid-write.
 */
export async function untilStopped<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const stop = () => controller.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    return await work(controller.signal)
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

// Facts about local processes, for the locks that decide whether a holder is still alive.

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

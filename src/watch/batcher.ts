// Turns a stream of changed paths into batches: a batch is delivered after `debounceMs` of quiet
// (a burst such as a git checkout or a render becomes one batch), or at the latest `maxWaitMs`
// after its first path so that a never-quiet tree still gets published. A path whose inode
// changed less than `settleMs` ago is still being written: it is held back until it settles,
// so a file is never published half-written. Knows nothing about chokidar or publishing.

/** A ctime this far ahead of our clock is not a write in progress but a clock that differs. */
const FUTURE_MS = 1000
/** Extra wait past the settle time when a burst is held back for a file. */
const SETTLE_MARGIN_MS = 30

export interface BatcherOptions {
  debounceMs: number
  maxWaitMs: number
  settleMs: number
  /**
   * When the path last changed (its ctime, in ms), or null when it does not exist (a delete).
   * ctime rather than mtime: every write moves it, and no tool can set it back.
   */
  changedAt: (path: string) => Promise<number | null>
  onBatch: (paths: string[]) => void
}

export class ChangeBatcher {
  private readonly paths = new Set<string>()
  private firstAt: number | undefined
  private timer: NodeJS.Timeout | undefined
  private holds = 0
  private flushing = false
  private stopped = false

  constructor(private readonly options: BatcherOptions) {}

  /** Records a changed path (file added, changed or removed). */
  add(path: string): void {
    if (this.stopped) return
    this.paths.add(path)
    this.firstAt ??= Date.now()
    this.arm()
  }

  /** Paths waiting for the next batch. */
  get size(): number {
    return this.paths.size
  }

  /**
   * Holds every batch back until the returned release is called (all of them, when held more
   * than once): a render rewriting hundreds of pages is published as one batch when it ends.
   */
  hold(): () => void {
    this.holds++
    clearTimeout(this.timer)
    this.timer = undefined
    let released = false
    return () => {
      if (released) return
      released = true
      this.holds--
      if (this.holds === 0 && this.paths.size > 0) this.schedule(0)
    }
  }

  /** Forgets the paths waiting (a full publish that covers them has been asked for). */
  clear(): void {
    this.paths.clear()
    this.firstAt = undefined
  }

  /** Stops batching and returns the paths that were waiting, so that they can be kept. */
  stop(): string[] {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    const left = [...this.paths]
    this.paths.clear()
    return left
  }

  private arm(): void {
    if (this.holds > 0 || this.flushing) return
    const sinceFirst = Date.now() - (this.firstAt ?? Date.now())
    this.schedule(Math.max(0, Math.min(this.options.debounceMs, this.options.maxWaitMs - sinceFirst)))
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.flush(), delay)
  }

  private waitedForUnsettled = false

  private async flush(): Promise<void> {
    this.timer = undefined
    if (this.holds > 0 || this.flushing || this.stopped || this.paths.size === 0) return
    this.flushing = true
    const batch = [...this.paths]
    this.paths.clear()
    this.firstAt = undefined
    const ready: string[] = []
    let wait = 0
    await Promise.all(
      batch.map(async (path) => {
        const at = await this.options.changedAt(path).catch(() => null)
        // The clock is read after the look: a write that lands while we look counts as recent.
        const age = at === null ? Infinity : Date.now() - at
        // A ctime far in the future (a clock step, a network file system) cannot be judged.
        if (age > -FUTURE_MS && age < this.options.settleMs) {
          this.paths.add(path)
          wait = Math.max(wait, this.options.settleMs - Math.max(0, age))
        } else {
          ready.push(path)
        }
      }),
    )
    this.flushing = false
    if (this.stopped) {
      for (const path of ready) this.paths.add(path)
      return
    }
    // A burst whose last file is still being written waits for it once, so that it stays one
    // publish (an edit and a delete together); a file that keeps changing holds nobody twice.
    const holdingBurst = ready.length > 0 && this.paths.size > 0 && !this.waitedForUnsettled
    if (holdingBurst) {
      this.waitedForUnsettled = true
      for (const path of ready) this.paths.add(path)
      ready.length = 0
    } else if (ready.length > 0) {
      this.waitedForUnsettled = false
    }
    // What is left (unsettled, or arrived meanwhile) starts a new wait: a file being copied for
    // minutes must not make every later event flush at once.
    if (this.paths.size > 0) this.firstAt = Date.now()
    if (ready.length > 0) this.options.onBatch(ready.sort())
    if (this.paths.size > 0 && this.holds === 0) {
      // Unsettled paths are looked at again once they may have settled; paths that arrived
      // while we looked get the usual debounce.
      // Holding a burst back for a file, look again once it has surely settled (timestamps
      // are coarse): a look that comes a little early would split the burst after all.
      this.schedule(Math.max(wait + (holdingBurst ? SETTLE_MARGIN_MS : 0), this.options.debounceMs))
    }
  }
}

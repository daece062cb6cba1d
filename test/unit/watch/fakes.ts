// Fakes of mirror's own interfaces for the watch loop's unit tests: a `publish` that records
// its calls and answers per target, and a Target that counts connections. Nothing of chokidar,
// ssh2 or the file system is faked.

import {MirrorError} from '../../../src/errors.js'
import type {PublishOptions, PublishResult, TargetOutcome} from '../../../src/sync/publish.js'
import type {LockOwner, RemoteStat, StateBytes, Target} from '../../../src/targets/target.js'

export class FakeTarget implements Target {
  readonly url: string
  readonly capabilities = {copyData: false, maxTransfers: 4}
  connects = 0
  closes = 0

  constructor(readonly name: string) {
    this.url = `fake://${name}`
  }

  async connect(): Promise<void> {
    this.connects++
  }
  async close(): Promise<void> {
    this.closes++
  }
  async stat(): Promise<Map<string, RemoteStat | null>> {
    return new Map()
  }
  async list(): Promise<Map<string, RemoteStat>> {
    return new Map()
  }
  async hash(): Promise<string> {
    return ''
  }
  async put(): Promise<void> {}
  async remove(): Promise<void> {}
  async removeEmptyDir(): Promise<boolean> {
    return true
  }
  async backup(): Promise<void> {}
  async readState(): Promise<Buffer | null> {
    return null
  }
  async writeState(_name: string, data: Buffer | StateBytes): Promise<RemoteStat> {
    return {type: 'file', size: Buffer.isBuffer(data) ? data.length : data.size, mtimeMs: 0, mode: 0o600}
  }
  async statState(): Promise<RemoteStat | null> {
    return null
  }
  async lock(_owner: LockOwner): Promise<void> {}
  async unlock(): Promise<void> {}
}

export interface PublishCall {
  targets: string[]
  only?: string[]
  verify: boolean
  breakLock: boolean
  /** Which targets came in `openTargets`, by identity. */
  open: Map<string, Target>
  aborted: () => boolean
}

/**
 * A publish that "sends" every path of `only` (or `fullTree` for a full publish) to each target
 * unless `failures` names the target; `delayMs` makes it take time, honouring the abort signal.
 */
export class FakePublisher {
  calls: PublishCall[] = []
  failures = new Map<string, MirrorError>()
  /** Targets whose publish never ends until aborted (a stalled slave). */
  hang = new Set<string>()
  delayMs = 0
  fullTree: string[] = ['index.html']
  /** What each target holds now: path -> how many times it was sent. */
  received = new Map<string, Map<string, number>>()
  targets = new Map<string, FakeTarget>()

  /** Milliseconds a target takes to connect (a host that does not answer). */
  connectDelay = new Map<string, number>()

  openTarget = async (name: string): Promise<Target> => {
    await sleep(this.connectDelay.get(name) ?? 0)
    const failure = this.failures.get(name)
    if (failure && failure.code !== 'LOCKED' && failure.code !== 'TRANSFER_FAILED') throw failure
    const target = new FakeTarget(name)
    await target.connect()
    this.targets.set(name, target)
    return target
  }

  publish = async (options: PublishOptions): Promise<PublishResult> => {
    const call: PublishCall = {
      targets: [...(options.targets ?? [])],
      only: options.only ? [...options.only] : undefined,
      verify: Boolean(options.verify),
      breakLock: Boolean(options.breakLock),
      open: new Map(options.openTargets),
      aborted: () => Boolean(options.signal?.aborted),
    }
    this.calls.push(call)
    options.onEvent?.({type: 'scan-done', files: 0, hashed: 0, durationMs: 0})
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms)
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      })
    if (call.targets.some((t) => this.hang.has(t))) await wait(60_000)
    else if (this.delayMs > 0) await wait(this.delayMs)
    const outcomes: TargetOutcome[] = call.targets.map((name) => {
      const failure = options.signal?.aborted ? new MirrorError('INTERRUPTED', 'interrupted', {target: name}) : this.failures.get(name)
      const paths = call.only ?? this.fullTree
      const report = {target: name, url: `fake://${name}`, ok: !failure, sent: failure ? 0 : paths.length, bytes: 0, deleted: 0, adopted: 0, kept: [], failed: [], durationMs: 1, generation: 1}
      if (failure) {
        if (failure.code === 'LOCKED' && options.breakLock) return this.deliver(name, paths, report, options)
        return {target: name, url: `fake://${name}`, report: failure.code === 'TRANSFER_FAILED' ? report : undefined, error: failure.toJSON()}
      }
      return this.deliver(name, paths, report, options)
    })
    return {source: '/src', files: 0, hashed: 0, warnings: [], dryRun: false, targets: outcomes}
  }

  private deliver(name: string, paths: string[], report: TargetOutcome['report'], options: PublishOptions): TargetOutcome {
    const got = this.received.get(name) ?? new Map<string, number>()
    for (const path of paths) {
      got.set(path, (got.get(path) ?? 0) + 1)
      options.onEvent?.({type: 'file-done', target: name, path, kind: 'update', bytes: 1})
    }
    this.received.set(name, got)
    return {target: name, url: `fake://${name}`, report: {...report!, ok: true, sent: paths.length}}
  }

  /** Paths a target received, sorted. */
  got(name: string): string[] {
    return [...(this.received.get(name)?.keys() ?? [])].sort()
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until `check` is true or `ms` passed; returns the last value of `check`. */
export async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  const safe = () => {
    try {
      return check()
    } catch {
      return false
    }
  }
  while (!safe() && Date.now() < deadline) await sleep(10)
  return safe()
}

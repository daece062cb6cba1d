// The watch loop: keeps, per target, the work it still owes (changed source paths, or a full
// publish), publishes it through `publish` and decides when to try a failed target again. Knows
// nothing about chokidar, timers of the batcher, or printing: those feed it paths and read its
// events. Targets are independent lanes: a target that is failing or slow never holds the
// others back; its work is kept (also on disk, across restarts) and it is caught up alone.

import type {BatchKind, BatchTarget, ErrorJson, WatchEvent} from './events.js'
import {retryDelay, type RetryPolicy} from './backoff.js'
import {loadPending, PendingWriter, type PendingSnapshot} from './pending.js'
import {MirrorError, toMirrorError} from '../errors.js'
import type {PublishOptions, PublishResult} from '../sync/publish.js'
import type {Target} from '../targets/target.js'

export interface WatchLoopOptions {
  /** Target names, in config order. */
  targets: readonly string[]
  /**
   * The watched targets a source path is published to (possibly none of them); undefined when
   * no segment takes the path at all.
   */
  route: (path: string) => readonly string[] | undefined
  /** `publish` bound to the config. */
  publish: (options: PublishOptions) => Promise<PublishResult>
  /** Builds and connects a target; throws what `Target.connect` throws. */
  openTarget: (name: string) => Promise<Target>
  /** Where pending work is kept between runs. */
  pendingFile: string
  retry: RetryPolicy
  /** Milliseconds between reconciles (a full publish with verify); 0 disables them. */
  reconcileMs: number
  /** Take over held locks on the first publish of each target (`--break-lock`). */
  breakLock?: boolean
  /** How long a batch waits for slaves still connecting before it goes on without them. */
  connectGraceMs?: number
  onEvent: (event: WatchEvent) => void
}

type FullKind = 'publish' | 'verify'

interface TargetState {
  name: string
  /**
   * Pending source paths, each with the number of the change that last touched it: a path
   * changed again while it is being published must stay pending after that publish.
   */
  paths: Map<string, number>
  full?: {kind: FullKind; reason: BatchKind; seq: number}
  busy: boolean
  /** Consecutive failures; > 0 means the target is lagging and is published alone. */
  failures: number
  /** Steps on the backoff ladder (an immediate reconnect does not climb it). */
  step: number
  timer?: NodeJS.Timeout
  open?: Target
  /** A connection being opened (it may outlive the run that started it), and how it failed. */
  connecting?: Promise<void>
  connectError?: MirrorError
  breakLock: boolean
}

const MAX_EVENT_PATHS = 1000
const CONNECT_GRACE_MS = 2000
const FULL_RANK: Record<FullKind, number> = {publish: 1, verify: 2}

export class WatchLoop {
  private readonly states: Map<string, TargetState>
  private readonly writer: PendingWriter
  private readonly abort = new AbortController()
  private readonly running = new Set<Promise<void>>()
  private readonly warned = new Set<string>()
  private readonly idleWaiters: Array<() => void> = []
  private reconcileTimer: NodeJS.Timeout | undefined
  private scanGate: Promise<void> = Promise.resolve()
  private fullSeq = 0
  private changeSeq = 0
  private fullScansStarted = 0
  private stopping = false

  constructor(private readonly options: WatchLoopOptions) {
    this.states = new Map(options.targets.map((name) => [name, {name, paths: new Map(), busy: false, failures: 0, step: 0, breakLock: Boolean(options.breakLock)}]))
    this.writer = new PendingWriter(options.pendingFile)
  }

  /** Loads the work a previous watch left (see `pendingCounts`). */
  async load(): Promise<void> {
    const {pending, damaged} = await loadPending(this.options.pendingFile)
    if (damaged) this.warn(`the saved pending changes in ${this.options.pendingFile} are unreadable (${damaged}); the initial publish covers them`)
    for (const [name, work] of Object.entries(pending)) {
      const state = this.states.get(name)
      if (!state) continue
      for (const path of work.paths) state.paths.set(path, ++this.changeSeq)
      if (work.full) this.requestFullFor(state, work.full, 'initial')
    }
  }

  /**
   * Starts the initial full publish of every target (which also covers whatever changed while
   * no watch ran, and the loaded pending work) and the reconcile timer.
   */
  start(): void {
    for (const state of this.states.values()) this.requestFullFor(state, 'publish', 'initial')
    if (this.options.reconcileMs > 0) {
      this.reconcileTimer = setInterval(() => this.requestFull('verify', 'reconcile'), this.options.reconcileMs)
    }
    this.schedule()
  }

  /** Queues changed source paths (a batch) for the targets they are published to. */
  addPaths(paths: readonly string[]): void {
    for (const path of paths) {
      const targets = this.options.route(path)
      if (!targets) {
        this.warn('matches no segment: not published (add a segment that matches it, or exclude it)', {path})
        continue
      }
      const seq = ++this.changeSeq
      for (const name of targets) this.states.get(name)?.paths.set(path, seq)
    }
    this.persist()
    this.schedule()
  }

  /** Asks for a full publish (or, with `verify`, a full comparison) of every target. */
  requestFull(kind: FullKind, reason: BatchKind): void {
    for (const state of this.states.values()) this.requestFullFor(state, kind, reason)
    this.persist()
    this.schedule()
  }

  /** How many full publishes have started (their scan of the source began). */
  get fullScans(): number {
    return this.fullScansStarted
  }

  /** Source paths each target is still owed. */
  pendingCounts(): Record<string, number> {
    return Object.fromEntries([...this.states.values()].map((s) => [s.name, s.paths.size]))
  }

  /** Resolves once nothing is being published and nothing is due (failed targets may be waiting). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Stops: no new publish starts, the ones in flight are aborted (files already in flight
   * finish; none is left half-written) and awaited, connections are closed, and what is still
   * pending (with `leftover`, changes not yet batched) is saved for the next watch.
   */
  async stop(leftover: readonly string[] = []): Promise<void> {
    if (!this.stopping) {
      this.stopping = true
      clearInterval(this.reconcileTimer)
      for (const state of this.states.values()) clearTimeout(state.timer)
      this.abort.abort()
    }
    for (const path of leftover) for (const name of this.options.route(path) ?? []) this.states.get(name)?.paths.set(path, ++this.changeSeq)
    while (this.running.size > 0) await Promise.allSettled([...this.running])
    await Promise.all([...this.states.values()].map((s) => this.dropConnection(s)))
    this.persist()
    await this.writer.flush().catch((error) => this.warn(`could not save the pending changes: ${(error as Error).message}`))
    this.options.onEvent({event: 'stopped', pending: this.pendingCounts()})
  }

  private requestFullFor(state: TargetState, kind: FullKind, reason: BatchKind): void {
    if (state.full && FULL_RANK[state.full.kind] >= FULL_RANK[kind]) {
      // Already owed; a request made while it runs must still run after it.
      state.full.seq = ++this.fullSeq
      if (state.full.kind === kind) state.full.reason = reason
      return
    }
    state.full = {kind, reason, seq: ++this.fullSeq}
  }

  private hasWork(state: TargetState): boolean {
    return Boolean(state.full) || state.paths.size > 0
  }

  private isIdle(): boolean {
    return [...this.states.values()].every((s) => !s.busy && (s.timer !== undefined || !this.hasWork(s)))
  }

  /** Starts a publish for every target that has work and is free to take it. */
  private schedule(): void {
    if (this.stopping) return
    const free = [...this.states.values()].filter((s) => !s.busy && !s.timer && this.hasWork(s))
    // A lagging target goes alone: its catch-up (maybe slow, maybe failing again) must not
    // delay the healthy ones.
    for (const state of free.filter((s) => s.failures > 0)) this.launch([state])
    const groups = new Map<string, TargetState[]>()
    for (const state of free.filter((s) => s.failures === 0)) {
      const key = state.full?.kind ?? 'paths'
      groups.set(key, [...(groups.get(key) ?? []), state])
    }
    for (const group of groups.values()) this.launch(group)
    if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve()
  }

  private launch(group: TargetState[]): void {
    // `run` may hand members that are slow to connect over to runs of their own: those leave
    // `members`, and only the ones left are freed here.
    const members = [...group]
    for (const state of members) state.busy = true
    const run = this.run(members)
      .catch((error) => this.options.onEvent({event: 'error', error: toMirrorError(error).toJSON()}))
      .finally(() => {
        this.running.delete(run)
        for (const state of members) state.busy = false
        this.schedule()
      })
    this.running.add(run)
  }

  private async run(group: TargetState[]): Promise<void> {
    const started = Date.now()
    const errors = new Map<string, MirrorError>()
    const reused = new Set(group.filter((s) => s.open).map((s) => s.name))
    await this.connect(group, errors)
    if (group.length === 0) return

    const full = group[0].full?.kind
    const kind: BatchKind = group[0].failures > 0 ? 'retry' : (group[0].full?.reason ?? 'changes')
    const taken = new Map(group.map((s) => [s.name, {paths: new Map(s.paths), seq: s.full?.seq}]))
    const only = full ? undefined : [...new Set(group.flatMap((s) => [...s.paths.keys()]))].sort()
    const connected = group.filter((s) => s.open && !errors.has(s.name))
    let result: PublishResult | undefined
    const sent = new Set<string>()
    const deleted = new Set<string>()
    if (connected.length > 0 && !this.stopping) {
      // One scan at a time: concurrent scans would race on the master's hash cache file.
      const release = await this.enterScan()
      if (full) this.fullScansStarted++
      try {
        result = await this.options.publish({
          targets: connected.map((s) => s.name),
          only,
          verify: full === 'verify',
          breakLock: connected.some((s) => s.breakLock),
          openTargets: new Map(connected.map((s) => [s.name, s.open!])),
          signal: this.abort.signal,
          onEvent: (event) => {
            if (event.type === 'scan-done') release()
            else if (event.type === 'file-done') (event.kind === 'delete' ? deleted : sent).add(event.path)
          },
        })
      } catch (error) {
        for (const state of connected) errors.set(state.name, toMirrorError(error))
      } finally {
        release()
      }
    } else if (this.stopping) {
      for (const state of connected) errors.set(state.name, new MirrorError('INTERRUPTED', 'interrupted', {target: state.name}))
    }
    for (const warning of result?.warnings ?? []) this.warn(warning.message, {path: warning.path})

    const targets: BatchTarget[] = []
    for (const state of group) {
      const outcome = result?.targets.find((o) => o.target === state.name)
      const failure = errors.get(state.name) ?? (outcome?.error ? errorFromJson(outcome.error, state.name) : undefined)
      const report = outcome?.report
      const entry: BatchTarget = {
        target: state.name,
        ok: !failure,
        sent: report?.sent ?? 0,
        deleted: report?.deleted ?? 0,
        bytes: report?.bytes ?? 0,
        kept: report?.kept.length ?? 0,
        pending: 0,
      }
      if (failure) {
        entry.error = failure.toJSON() as ErrorJson
        if (report && report.failed.length > 0) entry.failed = report.failed.slice(0, 10)
        const retryIn = await this.failed(state, failure, reused.has(state.name))
        if (retryIn !== undefined) entry.retryInMs = retryIn
      } else {
        const was = taken.get(state.name)!
        for (const [path, seq] of was.paths) if (state.paths.get(path) === seq) state.paths.delete(path)
        if (state.full && state.full.seq === was.seq) state.full = undefined
        if (state.failures > 0) entry.recovered = true
        state.failures = 0
        state.step = 0
        state.breakLock = false
      }
      entry.pending = state.paths.size
      targets.push(entry)
    }
    this.persist()
    const changed = [...new Set([...sent, ...deleted])].sort()
    this.options.onEvent({
      event: 'batch',
      kind,
      paths: changed.slice(0, MAX_EVENT_PATHS),
      changed: changed.length,
      targets,
      durationMs: Date.now() - started,
      ok: targets.every((t) => t.ok),
    })
  }

  /**
   * Opens the targets of `group` that have no connection. A target that takes longer than
   * `connectGraceMs` (a host that does not answer, until its timeout) is taken out of the
   * group and goes on in a run of its own, so the others are published without waiting.
   */
  private async connect(group: TargetState[], errors: Map<string, MirrorError>): Promise<void> {
    const pending = group.filter((s) => !s.open)
    if (pending.length === 0) return
    const attempts = pending.map((state) => {
      state.connecting ??= this.options.openTarget(state.name).then(
        async (target) => {
          // Connected after a stop: nobody will use it.
          if (this.stopping) await target.close()
          else state.open = target
        },
        (error) => {
          state.connectError = toMirrorError(error)
        },
      )
      return state.connecting
    })
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const waits: Array<Promise<unknown>> = [Promise.all(attempts), new Promise<void>((resolve) => this.abort.signal.addEventListener('abort', (onAbort = () => resolve()), {once: true}))]
    if (group.length > 1) waits.push(new Promise((resolve) => (timer = setTimeout(resolve, this.options.connectGraceMs ?? CONNECT_GRACE_MS))))
    await Promise.race(waits)
    clearTimeout(timer)
    this.abort.signal.removeEventListener('abort', onAbort!)
    for (const state of pending) {
      if (state.connectError) {
        errors.set(state.name, state.connectError)
        state.connecting = state.connectError = undefined
      } else if (state.open) {
        state.connecting = undefined
      } else if (this.stopping) {
        errors.set(state.name, new MirrorError('INTERRUPTED', 'interrupted', {target: state.name}))
      } else {
        group.splice(group.indexOf(state), 1)
        this.launch([state])
      }
    }
  }

  /** Books a failure; returns the delay before the next attempt (none when stopping). */
  private async failed(state: TargetState, error: MirrorError, reused: boolean): Promise<number | undefined> {
    state.failures++
    let delay: number
    // (A lock left by a mirror of this machine that is gone is taken over by publish itself:
    // a LOCKED that reaches us is a live publisher's, and is waited for.)
    if (reused && state.failures === 1) {
      // The connection was open from an earlier batch: the slave may just have dropped an idle
      // connection (or its root changed under us). Reconnect and try once at once.
      delay = 0
    } else {
      state.step++
      delay = retryDelay(state.step, error.retryable, this.options.retry)
    }
    // After a network hiccup or a lock the slave is as we left it and its pending paths are
    // enough. Any other failure (a root that went away and may come back empty, a full disk,
    // a failed write) may have left it otherwise: its catch-up compares everything.
    if (!error.retryable && error.code !== 'INTERRUPTED') this.requestFullFor(state, 'verify', 'retry')
    if (error.code !== 'LOCKED') await this.dropConnection(state)
    if (this.stopping || error.code === 'INTERRUPTED') return undefined
    state.timer = setTimeout(() => {
      state.timer = undefined
      this.schedule()
    }, delay)
    return delay
  }

  private async dropConnection(state: TargetState): Promise<void> {
    const open = state.open
    state.open = undefined
    await open?.close()
  }

  private async enterScan(): Promise<() => void> {
    const previous = this.scanGate
    let release!: () => void
    this.scanGate = new Promise((resolve) => (release = resolve))
    await previous
    return release
  }

  private persist(): void {
    this.writer.save(() => {
      const snapshot: PendingSnapshot = {}
      for (const state of this.states.values()) {
        if (!this.hasWork(state)) continue
        // A pending reconcile is worth keeping; a pending plain publish happens at every start.
        snapshot[state.name] = state.full?.kind === 'verify' ? {paths: [...state.paths.keys()], full: 'verify'} : {paths: [...state.paths.keys()]}
      }
      return snapshot
    })
  }

  private warn(message: string, where: {path?: string; target?: string} = {}): void {
    const key = `${where.target ?? ''}\n${where.path ?? ''}\n${message}`
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.options.onEvent({event: 'warning', message, ...where})
  }
}

function errorFromJson(json: Record<string, unknown>, target: string): MirrorError {
  return new MirrorError((json.code as MirrorError['code']) ?? 'INTERNAL', String(json.message ?? 'failed'), {
    target: (json.target as string | undefined) ?? target,
    path: json.path as string | undefined,
    suggestion: json.suggestion as string | undefined,
    retryable: json.retryable === true,
  })
}

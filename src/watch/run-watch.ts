// Puts a watch session together: the source watcher (chokidar) feeds the batcher, the batcher
// feeds the loop, the loop publishes; plus the reconcile and render timers and the master-side
// lock that keeps one watch per config. The command only parses flags, prints events and
// handles signals.

import * as fs from 'node:fs/promises'
import {join, relative} from 'node:path'

import picomatch from 'picomatch'

import type {Config} from '../config/load.js'
import {MirrorError, withContext} from '../errors.js'
import {acquireLocalLock} from '../schedule/local-lock.js'
import {publish} from '../sync/publish.js'
import {createRouter} from '../sync/segments.js'
import {createTarget} from '../targets/index.js'
import {DEFAULT_RETRY, type RetryPolicy} from './backoff.js'
import {ChangeBatcher} from './batcher.js'
import type {BatchKind, WatchEvent} from './events.js'
import {WatchLoop} from './loop.js'
import {RenderLoop} from './render-loop.js'
import {watchSource, type SourceWatcher} from './source-watcher.js'

export interface WatchOptions {
  /** Watch only these targets (names); all when empty. */
  targets?: readonly string[]
  /** Milliseconds of quiet before a batch is published (default: config watch.debounce). */
  debounceMs?: number
  /** Retry delays of failing targets (default: 1 s doubling up to config watch.retryMax). */
  retry?: RetryPolicy
  /** Milliseconds between reconciles (default: config watch.reconcile); 0 disables them. */
  reconcileMs?: number
  /** Take over held target locks on the first publish (`--break-lock`). */
  breakLock?: boolean
  /** Re-render the origin into the source; needs a `render` block. */
  render?: {intervalMs: number; hookPort?: number}
  /** Milliseconds between checks that the source directory is still the one being watched. */
  rootCheckMs?: number
  onEvent: (event: WatchEvent) => void
}

export interface WatchSession {
  /** Resolves when the watcher has crawled the source: from then on no change is missed. */
  ready: Promise<void>
  /** Re-renders now (with `render`), else reconciles now. */
  poke(reason: string): void
  /** Resolves once nothing is being published and nothing is due. */
  whenIdle(): Promise<void>
  /** Stops everything cleanly (see WatchLoop.stop); safe to call twice. */
  stop(): Promise<void>
}

export async function startWatch(config: Config, options: WatchOptions): Promise<WatchSession> {
  const emit = options.onEvent
  const names = options.targets?.length ? [...options.targets] : config.targets.map((t) => t.name)
  for (const name of names) {
    if (!config.targets.some((t) => t.name === name)) {
      throw new MirrorError('USAGE', `no target named "${name}"`, {suggestion: `Targets in the config: ${config.targets.map((t) => t.name).join(', ')}.`})
    }
  }
  if (options.render && !config.render) {
    throw new MirrorError('USAGE', '--render needs a "render" block in the config', {suggestion: 'Add a render block (see `mirror init --help`), or watch without --render.'})
  }
  // With --render the first render may be what creates the source.
  if (options.render) await fs.mkdir(config.source, {recursive: true})
  const stat = await fs.stat(config.source).catch(() => null)
  if (!stat?.isDirectory()) {
    throw new MirrorError('USAGE', `source ${config.source} does not exist or is not a directory`, {
      suggestion: 'Check "source" in the config (relative paths are relative to the config file), or run `mirror render` first.',
    })
  }
  const watchSettings = config.watch
  const debounceMs = options.debounceMs ?? watchSettings.debounce
  const reconcileMs = options.reconcileMs ?? watchSettings.reconcile * 1000

  const lockFile = join(config.stateDir, 'watch.lock')
  const attempt = await acquireLocalLock(lockFile, 'mirror watch')
  if (!attempt.ok) {
    throw new MirrorError('LOCKED', `another mirror watch (pid ${attempt.heldBy.pid}, since ${attempt.heldBy.since}) is running for this config`, {
      suggestion: `Stop that one first; the lock is ${lockFile}.`,
    })
  }
  const lock = attempt.lock

  try {
    const ignored = ignoreMatcher(config)
    const router = createRouter(config.segments)
    const watched = new Set(names)
    const loop = new WatchLoop({
      targets: names,
      route: (path) => router.segmentFor(path)?.targets.filter((name) => watched.has(name)),
      publish: (publishOptions) => publish(config, publishOptions),
      openTarget: async (name) => {
        const target = await createTarget(config.targets.find((t) => t.name === name)!, config)
        try {
          await target.connect()
        } catch (error) {
          await target.close()
          throw withContext(error, name)
        }
        return target
      },
      pendingFile: join(config.stateDir, 'watch', 'pending.json'),
      retry: options.retry ?? {...DEFAULT_RETRY, maxMs: watchSettings.retryMax * 1000},
      reconcileMs,
      breakLock: options.breakLock,
      onEvent: emit,
    })
    const batcher = new ChangeBatcher({
      debounceMs,
      // A tree that is never quiet is still published, in batches at most this far apart.
      maxWaitMs: Math.max(1000, debounceMs * 8),
      // A file must have been left alone this long before it is read (never half-written).
      // Below the debounce: a batch flushed after a quiet debounce then rarely finds a file that
      // changed since its event (a write lands just after the open that announced it) and has
      // to hold the whole burst back for it.
      settleMs: Math.max(50, Math.round(debounceMs / 2)),
      changedAt: async (path) => {
        const s = await fs.lstat(join(config.source, path)).catch(() => null)
        return s ? s.ctimeMs : null
      },
      onBatch: (paths) => loop.addPaths(paths),
    })

    let stopping = false
    let watcher: SourceWatcher | undefined
    let watchedRoot = `${stat.dev}:${stat.ino}`
    let resolveReady!: () => void
    const ready = new Promise<void>((resolve) => (resolveReady = resolve))
    const startWatcher = () => {
      const started = Date.now()
      const scansBefore = loop.fullScans
      watcher = watchSource(config.source, {
        ignored,
        onPath: (path) => batcher.add(path),
        onReady: () => {
          emit({event: 'ready', durationMs: Date.now() - started})
          // The first publish did not wait for the crawl: what changed in a directory after a
          // scan read it and before the watcher covered it is caught by one more pass. A full
          // publish still to come covers it by itself.
          if (loop.fullScans > scansBefore) loop.requestFull('publish', 'catch-up')
          resolveReady()
        },
        onError: (error) => {
          const hint = (error as NodeJS.ErrnoException).code === 'ENOSPC' ? ' (raise fs.inotify.max_user_watches; the periodic reconcile catches up meanwhile)' : ''
          emit({event: 'warning', message: `watching the source: ${error.message}${hint}`})
        },
      })
    }
    /**
     * A render (or anything else) may replace the source directory by a rename: the watcher
     * would keep watching the old one. Then watch the new one and publish it in full.
     */
    let rootMissingWarned = false
    const checkRoot = async (reason: BatchKind) => {
      const now = await fs.stat(config.source).catch(() => null)
      if (!now?.isDirectory()) {
        if (!rootMissingWarned) emit({event: 'warning', message: `the source ${config.source} is gone; waiting for it to come back`})
        rootMissingWarned = true
        return
      }
      rootMissingWarned = false
      const identity = `${now.dev}:${now.ino}`
      if (identity === watchedRoot || stopping) return
      watchedRoot = identity
      await watcher?.close()
      batcher.clear()
      loop.requestFull('publish', reason)
      if (!stopping) startWatcher()
    }

    startWatcher()
    await loop.load()

    let renderLoop: RenderLoop | undefined
    let renderHook: string | undefined
    if (options.render) {
      const render = await loadRenderer()
      renderLoop = new RenderLoop({
        intervalMs: options.render.intervalMs,
        hookPort: options.render.hookPort,
        render: (signal) => render(config, signal),
        around: () => {
          const release = batcher.hold()
          return (ok) => {
            // A renderer that swaps the whole tree in is seen here; one that writes in place
            // was held back and now goes out as one batch.
            const check = ok ? checkRoot('render') : Promise.resolve()
            void check.finally(release)
          }
        },
        status: () => ({pending: loop.pendingCounts()}),
        onEvent: emit,
      })
      renderHook = await renderLoop.start()
    }

    emit({event: 'watching', source: config.source, targets: names, debounceMs, reconcileS: reconcileMs / 1000, pending: loop.pendingCounts(), ...(renderHook ? {renderHook} : {})})
    if (attempt.tookOver) {
      // Killed (SIGKILL, a crash, a reboot) in the middle of a batch, it may have left
      // temporary files on the slaves: a full comparison finds and removes them.
      emit({event: 'warning', message: `the previous watch (pid ${attempt.tookOver.pid}) did not stop cleanly: comparing every slave in full`})
      loop.requestFull('verify', 'initial')
    }
    loop.start()
    const rootTimer = setInterval(() => void checkRoot('catch-up'), options.rootCheckMs ?? 1000)

    let stopped: Promise<void> | undefined
    return {
      ready,
      poke(reason) {
        if (renderLoop) renderLoop.trigger(reason)
        else loop.requestFull('verify', 'reconcile')
      },
      whenIdle: () => loop.whenIdle(),
      stop() {
        stopped ??= (async () => {
          stopping = true
          clearInterval(rootTimer)
          await renderLoop?.stop()
          await watcher?.close()
          await loop.stop(batcher.stop())
          await lock.release()
        })()
        return stopped
      },
    }
  } catch (error) {
    await lock.release()
    throw error
  }
}

/** Excluded paths, and mirror's own state when it sits inside the source, are not watched. */
function ignoreMatcher(config: Config): (path: string, isDir: boolean) => boolean {
  const globs = [...config.exclude]
  const state = relative(config.source, config.stateDir)
  if (state && !state.startsWith('..')) globs.push(state, `${state}/**`)
  if (globs.length === 0) return () => false
  const match = picomatch(globs, {dot: true})
  // A directory is skipped when everything under it is excluded (".git/**" skips ".git").
  return (path, isDir) => match(path) || (isDir && match(`${path}/.mirror-probe`))
}

type Render = (config: Config, signal: AbortSignal) => Promise<unknown>

/**
 * The renderer is imported only when asked for, so watch works in a build without it. Its
 * report is reduced to its numbers for the event.
 */
async function loadRenderer(): Promise<Render> {
  const specifier = '../render/index.js'
  let renderSite: ((config: Config, options?: {signal?: AbortSignal}) => Promise<unknown>) | undefined
  try {
    ;({renderSite} = (await import(specifier)) as {renderSite?: typeof renderSite})
  } catch (error) {
    throw new MirrorError('USAGE', `the renderer could not be loaded: ${(error as Error).message}`, {suggestion: 'Watch without --render, or rebuild mirror (npm run build).'})
  }
  if (typeof renderSite !== 'function') throw new MirrorError('USAGE', 'this build of mirror has no renderer', {suggestion: 'Watch without --render.'})
  const fn = renderSite
  return async (config, signal) => {
    const report = await fn(config, {signal})
    if (!report || typeof report !== 'object') return undefined
    return Object.fromEntries(Object.entries(report).filter(([, value]) => typeof value === 'number' || typeof value === 'boolean'))
  }
}

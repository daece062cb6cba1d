// chokidar on the source tree, reduced to what the watch loop needs: the relative path of every
// file added, changed or removed. It starts with `ignoreInitial`, so it reports only changes and
// the first publish does not wait for it to finish crawling.

import {readdir} from 'node:fs/promises'
import {join, relative, sep} from 'node:path'

import {watch, type FSWatcher} from 'chokidar'

export interface SourceWatcherOptions {
  /** True for a source-relative path that is never published (excluded, mirror's own state). */
  ignored: (path: string, isDir: boolean) => boolean
  onPath: (path: string) => void
  /** The watcher finished crawling the tree: from now on no change can be missed. */
  onReady: () => void
  onError: (error: Error) => void
}

export interface SourceWatcher {
  close(): Promise<void>
}

export function watchSource(source: string, options: SourceWatcherOptions): SourceWatcher {
  const toRelative = (path: string) => {
    const rel = relative(source, path)
    return sep === '/' ? rel : rel.split(sep).join('/')
  }
  const watcher: FSWatcher = watch(source, {
    ignoreInitial: true,
    followSymlinks: false,
    // No extra hold on removals (chokidar's `atomic` delays each one 100 ms): the batcher's
    // quiet period already folds an editor's delete-and-rewrite into one change, and a batch
    // publishes each path as it is when the batch goes out.
    atomic: false,
    ignorePermissionErrors: true,
    ignored: (path, stats) => {
      const rel = toRelative(path)
      if (rel === '' || rel.startsWith('..')) return false
      return options.ignored(rel, stats?.isDirectory() ?? false)
    },
  })
  const report = (path: string) => {
    const rel = toRelative(path)
    if (rel !== '' && !rel.startsWith('..')) options.onPath(rel)
  }
  // A directory that appears with files already in it (a checkout, `cp -r`, `tar -x`): chokidar
  // reads a new directory, then watches it, and a file written between the two goes unreported
  // unless something else changes there later (a 300-file burst arrived with 299, now and then).
  // So the new directory is read here again once chokidar watches it, and what chokidar has not
  // seen is reported (read at once instead, it was read before chokidar's own read, and every
  // file of it was reported twice). A path reported twice is one change to the batcher.
  const readNewDir = async (dir: string, unseen?: (name: string) => boolean): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    for (const entry of entries) {
      if (unseen && !unseen(entry.name)) continue
      const path = join(dir, entry.name)
      const rel = toRelative(path)
      if (options.ignored(rel, entry.isDirectory())) continue
      if (entry.isDirectory()) await readNewDir(path)
      else report(path)
    }
  }
  // The second look, for the new directories of the last moments at once: chokidar's list of
  // what it knows is made from every directory it watches.
  const toCheck = new Set<string>()
  let checking: NodeJS.Timeout | undefined
  const checkLater = (dir: string) => {
    toCheck.add(dir)
    checking ??= setTimeout(() => {
      checking = undefined
      const dirs = [...toCheck]
      toCheck.clear()
      const watched = watcher.getWatched()
      for (const dir of dirs) {
        const known = new Set(watched[dir] ?? [])
        void readNewDir(dir, (name) => !known.has(name))
      }
    }, NEW_DIR_CHECK_MS)
  }
  watcher.on('addDir', checkLater)
  watcher.on('add', report)
  watcher.on('change', report)
  watcher.on('unlink', report)
  watcher.on('ready', options.onReady)
  watcher.on('error', (error) => options.onError(error as Error))
  return {
    close: () => {
      clearTimeout(checking)
      return watcher.close()
    },
  }
}

/** How long after a directory appears chokidar surely watches it (it reads it first, then watches). */
const NEW_DIR_CHECK_MS = 200

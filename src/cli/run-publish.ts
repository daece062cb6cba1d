// `mirror publish` once its config is loaded (and the origin rendered, when asked): progress on
// a terminal, Ctrl-C and SIGTERM as a clean stop, the result shown and the exit code set. The
// same for the oclif command and for the head start, which runs a plain publish without oclif.

import type {Config} from '../config/load.js'
import type {WalkedTree} from '../sync/walk-aside.js'
import {untilStopped} from '../util/process.js'
import {createProgress} from '../ui/progress.js'
import {showPublishResult} from '../ui/publish-output.js'
import type {HeadStart} from './head-start.js'
import {publishExitCode} from './publish-exit.js'

export interface PublishFlags {
  targets?: string[]
  dryRun?: boolean
  force?: boolean
  verify?: boolean
  maxDelete?: number
  breakLock?: boolean
  json?: boolean
  verbose?: boolean
}

/** Publishes `config` with the walk (and connections) already begun in `started`. */
export async function runPublish(config: Config, flags: PublishFlags, started: HeadStart | {walking: Promise<WalkedTree>}): Promise<void> {
  const progress = createProgress(!flags.json)
  try {
    const {publish} = await import('../sync/publish.js')
    const result = await untilStopped((signal) =>
      publish(config, {
        ...started,
        targets: flags.targets,
        dryRun: flags.dryRun,
        force: flags.force,
        verify: flags.verify,
        maxDelete: flags.maxDelete,
        breakLock: flags.breakLock,
        signal,
        onEvent: (event) => progress.onEvent(event),
      }),
    )
    progress.done()
    process.exitCode = publishExitCode(result)
    await showPublishResult(result, process.exitCode === 0, {json: flags.json, verbose: flags.verbose})
  } finally {
    progress.done()
  }
}

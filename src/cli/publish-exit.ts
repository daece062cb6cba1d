// The exit code of a publish (and of each watch batch), from its per-target outcomes.

import {ExitCode, type ExitCodeValue} from '../errors.js'
import type {PublishResult} from '../sync/publish.js'

export function publishExitCode(result: PublishResult): ExitCodeValue {
  const failed = result.targets.filter((o) => o.error)
  if (failed.length === 0) return ExitCode.OK
  if (failed.some((o) => o.error?.code === 'INTERRUPTED')) return ExitCode.INTERRUPTED
  if (failed.every((o) => o.error?.code === 'LOCKED')) return ExitCode.LOCKED
  if (failed.every((o) => o.error?.code === 'MAX_DELETE')) return ExitCode.STOPPED
  return failed.length === result.targets.length ? ExitCode.FAILED : ExitCode.PARTIAL
}

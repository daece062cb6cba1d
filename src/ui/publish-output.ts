// How a publish's result is shown, the same from the command and from the clean-noop answer
// given before oclif loads (src/cli/head-start.ts): one JSON document on stdout, or the plans
// and the report on stdout with warnings and target errors on stderr.

import type {PublishResult} from '../sync/publish.js'
import {formatPlan, formatReport, formatTargetError, formatWarnings} from './format.js'
import {writeJson} from './json-stream.js'

export interface PublishOutputOptions {
  json?: boolean
  /** Every path of each plan, not the first 200. */
  verbose?: boolean
}

/** Writes the result; `ok` in the JSON says whether the exit code is 0. */
export async function showPublishResult(result: PublishResult, ok: boolean, options: PublishOutputOptions): Promise<void> {
  if (options.json) {
    await writeJson(process.stdout, {ok, ...result})
    return
  }
  for (const line of formatWarnings(result)) process.stderr.write(`${line}\n`)
  const limit = options.verbose ? Infinity : 200
  for (const outcome of result.targets) {
    if (outcome.plan) process.stdout.write(`${formatPlan(outcome.plan, limit)}\n`)
    else process.stdout.write(`${outcome.target}  ${outcome.url}\n  not planned: ${outcome.error?.message}\n`)
  }
  if (!result.dryRun) process.stdout.write(`${formatReport(result)}\n`)
  for (const outcome of result.targets.filter((o) => o.error)) {
    process.stderr.write(`${formatTargetError(outcome.target, outcome.error!)}\n`)
  }
}
